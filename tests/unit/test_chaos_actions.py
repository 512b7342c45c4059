"""Chaos actions refuse to pass vacuously: a kill that hits nothing, a recovery with the same identity or without
a restart, and a component that does not come back all interrupt the experiment (fake target: no services)."""

from __future__ import annotations

import time

import pytest
from chaoslib.exceptions import InterruptExecution

from indmlops.chaos import actions, context
from indmlops.errors import NotReady, UnknownComponent
from indmlops.targets.base import KillEvidence, ReadyEvidence


class FakeTarget:
    name = "fake"

    def __init__(self, pid: str = "100", new_pid: str = "200", restarts_after: int = 1, ready: bool = True) -> None:
        self.pid, self.new_pid, self.restarts_after, self.ready = pid, new_pid, restarts_after, ready
        self.killed = False
        self.faulted: set[str] = set()

    def identity(self, component: str) -> str:
        if component not in ("inference", "mosquitto"):
            raise UnknownComponent(component, ["inference", "mosquitto"])
        return self.pid

    def kill(self, component: str) -> KillEvidence:
        self.killed = True
        self.faulted.add(component)
        return KillEvidence(component, self.pid, "SIGKILL", time.time())

    def restarts(self, component: str) -> int:
        return self.restarts_after if component in self.faulted else 0

    def hold(self, component: str) -> str:
        self.killed = True
        self.faulted.add(component)
        return f"stopped {component}"

    def release(self, component: str) -> None:
        self.released = component

    def wait_ready(self, component: str, timeout: float) -> ReadyEvidence:
        if not self.ready:
            raise NotReady(component, timeout, "supervisor state EXITED")
        return ReadyEvidence(component, self.new_pid, 0.5, "answers")


@pytest.fixture
def fake():
    def use(**kw) -> FakeTarget:
        t = FakeTarget(**kw)
        context.use_target(t)
        return t

    yield use
    context.use_target(None)


def test_kill_and_recovery_report_identities_and_time(fake):
    fake()
    actions.kill("inference")
    out = actions.wait_ready("inference", timeout=5)
    assert (out["old_identity"], out["new_identity"], out["restarts"]) == ("100", "200", 1)
    assert 0 <= out["recovery_s"] < 5


def test_kill_of_unknown_component_interrupts(fake):
    fake()
    with pytest.raises(InterruptExecution, match="kill grafana: unknown component 'grafana'"):
        actions.kill("grafana")


def test_kill_of_component_not_running_interrupts(fake):
    fake(pid="0")
    with pytest.raises(InterruptExecution, match="not running .* the fault would target nothing"):
        actions.kill("inference")


def test_recovery_without_a_kill_interrupts(fake):
    fake()
    with pytest.raises(InterruptExecution, match="no kill of inference in this run"):
        actions.wait_ready("inference", timeout=5)


def test_recovery_with_the_same_identity_interrupts(fake):
    fake(new_pid="100")
    actions.kill("inference")
    with pytest.raises(InterruptExecution, match="still runs as 100 after the kill: the fault was not injected"):
        actions.wait_ready("inference", timeout=5)


def test_recovery_without_a_restart_interrupts(fake):
    fake(restarts_after=0)
    actions.kill("inference")
    with pytest.raises(InterruptExecution, match="restart count 0 did not increase"):
        actions.wait_ready("inference", timeout=5)


def test_component_that_does_not_come_back_interrupts_naming_the_bound(fake):
    fake(ready=False)
    actions.kill("mosquitto")
    with pytest.raises(InterruptExecution, match=r"mosquitto did not recover within 3 s of the kill: supervisor"):
        actions.wait_ready("mosquitto", timeout=3)


def test_default_bound_comes_from_the_slo_fixture_for_the_kind_of_target(fake):
    from indmlops import slo

    fake()
    kind = slo.recovery_kind(FakeTarget.name)  # not the local stack: a Kubernetes-like target
    assert kind == "kubernetes"
    bound = context.recovery_bound(context.target(None), "inference")
    assert bound == slo.bound_from(slo.recovery_table()["measured"][kind]["inference"])
    with pytest.raises(InterruptExecution, match="recovery_s.measured has no kubernetes figure for 'grafana'"):
        context.recovery_bound(context.target(None), "grafana")


def test_summary_gives_median_and_worst_recovery_and_traffic_totals(tmp_path):
    import json

    from indmlops.chaos import runner

    def record(func: str, output: dict) -> dict:
        return {"activity": {"name": func, "provider": {"func": func}}, "status": "succeeded", "output": output}

    for i, secs in enumerate((2.0, 4.0, 9.0), start=1):
        journal = {"status": "completed", "run": [
            record("wait_ready", {"component": "inference", "recovery_s": secs}),
            record("stop", {"published": 100, "acknowledged": 100, "late": 2, "lost_acknowledged": i - 1,
                            "undrained": i % 2, "duplicates": 1, "resent_gap": i,
                            "catch_up": [{"catch_up_s": secs / 2, "bound_s": 15, "drain_rate": 100.0 * i}]})]}
        (tmp_path / f"kill-inference.{i}.journal.json").write_text(json.dumps(journal))
    (tmp_path / "outage-inference.1.journal.json").write_text(json.dumps({"status": "completed", "run": [
        record("release", {"component": "inference", "recovery_s": 1.0, "outage_s": 60}),
        record("stop", {"published": 10, "acknowledged": 10, "lost_acknowledged": 0, "duplicates": 0,
                        "catch_up": [{"catch_up_s": None, "bound_s": 15, "drain_rate": 7.0}]})]}))
    text = runner.summarize(tmp_path)
    lines = text.splitlines()
    assert "inference        4      3.00     9.00" in text  # the outage's recovery counts too
    row = next(line for line in lines if line.startswith("kill-inference") and "300" in line)
    assert row.split() == ["kill-inference", "3", "300", "300", "6", "3", "2", "3", "6"], text
    assert "late  lost undrained  dup resent" in text
    catch = [line.split() for line in lines[lines.index(next(x for x in lines if x.startswith("catch-up"))):]]
    assert ["kill-inference", "3", "4.5", "15", "300"] in catch, text  # worst of the three, fastest drain
    assert ["outage-inference", "1", "never", "15", "7"] in catch, text
    assert (tmp_path / "summary.txt").read_text() == text


def test_chaos_run_on_kind_without_a_cluster_interrupts_naming_the_context(tmp_path):
    context.use_target(None)
    cfg = {"indmlops_target": "kind", "indmlops_kubeconfig": str(tmp_path / "no-kubeconfig")}
    try:
        with pytest.raises(InterruptExecution, match=r"indmlops_target 'kind': no cluster at context 'kind-indmlops'"):
            context.target(cfg)
    finally:
        context.use_target(None)


def test_chaos_run_with_an_unknown_target_interrupts():
    context.use_target(None)
    with pytest.raises(InterruptExecution,
                       match=r"indmlops_target 'kid': expected one of local, kind, kubeconfig, cluster"):
        context.target({"indmlops_target": "kid"})


def test_no_kill_may_lose_an_acknowledged_reading_end_to_end():
    context.use_target(None)
    assert context.loss_bound("mosquitto") == context.loss_bound("inference") == 0


def test_resend_bound_follows_the_broker_policy_under_test_and_is_zero_for_other_kills():
    from indmlops import broker

    context.use_target(None)
    assert context.resend_bound("mosquitto", 200, "1s") == 600  # 200/s × (1 + 2) s
    # at autosave 1: 3 × the worst measured kill (fixtures/slo.yaml)
    assert context.resend_bound("mosquitto", 200, "1") == broker.max_resent("1", 200) == 3
    assert context.resend_bound("mosquitto", 200, "100") == 104
    assert context.resend_bound("inference", 200, "100") == 0  # the broker holds the edge's queue across its kill
    with pytest.raises(InterruptExecution, match="no row for broker_autosave 1000000"):
        context.resend_bound("mosquitto", 200, "1000000")


def test_outage_is_recorded_as_a_fault_and_its_release_as_a_recovery_with_its_length(fake):
    t = fake()
    out = actions.hold("inference")
    assert out["signal"] == "stopped inference" and context.state.held == {"inference": out["at"]}
    rec = actions.release("inference")
    assert t.released == "inference" and context.state.held == {}
    assert (rec["old_identity"], rec["new_identity"]) == ("100", "200") and rec["outage_s"] >= 0
    assert rec["ready_at"] >= out["at"] and not rec.get("during_outage_of")


def test_a_recovery_during_an_outage_is_not_a_catch_up_mark(fake):
    fake()
    actions.hold("inference")
    actions.kill("mosquitto")
    assert actions.wait_ready("mosquitto", timeout=5)["during_outage_of"] == ["inference"]


def test_hold_of_a_stopped_component_and_release_without_hold_interrupt(fake):
    fake(pid="0")
    with pytest.raises(InterruptExecution, match="hold inference: it is not running"):
        actions.hold("inference")
    with pytest.raises(InterruptExecution, match="release inference: it was not held in this run"):
        actions.release("inference")
