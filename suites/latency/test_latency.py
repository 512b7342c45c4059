"""Latency suite: under a fixtures/slo.yaml profile's load (Locust), the edge answers within its SLOs."""

from __future__ import annotations

from pathlib import Path

import pytest

from indmlops import slo
from indmlops.checks import latency
from indmlops.loadrun import LoadResult
from indmlops.pytest_plugin import option

pytestmark = pytest.mark.latency

OPERATIONS = list(slo.OPERATIONS)


@pytest.fixture(scope="module")
def slo_profile(profile: str) -> slo.Profile:
    return slo.profile(profile)


@pytest.fixture(scope="module")
def load_applied(target, slo_profile, pytestconfig) -> tuple[LoadResult, list[latency.Row]]:
    """One load run per session and profile; every test below judges a part of it."""
    from indmlops import latency_report

    out = Path(option(pytestconfig, "reports_dir")) / "latency"
    result = latency.run_load(target, slo_profile, out_dir=out)
    rows = latency.verdict(result, slo_profile)
    latency_report.write(result, rows, f"edge latency, profile {slo_profile.name} ({slo_profile.shape}, "
                                       f"{slo_profile.rate:g} readings/s base, {target.name} target)")
    return result, rows


@pytest.mark.parametrize("operation", OPERATIONS, ids=[f"op:{o}" for o in OPERATIONS])
def test_latency_within_slo_under_load(load_applied, slo_profile, operation):
    result, rows = load_applied
    if operation not in slo_profile.slo:
        pytest.skip(f"profile {slo_profile.name!r} sets no bound for {operation} in fixtures/slo.yaml")
    latency.assert_rows(rows, groups=(operation,), result=result, profile=slo_profile)


def test_every_reading_predicted_once_under_load(load_applied, slo_profile):
    result, rows = load_applied
    latency.assert_rows(rows, groups=("delivery",), result=result, profile=slo_profile)


def test_generator_not_the_bottleneck_under_load(load_applied, slo_profile):
    result, rows = load_applied
    latency.assert_rows(rows, groups=("generator",), result=result, profile=slo_profile)


def test_reports_written_for_latency_run(load_applied):
    result, _rows = load_applied
    for name in ("verdict.txt", "verdict.csv", "latency.png", "locust.html", "locust_stats.csv",
                 "locust_stats_history.csv", "reproduce.sh"):
        path = result.out_dir / name
        assert path.exists() and path.stat().st_size > 0, f"{path} missing or empty after the latency run"
