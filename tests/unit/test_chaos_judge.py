"""The chaos verdict: what the stack alone answers for (whatever the host did) and what takes time, each finding
naming what broke; a broker that drops publishes without a PUBACK fails it, and so does a fault that hit nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from indmlops.chaos import context, judge
from indmlops.chaos.runner import ChaosRun
from indmlops.checks.live import robustness as rb
from indmlops.delivery import Ledger


def record(func: str, output: dict, **args) -> dict:
    return {"activity": {"name": func, "provider": {"func": func, "arguments": args}}, "status": "succeeded",
            "output": output}


def traffic(**kw) -> dict:
    base = {"published": 1000, "acknowledged": 1000, "unacknowledged": 0, "lost_acknowledged": 0, "undrained": 0,
            "duplicates": 0, "resent_gap": 0, "rate": 100.0, "summary": "the traffic's summary",
            "outbox": {"given_up": 0, "given_up_examples": []},
            "catch_up": [{"catch_up_s": 1.0, "bound_s": 15, "met": True, "drain_rate": 900.0}]}
    base.update(kw)
    return base


def run(stop: dict | None = None, *, bound_for: str = "inference", recovered: bool = True, after: bool = True,
        status: str = "completed") -> ChaosRun:
    rows = []
    if recovered:
        rows.append(record("wait_ready", {"component": bound_for, "old_identity": "1", "new_identity": "2",
                                          "recovery_s": 2.0, "bound_s": 30}))
    rows.append(record("stop", stop or traffic(), bound_for=bound_for))
    journal = {"status": status, "deviated": False, "run": rows,
               "steady_states": {"before": {"steady_state_met": True}, "after": {"steady_state_met": after}}}
    return ChaosRun("judged", journal, Path("judged.journal.json"))


@pytest.fixture(autouse=True)
def no_target():
    context.use_target(None)


def test_a_clean_run_has_no_finding():
    assert judge.stack_findings(run(), "1s") == [] and judge.timing_findings(run()) == []


def test_a_broker_that_drops_a_tenth_of_publishes_without_puback_fails_the_stack():
    findings = judge.stack_findings(run(traffic(acknowledged=900, unacknowledged=100)), "1s")
    assert findings == ["100 readings the broker never acknowledged (QoS1 publishes without a PUBACK; bound 0): "
                        "the traffic's summary"]


@pytest.mark.parametrize(("kw", "expected"), [
    ({"recovered": False}, "no recovery recorded: the experiment killed nothing"),
    ({"after": False}, "steady state not met after the fault"),
    ({"status": "interrupted"}, "the run did not complete: status interrupted, deviated False"),
], ids=["killed-nothing", "steady-state-after", "not-completed"])
def test_faults_that_prove_nothing_are_the_stacks_not_timing(kw, expected):
    assert expected in judge.stack_findings(run(**kw), "1s")
    assert expected not in judge.timing_findings(run(**kw))


def test_readings_resent_after_an_inference_kill_blame_the_edge_or_broker_and_a_broker_kill_gets_its_policy():
    [edge] = judge.stack_findings(run(traffic(resent_gap=3)), "1s")
    assert edge.startswith("3 readings went missing after acknowledgement and had to be re-sent by the publisher "
                           "(allowed 0 for 1 kill(s) of inference under broker_autosave 1s): the broker holds the "
                           "edge's queue across its kill, so the edge or the broker dropped them")
    assert judge.stack_findings(run(traffic(resent_gap=300), bound_for="mosquitto"), "1s") == []  # ≤ 100 × 3
    [broker] = judge.stack_findings(run(traffic(resent_gap=301), bound_for="mosquitto"), "1s")
    assert "allowed 300 for 1 kill(s) of mosquitto under broker_autosave 1s)" in broker


def test_predictions_weaker_than_qos1_are_the_stacks():
    [finding] = judge.stack_findings(run(traffic(predictions_below_qos1=12)), "1s")
    assert finding.startswith("12 predictions arrived at QoS 0 on a QoS 1 subscription")


def test_an_edge_not_current_again_is_a_timing_finding_naming_the_bound():
    late = traffic(catch_up=[{"catch_up_s": None, "bound_s": 15, "met": False, "drain_rate": 50.0}])
    assert judge.stack_findings(run(late), "1s") == []
    [finding] = judge.timing_findings(run(late))
    assert finding.startswith("recovery 1: the edge was not current again within 15 s of ready")


def test_robustness_valid_stream_fails_when_the_broker_leaves_a_publish_unacknowledged():
    ledger = Ledger(clock=lambda: 0.0)
    for seq in range(10):
        key = ledger.published("m", seq)
        if seq != 4:  # the broker drops this one without a PUBACK; the edge never sees it
            ledger.acknowledged(key)
            ledger.predicted("m", seq)
    acc = ledger.account(10.0)
    with pytest.raises(AssertionError, match=r"1 of 10 valid QoS1 readings on t never got a PUBACK"):
        rb.every_valid_reading_acknowledged(acc, "t")


def test_a_run_interrupted_by_a_failed_recovery_still_counts_the_losses_its_rollback_accounted():
    journal = {"status": "interrupted", "deviated": False,
               "run": [record("kill", {"component": "inference"})],
               "rollbacks": [record("stop_all", [{"name": "default", **traffic(lost_acknowledged=4)}])],
               "steady_states": {"before": {"steady_state_met": True}}}
    findings = judge.stack_findings(ChaosRun("judged", journal, Path("judged.journal.json")), "1s")
    assert any(f.startswith("lost: 4 acknowledged readings got no prediction while later readings of their machines "
                            "did (accounted after the run was interrupted)") for f in findings), findings
    assert "inference killed, but no recovery was recorded" in findings
