"""Each observability check fails, naming the cause: a scrape target removed, a broken or unloaded rule, metrics
that do not move, a dashboard query that does not parse or returns nothing."""

from __future__ import annotations

import time

import pytest
import requests
import yaml

from indmlops.checks.live import observability as obs
from indmlops.checks.live import smoke
from indmlops.targets.local.target import LocalTarget

pytestmark = [pytest.mark.stack, pytest.mark.observability]


def test_target_check_names_the_job_when_its_scrape_target_is_removed(scratch_stack):
    stack = scratch_stack()
    stack.up(["prometheus"])
    target = LocalTarget(stack.layout.state_dir)
    conf = stack.layout.conf / "prometheus" / "prometheus.yml"
    doc = yaml.safe_load(conf.read_text())
    doc["scrape_configs"] = [j for j in doc["scrape_configs"] if j["job_name"] != "inference"]
    conf.write_text(yaml.safe_dump(doc))
    url = target.endpoint("prometheus").url
    assert requests.post(f"{url}/-/reload", timeout=10).status_code == 200
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:  # the reload applies asynchronously to the target list
        active = requests.get(f"{url}/api/v1/targets", timeout=5).json()["data"]["activeTargets"]
        if all(t["labels"]["job"] != "inference" for t in active):
            break
        time.sleep(0.2)
    with pytest.raises(AssertionError) as err:
        smoke.prometheus_targets_up(target, jobs=["inference"], timeout=2)
    print(err.value)
    assert "missing ['inference']" in str(err.value) and "config/prometheus/scrape.yaml" in str(err.value)


def test_promtool_check_names_the_file_when_a_rule_is_broken(tmp_path):
    bad = tmp_path / "broken.yml"
    bad.write_text("groups:\n  - name: broken\n    rules:\n      - alert: Broken\n        expr: rate(up[5m]\n")
    with pytest.raises(AssertionError) as err:
        obs.promtool_check_rules([bad])
    print(err.value)
    assert str(bad) in str(err.value) and "promtool check rules failed" in str(err.value)


def test_rules_loaded_check_names_a_rule_prometheus_did_not_load(target, tmp_path):
    extra = tmp_path / "extra.yml"
    extra.write_text("groups:\n  - name: indmlops-extra\n    rules:\n      - alert: NotLoadedAnywhere\n"
                     "        expr: up == 0\n")
    with pytest.raises(AssertionError) as err:
        obs.rules_loaded(target, [*obs.rule_files(), extra])
    assert "NotLoadedAnywhere (group indmlops-extra, extra.yml)" in str(err.value), str(err.value)


def test_metrics_check_names_stuck_counters_when_inference_is_stopped(target, stopped):
    # MQTT only: the broker queues the readings for the stopped service, so nothing counts them.
    with stopped("inference"), pytest.raises(AssertionError) as err:
        obs.inference_metrics_move(target, readings=5, malformed=1, timeout=8, via_http=False)
    print(err.value)
    message = str(err.value)
    assert "did not move" in message and "indmlops_inference_latency_seconds_count" in message, message
    assert "scrape job inference: down" in message, message


@pytest.mark.parametrize("expr, cause", [
    ("sum(rate(indmlops_inference_messages_total[1m]", "does not parse"),
    ("sum(indmlops_inference_no_such_metric_total)", "returns no data"),
], ids=["unparsable", "no-data"])
def test_dashboard_check_names_panel_and_cause_when_query_is_wrong(target, expr, cause):
    pq = obs.PanelQuery("broken.json", "9-Broken panel", "A", expr)
    with pytest.raises(AssertionError) as err:
        obs.panel_returns_data(target, pq)
    print(err.value)
    assert "dashboard broken.json panel 9-Broken panel query A" in str(err.value) and cause in str(err.value)
