"""Robustness checks of the deployed edge under hostile input: each hostile MQTT reading is dead-lettered (or,
if the contract allows, predicted), each hostile HTTP body gets a 4xx, and afterwards the edge is healthy and
still predicts valid readings. A failure saves the payloads under the reports directory and names them."""

from __future__ import annotations

import itertools
import json
import queue
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from prometheus_client.parser import text_string_to_metric_families

from indmlops import intent, probes
from indmlops.checks import robustness_payloads as saved
from indmlops.checks.robustness_payloads import Payload
from indmlops.checks.robustness_strategies import Body, template
from indmlops.inference.parse import ERROR_KINDS
from indmlops.targets.base import Target

ERRORS_METRIC = "indmlops_inference_errors"  # the counter family; samples are named *_total


@dataclass(frozen=True)
class Budget:
    """One profile of fixtures/robustness.yaml."""

    name: str
    derandomize: bool
    http_examples: int
    mqtt_examples: int
    bursts: int
    burst_size: int
    canaries: int
    outcome_s: float
    canary_s: float
    stream_rate: float
    settle_s: float


def budget(profile: str, doc: dict | None = None) -> Budget:
    doc = intent.load("robustness") if doc is None else doc
    profiles = doc.get("profiles") or {}
    if profile not in profiles:
        raise ValueError(f"fixtures/robustness.yaml: no profile {profile!r} (have: {', '.join(profiles)})")
    p = profiles[profile]
    try:
        return Budget(profile, bool(p["derandomize"]), int(p["http_examples"]), int(p["mqtt_examples"]),
                      int(p["bursts"]), int(p["burst_size"]), int(p["canaries"]), float(p["outcome_s"]),
                      float(p["canary_s"]), float(p["stream_rate"]), float(p["settle_s"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"fixtures/robustness.yaml: profiles.{profile}: {type(exc).__name__}: {exc}") from None


class Observer:
    """The monitor role's view: predictions by reading id, error reports by the topic they name."""

    def __init__(self, target: Target) -> None:
        mon = target.credentials("mosquitto", "monitor")
        self.cond = threading.Condition()
        self.predictions: dict[str, list[tuple[int, dict]]] = {}
        self.errors: dict[str, list[dict]] = {}
        self.client = probes.mqtt_connect(target.endpoint("mosquitto"), mon.username, mon.password,
                                          on_message=self._on_message)
        for topic in ("factory/+/+/prediction", "factory/+/+/errors"):
            probes.mqtt_subscribe(self.client, topic, qos=1)

    def _on_message(self, _c: Any, _u: Any, msg: Any) -> None:
        now = time.time_ns()
        try:
            doc = json.loads(msg.payload)
        except ValueError:
            doc = {"unparsable": msg.payload[:200].decode("latin-1")}
        with self.cond:
            if msg.topic.endswith("/prediction"):
                self.predictions.setdefault(str(doc.get("id")), []).append((now, doc))
            else:
                self.errors.setdefault(str(doc.get("topic")), []).append(doc)
            self.cond.notify_all()

    def wait(self, predicate: Any, timeout: float) -> bool:
        with self.cond:
            return self.cond.wait_for(predicate, timeout)

    def close(self) -> None:
        probes.mqtt_close(self.client)


@dataclass
class Edge:
    """One robustness run against a target: publisher (simulator role), observer, HTTP, what was provoked."""

    target: Target
    reports: Path
    budget: Budget
    tag: str = field(default_factory=lambda: f"robust-{uuid.uuid4().hex[:8]}")
    provoked: Counter = field(default_factory=Counter)
    canary_ms: list[float] = field(default_factory=list)
    sent: int = 0
    restarts_before: int = 0
    errors_before: dict[str, float] = field(default_factory=dict)
    stream: ValidStream | None = None
    saved: dict[tuple[str, str, bytes], Path] = field(default_factory=dict)

    def __post_init__(self) -> None:
        sim = self.target.credentials("mosquitto", "simulator")
        self.observer = Observer(self.target)
        self.pub = probes.mqtt_connect(self.target.endpoint("mosquitto"), sim.username, sim.password)
        self.http = requests.Session()
        self.base_url = self.target.endpoint("inference").url.replace("tcp://", "http://")
        self.counter = itertools.count(1)
        self.seed = int(uuid.uuid4().int % 2**31)

    def close(self) -> None:
        self.observer.close()
        probes.mqtt_close(self.pub)
        self.http.close()

    # -- sending ----------------------------------------------------------------------------------------------

    def publish(self, topic: str, data: bytes, timeout: float = 5.0) -> bool:
        """QoS1 publish as the simulator; True once the broker acknowledged it."""
        info = self.pub.publish(topic, data, qos=1)
        try:
            info.wait_for_publish(timeout)
        except (RuntimeError, ValueError):
            return False
        self.sent += 1
        return info.is_published()

    def post(self, path: str, data: bytes, timeout: float = 10.0) -> tuple[int | None, str]:
        """(status, body) of a POST; (None, why) when the connection dropped or timed out."""
        try:
            resp = self.http.post(self.base_url + path, data=data, timeout=timeout,
                                  headers={"Content-Type": "application/json"})
        except requests.RequestException as exc:
            self.http.close()
            self.http = requests.Session()  # a dropped keep-alive connection must not fail the next request
            return None, f"{type(exc).__name__}: {str(exc)[:200]}"
        return resp.status_code, resp.text  # whole: the error kind is parsed from it; messages cut it

    def get(self, path: str) -> tuple[int | None, str]:
        try:
            resp = requests.get(self.base_url + path, timeout=5)
        except requests.RequestException as exc:
            return None, f"{type(exc).__name__}: {str(exc)[:200]}"
        return resp.status_code, resp.text[:200]

    def valid_reading(self, machine: str) -> tuple[str, bytes, str]:
        """(topic, body, id) of a fresh valid reading on our own line, stamped now."""
        doc = template(self.seed, line=self.tag, machine=machine, ts_ns=time.time_ns())
        doc["id"] = f"{self.tag}-{machine}-{next(self.counter)}"
        return f"factory/{self.tag}/{machine}/telemetry", json.dumps(doc).encode(), doc["id"]

    # -- failing ------------------------------------------------------------------------------------------------

    def fail(self, payloads: list[Payload], what: str) -> AssertionError:
        """Save the payloads, and the error to raise: it names the files and says what happened after them."""
        if not payloads:
            return AssertionError(what)
        paths = []
        for p in payloads:  # hypothesis runs a failing example once more to report it: one file per payload
            key = (p.channel, p.where, p.data)
            if key not in self.saved:
                self.saved[key] = saved.save(self.reports, p, failure=what)
            paths.append(self.saved[key])
        shown = ", ".join(str(p) for p in paths[:3]) + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")
        return AssertionError(f"after payload {shown} on {saved.shorten(payloads[0].where)} ({payloads[0].note}): "
                              f"{what}\nreplay: {self.reports / 'reproduce.sh'}")


# --- checks ----------------------------------------------------------------------------------------------------

def edge_alive(edge: Edge, *, after: list[Payload]) -> list[float]:
    """/healthz and /readyz answer 200 and `budget.canaries` valid readings are predicted within canary_s;
    returns their latencies (ms, publish → prediction received)."""
    problems = []
    for path in ("/healthz", "/readyz"):
        status, body = edge.get(path)
        if status != 200:
            problems.append(f"{path} {status} {body!r} (expected 200)")
    ids, t0 = [], {}
    for i in range(edge.budget.canaries):
        topic, data, rid = edge.valid_reading("canary")
        t0[rid] = json.loads(data)["ts_ns"]
        if not edge.publish(topic, data):
            problems.append(f"valid reading {rid} not acknowledged by the broker {edge.target.endpoint('mosquitto')}")
        ids.append(rid)
    obs = edge.observer
    obs.wait(lambda: all(i in obs.predictions for i in ids), edge.budget.canary_s)
    with obs.cond:
        got = {i: obs.predictions[i][0][0] for i in ids if i in obs.predictions}
    if len(got) < len(ids):
        problems.append(f"{len(got)} of {len(ids)} valid readings predicted within {edge.budget.canary_s:g} s")
    if problems:
        raise edge.fail(after, "; ".join(problems))
    latencies = [(got[i] - t0[i]) / 1e6 for i in ids]
    edge.canary_ms.extend(latencies)
    return latencies


def http_hostile_rejected(edge: Edge, body: Body, path: str = "/predict") -> str:
    """A hostile body POSTed gets a 4xx naming an error kind the contract allows (or 200 where it allows a
    prediction); never a 5xx or a dropped connection. Returns the verdict seen."""
    payload = Payload("http", path, body.data, body.note)
    status, text = edge.post(path, body.data)
    if status is None:
        raise edge.fail([payload], f"connection dropped: {text} (expected a 4xx; {body.expect.describe()})")
    if status == 200:
        if not body.expect.may_predict:
            raise edge.fail([payload], f"200 {text[:120]!r} (expected {body.expect.describe()})")
        return "predicted"
    kind = _json_field(text, "error")
    if not 400 <= status < 500 or kind not in ERROR_KINDS or not body.expect.allows_kind(kind):
        raise edge.fail([payload], f"HTTP {status} {text[:160]!r} (expected a 4xx with {body.expect.describe()}; "
                                   f"known kinds {', '.join(ERROR_KINDS)})")
    edge.provoked[kind] += 1
    return kind


def mqtt_hostile_handled(edge: Edge, messages: list[tuple[str, Body]]) -> list[str]:
    """Each hostile reading, published QoS1 on its own topic, gets within outcome_s one error report on
    factory/<line>/<machine>/errors naming its topic with an allowed kind (or, where allowed, its prediction);
    then the edge is alive (edge_alive). Returns the verdicts."""
    payloads = [Payload("mqtt", topic, body.data, body.note) for topic, body in messages]
    unacked = [p for p in payloads if not edge.publish(p.where, p.data)]
    if unacked:
        raise edge.fail(unacked, f"the broker {edge.target.endpoint('mosquitto')} did not acknowledge "
                                 f"{len(unacked)} of {len(payloads)} publishes (a broker-valid topic was intended)")
    obs = edge.observer

    def outcome(topic: str, body: Body) -> tuple[str, Any] | None:
        if topic in obs.errors:
            return "error", obs.errors[topic][0]
        if body.reading_id is not None and body.reading_id in obs.predictions:
            return "prediction", obs.predictions[body.reading_id][0][1]
        return None

    obs.wait(lambda: all(outcome(t, b) for t, b in messages), edge.budget.outcome_s)
    verdicts, bad = [], []
    with obs.cond:
        seen = [(p, b, outcome(t, b)) for p, (t, b) in zip(payloads, messages)]
    for payload, body, out in seen:
        if out is None:
            bad.append((payload, f"neither an error report nor a prediction within {edge.budget.outcome_s:g} s "
                                 f"(expected {body.expect.describe()})"))
        elif out[0] == "prediction" and not body.expect.may_predict:
            bad.append((payload, f"predicted {json.dumps(out[1])[:160]} (expected {body.expect.describe()})"))
        elif out[0] == "error" and (out[1].get("kind") not in ERROR_KINDS or not body.expect.allows_kind(out[1].get("kind"))):
            bad.append((payload, f"error report {json.dumps(out[1])[:200]} (expected {body.expect.describe()})"))
        else:
            verdicts.append(out[1]["kind"] if out[0] == "error" else "predicted")
            if out[0] == "error":
                edge.provoked[out[1]["kind"]] += 1
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
    lines, short = [], []
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


class ValidStream:
    """Valid QoS1 readings at `rate`/s on our own line while hostile traffic flows; `stop` says which acknowledged
    ones got no prediction."""

    def __init__(self, edge: Edge, rate: float) -> None:
        self.edge, self.rate = edge, rate
        self.acked: list[str] = []
        self.unacked = 0
        self.stopping = threading.Event()
        self.errors: queue.Queue = queue.Queue()
        self.thread = threading.Thread(target=self._run, name="robust-stream", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        t0, n = time.monotonic(), 0
        while not self.stopping.is_set():
            n += 1
            if (delay := t0 + n / self.rate - time.monotonic()) > 0:
                time.sleep(delay)
            topic, data, rid = self.edge.valid_reading("stream")
            if self.edge.publish(topic, data):
                self.acked.append(rid)
            else:
                self.unacked += 1

    def stop(self, settle_s: float) -> tuple[list[str], list[str]]:
        """(acknowledged ids, those without a prediction after settle_s)."""
        self.stopping.set()
        self.thread.join(10)
        obs = self.edge.observer
        obs.wait(lambda: all(i in obs.predictions for i in self.acked), settle_s)
        with obs.cond:
            return list(self.acked), [i for i in self.acked if i not in obs.predictions]


# --- replay ----------------------------------------------------------------------------------------------------

def replay(target: Target, directory: Path, budget_: Budget, echo: Any = print) -> int:
    """Send every saved payload of `directory` again, each followed by edge_alive; returns the failures."""
    edge = Edge(target, directory / "replayed", budget_)
    failures = 0
    try:
        for path, payload in saved.load(directory):
            if payload.channel == "http":
                status, text = edge.post(payload.where, payload.data)
                seen = f"HTTP {status} {text[:100]!r}"
            else:
                acked = edge.publish(payload.where, payload.data)
                seen = "published" if acked else "NOT acknowledged by the broker"
            try:
                if payload.channel == "http" and (status is None or status >= 500):
                    raise AssertionError(f"{seen} (expected a 4xx, never a 5xx or a dropped connection)")
                ms = edge_alive(edge, after=[])
                echo(f"ok   {path.name} on {saved.shorten(payload.where)}: {seen}; /healthz, /readyz 200; valid "
                     f"readings predicted in {', '.join(f'{m:.1f}' for m in ms)} ms")
            except AssertionError as exc:
                failures += 1
                echo(f"FAIL {path.name} on {saved.shorten(payload.where)}: {seen}; {exc}")
    finally:
        edge.close()
    return failures


def main(argv: list[str] | None = None) -> int:
    """`python -m indmlops.checks.robustness replay DIR [--profile quick]` against the local stack (INDMLOPS_STATE_DIR
    and the port variables as for `indmlops`); exit 1 when the edge fails after any payload."""
    import argparse

    from indmlops.local.layout import default_state_dir
    from indmlops.targets.local import LocalTarget

    parser = argparse.ArgumentParser(prog="python -m indmlops.checks.robustness")
    sub = parser.add_subparsers(dest="cmd", required=True)
    rp = sub.add_parser("replay", help="send saved payloads again and check the edge after each")
    rp.add_argument("directory", type=Path)
    rp.add_argument("--profile", default="quick", help="budget profile of fixtures/robustness.yaml (waits)")
    rp.add_argument("--state-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    target = LocalTarget(args.state_dir or default_state_dir())
    failures = replay(target, args.directory, budget(args.profile))
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
