"""bench/noisy_neighbour.py: which failures claim a loss, how JUnit XML is classified, and that stress-ng is
stopped on every way out (a fake stress-ng records its pid)."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "noisy_neighbour.py"
spec = importlib.util.spec_from_file_location("noisy_neighbour", BENCH)
nn = importlib.util.module_from_spec(spec)
sys.modules["noisy_neighbour"] = nn  # dataclasses look their module up
spec.loader.exec_module(nn)


@pytest.mark.parametrize(("text", "loss"), [
    ("SLO breached under the 'quick' profile: delivery lost ratio 0.0300 (45/1500) (bound ≤ 0)", True),
    ("operation  measure  bound\ndelivery  lost ratio  ≤ 0  0.0000 (0/1510)  ok\nmqtt:e2e p99 FAIL", False),
    ("experiment  runs  published  acked  lost  dup\nkill-broker  1  300  300  0  0", False),
    ("{'acknowledged': 300, 'lost_acknowledged': 7, 'duplicates': 0}", True),
    ("{'acknowledged': 300, 'lost_acknowledged': 0, 'duplicates': 0}", False),
    ("12 acknowledged QoS1 readings of line line-9 got no prediction (allowed 0)", True),
    ("3 readings lost", True),
    ("did not recover within 15 s", False),
])
def test_a_loss_is_a_nonzero_count_not_the_word(text, loss):
    assert nn.claims_loss(text) is loss


JUNIT = """<?xml version="1.0"?><testsuites><testsuite name="pytest">
<testcase classname="suites.latency.test_latency" name="test_every_reading_predicted_once_under_load">
  <properties><property name="verdict" value="stack"/></properties>
  <failure message="SLO breached: delivery lost ratio 0.0300 (45/1500) (bound ≤ 0)">table</failure></testcase>
<testcase classname="suites.latency.test_latency" name="test_latency_within_slo_under_load[op:mqtt:e2e]">
  <properties><property name="verdict" value="environment"/></properties>
  <failure message="environment, not the stack: ...">delivery lost ratio 0.0100 (15/1500)</failure></testcase>
<testcase classname="suites.chaos.test_chaos" name="test_experiment[kill-broker]">
  <error message="did not recover within 15 s">no properties: counted as the stack's</error></testcase>
<testcase classname="suites.smoke.test_smoke" name="test_ok"/>
<testcase classname="suites.smoke.test_smoke" name="test_skip"><skipped message="no"/></testcase>
</testsuite></testsuites>"""


def test_junit_classified_by_the_verdict_property(tmp_path):
    path = tmp_path / "junit.xml"
    path.write_text(JUNIT)
    r = nn.RunResult(1, 1, 10.0)
    nn.read_junit(path, r)
    assert (r.passed, r.skipped) == (1, 1)
    assert r.failed_stack == ["suites.latency.test_latency::test_every_reading_predicted_once_under_load",
                              "suites.chaos.test_chaos::test_experiment[kill-broker]"]
    assert r.failed_environment == ["suites.latency.test_latency::test_latency_within_slo_under_load[op:mqtt:e2e]"]
    assert r.stack_losses == ["suites.latency.test_latency::test_every_reading_predicted_once_under_load"]
    assert len(r.environment_losses) == 1
    assert "2 failed-stack, 1 failed-environment" in r.line() and "LOSS blamed on the stack" in r.line()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead for our purpose
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


@pytest.fixture
def fake_stress(tmp_path):
    """A `stress-ng` that records its pid and a child's, then sleeps: both must be gone after a stop."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    pids = tmp_path / "pids"
    script = bindir / "stress-ng"
    script.write_text(f"#!/bin/sh\nsleep 300 &\necho $$ $! > {pids}\nwait\n")
    script.chmod(0o755)
    return script, pids


def _wait_for(path: Path, timeout: float = 10) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and len(path.read_text().split()) == 2:
            return [int(p) for p in path.read_text().split()]
        time.sleep(0.05)
    raise AssertionError(f"the fake stress-ng wrote no pids to {path} within {timeout} s")


def test_stress_stop_ends_its_whole_group(tmp_path, fake_stress):
    script, pids = fake_stress
    s = nn.Stress(str(script), [], 60, tmp_path / "stress.log")
    s.start()
    procs = _wait_for(pids)
    s.stop()
    s.stop()  # twice is harmless
    assert not any(_alive(p) for p in procs)
    assert not s.tmp.exists()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_script_stops_stress_when_signalled(tmp_path, fake_stress, sig):
    script, pids = fake_stress
    env = dict(os.environ, PATH=f"{script.parent}:{os.environ['PATH']}")
    # Started with SIGINT ignored, as a background job of a non-interactive shell (nohup, CI runners) starts it:
    # Ctrl-C must still stop it.
    proc = subprocess.Popen([sys.executable, str(BENCH), "--runs", "1", "--warmup", "60", "-m", "smoke"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    try:
        procs = _wait_for(pids)
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=30)
    finally:  # a script that ignored the signal must not go on to run the suites against the stack
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode != 0, out
    deadline = time.monotonic() + 5
    while any(_alive(p) for p in procs) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(p) for p in procs), f"stress-ng outlived the script after {sig.name}:\n{out}"
