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
