"""A chaos experiment fails, with the reason, when recovery is broken or its kill targets nothing — through
chaostoolkit's library and its `chaos run` command (scratch stacks: the shared one is not disturbed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from indmlops.chaos import runner
from indmlops.targets.local.target import LocalTarget

pytestmark = pytest.mark.stack


def kill_and_recover(component: str, timeout: float) -> dict:
    """The smallest experiment: no hypothesis probes beyond the broker answering, kill, recover."""
    def activity(kind: str, name: str, func: str, **args) -> dict:
        return {"type": kind, "name": name, "provider": {"type": "python", "module": "indmlops.chaos.actions",
                                                         "func": func, "arguments": args}}
    return {"version": "1.0.0", "title": f"kill {component}", "description": "sensitivity test",
            "configuration": {"indmlops_state_dir": {"type": "env", "key": "INDMLOPS_STATE_DIR", "default": ""}},
            "controls": [{"name": "strict", "provider": {"type": "python", "module": "indmlops.chaos.control"}}],
            "method": [activity("action", f"kill-{component}", "kill", component=component),
                       activity("probe", f"{component}-recovers", "wait_ready", component=component, timeout=timeout)],
            "rollbacks": []}


def write(tmp_path: Path, doc: dict) -> Path:
    path = tmp_path / "experiment.json"
    path.write_text(json.dumps(doc))
    return path


def test_experiment_fails_did_not_recover_when_autorestart_disabled(scratch_stack, tmp_path):
    stack = scratch_stack(no_autorestart=frozenset({"mosquitto"}))
    stack.up(["mosquitto"])
    run = runner.run("no-autorestart", LocalTarget(stack.layout.state_dir), tmp_path,
                     path=write(tmp_path, kill_and_recover("mosquitto", 4)))
    assert run.status == "interrupted", run.summary()
    assert "mosquitto did not recover within 4 s of the kill" in run.summary()


def test_experiment_fails_when_its_kill_targets_nothing(scratch_stack, tmp_path):
    stack = scratch_stack()
    stack.up(["mosquitto"])
    stack.supervisor.stop("mosquitto")
    run = runner.run("kill-nothing", LocalTarget(stack.layout.state_dir), tmp_path,
                     path=write(tmp_path, kill_and_recover("mosquitto", 4)))
    assert run.status == "interrupted", run.summary()
    assert "kill mosquitto: it is not running" in run.summary() or "cannot kill mosquitto" in run.summary()
    assert not run.outputs("wait_ready")


def test_chaos_run_command_exits_nonzero_when_recovery_fails_and_zero_when_it_holds(scratch_stack, tmp_path):
    broken = scratch_stack(no_autorestart=frozenset({"mosquitto"}))
    broken.up(["mosquitto"])
    healthy = scratch_stack()
    healthy.up(["mosquitto"])
    experiment = write(tmp_path, kill_and_recover("mosquitto", 4))
    chaos = str(Path(sys.executable).parent / "chaos")
    for stack, expected in ((healthy, 0), (broken, 1)):
        journal = tmp_path / f"journal-{expected}.json"
        out = subprocess.run([chaos, "--log-file", str(tmp_path / "chaostoolkit.log"), "run",
                              "--rollback-strategy", "always", "--journal-path", str(journal),
                              str(experiment)], env=dict(os.environ, INDMLOPS_STATE_DIR=str(stack.layout.state_dir)),
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == expected, f"exit {out.returncode}, expected {expected}\n{out.stdout}{out.stderr}"
        status = json.loads(journal.read_text())["status"]
        assert status == ("completed" if expected == 0 else "interrupted"), status


# -- the traffic's verdict against a broken edge -----------------------------------------------------------------
# The real inference service is held stopped and a stand-in of the test's answers the chaos traffic in its place,
# breaking the contract one way at a time; the traffic, its outbox and the judgement are the suite's own.

class StandInEdge:
    """Answers telemetry with predictions as the edge does (QoS1, same fields), except as told: `drop_every` N
    readings are acknowledged and never answered (the first time they arrive), `per_s` caps how fast it answers."""

    def __init__(self, target, *, drop_every: int = 0, per_s: float = 0.0, qos: int = 1) -> None:
        import itertools
        import threading
        import time

        from indmlops import wire

        self.drop_every, self.per_s, self.qos = drop_every, per_s, qos
        self.seen: set[tuple[str, int]] = set()
        self.count = itertools.count()
        self.paused = threading.Event()
        creds = target.credentials("mosquitto", "inference")
        self.client = wire.mqtt_connect(target.endpoint("mosquitto"), creds.username, creds.password,
                                        on_message=self.on_message)
        self._time = time
        wire.mqtt_subscribe(self.client, "factory/+/+/telemetry", qos=1)

    def on_message(self, client, _u, msg) -> None:
        doc = json.loads(msg.payload)
        key = (doc["machine"], doc["seq"])
        first = key not in self.seen
        self.seen.add(key)
        if self.drop_every and first and next(self.count) % self.drop_every == 0:
            return  # paho acknowledges it: the reading is gone, and no prediction will say so
        if self.per_s:
            self._time.sleep(1.0 / self.per_s)
        out = {"id": doc["id"], "line": doc["line"], "machine": doc["machine"], "seq": doc["seq"], "label": "normal",
               "ts_ns": doc["ts_ns"], "published_ns": self._time.time_ns(), "service": "stand-in"}
        client.publish(f"factory/{doc['line']}/{doc['machine']}/prediction", json.dumps(out), qos=self.qos)

    def close(self) -> None:
        from indmlops import wire

        wire.mqtt_close(self.client)


@pytest.fixture
def stand_in(target):
    from indmlops.chaos import context

    made: list[StandInEdge] = []
    context.use_target(target)
    with target.outage("inference"):
        yield lambda **kw: made.append(StandInEdge(target, **kw)) or made[-1]
        for edge in made:
            edge.close()
    context.use_target(None)


def judged(report: dict, bound_for: str = "inference", marks: int = 1) -> runner.ChaosRun:
    """The traffic's real report inside the smallest journal the judgement reads."""
    def record(func: str, output: dict, **args) -> dict:
        return {"activity": {"name": func, "provider": {"func": func, "arguments": args}}, "status": "succeeded",
                "output": output}
    recoveries = [record("wait_ready", {"component": bound_for, "old_identity": "1", "new_identity": "2",
                                        "recovery_s": 1.0, "bound_s": 30}) for _ in range(marks)]
    journal = {"status": "completed", "deviated": False, "run": [*recoveries, record("stop", report,
                                                                                     bound_for=bound_for)],
               "steady_states": {"before": {"steady_state_met": True}, "after": {"steady_state_met": True}}}
    return runner.ChaosRun("sensitivity", journal, Path("sensitivity.journal.json"))


def run_traffic(seconds: float, *, mark_after: float | None = None, rate: float = 100, drain_bound_s: float = 30,
                strict: bool = True):
    """Traffic for `seconds`, a recovery mark `mark_after` s in; `strict` stops it as the experiments do (loss and
    undrained readings interrupt), else it only reports (to judge what the interruption would hide)."""
    import time

    from indmlops.chaos import context, traffic

    traffic.start(rate=rate, machines=5)
    if mark_after is not None:
        time.sleep(mark_after)
        context.state.recoveries.setdefault("inference", []).append({"ready_at": time.time()})
        time.sleep(max(0.0, seconds - mark_after))
    else:
        time.sleep(seconds)
    if strict:
        return traffic.stop(drain_bound_s=drain_bound_s, drain_quiet_s=5, bound_for="inference")
    return traffic.stop(drain_bound_s=drain_bound_s, drain_quiet_s=5, catch_up_for="inference")


def test_traffic_verdict_is_clean_when_the_edge_keeps_the_contract(stand_in):
    from indmlops.chaos import judge

    stand_in()
    report = run_traffic(4, mark_after=1)
    assert report["resent_gap"] == 0 and report["lost_acknowledged"] == 0, report["summary"]
    assert judge.stack_findings(judged(report), "1s") == []
    assert judge.timing_findings(judged(report)) == [], report["summary"]


def test_traffic_verdict_names_readings_an_edge_acknowledged_and_dropped_even_when_the_outbox_repaired_them(stand_in):
    from indmlops.chaos import judge

    stand_in(drop_every=10)
    report = run_traffic(5)
    # the outbox brought every reading through: nothing is lost end to end …
    assert report["lost_acknowledged"] == 0 and report["undrained"] == 0, report["summary"]
    # … but the readings the edge dropped had to be re-sent, and after an inference fault that is the edge's fault
    findings = judge.stack_findings(judged(report), "1s")
    print("\n".join(findings))
    assert any("went missing after acknowledgement and had to be re-sent" in f and "allowed 0" in f
               and "the edge or the broker dropped them" in f for f in findings), findings


def test_traffic_verdict_names_an_edge_that_answers_but_never_catches_up(stand_in):
    from indmlops.chaos import judge

    edge = stand_in(per_s=60)  # answers 60 readings/s while 100/s arrive: always further behind
    report = run_traffic(6, mark_after=3, drain_bound_s=3, strict=False)
    assert report["catch_up"] and not report["catch_up"][0]["met"], report["summary"]
    findings = judge.timing_findings(judged(report))
    print("\n".join(findings))
    assert any("was not current again within 15 s of ready" in f and "never current again" in f
               for f in findings), findings
    edge.close()


def test_traffic_verdict_names_an_edge_that_publishes_predictions_at_qos0(stand_in):
    from indmlops.chaos import judge

    stand_in(qos=0)  # a broker restart could drop these: the contract is QoS 1
    report = run_traffic(3, mark_after=1)
    findings = judge.stack_findings(judged(report), "1s")
    assert any("predictions arrived at QoS 0 on a QoS 1 subscription" in f for f in findings), findings
