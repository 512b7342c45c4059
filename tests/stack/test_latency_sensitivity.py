"""The latency verdict fails when the edge is broken: inference stopped (readings lost) or starved of CPU
(latency bounds breached). Each run is a short version of the quick profile against the session's stack."""

from __future__ import annotations

import dataclasses
import os
import signal
import threading
from contextlib import contextmanager

import pytest

from indmlops import slo
from indmlops.checks.live import latency

pytestmark = pytest.mark.stack


@pytest.fixture
def short_profile() -> slo.Profile:
    return dataclasses.replace(slo.profile("quick"), duration_s=6.0)


@contextmanager
def starved(pid: int, stopped_s: float = 0.3, running_s: float = 0.1):
    """SIGSTOP the process for `stopped_s` of every `stopped_s + running_s`: a CPU-starved edge node."""
    done = threading.Event()

    def cycle() -> None:
        while not done.is_set():
            os.kill(pid, signal.SIGSTOP)
            done.wait(stopped_s)
            os.kill(pid, signal.SIGCONT)
            done.wait(running_s)

    t = threading.Thread(target=cycle, daemon=True)
    t.start()
    try:
        yield
    finally:
        done.set()
        t.join()
        os.kill(pid, signal.SIGCONT)


def test_latency_verdict_says_not_drained_not_lost_when_inference_stopped(target, stopped, short_profile, tmp_path):
    """Nothing predicted at all: no reading can be shown lost (none after it was predicted either), and the verdict
    says the edge stopped handling them instead of calling them lost."""
    with stopped("inference"):
        result = latency.run_load(target, short_profile, out_dir=tmp_path)
    rows = latency.verdict(result, short_profile)
    with pytest.raises(AssertionError, match=rf"delivery not drained {result.acknowledged} ") as err:
        latency.assert_rows(rows, groups=("delivery",), result=result, profile=short_profile)
    assert result.acknowledged > 0 and result.lost == 0, result.delivery
    assert "operation     measure" in str(err.value)  # the whole verdict table is in the message
    assert "the edge stopped handling them" in str(err.value)
    with pytest.raises(AssertionError, match="mqtt:e2e p50 no samples"):
        latency.assert_rows(rows, groups=("mqtt:e2e",), result=result, profile=short_profile)
    with pytest.raises(AssertionError, match="http:predict error ratio 1.0000"):
        latency.assert_rows(rows, groups=("http:predict",), result=result, profile=short_profile)


def test_latency_verdict_fails_with_lost_readings_when_the_edge_session_is_dropped(target, stopped, tmp_path):
    """A real loss: while inference is down its persistent session is ended (as an expiry or a clean-session restart
    would), so the broker drops what it queued; inference comes back and predicts the later readings. Those before
    are lost, and the verdict says lost, proven by the later predictions of the same machines."""
    from indmlops import wire

    profile = dataclasses.replace(slo.profile("quick"), duration_s=12.0)
    inf = target.credentials("mosquitto", "inference")
    out: dict = {}
    with stopped("inference"):
        load = threading.Thread(target=lambda: out.update(result=latency.run_load(target, profile, out_dir=tmp_path)))
        load.start()
        threading.Event().wait(4)  # the load has started (child start-up ~2 s) and readings queue for inference
        wire.forget_session(target.endpoint("mosquitto"), inf.username, inf.password, "indmlops-inference")
    load.join(profile.duration_s + 180)
    result = out["result"]
    rows = latency.verdict(result, profile)
    assert result.lost > 0 and result.matched > 0, result.delivery
    with pytest.raises(AssertionError, match=r"delivery lost ratio 0\.\d+ \(\d+/\d+\)") as err:
        latency.assert_rows(rows, groups=("delivery",), result=result, profile=profile)
    assert f"{result.lost} lost" in str(err.value) and "lost e.g. " in str(err.value)


def test_latency_verdict_fails_on_percentiles_when_inference_starved(target, short_profile, tmp_path):
    # Stopped 1.5 × the loosest p99 bound of every cycle: a reading arriving in a stop waits up to that long, and 6 of
    # 7 arrive in one (0.6 s of each 0.7 s), so p99 lands near 1.5 × its bound whatever the host adds. At 0.3 s of
    # 0.4 s the worst wait (0.3 s) sat under the 400 ms e2e p99 bound and the breach depended on chance.
    stopped_s = 1.5 * max(b["p99_ms"] for b in short_profile.slo.values()) / 1000
    with starved(int(target.identity("inference")), stopped_s=stopped_s, running_s=0.1):
        result = latency.run_load(target, short_profile, out_dir=tmp_path)
    rows = latency.verdict(result, short_profile)
    failed = {f"{r.group} {r.measure}" for r in rows if not r.ok}
    assert {"mqtt:e2e p50", "mqtt:e2e p99", "http:predict p99"} <= failed, latency.format_table(rows)
    # the generator was fine: the verdict blames the edge, not the load
    assert "generator cpu cores" not in failed, latency.format_table(rows)


def test_capacity_verdict_fails_when_the_edge_drains_slower_than_the_ramp_offers(target):
    """An edge that runs a quarter of the time drains ~1/4 of its usual rate: the first step it cannot carry grows a
    queue, and the ramp says so with the growth (not with a lost reading: everything is predicted after the drain)."""
    from indmlops.capacity import Limits
    from indmlops.chaos.capacity import ramp

    limits = dataclasses.replace(Limits.load(), rates=(400.0, 3200.0), step_s=3.0)
    with starved(int(target.identity("inference")), stopped_s=0.3, running_s=0.1):
        cap = ramp(target, limits, needed=400, needed_by="this test", drain_bound_s=30)
    assert not cap.met and cap.carried < 3200, cap.text()
    broke = cap.steps[-1]
    assert any("delay grew" in f or "p99" in f for f in broke.failures(limits)), cap.text()
    assert "needed 2 × 400/s (this test) = 800/s" in cap.text()
