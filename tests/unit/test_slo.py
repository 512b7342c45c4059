"""SLO profiles, percentile math, the verdict table and the Prometheus rules generated from fixtures/slo.yaml."""

from __future__ import annotations

import copy
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indmlops import intent, slo
from indmlops.checks.live import latency
from indmlops.checks.live.loadrun import LoadResult
from indmlops.paths import CONFIG_DIR

RULES = CONFIG_DIR / "prometheus" / "rules" / "slo.yml"


@pytest.mark.parametrize("name", ["quick", "full"])
def test_shipped_profiles_load_with_every_operation_bounded(name):
    p = slo.profile(name)
    assert set(p.slo) == set(slo.OPERATIONS)
    assert p.rate > 0 and p.duration_s > 0


@pytest.mark.parametrize(("path", "value", "message"), [
    (("shape",), "ramp", "shape = 'ramp': expected one of steady, step, spike"),
    (("duration_s",), -1, "duration_s = -1: expected a number >= 1"),
    (("mqtt_users",), 2.5, "mqtt_users = 2.5: expected an integer"),
    (("slo", "mqtt:e2e", "p999_ms"), 5, "slo.mqtt:e2e.p999_ms: expected one of p50_ms, p95_ms, p99_ms"),
    (("slo", "mqtt:e2e", "p50_ms"), 0, "slo.mqtt:e2e.p50_ms = 0: expected a positive number of ms"),
    (("slo", "amqp:e2e"), {"p50_ms": 1}, "unknown operation 'amqp:e2e'"),
    (("max_loss_ratio",), "none", "max_loss_ratio = 'none': expected a number >= 0"),
])
def test_profile_rejected_naming_file_profile_and_key_when_malformed(path, value, message):
    doc = copy.deepcopy(intent.load("slo"))
    node = doc["profiles"]["quick"]
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value
    with pytest.raises(ValueError) as err:
        slo.profile("quick", doc)
    assert "slo.yaml: profiles.quick" in str(err.value) or "slo.yaml" in str(err.value)
    assert message in str(err.value)


def test_profile_missing_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"no profile 'nightly' \(have: quick, full\)"):
        slo.profile("nightly")


@given(st.lists(st.floats(0, 1e6, allow_nan=False), min_size=1, max_size=300), st.floats(0.1, 100))
@settings(max_examples=300, deadline=None)
def test_percentile_is_a_sample_with_at_least_q_percent_at_or_below(values, q):
    p = slo.percentile(values, q)
    assert p in values
    at_or_below = sum(v <= p for v in values)
    assert at_or_below >= q / 100 * len(values) - 1e-9
    below = sum(v < p for v in values)
    assert below < q / 100 * len(values) + 1e-9  # the smallest such sample


def test_percentile_of_nothing_is_nan():
    assert slo.percentile([], 50) != slo.percentile([], 50)


def test_prometheus_rules_file_matches_the_slo_fixture():
    assert RULES.read_text() == slo.prometheus_rules(), (
        f"{RULES} is out of date with fixtures/slo.yaml: run `.venv/bin/python -m indmlops.slo > {RULES}`")


def test_prometheus_rules_pass_promtool_and_alert_on_every_bound_it_can_see():
    promtool = shutil.which("promtool") or "/usr/bin/promtool"
    assert Path(promtool).exists(), ("promtool missing: install the Debian package prometheus "
                                     "(scripts/install-system-packages.sh)")
    out = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    text = RULES.read_text()
    for pname in ("quick", "full"):
        p = slo.profile(pname)
        for op in slo.PROMETHEUS_HISTOGRAMS:
            for key, bound in p.slo[op].items():
                alert = f"EdgeSLOBreach_{op.replace(':', '_')}_{key.removesuffix('_ms')}_{pname}"
                assert alert in text
                assert f"> {bound / 1000:g}\n" in text


def result(**kw) -> LoadResult:
    base = dict(out_dir=Path("/nonexistent"), samples=[], published=1000, matched=1000, lost=0, duplicates=0,
                requested=1000.0, generator_cpu=0.1, seconds=10.0, failures={},
                requests={"mqtt:publish": 1000, "http:predict": 100})
    base.update(kw)
    return LoadResult(**base)


def samples(op: str, values: list[float]) -> list[tuple[float, str, float]]:
    return [(float(i), op, v) for i, v in enumerate(values)]


def good_samples() -> list[tuple[float, str, float]]:
    return samples("mqtt:e2e", [5.0] * 1000) + samples("mqtt:publish", [1.0] * 1000) + \
        samples("http:predict", [0.5] * 100)


def failed_rows(r: LoadResult) -> list[str]:
    return [f"{row.group} {row.measure}" for row in latency.verdict(r, slo.profile("quick")) if not row.ok]


def test_verdict_passes_every_row_when_within_bounds():
    assert failed_rows(result(samples=good_samples())) == []


def test_verdict_fails_p99_row_when_tail_is_slow():
    slow = samples("mqtt:e2e", [5.0] * 980 + [900.0] * 20)
    r = result(samples=slow + [s for s in good_samples() if s[1] != "mqtt:e2e"])
    assert failed_rows(r) == ["mqtt:e2e p99"]


def test_verdict_fails_delivery_rows_when_readings_lost_duplicated_or_not_sent():
    r = result(samples=good_samples(), lost=3, duplicates=1, published=800)
    assert failed_rows(r) == ["delivery lost ratio", "delivery duplicate ratio", "delivery published / requested"]


def test_verdict_fails_the_unacknowledged_row_when_the_broker_drops_a_tenth_without_puback():
    # 100 of 1000 publishes never acknowledged: none is the edge's (QoS1 promises nothing for them), so lost,
    # undrained and duplicates stay clean; the unacknowledged row and the PUBACK p99 (censored at the wait) fail.
    censored = samples("mqtt:publish", [1.0] * 900 + [5000.0] * 100)
    r = result(samples=[s for s in good_samples() if s[1] != "mqtt:publish"] + censored, unacknowledged=100)
    assert failed_rows(r) == ["mqtt:publish p95", "mqtt:publish p99", "delivery unacknowledged ratio"]


def test_verdict_fails_when_predictions_arrive_weaker_than_qos1():
    r = result(samples=good_samples(), weak_qos=7)
    assert failed_rows(r) == ["delivery predictions below QoS 1"]
    assert "predictions below QoS 1" in latency.PROVEN  # the edge's own doing, whatever the host


def test_verdict_fails_error_row_when_an_operation_was_never_exercised():
    r = result(samples=good_samples(), requests={"mqtt:publish": 1000})
    assert failed_rows(r) == ["http:predict error ratio"]


def test_verdict_fails_when_an_operation_has_no_samples_or_errors():
    r = result(samples=[s for s in good_samples() if s[1] != "http:predict"],
               failures={"http:predict": 5}, requests={"mqtt:publish": 1000, "http:predict": 5})
    assert failed_rows(r) == ["http:predict p50", "http:predict p95", "http:predict p99", "http:predict error ratio"]


def test_verdict_fails_generator_row_when_it_used_more_cpu_than_allowed():
    assert failed_rows(result(samples=good_samples(), generator_cpu=0.95)) == ["generator cpu cores"]


def test_assertion_message_holds_the_table_and_the_evidence_dir():
    r = result(samples=good_samples(), lost=2)
    rows = latency.verdict(r, slo.profile("quick"))
    with pytest.raises(AssertionError) as err:
        latency.assert_rows(rows, groups=("delivery",), result=r, profile=slo.profile("quick"))
    text = str(err.value)
    assert "delivery lost ratio 0.0020 (2/1000) (bound ≤ 0)" in text
    assert "operation     measure" in text and "FAIL" in text and "/nonexistent/" in text


@pytest.mark.parametrize(("shape", "expected"), [("steady", 8 * 10 * 60), ("step", (2 + 4 + 6 + 8) / 4 * 10 * 60),
                                                  ("spike", (4 * 0.8 + 16 * 0.2) * 10 * 60)])
def test_requested_readings_integrate_the_shape(shape, expected):
    assert slo.requested_readings(shape, 8, 10.0, 60.0, 60.0) == pytest.approx(expected, rel=0.01)
