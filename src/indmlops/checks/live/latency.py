"""Edge latency under load: apply a fixtures/slo.yaml profile with Locust through the target, and judge the run
against the profile's bounds with a verdict table (operation, measure, bound, measured)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

from indmlops.checks.live.loadrun import LoadResult, run
from indmlops.hostcheck.explain import Breach, timing_failure
from indmlops.slo import PERCENTILES, Profile, percentile
from indmlops.targets.base import Target


def run_load(target: Target, profile: Profile, *, out_dir: Path) -> LoadResult:
    """The profile's load against the target's broker and inference service, as the simulator and monitor roles."""
    ep = target.endpoint("mosquitto")
    pub = target.credentials("mosquitto", "simulator")
    sub = target.credentials("mosquitto", "monitor")
    return run(profile, mqtt=f"{ep.host}:{ep.port}", inference_url=target.endpoint("inference").url,
               publisher=(pub.username, pub.password), subscriber=(sub.username, sub.password), out_dir=out_dir)


@dataclass(frozen=True)
class Row:
    group: str  # an operation, "delivery" or "generator"
    measure: str
    bound: str
    measured: str
    ok: bool
    # A timing claim (hostcheck.explain): its unit ("ms"; "" for one without a number: not drained, published less
    # than asked, the generator's CPU), the value measured (None: no samples) and its bound. None: not about time
    # (errors, loss, duplicates, QoS, unacknowledged readings): no host excuses it.
    unit: str | None = None
    value: float | None = None
    limit: float = 0.0


def _ratio_row(group: str, measure: str, num: float, den: float, limit: float, at_least: bool = False) -> Row:
    value = num / den if den else math.nan
    ok = (value >= limit) if at_least else (value <= limit)
    bound = f"≥ {limit:g}" if at_least else f"≤ {limit:g}"
    return Row(group, measure, bound, f"{value:.4f} ({num:g}/{den:g})", ok and not math.isnan(value))


def verdict(result: LoadResult, profile: Profile) -> list[Row]:
    """Every bound of the profile as one row; exact percentiles from the run's samples."""
    rows: list[Row] = []
    for op, bounds in profile.slo.items():
        values = [ms for _t, o, ms in result.samples if o == op]
        for key, bound in bounds.items():
            measured = percentile(values, PERCENTILES[key])
            shown = f"{measured:.2f} ms (n={len(values)})" if values else "no samples"
            rows.append(Row(op, key.removesuffix("_ms"), f"≤ {bound:g} ms", shown, bool(values) and measured <= bound,
                            "ms", measured if values else None, bound))
        if op != "mqtt:e2e":  # e2e failures are the loss and duplicate rows below
            rows.append(_ratio_row(op, "error ratio", result.failures.get(op, 0), result.requests.get(op, 0),
                                   profile.max_error_ratio))
    rows.append(_ratio_row("delivery", "lost ratio", result.lost, result.published, profile.max_loss_ratio))
    # Readings the broker never acknowledged: QoS1 promises them nothing, so the edge is not to blame, but a broker
    # that drops publishes without a PUBACK (or stalls until the publisher leaves) breaks the OT plane's contract.
    rows.append(_ratio_row("delivery", "unacknowledged ratio", result.unacknowledged, result.published,
                           profile.max_unacknowledged_ratio))
    # Not drained: no prediction yet when the drain ended. Not evidence of loss, but the edge did not finish.
    rows.append(Row("delivery", "not drained", "= 0", str(result.undrained), result.undrained == 0, ""))
    rows.append(Row("delivery", "predictions below QoS 1", "= 0", str(result.weak_qos), result.weak_qos == 0))
    rows.append(_ratio_row("delivery", "duplicate ratio", result.duplicates, result.published,
                           profile.max_duplicate_ratio))
    rows.append(dataclasses.replace(_ratio_row("delivery", "published / requested", result.published,
                                               round(result.requested), profile.min_throughput_ratio, at_least=True),
                                    unit=""))
    rows.append(Row("generator", "cpu cores", f"≤ {profile.generator_max_cpu:g}", f"{result.generator_cpu:.2f}",
                    result.generator_cpu <= profile.generator_max_cpu, ""))
    return rows


def format_table(rows: list[Row]) -> str:
    head = ("operation", "measure", "bound", "measured", "verdict")
    cells = [head] + [(r.group, r.measure, r.bound, r.measured, "ok" if r.ok else "FAIL") for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(head))]
    return "\n".join("  ".join(c[i].ljust(widths[i]) for i in range(len(head))).rstrip() for c in cells)


SEGMENTS = (("seg:broker-in", "broker → inference"), ("seg:inference", "inference"),
            ("seg:broker-out", "inference → subscriber"), ("mqtt:publish", "publish → PUBACK"))


def where_time_went(result: LoadResult) -> str:
    """p50/p99 of each leg of mqtt:e2e, from the stamps every prediction carries: which part of the path was slow.
    The stamps are wall clocks of different processes on one host here; across nodes they need synced clocks."""
    parts = []
    for op, name in SEGMENTS:
        values = [ms for _t, o, ms in result.samples if o == op]
        if values:
            parts.append(f"{name} p50 {percentile(values, 50):.1f} ms / p99 {percentile(values, 99):.1f} ms")
    return "; ".join(parts) if parts else "no per-leg stamps in the predictions (an inference without received_ns)"


# Delivery rows only the stack answers for: the ledger proves a loss (a later reading of the same machine was
# predicted), and a second prediction is the edge's, however busy the host was.
PROVEN = ("lost ratio", "duplicate ratio", "predictions below QoS 1")


def assert_rows(rows: list[Row], *, groups: tuple[str, ...], result: LoadResult, profile: Profile,
                measures: tuple[str, ...] | None = None, exclude: tuple[str, ...] = ()) -> None:
    """Fail when a row of `groups` (and of `measures`, if given, minus `exclude`) fails; the message holds the whole
    table and where the evidence is."""
    failed = [r for r in rows if r.group in groups and not r.ok and (measures is None or r.measure in measures)
              and r.measure not in exclude]
    if failed:
        names = ", ".join(f"{r.group} {r.measure} {r.measured} (bound {r.bound})" for r in failed)
        # Timing only when every failed row is: then a host that fell short may explain it (hostcheck.explain).
        breaches = [Breach(f"{r.group} {r.measure}", r.value, r.limit, r.unit) for r in failed if r.unit is not None]
        raise timing_failure(
            f"SLO breached under the {profile.name!r} profile (fixtures/slo.yaml): {names}\n\n{format_table(rows)}\n\n"
            f"where the time went: {where_time_went(result)}\ndelivery: {result.delivery}\n\n"
            f"{result.published} readings published ({result.requested:.0f} requested) at "
            f"{profile.rate:g}/s base rate, shape {profile.shape}, {result.seconds:.1f} s; reports and the command to "
            f"reproduce the load: {result.out_dir}/ (verdict.txt, locust.html, latency.png, reproduce.sh)",
            breaches if len(breaches) == len(failed) else [])
