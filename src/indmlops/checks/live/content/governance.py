"""Known content in the governance plane: Prometheus's own samples of the stack."""

from __future__ import annotations

import time

import requests

from indmlops.checks.live.content.base import Content, _lost
from indmlops.targets.base import Target

# --- Prometheus --------------------------------------------------------------------------------------------

PROM_SERIES = '{__name__=~"up|scrape_samples_scraped|scrape_duration_seconds"}'


def prometheus_samples(target: Target, tag: str, *, window: str = "2m") -> Content:
    """Every raw sample of the scrape-health series in the last `window`, read before the kill."""
    url = f"{target.endpoint('prometheus').url}/api/v1/query"
    at = time.time() - 1  # a fixed evaluation time: the same range before and after the restart
    query = f"{PROM_SERIES}[{window}]"

    def read() -> dict[tuple, list]:
        body = requests.get(url, params={"query": query, "time": f"{at:.3f}"}, timeout=10).json()
        assert body.get("status") == "success", f"Prometheus {url} query {query!r}: {body}"
        return {tuple(sorted(s["metric"].items())): s["values"] for s in body["data"]["result"]}

    before = read()
    samples = sum(len(v) for v in before.values())
    assert samples > 0, f"Prometheus {url}: no samples for {query} at {at:.0f}: nothing to prove durability with"
    where = f"Prometheus {target.endpoint('prometheus')} {query} at {at:.0f}"

    def verify() -> int:
        after = read()
        lost, changed = [], []
        for series, values in before.items():
            got = {ts: v for ts, v in after.get(series, [])}
            for ts, v in values:
                if ts not in got:
                    lost.append(f"{dict(series).get('__name__')}{{job={dict(series).get('job')}}}@{ts}")
                elif got[ts] != v:
                    changed.append(f"{dict(series).get('__name__')}@{ts}: {v} -> {got[ts]}")
        _lost("Prometheus samples", where, lost, changed, samples, "scraped before the kill (WAL)")
        return samples

    return Content("Prometheus samples", samples, samples * 16, where, verify,
                   notes=[f"{len(before)} series"])
