"""Observability checks: scrape targets, rule files, inference metrics under traffic, dashboard queries."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import requests
import yaml

from indmlops import wire
from indmlops.paths import CONFIG_DIR
from indmlops.targets.base import Target

RULES_DIR = CONFIG_DIR / "prometheus" / "rules"
DASHBOARDS_DIR = CONFIG_DIR / "grafana" / "dashboards"
SCRAPE_FILE = CONFIG_DIR / "prometheus" / "scrape.yaml"


def expected_jobs() -> list[str]:
    """The jobs Prometheus must scrape, from the intent (fixtures/smoke.yaml prometheus_jobs, which the smoke suite
    reads too), never from the scrape configuration under test: a job dropped there would drop out of its check."""
    from indmlops import intent

    return [str(job) for job in intent.load("smoke")["prometheus_jobs"]]


def configured_jobs(scrape_file: Path = SCRAPE_FILE) -> list[str]:
    """The jobs of the shared scrape config (the same file the manifests deploy)."""
    return [j["name"] for j in yaml.safe_load(scrape_file.read_text())["jobs"]]


def _api(target: Target, path: str, **params) -> dict:
    url = f"{target.endpoint('prometheus').url}/api/v1/{path}"
    try:
        body = requests.get(url, params=params, timeout=10).json()
    except (requests.RequestException, ValueError) as exc:
        raise AssertionError(f"Prometheus {url}: no answer ({type(exc).__name__}: {exc})") from None
    return body


def query(target: Target, expr: str, at: float | None = None) -> list[dict]:
    params = {"query": expr} if at is None else {"query": expr, "time": f"{at:.3f}"}
    body = _api(target, "query", **params)
    if body.get("status") != "success":
        raise AssertionError(f"Prometheus {target.endpoint('prometheus')} rejected {expr!r}: "
                             f"{body.get('errorType')}: {body.get('error')}")
    return body["data"]["result"]


# --- rules -------------------------------------------------------------------------------------------------

def rule_files(rules_dir: Path = RULES_DIR) -> list[Path]:
    files = sorted(rules_dir.glob("*.yml")) + sorted(rules_dir.glob("*.yaml"))
    assert files, f"no rule files in {rules_dir}"
    return files


def promtool_check_rules(files: list[Path]) -> str:
    """`promtool check rules` accepts every file; the failure carries promtool's own words per file."""
    promtool = shutil.which("promtool") or "/usr/bin/promtool"
    if not Path(promtool).exists():
        raise AssertionError("promtool is not installed (Debian: apt-get install prometheus): cannot check rules")
    res = subprocess.run([promtool, "check", "rules", *map(str, files)], check=False, capture_output=True, text=True,
                         timeout=60)
    out = (res.stdout + res.stderr).strip()
    if res.returncode != 0:
        raise AssertionError(f"promtool check rules failed (exit {res.returncode}) for {[str(f) for f in files]}:\n"
                             f"{out}\nreproduce: promtool check rules {' '.join(map(str, files))}")
    return out


def declared_rules(files: list[Path]) -> dict[tuple[str, str], str]:
    """(group, alert-or-record name) -> file, for every rule in the files."""
    out: dict[tuple[str, str], str] = {}
    for f in files:
        for group in (yaml.safe_load(f.read_text()) or {}).get("groups", []):
            for rule in group.get("rules", []):
                out[(group["name"], rule.get("alert") or rule.get("record"))] = f.name
    return out


def rules_loaded(target: Target, files: list[Path]) -> int:
    """Prometheus has loaded every rule the files declare, and none of them fails to evaluate."""
    body = _api(target, "rules")
    loaded = {(g["name"], r["name"]): r for g in body["data"]["groups"] for r in g["rules"]}
    want = declared_rules(files)
    missing = [f"{name} (group {group}, {file})" for (group, name), file in want.items() if (group, name) not in loaded]
    broken = [f"{name}: {loaded[(g, name)].get('lastError')}" for (g, name) in want
              if (g, name) in loaded and loaded[(g, name)].get("health") == "err"]
    if missing or broken:
        raise AssertionError(
            f"Prometheus {target.endpoint('prometheus')}: {len(missing)} of {len(want)} rules from "
            f"{[f.name for f in files]} not loaded {missing[:10]}; failing to evaluate: {broken[:10]}. "
            "Prometheus loads config/prometheus/rules/*.yml (rule_files); check its log and POST /-/reload")
    return len(want)


# --- inference metrics under traffic -----------------------------------------------------------------------

@dataclass
class Movement:
    metric: str
    before: float
    after: float
    expected: float

    def line(self) -> str:
        def show(v: float) -> str:
            return "no series" if math.isnan(v) else f"{v:g}"

        return f"{self.metric}: {show(self.before)} -> {show(self.after)} (expected >= +{self.expected:g})"


WATCHED = {
    "latency mqtt": 'sum(indmlops_inference_latency_seconds_count{source="mqtt"})',
    "latency http": 'sum(indmlops_inference_latency_seconds_count{source="http"})',
    "errors bad_json": 'sum(indmlops_inference_errors_total{kind="bad_json"})',
    "errors not_object": 'sum(indmlops_inference_errors_total{kind="not_object"})',
}


def _scraped_since(target: Target, since: float, timeout: float) -> float:
    """Wait for Prometheus's first scrape of the inference job after `since` (so values read next are not older
    than what happened before `since`); returns that scrape's time, or 0.0 if none came within `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        res = query(target, 'timestamp(up{job="inference"})')
        last = float(res[0]["value"][1]) if res else 0.0
        if last > since or time.monotonic() > deadline:
            return last if last > since else 0.0
        time.sleep(0.5)


def _values(target: Target) -> dict[str, float]:
    out = {}
    for name, expr in WATCHED.items():
        res = query(target, expr)
        out[name] = float(res[0]["value"][1]) if res else float("nan")
    return out


def send_traffic(target: Target, *, readings: int, malformed: int, via_http: bool = True) -> str:
    """Valid readings over MQTT and HTTP, and malformed ones over MQTT (bad JSON, a JSON array)."""
    from indmlops.simulator import Plant

    ep, sim = target.endpoint("mosquitto"), target.credentials("mosquitto", "simulator")
    machine = f"m-{uuid.uuid4().hex[:8]}"
    plant = Plant(seed=time.time_ns())
    batch = []
    for reading in plant.readings():
        reading.update(line="observability", machine=machine, ts_ns=time.time_ns())
        batch.append(reading)
        if len(batch) == 2 * readings:
            break
    topic = f"factory/observability/{machine}/telemetry"
    pub = wire.mqtt_connect(ep, sim.username, sim.password)
    try:
        infos = [pub.publish(topic, json.dumps(r), qos=1) for r in batch[:readings]]
        infos += [pub.publish(topic, b"{not json", qos=1) for _ in range(malformed)]
        infos += [pub.publish(topic, b"[1, 2]", qos=1) for _ in range(malformed)]
        for info in infos:
            info.wait_for_publish(10)
    finally:
        wire.mqtt_close(pub)
    url = f"{target.endpoint('inference').url}/predict"
    if not via_http:
        return f"{readings} readings + {2 * malformed} malformed on {topic}"
    with requests.Session() as s:
        for r in batch[readings:]:
            try:
                resp = s.post(url, json=r, timeout=5)
            except requests.RequestException as exc:
                raise AssertionError(f"traffic for the inference metrics: POST {url} failed ({type(exc).__name__}): "
                                     "is the inference service running?") from None
            assert resp.status_code == 200, f"POST {url}: HTTP {resp.status_code} {resp.text[:200]}"
    return f"{readings} readings + {2 * malformed} malformed on {topic}, {readings} POST {url}"


def inference_metrics_move(target: Target, *, readings: int = 50, malformed: int = 5, timeout: float = 30.0,
                           via_http: bool = True) -> list[Movement]:
    """Latency histogram counts (MQTT and HTTP) and error counters (by kind), as Prometheus scrapes them, grow by
    at least the traffic this check sends."""
    # Values as of a scrape after this call began: a scrape older than the previous run's traffic would let that
    # traffic count as ours.
    _scraped_since(target, time.time(), timeout=12)  # scrape interval 5 s
    before = _values(target)
    sent = send_traffic(target, readings=readings, malformed=malformed, via_http=via_http)
    sent_at = time.time()
    expected = {"latency mqtt": readings, "latency http": readings if via_http else 0, "errors bad_json": malformed,
                "errors not_object": malformed}
    deadline = time.monotonic() + timeout  # scrape interval 5 s: 30 s is six scrapes
    while True:
        _scraped_since(target, sent_at, timeout=max(0.0, deadline - time.monotonic()))
        after = _values(target)
        moves = [Movement(WATCHED[k], before[k], after[k], expected[k]) for k in WATCHED if expected[k]]
        stuck = [m for m in moves if not (m.after - m.before >= m.expected)]  # NaN (no series) counts as stuck
        if not stuck:
            return moves
        if time.monotonic() > deadline:
            break
        time.sleep(1)
    health = {t["labels"]["job"]: f"{t['health']} {t.get('lastError', '')}".strip()
              for t in _api(target, "targets", state="active")["data"]["activeTargets"]}
    raise AssertionError(
        f"after {sent}, these did not move in Prometheus {target.endpoint('prometheus')} within {timeout:.0f} s:\n  "
        + "\n  ".join(m.line() for m in stuck)
        + f"\nscrape job inference: {health.get('inference', 'not configured')} "
          f"(inference at {target.endpoint('inference')})")


# --- dashboards --------------------------------------------------------------------------------------------

# Grafana's built-in variables, replaced the way Grafana would for a short time range.
GRAFANA_VARS = {"$__rate_interval": "1m", "${__rate_interval}": "1m", "$__interval": "15s",
                "${__interval}": "15s", "$__range": "5m", "${__range}": "5m"}


@dataclass(frozen=True)
class PanelQuery:
    dashboard: str
    panel: str
    ref: str
    expr: str

    @property
    def id(self) -> str:
        slug = re.sub(r"[^a-z0-9]+", "-", self.panel.lower()).strip("-")
        return f"{self.dashboard.removesuffix('.json')}/{slug}/{self.ref}"


def panel_queries(dashboards_dir: Path = DASHBOARDS_DIR) -> list[PanelQuery]:
    out = []
    for path in sorted(dashboards_dir.glob("*.json")):
        doc = json.loads(path.read_text())
        panels = list(doc.get("panels", []))
        while panels:
            p = panels.pop(0)
            panels.extend(p.get("panels", []))  # collapsed rows nest their panels
            for t in p.get("targets", []):
                if t.get("expr"):
                    out.append(PanelQuery(path.name, f"{p.get('id')}-{p.get('title', '')}", t.get("refId", "?"),
                                          t["expr"]))
    return out


def expand(expr: str) -> str:
    for var, value in GRAFANA_VARS.items():
        expr = expr.replace(var, value)
    leftover = re.findall(r"\$\{?\w+", expr)
    assert not leftover, f"query {expr!r} uses dashboard variables {leftover} this check cannot substitute"
    return expr


def panel_returns_data(target: Target, pq: PanelQuery) -> int:
    """The panel's query parses (Prometheus accepts it) and returns at least one series."""
    where = f"dashboard {pq.dashboard} panel {pq.panel} query {pq.ref} {pq.expr!r}"
    expr = expand(pq.expr)
    body = _api(target, "query", query=expr)
    if body.get("status") != "success":
        raise AssertionError(f"{where}: Prometheus {target.endpoint('prometheus')} does not parse it: "
                             f"{body.get('errorType')}: {body.get('error')} (file {DASHBOARDS_DIR / pq.dashboard})")
    result = body["data"]["result"]
    if not result:
        raise AssertionError(f"{where}: parses, but returns no data from Prometheus {target.endpoint('prometheus')} "
                             "after the simulated run (a metric or label the stack does not export, or no traffic)")
    return len(result)
