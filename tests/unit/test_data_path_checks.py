"""Pure logic of the data-path checks: dashboard queries, rule declarations, durability intent and report."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from indmlops import intent
from indmlops.checks.live import durability
from indmlops.checks.live import observability as obs
from indmlops.checks.live.content import WRITERS
from indmlops.checks.live.doctor import Finding
from indmlops.paths import CONFIG_DIR
from indmlops.targets.local.render import nodered_settings


def test_every_shipped_dashboard_panel_has_a_query():
    for path in sorted(obs.DASHBOARDS_DIR.glob("*.json")):
        for panel in json.loads(path.read_text())["panels"]:
            exprs = [t.get("expr") for t in panel.get("targets", [])]
            assert exprs and all(exprs), f"{path.name} panel {panel.get('id')} {panel.get('title')!r} has no query"


def test_dashboard_covers_inference_latency_and_errors():
    exprs = " ".join(pq.expr for pq in obs.panel_queries())
    for metric in ("indmlops_inference_latency_seconds_bucket", "indmlops_inference_errors_total"):
        assert metric in exprs, f"no dashboard panel queries {metric}"


def test_panel_queries_found_in_collapsed_rows(tmp_path):
    (tmp_path / "d.json").write_text(json.dumps({"panels": [
        {"id": 1, "type": "row", "title": "Row", "panels": [{"id": 2, "title": "Inner", "targets": [
            {"refId": "B", "expr": "up"}]}]}]}))
    assert [(p.panel, p.ref, p.expr) for p in obs.panel_queries(tmp_path)] == [("2-Inner", "B", "up")]
    assert obs.panel_queries(tmp_path)[0].id == "d/2-inner/B"


@given(st.sampled_from(sorted(obs.GRAFANA_VARS)))
def test_grafana_builtin_variables_expand_to_durations(var):
    assert "$" not in obs.expand(f"rate(x[{var}])")


def test_unknown_dashboard_variable_rejected_with_its_name():
    with pytest.raises(AssertionError, match=r"\['\$job'\]"):
        obs.expand('up{job="$job"}')


def test_declared_rules_name_group_rule_and_file(tmp_path):
    f = tmp_path / "r.yml"
    f.write_text("groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up == 0\n"
                 "      - record: job:r\n        expr: up\n")
    assert obs.declared_rules([f]) == {("g", "A"): "r.yml", ("g", "job:r"): "r.yml"}


def test_expected_jobs_come_from_the_intent_and_the_shipped_scrape_config_covers_them():
    assert obs.expected_jobs() == ["prometheus", "mlflow", "seaweedfs", "inference"]
    missing = set(obs.expected_jobs()) - set(obs.configured_jobs())
    assert not missing, f"config/prometheus/scrape.yaml scrapes no job {sorted(missing)} (fixtures/smoke.yaml)"


def test_a_job_dropped_from_the_scrape_config_stays_expected(tmp_path):
    # The fault class "expectations read from the configuration under test": dropping a job must not drop its check.
    f = tmp_path / "scrape.yaml"
    f.write_text("jobs:\n  - {name: prometheus, service: prometheus}\n")
    assert obs.configured_jobs(f) == ["prometheus"]
    assert "inference" in obs.expected_jobs()


def test_durability_intent_names_known_content_and_components():
    plan = intent.load("durability")
    for component, spec in plan["components"].items():
        assert set(spec["content"]) <= set(WRITERS), f"fixtures/durability.yaml {component}: unknown content"
        for kind in ("local", "kubernetes"):
            assert component in intent.load("slo")["recovery_s"]["measured"][kind], (
                f"{component}: no {kind} recovery figure in fixtures/slo.yaml")
    assert set(plan["kills"]) == {"quick", "full"}


def test_durability_report_gives_median_recovery_and_verified_totals(tmp_path):
    def outcome(seconds: float) -> durability.Outcome:
        return durability.Outcome("postgres", "1", "2", seconds, {"postgres rows": {"items": 500, "bytes": 512000,
                                                                                    "where": "x"}},
                                  {"postgres rows": 500})

    path = durability.write_report([outcome(1.0), outcome(3.0), outcome(2.0)], tmp_path)
    row = path.read_text().splitlines()[1]
    assert row.split()[:4] == ["postgres", "3", "2.00s", "3.0s"], row
    assert "1500 (1500 kB)" in row
    assert len(json.loads((tmp_path / "summary.json").read_text())) == 3


def test_doctor_line_puts_status_first():
    assert Finding("bucket", "FAIL", "mlflow-bucket does not exist").line() == \
        "FAIL bucket: mlflow-bucket does not exist"
    assert not Finding("x", "FAIL", "").ok and Finding("x", "warn", "").ok


def test_nodered_context_flushes_every_second_on_both_targets(tmp_path):
    from indmlops.targets.local.layout import StackConfig, new_credentials

    cfg = StackConfig(tmp_path, credentials=new_credentials())
    assert '"flushInterval": 1' in nodered_settings(cfg)
    assert "flushInterval: 1" in (CONFIG_DIR / "nodered" / "settings.kubernetes.js").read_text()
