"""Service-level objectives from fixtures/slo.yaml: validated profiles, percentile math, and the Prometheus rules
generated from the same numbers (`python -m indmlops.slo > config/prometheus/rules/slo.yml`)."""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass

import yaml

from indmlops import intent
from indmlops.intent import FIXTURES_DIR

OPERATIONS = ("mqtt:e2e", "mqtt:publish", "http:predict")
PERCENTILES = {"p50_ms": 50.0, "p95_ms": 95.0, "p99_ms": 99.0}
SHAPES = ("steady", "step", "spike")
SLO_FILE = FIXTURES_DIR / "slo.yaml"

# The metric each operation is visible as in Prometheus, where the service can see it. mqtt:e2e is the reading's
# age when its prediction is published (the last hop to the subscriber, ~0.1 ms, is not seen by the service);
# http:predict is the handler's time. mqtt:publish is the broker's PUBACK, invisible to the service: no rule.
PROMETHEUS_HISTOGRAMS = {  # operation → (histogram, label matcher)
    "mqtt:e2e": ("indmlops_inference_e2e_seconds", ""),
    "http:predict": ("indmlops_inference_latency_seconds", '{source="http"}'),
}


# --- recovery bounds -------------------------------------------------------------------------------------------

def recovery_table() -> dict:
    """fixtures/slo.yaml `recovery_s`: the margin and, per kind of target, the worst kill → ready measured."""
    return intent.load("slo")["recovery_s"]


def recovery_kind(target_name: str) -> str:
    """Which measured table a target is judged by: its own processes (local) or pods the kubelet replaces."""
    return "local" if target_name == "local" else "kubernetes"


def bound_from(worst_s: float, margin: float | None = None) -> float:
    """The bound a measured worst recovery gives: margin × worst, rounded up to whole seconds."""
    return float(math.ceil((recovery_table()["margin"] if margin is None else margin) * worst_s))


def recovery_bound(kind: str, component: str) -> float:
    """Seconds a killed `component` may take to answer its protocol again on a `kind` target (recovery_kind)."""
    measured = recovery_table()["measured"]
    if kind not in measured or component not in measured[kind]:
        raise KeyError(f"fixtures/slo.yaml recovery_s.measured has no {kind} figure for {component!r} (have: "
                       f"{', '.join(measured.get(kind, {}))}): measure it with bench/recovery.py")
    return bound_from(float(measured[kind][component]))


@dataclass(frozen=True)
class Profile:
    name: str
    shape: str
    duration_s: float
    mqtt_users: int
    rate_per_user: float
    http_users: int
    http_rate_per_user: float
    slo: dict[str, dict[str, float]]
    max_error_ratio: float
    max_loss_ratio: float
    max_duplicate_ratio: float
    min_throughput_ratio: float
    generator_max_cpu: float
    max_unacknowledged_ratio: float = 0.0

    @property
    def rate(self) -> float:
        """Readings/s at the shape's base level."""
        return self.mqtt_users * self.rate_per_user


def profile(name: str, doc: dict | None = None) -> Profile:
    """The named profile, validated; every error names the file, the profile and the key."""
    doc = intent.load("slo") if doc is None else doc
    where = f"{SLO_FILE}: profiles.{name}"
    profiles = doc.get("profiles") or {}
    if name not in profiles:
        raise ValueError(f"{SLO_FILE}: no profile {name!r} (have: {', '.join(profiles) or 'none'})")
    p = profiles[name]

    def number(key: str, lo: float = 0.0, integer: bool = False) -> float:
        v = p.get(key)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < lo:
            raise ValueError(f"{where}.{key} = {v!r}: expected a number >= {lo}")
        if integer and int(v) != v:
            raise ValueError(f"{where}.{key} = {v!r}: expected an integer")
        return int(v) if integer else float(v)

    if p.get("shape") not in SHAPES:
        raise ValueError(f"{where}.shape = {p.get('shape')!r}: expected one of {', '.join(SHAPES)}")
    slo: dict[str, dict[str, float]] = {}
    for op, bounds in (p.get("slo") or {}).items():
        if op not in OPERATIONS:
            raise ValueError(f"{where}.slo: unknown operation {op!r} (known: {', '.join(OPERATIONS)})")
        if not isinstance(bounds, dict) or not bounds:
            raise ValueError(f"{where}.slo.{op}: expected a mapping like {{p99_ms: 50}}")
        for key, v in bounds.items():
            if key not in PERCENTILES:
                raise ValueError(f"{where}.slo.{op}.{key}: expected one of {', '.join(PERCENTILES)}")
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
                raise ValueError(f"{where}.slo.{op}.{key} = {v!r}: expected a positive number of ms")
        slo[op] = {k: float(v) for k, v in bounds.items()}
    return Profile(name=name, shape=p["shape"], duration_s=number("duration_s", 1),
                   mqtt_users=int(number("mqtt_users", 0, True)), rate_per_user=number("rate_per_user"),
                   http_users=int(number("http_users", 0, True)), http_rate_per_user=number("http_rate_per_user"),
                   slo=slo,
                   max_error_ratio=number("max_error_ratio"), max_loss_ratio=number("max_loss_ratio"),
                   max_duplicate_ratio=number("max_duplicate_ratio"),
                   min_throughput_ratio=number("min_throughput_ratio"),
                   generator_max_cpu=number("generator_max_cpu"),
                   max_unacknowledged_ratio=number("max_unacknowledged_ratio"))


def mqtt_users_at(shape: str, base: int, t: float, shape_seconds: float) -> int:
    """Machines publishing at run time t: steady = base; step = a quarter more each quarter; spike = half the base,
    twice the base for the middle fifth, half again."""
    phase = (t % shape_seconds) / shape_seconds
    if shape == "steady" or base == 0:
        return base
    if shape == "step":
        return max(1, round(base * (int(phase * 4) + 1) / 4))
    return base * 2 if 0.4 <= phase < 0.6 else max(1, base // 2)


def peak_rate(prof: Profile) -> float:
    """The highest rate the profile's shape asks for at any moment, readings/s (a spike's middle fifth)."""
    return max(mqtt_users_at(prof.shape, prof.mqtt_users, i / 100, 1.0) for i in range(100)) * prof.rate_per_user


def requested_readings(shape: str, users: int, rate_per_user: float, shape_seconds: float, duration: float,
                       step: float = 0.1) -> float:
    """How many readings the shape asks for over `duration` (the suite's throughput denominator)."""
    total, t = 0.0, 0.0
    while t < duration:
        total += mqtt_users_at(shape, users, t, shape_seconds) * rate_per_user * min(step, duration - t)
        t += step
    return total


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (the smallest value with at least q % of the values at or below it)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def prometheus_rules(doc: dict | None = None) -> str:
    """Recording and alerting rules for every profile's bounds on the operations Prometheus can see."""
    doc = intent.load("slo") if doc is None else doc
    profiles = {pname: profile(pname, doc) for pname in doc.get("profiles", {})}
    records, alerts = [], []
    for op, (base, selector) in PROMETHEUS_HISTOGRAMS.items():
        op_id = op.replace(":", "_")
        for key, q in PERCENTILES.items():
            name = f"indmlops:{op_id}_seconds:{key.removesuffix('_ms')}_1m"
            expr = (f"histogram_quantile({q / 100}, sum by (le) "
                    f"(rate({base}_bucket{selector}[1m])))")
            records.append({"record": name, "expr": expr})
            for pname, prof in profiles.items():
                bound = prof.slo.get(op, {}).get(key)
                if bound is None:
                    continue
                alerts.append({
                    "alert": f"EdgeSLOBreach_{op_id}_{key.removesuffix('_ms')}_{pname}",
                    "expr": f"{name} > {bound / 1000:g}",
                    "for": "1m",
                    "labels": {"severity": "warning", "profile": pname, "operation": op},
                    "annotations": {"summary": f"{op} {key.removesuffix('_ms')} above {bound:g} ms "
                                               f"(fixtures/slo.yaml, profile {pname})",
                                    "description": "{{ $value | humanizeDuration }} over the last minute"}})
    header = ("# Generated from fixtures/slo.yaml by `python -m indmlops.slo`; do not edit by hand\n"
              "# (tests/unit/test_slo.py fails when this file and the fixture disagree).\n")
    body = {"groups": [{"name": "indmlops-slo-records", "rules": records},
                       {"name": "indmlops-slo-alerts", "rules": alerts}]}
    return header + yaml.safe_dump(body, sort_keys=False, width=120)


if __name__ == "__main__":
    sys.stdout.write(prometheus_rules())
