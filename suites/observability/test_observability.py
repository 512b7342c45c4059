"""Observability suite: every scrape target is up, rules are valid and loaded, inference metrics move under
traffic, and every Grafana dashboard panel's query returns data from Prometheus."""

from __future__ import annotations

import pytest

from indmlops.checks.live import observability as obs
from indmlops.checks.live import smoke

pytestmark = pytest.mark.observability

JOBS = obs.expected_jobs()
RULE_FILES = obs.rule_files()
PANELS = obs.panel_queries()


@pytest.mark.parametrize("job", JOBS, ids=[f"job/{j}" for j in JOBS])
def test_prometheus_target_up_for_every_scrape_job(target, job):
    smoke.prometheus_targets_up(target, jobs=[job])


def test_rule_files_pass_promtool_check():
    print(obs.promtool_check_rules(RULE_FILES))


def test_every_declared_rule_loaded_by_prometheus(target):
    n = obs.rules_loaded(target, RULE_FILES)
    print(f"{n} rules from {[f.name for f in RULE_FILES]} loaded, none failing")


@pytest.fixture(scope="module")
def traffic_applied(target) -> list[obs.Movement] | AssertionError:
    """A short simulated run: readings over MQTT and HTTP plus malformed ones; the dashboards need it too. Whether
    the metrics moved is the next test's verdict, kept here: not a setup error of every panel test."""
    try:
        return obs.inference_metrics_move(target, readings=50, malformed=5)
    except AssertionError as stuck:
        return stuck


def test_inference_latency_histogram_and_error_counters_move_under_traffic(traffic_applied):
    if isinstance(traffic_applied, AssertionError):
        raise traffic_applied
    for m in traffic_applied:
        print(m.line())


@pytest.mark.parametrize("pq", PANELS, ids=[p.id for p in PANELS])
def test_dashboard_panel_query_returns_data_after_simulated_run(target, traffic_applied, pq):
    series = obs.panel_returns_data(target, pq)
    print(f"{pq.id}: {series} series")
