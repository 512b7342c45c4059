"""Latency suite: under a fixtures/slo.yaml profile's load (Locust), the edge answers within its SLOs."""

from __future__ import annotations

from pathlib import Path

import pytest

from indmlops import slo
from indmlops.checks.live import latency
from indmlops.checks.live.loadrun import LoadResult
from indmlops.hostcheck import Breach, MonitorSummary, timing_failure
from indmlops.plugin import option

pytestmark = pytest.mark.latency

OPERATIONS = list(slo.OPERATIONS)


@pytest.fixture(scope="module")
def slo_profile(profile: str) -> slo.Profile:
    return slo.profile(profile)


@pytest.fixture(scope="module")
def load_applied(target, slo_profile, pytestconfig, host_fit) -> tuple[LoadResult, list[latency.Row], MonitorSummary]:
    """One load run per session and profile, with the host watched meanwhile; every test below judges a part of it.
    A breach on a host that could not carry the profile (before or during the run) is an environment verdict."""
    from indmlops.checks.live import latency_report

    out = Path(option(pytestconfig, "reports_dir")) / "latency"
    with host_fit.monitor("latency") as host_run:
        result = latency.run_load(target, slo_profile, out_dir=out)
    rows = latency.verdict(result, slo_profile)
    latency_report.write(result, rows, f"edge latency, profile {slo_profile.name} ({slo_profile.shape}, "
                                       f"{slo_profile.rate:g} readings/s base, {target.name} target)")
    return result, rows, host_run.summary


@pytest.mark.parametrize("operation", OPERATIONS, ids=[f"op:{o}" for o in OPERATIONS])
def test_latency_within_slo_under_load(load_applied, slo_profile, operation, host_fit):
    result, rows, host_run = load_applied
    if operation not in slo_profile.slo:
        pytest.skip(f"profile {slo_profile.name!r} sets no bound for {operation} in fixtures/slo.yaml")
    with host_fit.judging(host_run):
        latency.assert_rows(rows, groups=(operation,), result=result, profile=slo_profile)


def test_every_reading_predicted_once_under_load(load_applied, slo_profile, host_fit):
    result, rows, host_run = load_applied
    latency.assert_rows(rows, groups=("delivery",), measures=latency.PROVEN, result=result, profile=slo_profile)
    with host_fit.judging(host_run):  # not drained, or published less than asked: late, not lost
        latency.assert_rows(rows, groups=("delivery",), exclude=latency.PROVEN, result=result, profile=slo_profile)


def test_generator_not_the_bottleneck_under_load(load_applied, slo_profile, host_fit):
    result, rows, host_run = load_applied
    with host_fit.judging(host_run):
        latency.assert_rows(rows, groups=("generator",), result=result, profile=slo_profile)


def test_reports_written_for_latency_run(load_applied):
    result, _rows, _host_run = load_applied
    for name in ("verdict.txt", "verdict.csv", "latency.png", "locust.html", "locust_stats.csv",
                 "locust_stats_history.csv", "reproduce.sh"):
        path = result.out_dir / name
        assert path.exists() and path.stat().st_size > 0, f"{path} missing or empty after the latency run"


@pytest.fixture(scope="module")
def capacity_measured(target, pytestconfig, host_fit, load_applied):
    """The durable-capacity ramp, once per session, after the profile's load (it must not share the host with it);
    the host watched meanwhile. Printed as it goes and kept in reports/latency/capacity.json."""
    import json

    from indmlops.capacity import Limits
    from indmlops.chaos.capacity import busiest_traffic, ramp
    from indmlops.plugin.session import live_printer

    say = live_printer(pytestconfig, "indmlops capacity")
    needed, needed_by = busiest_traffic()
    with host_fit.monitor("capacity") as host_run:
        cap = ramp(target, Limits.load(), needed=needed, needed_by=needed_by, progress=say)
    say(cap.text().splitlines()[0])
    out = Path(option(pytestconfig, "reports_dir")) / "latency" / "capacity.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(cap.as_dict(), indent=2) + "\n")
    return cap, host_run.summary, out


def test_durable_capacity_carries_every_profile_with_margin(capacity_measured, host_fit, target):
    cap, host_run, out = capacity_measured
    with host_fit.judging(host_run):  # a rate: explained only when the host's slowdown covers the shortfall
        if not cap.met:
            raise timing_failure(
                f"{cap.text()}\nThe stack on the {target.name} target falls behind below {cap.required:g} readings/s "
                f"(fixtures/slo.yaml capacity; steps in {out}). Reproduce: .venv/bin/pytest suites/latency -k capacity",
                [Breach("durable capacity", cap.carried, cap.required, "per_s")])
