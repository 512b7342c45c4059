"""The robustness checks: the edge alive and predicting, hostile HTTP rejected with a 4xx, hostile MQTT
dead-lettered, error counters that grew by what was provoked."""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any

import requests
from prometheus_client.parser import text_string_to_metric_families

from indmlops.checks.live.robustness import payloads as saved
from indmlops.checks.live.robustness.edge import ERRORS_METRIC, Edge
from indmlops.checks.live.robustness.payloads import Payload
from indmlops.checks.live.robustness.strategies import Body
from indmlops.checks.live.robustness.waiting import LateWait
from indmlops.hostcheck.explain import Breach, timing_failure
from indmlops.inference.parse import ERROR_KINDS
from indmlops.targets.base import Target


def edge_alive(edge: Edge, *, after: list[Payload]) -> list[float]:
    """/healthz and /readyz answer 200 and `budget.canaries` valid readings are predicted; returns their latencies
    (ms, publish → prediction received). A canary later than canary_s on a healthy, predicting edge is late (kept,
    with its delay, for the SLO test); no prediction after the late wait, or an unhealthy edge, is a failure."""
    problems = edge.health()
    ids, t0 = [], {}
    for _ in range(edge.budget.canaries):
        rid, key, acked = edge.publish_valid("canary")
        t0[rid] = int(edge.ledger.published_at[key] * 1e9)
        if not acked:
            problems.append(f"valid reading {rid} not acknowledged by the broker {edge.target.endpoint('mosquitto')}")
        ids.append(rid)
    obs = edge.observer

    def all_predicted() -> bool:
        with obs.cond:
            return all(i in obs.predictions for i in ids)

    on_time = obs.wait(lambda: all(i in obs.predictions for i in ids), edge.budget.canary_s)
    if not on_time and not problems:
        problems = edge.health()  # an unhealthy edge is not waited for
        if not problems:
            wait = edge.wait_late(all_predicted, f"the predictions of {', '.join(ids)}")
            if not wait.arrived:
                problems.append(f"{_count_predicted(edge, ids)} of {len(ids)} valid readings predicted within "
                                f"{edge.budget.canary_s:g} s and none more: {wait.detail} (expected every valid "
                                f"reading predicted)")
    with obs.cond:
        got = {i: obs.predictions[i][0][0] for i in ids if i in obs.predictions}
    if problems:
        if len(got) < len(ids) and not any("valid readings predicted" in p for p in problems):
            problems.append(f"{len(got)} of {len(ids)} valid readings predicted within {edge.budget.canary_s:g} s")
        raise edge.fail(after, "; ".join(problems))
    latencies = [(got[i] - t0[i]) / 1e6 for i in ids]
    for i, ms in zip(ids, latencies):
        if ms > edge.budget.canary_s * 1000:
            edge.late_s.append((f"canary {i}", ms / 1000, edge.budget.canary_s))
            edge.late.append(f"canary {i} predicted after {ms / 1000:.1f} s (> canary_s {edge.budget.canary_s:g} s; "
                             f"/healthz, /readyz 200)")
            print(f"late: {edge.late[-1]}")
    edge.canary_ms.extend(latencies)
    return latencies


def _count_predicted(edge: Edge, ids: list[str]) -> int:
    with edge.observer.cond:
        return sum(1 for i in ids if i in edge.observer.predictions)


def http_hostile_rejected(edge: Edge, body: Body, path: str = "/predict") -> str:
    """A hostile request POSTed gets a 4xx naming an error kind the contract allows (the exact status where it fixes
    one; 200 where it allows a prediction); never a 5xx or a dropped connection. Returns the verdict seen."""
    payload = Payload("http", path, body.data, body.note, body.framing)
    status, text = edge.post_framed(path, body.data, body.framing) if body.framing else edge.post(path, body.data)
    if status is None:
        raise edge.fail([payload], f"connection dropped: {text} (expected a 4xx; {body.expect.describe()})")
    if status == 200:
        if not body.expect.may_predict:
            raise edge.fail([payload], f"200 {text[:120]!r} (expected {body.expect.describe()})")
        return "predicted"
    kind = _json_field(text, "error")
    if not 400 <= status < 500 or kind not in ERROR_KINDS or not body.expect.allows_kind(kind) \
            or (body.expect.status is not None and status != body.expect.status):
        raise edge.fail([payload], f"HTTP {status} {text[:160]!r} (expected a 4xx with {body.expect.describe()}; "
                                   f"known kinds {', '.join(ERROR_KINDS)})")
    edge.provoked[kind] += 1
    if problems := edge.health():  # fixtures/robustness.yaml: each HTTP example is followed by a /healthz look
        raise edge.fail([payload], f"after HTTP {status} ({kind}) the edge is unhealthy: {'; '.join(problems)}")
    return kind


def mqtt_hostile_handled(edge: Edge, messages: list[tuple[str, Body]]) -> list[str]:
    """Each hostile reading, published QoS1 on its own topic, gets one error report on factory/<line>/<machine>/errors
    naming its topic with an allowed kind (or, where allowed, its prediction), within outcome_s or, late, while the
    edge stays healthy and predicting (recorded in edge.late); then the edge is alive (edge_alive). Returns the
    verdicts."""
    payloads = [Payload("mqtt", topic, body.data, body.note) for topic, body in messages]
    sent_ns = time.time_ns()
    unacked = [p for p in payloads if not edge.publish(p.where, p.data)]
    if unacked:
        raise edge.fail(unacked, f"the broker {edge.target.endpoint('mosquitto')} did not acknowledge "
                                 f"{len(unacked)} of {len(payloads)} publishes (a broker-valid topic was intended)")
    obs = edge.observer

    def outcome(topic: str, body: Body) -> tuple[str, int, Any] | None:
        if topic in obs.errors:
            at, doc = obs.errors[topic][0]
            return "error", at, doc
        if body.reading_id is not None and body.reading_id in obs.predictions:
            at, doc = obs.predictions[body.reading_id][0]
            return "prediction", at, doc
        return None

    def all_answered() -> bool:
        with obs.cond:
            return all(outcome(t, b) for t, b in messages)

    after = ""
    if not obs.wait(lambda: all(outcome(t, b) for t, b in messages), edge.budget.outcome_s):
        problems = edge.health()
        wait = edge.wait_late(all_answered, f"the outcome of {len(messages)} hostile readings") if not problems \
            else LateWait(False, 0.0, "unhealthy", "; ".join(problems))
        after = f"; {wait.detail}"
    verdicts, bad = [], []
    with obs.cond:
        seen = [(p, b, outcome(t, b)) for p, (t, b) in zip(payloads, messages)]
    for payload, body, out in seen:
        if out is None:
            bad.append((payload, f"neither an error report nor a prediction within {edge.budget.outcome_s:g} s"
                                 f"{after} (expected {body.expect.describe()})"))
            continue
        what, at, doc = out
        if what == "prediction" and not body.expect.may_predict:
            bad.append((payload, f"predicted {json.dumps(doc)[:160]} (expected {body.expect.describe()})"))
        elif what == "error" and (doc.get("kind") not in ERROR_KINDS or not body.expect.allows_kind(doc.get("kind"))):
            bad.append((payload, f"error report {json.dumps(doc)[:200]} (expected {body.expect.describe()})"))
        else:
            verdicts.append(doc["kind"] if what == "error" else "predicted")
            if what == "error":
                edge.provoked[doc["kind"]] += 1
            if (delay := (at - sent_ns) / 1e9) > edge.budget.outcome_s:
                edge.late_s.append((f"{what} for {saved.shorten(payload.where)}", delay, edge.budget.outcome_s))
                edge.late.append(f"{what} for {saved.shorten(payload.where)} after {delay:.1f} s (> outcome_s "
                                 f"{edge.budget.outcome_s:g} s; /healthz, /readyz 200)")
                print(f"late: {edge.late[-1]}")
    if bad:
        first = bad[0][1]
        more = f"; {len(bad) - 1} more of {len(payloads)} failed alike" if len(bad) > 1 else ""
        try:
            edge_alive(edge, after=[])
            alive = "the edge is still alive"
        except AssertionError as exc:
            alive = f"and then: {exc}"
        raise edge.fail([p for p, _ in bad], f"{first}{more}; {alive}")
    edge_alive(edge, after=payloads)
    return verdicts


def error_counts(target: Target) -> dict[str, float]:
    """indmlops_inference_errors_total by kind, scraped from the inference service's /metrics."""
    url = target.endpoint("inference").url.replace("tcp://", "http://") + "/metrics"
    try:
        text = requests.get(url, timeout=10).text
    except requests.RequestException as exc:
        raise AssertionError(f"inference {url}: no answer ({type(exc).__name__}: {exc})") from None
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name == ERRORS_METRIC:
            for s in family.samples:
                if s.name.endswith("_total"):
                    out[s.labels.get("kind", "")] = s.value
    return out


def error_counters_grew(before: dict[str, float], after: dict[str, float], provoked: Counter) -> list[str]:
    """Every kind the edge reported grew by at least as many as it reported; nothing provoked means nothing shown."""
    assert provoked, "no hostile payload was rejected in this run: nothing shows that errors are counted"
    lines: list[str] = []
    short: list[str] = []
    for kind, n in sorted(provoked.items()):
        delta = after.get(kind, 0.0) - before.get(kind, 0.0)
        line = f"{ERRORS_METRIC}_total{{kind={kind!r}}}: +{delta:g} (reported {n})"
        (lines if delta >= n else short).append(line)
    assert not short, f"error counters grew less than the errors the edge reported: {short}; ok: {lines}"
    return lines


def _json_field(text: str, key: str) -> str | None:
    try:
        doc = json.loads(text)
    except ValueError:
        return None
    return doc.get(key) if isinstance(doc, dict) else None


def answers_on_time(edge: Edge) -> None:
    """Every answer recorded late (an error report after outcome_s, a canary after canary_s, the edge healthy and
    predicting meanwhile) fails, as a timing claim with each delay and bound (hostcheck.explain)."""
    if not edge.late_s:
        return
    worst = max(edge.late_s, key=lambda x: x[1] / x[2])
    raise timing_failure(
        f"{len(edge.late_s)} answers came after their bound (worst: {worst[0]} after {worst[1]:.1f} s, bound "
        f"{worst[2]:g} s; fixtures/robustness.yaml profiles.{edge.budget.name}): " + "; ".join(edge.late[:10]),
        [Breach(what, delay, bound, "s") for what, delay, bound in edge.late_s])
