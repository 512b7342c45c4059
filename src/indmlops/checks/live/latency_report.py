"""Write a latency run's verdict for humans: verdict.txt and verdict.csv, and latency.png (percentiles and
throughput over time), next to Locust's own CSV and HTML report."""

from __future__ import annotations

import csv
from pathlib import Path

from indmlops.checks.live.latency import Row, format_table, where_time_went
from indmlops.checks.live.loadrun import LoadResult
from indmlops.slo import percentile


def per_second(result: LoadResult, op: str, t0: float) -> tuple[list[float], dict[str, list[float]], list[int]]:
    """Seconds since `t0` (the run's first sample), p50/p95/p99 per second, and events per second for one operation."""
    samples = [(t, ms) for t, o, ms in result.samples if o == op]
    if not samples:
        return [], {"p50": [], "p95": [], "p99": []}, []
    buckets: dict[int, list[float]] = {}
    for t, ms in samples:
        buckets.setdefault(int(t - t0), []).append(ms)
    xs = sorted(buckets)
    pct = {f"p{q}": [percentile(buckets[x], q) for x in xs] for q in (50, 95, 99)}
    return [float(x) for x in xs], pct, [len(buckets[x]) for x in xs]


def write(result: LoadResult, rows: list[Row], title: str) -> list[Path]:
    out = result.out_dir
    (out / "verdict.txt").write_text(f"{title}\n\n{format_table(rows)}\n\nwhere the time went: "
                                     f"{where_time_went(result)}\ndelivery: {result.delivery}\n")
    with open(out / "verdict.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["operation", "measure", "bound", "measured", "ok"])
        w.writerows([r.group, r.measure, r.bound, r.measured, r.ok] for r in rows)
    import matplotlib

    matplotlib.use("Agg")  # no display here or in CI
    import matplotlib.pyplot as plt

    ops = sorted({o for _t, o, _ms in result.samples})
    fig, axes = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    t0 = min((t for t, _o, _ms in result.samples), default=0.0)
    for i, op in enumerate(ops):
        xs, pct, counts = per_second(result, op, t0)
        for name, style in (("p50", "-"), ("p99", "--")):
            axes[0].plot(xs, pct[name], style, color=f"C{i}", label=f"{op} {name}")
        axes[1].plot(xs, counts, color=f"C{i}", label=f"{op}")
    axes[0].set_ylabel("latency, ms (log)")
    axes[0].set_yscale("log")
    axes[0].legend(fontsize=8, ncol=2)
    axes[0].set_title(title)
    axes[1].set_ylabel("per second")
    axes[1].set_xlabel("seconds since start")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "latency.png", dpi=90)
    plt.close(fig)
    return [out / "verdict.txt", out / "verdict.csv", out / "latency.png"]
