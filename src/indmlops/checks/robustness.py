"""Robustness checks of the deployed edge under hostile input: each hostile MQTT reading is dead-lettered (or,
if the contract allows, predicted), each hostile HTTP body gets a 4xx, and afterwards the edge is healthy and
still predicts valid readings. Slow is not broken: an answer that comes after its bound while /healthz and /readyz
answer 200 and the edge keeps predicting is recorded as late (the SLO test judges it); only no answer after a
bounded, progress-aware wait, or an unhealthy edge, fails. A failure saves the payloads and names them."""

from __future__ import annotations

import http.client
import itertools
import json
import threading
import time
import uuid
from collections.abc import Callable
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
from indmlops.delivery import Accounting, Key, Ledger
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
    drain_bound_s: float
    drain_quiet_s: float


def budget(profile: str, doc: dict | None = None) -> Budget:
    doc = intent.load("robustness") if doc is None else doc
    profiles = doc.get("profiles") or {}
    if profile not in profiles:
        raise ValueError(f"fixtures/robustness.yaml: no profile {profile!r} (have: {', '.join(profiles)})")
    p = profiles[profile]
    try:
        return Budget(profile, bool(p["derandomize"]), int(p["http_examples"]), int(p["mqtt_examples"]),
                      int(p["bursts"]), int(p["burst_size"]), int(p["canaries"]), float(p["outcome_s"]),
                      float(p["canary_s"]), float(p["stream_rate"]),
                      float(p["drain_bound_s"]), float(p["drain_quiet_s"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"fixtures/robustness.yaml: profiles.{profile}: {type(exc).__name__}: {exc}") from None


class Observer:
    """The monitor role's view: predictions by reading id, error reports by the topic they name (each with its
    arrival, ns), every prediction of a valid reading into `ledger`, and a count of all messages (progress)."""

    def __init__(self, target: Target, ledger: Ledger | None = None) -> None:
        mon = target.credentials("mosquitto", "monitor")
        self.cond = threading.Condition()
        self.predictions: dict[str, list[tuple[int, dict]]] = {}
        self.errors: dict[str, list[tuple[int, dict]]] = {}
        self.ledger = ledger
        self.messages = 0
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
        if self.ledger is not None and msg.topic.endswith("/prediction") and isinstance(doc.get("seq"), int):
            self.ledger.predicted(f"{doc.get('line')}/{doc.get('machine')}", doc["seq"], distinct=not msg.dup,
                                  at=now / 1e9)
        with self.cond:
            self.messages += 1
            if msg.topic.endswith("/prediction"):
                self.predictions.setdefault(str(doc.get("id")), []).append((now, doc))
            else:
                self.errors.setdefault(str(doc.get("topic")), []).append((now, doc))
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
    saved: dict[tuple[str, str, bytes, str], Path] = field(default_factory=dict)
    ledger: Ledger = field(default_factory=Ledger)  # every valid reading (canaries, the stream): late vs lost
    late: list[str] = field(default_factory=list)  # answers that came after their bound, with their delay

    def __post_init__(self) -> None:
        sim = self.target.credentials("mosquitto", "simulator")
        self.observer = Observer(self.target, self.ledger)
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

    def post_framed(self, path: str, data: bytes, framing: str, timeout: float = 10.0) -> tuple[int | None, str]:
        """(status, body) of a POST framed as `framing` says: "chunked", or that Content-Length value sent as is."""
        host, port = self.base_url.split("//", 1)[1].rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
        try:
            conn.putrequest("POST", path)
            conn.putheader("Content-Type", "application/json")
            if framing == "chunked":
                conn.putheader("Transfer-Encoding", "chunked")
                conn.endheaders(b"%x\r\n%s\r\n0\r\n\r\n" % (len(data), data))
            else:
                conn.putheader("Content-Length", framing.encode("latin-1"))
                conn.endheaders(data)
            resp = conn.getresponse()
            return resp.status, resp.read().decode("utf-8", "replace")
        except (OSError, http.client.HTTPException) as exc:
            return None, f"{type(exc).__name__}: {str(exc)[:200]}"
        finally:
            conn.close()

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

    def health(self) -> list[str]:
        """What is wrong with /healthz and /readyz (each must answer 200); empty when both do."""
        problems = []
        for path in ("/healthz", "/readyz"):
            status, body = self.get(path)
            if status != 200:
                problems.append(f"{path} {status} {body!r} (expected 200)")
        return problems

    def activity(self) -> int:
        """Predictions and error reports seen so far, of any reading (ours, the simulator's): the edge's progress."""
        with self.observer.cond:
            return self.observer.messages

    def publish_valid(self, machine: str) -> tuple[str, Key, bool]:
        """Publish a fresh valid reading on our own line (seq numbered per run, so the ledger can prove a loss),
        stamped now, recorded in the ledger; (id, ledger key, acknowledged)."""
        n = next(self.counter)
        doc = template(self.seed, line=self.tag, machine=machine, ts_ns=time.time_ns())
        doc.update(id=f"{self.tag}-{machine}-{n}", seq=n)
        key = self.ledger.published(f"{self.tag}/{machine}", n, at=doc["ts_ns"] / 1e9)
        acked = self.publish(f"factory/{self.tag}/{machine}/telemetry", json.dumps(doc).encode())
        if acked:
            self.ledger.acknowledged(key)
        else:
            self.ledger.abandoned(key)  # publish() gave up waiting: no acknowledgement will be reported
        return doc["id"], key, acked

    def wait_late(self, done: Callable[[], bool], what: str) -> LateWait:
        """After a bound passed without `done`: wait on while the edge is healthy and predicting (fixtures'
        drain_bound_s / drain_quiet_s), printing progress."""
        return wait_late(done, health=self.health, activity=self.activity, bound_s=self.budget.drain_bound_s,
                         quiet_s=self.budget.drain_quiet_s, what=what, progress=print)

    # -- failing ------------------------------------------------------------------------------------------------

    def fail(self, payloads: list[Payload], what: str) -> AssertionError:
        """Save the payloads, and the error to raise: it names the files and says what happened after them."""
        if not payloads:
            return AssertionError(what)
        paths = []
        for p in payloads:  # hypothesis runs a failing example once more to report it: one file per payload
            key = (p.channel, p.where, p.data, p.framing)
            if key not in self.saved:
                self.saved[key] = saved.save(self.reports, p, failure=what)
            paths.append(self.saved[key])
        shown = ", ".join(str(p) for p in paths[:3]) + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")
        return AssertionError(f"after payload {shown} on {saved.shorten(payloads[0].where)} ({payloads[0].note}): "
                              f"{what}\nreplay: {self.reports / 'reproduce.sh'}")


# --- waiting: late is not broken ------------------------------------------------------------------------------

@dataclass
class LateWait:
    """How a wait beyond a bound ended: `stopped` is "arrived", "unhealthy", "no progress" or "bound"."""

    arrived: bool
    seconds: float
    stopped: str
    detail: str


def wait_late(done: Callable[[], bool], *, health: Callable[[], list[str]], activity: Callable[[], int],
              bound_s: float, quiet_s: float, what: str, progress: Callable[[str], None] | None = None,
              sleep: Callable[[float], None] = time.sleep, monotonic: Callable[[], float] = time.monotonic,
              every_s: float = 2.0, health_every_s: float = 1.0) -> LateWait:
    """Wait for `done` while the edge shows it is working: /healthz and /readyz 200 (looked at every
    `health_every_s`) and some prediction or error report arriving at least every `quiet_s`; at most `bound_s`."""
    t0 = last_change = last_report = last_health = monotonic()
    seen = activity()
    while True:
        now = monotonic()
        if done():
            return LateWait(True, round(now - t0, 2), "arrived", f"{what} arrived {now - t0:.1f} s later")
        if now - last_health >= health_every_s:
            last_health = now
            if problems := health():
                return LateWait(False, round(now - t0, 2), "unhealthy",
                                f"after {now - t0:.1f} s more: {'; '.join(problems)}")
        if (count := activity()) != seen:
            seen, last_change = count, now
        if now - last_change >= quiet_s:
            return LateWait(False, round(now - t0, 2), "no progress",
                            f"no prediction or error report of any reading for {quiet_s:g} s although /healthz and "
                            f"/readyz answered 200: the edge stopped handling readings (after {now - t0:.1f} s more)")
        if now - t0 >= bound_s:
            return LateWait(False, round(now - t0, 2), "bound",
                            f"the edge healthy and still predicting, but {what} did not come within the {bound_s:g} s "
                            f"bound")
        if progress and now - last_report >= every_s:
            progress(f"waiting for {what}: edge healthy, {count} messages seen, {now - t0:.0f} s of at most "
                     f"{bound_s:g} s")
            last_report = now
        sleep(0.05)


# --- checks ----------------------------------------------------------------------------------------------------

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
    """Valid QoS1 readings at `rate`/s on factory/<tag>/stream, numbered, in the edge's ledger, while hostile traffic
    flows; `stop` drains and accounts them (with the canaries) as on time, late, lost or undrained."""

    def __init__(self, edge: Edge, rate: float) -> None:
        self.edge, self.rate = edge, rate
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="robust-stream", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        t0, n = time.monotonic(), 0
        while not self.stopping.is_set():
            n += 1
            if (delay := t0 + n / self.rate - time.monotonic()) > 0:
                time.sleep(delay)
            self.edge.publish_valid("stream")

    def stop(self, *, progress: Callable[[str], None] | None = print) -> Accounting:
        self.stopping.set()
        self.thread.join(10)
        b = self.edge.budget
        return settle(self.edge.ledger, bound_s=b.drain_bound_s, quiet_s=b.drain_quiet_s, late_after_s=b.canary_s,
                      progress=progress)


def settle(ledger: Ledger, *, bound_s: float, quiet_s: float, late_after_s: float,
           progress: Callable[[str], None] | None = print, sleep: Callable[[float], None] = time.sleep,
           monotonic: Callable[[], float] = time.monotonic) -> Accounting:
    """Drain (wait while predictions keep coming, at most bound_s, ending after quiet_s without one), then account."""
    drain = ledger.drain(bound_s=bound_s, quiet_s=quiet_s, progress=progress, sleep=sleep, monotonic=monotonic)
    return ledger.account(late_after_s, drain)


def no_valid_reading_lost(acc: Accounting, where: str) -> None:
    """No acknowledged valid reading lost: never predicted although a later one of its stream was."""
    assert acc.acknowledged, f"no valid reading on {where} was acknowledged by the broker ({acc.summary()})"
    assert not acc.lost, f"{acc.lost} acknowledged valid readings on {where} lost (a later reading of their stream " \
                         f"was predicted, theirs never will be): {acc.summary()}"


def every_valid_reading_drained(acc: Accounting, where: str) -> None:
    """Every acknowledged valid reading predicted before the drain ended; the ones that were not are not shown lost."""
    assert not acc.undrained, f"not drained (late or stalled, not shown lost): {acc.undrained} acknowledged valid " \
                              f"readings on {where} had no prediction when the drain ended: " \
                              f"{acc.drain.detail if acc.drain else 'no drain'}; {acc.summary()}"


# --- replay ----------------------------------------------------------------------------------------------------

def replay(target: Target, directory: Path, budget_: Budget, echo: Any = print) -> int:
    """Send every saved payload of `directory` again, each followed by edge_alive; returns the failures."""
    edge = Edge(target, directory / "replayed", budget_)
    failures = 0
    try:
        for path, payload in saved.load(directory):
            if payload.channel == "http":
                status, text = edge.post_framed(payload.where, payload.data, payload.framing) if payload.framing \
                    else edge.post(payload.where, payload.data)
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
