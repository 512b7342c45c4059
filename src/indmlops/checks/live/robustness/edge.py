"""The edge under test: budgets (fixtures/robustness.yaml), the observer of predictions and error reports,
and `Edge`, which publishes, posts and remembers what it provoked."""

from __future__ import annotations

import http.client
import itertools
import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import urllib3

from indmlops import intent, wire
from indmlops.checks.live.robustness import payloads as saved
from indmlops.checks.live.robustness.payloads import Payload
from indmlops.checks.live.robustness.strategies import template
from indmlops.checks.live.robustness.waiting import LateWait, ValidStream, wait_late
from indmlops.delivery import Key, Ledger
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
        self.client = wire.mqtt_connect(target.endpoint("mosquitto"), mon.username, mon.password,
                                          on_message=self._on_message)
        for topic in ("factory/+/+/prediction", "factory/+/+/errors"):
            wire.mqtt_subscribe(self.client, topic, qos=1)

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
        wire.mqtt_close(self.client)


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
    late_s: list[tuple[str, float, float]] = field(default_factory=list)  # (what, delay s, bound s) of each

    def __post_init__(self) -> None:
        sim = self.target.credentials("mosquitto", "simulator")
        self.observer = Observer(self.target, self.ledger)
        self.pub = wire.mqtt_connect(self.target.endpoint("mosquitto"), sim.username, sim.password)
        inference = self.target.endpoint("inference")
        self.base_url = inference.url.replace("tcp://", "http://")
        self.forward_gap = FORWARD_GAP if inference.forwarded else 0.0
        self.counter = itertools.count(1)
        self.seed = int(uuid.uuid4().int % 2**31)

    def close(self) -> None:
        self.observer.close()
        wire.mqtt_close(self.pub)

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
        """(status, body) of a POST on a connection of its own; (None, why) when it dropped or timed out.

        Never a pooled connection: one the server closed while idle looks alive through a port-forward (kubectl
        does not pass the close on), and reusing it would blame the hostile body for a drop it did not cause."""
        try:
            resp = _through_forward(lambda: requests.post(
                self.base_url + path, data=data, timeout=timeout,
                headers={"Content-Type": "application/json", "Connection": "close"}), self.forward_gap)
        except requests.RequestException as exc:
            return None, f"{type(exc).__name__}: {str(exc)[:200]}"
        return resp.status_code, resp.text  # whole: the error kind is parsed from it; messages cut it

    def get(self, path: str) -> tuple[int | None, str]:
        try:
            resp = _through_forward(lambda: requests.get(self.base_url + path, timeout=5), self.forward_gap)
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


FORWARD_GAP = 5.0  # seconds a restarted port-forward may take to listen again (kubectl starts in ~1 s)


def _through_forward(send: Callable[[], requests.Response], gap: float) -> requests.Response:
    """`send()`; through a forward (`gap` > 0), once more after a connection error. kubectl's port-forward exits on
    the first stream the pod resets (an edge rejecting a hostile body may reset it) and is restarted on its port
    (PortForwards): meanwhile the local port refuses, or a connection it had accepted is reset. That is the
    transport; so the request is sent again, on a new connection, once the port accepts (within `gap` s). An edge
    that drops the request drops it again, and that second error is reported. Where the service listens itself
    (`gap` 0) nothing is retried."""
    try:
        return send()
    except requests.ConnectionError:
        if gap <= 0:
            raise
    deadline = time.monotonic() + gap
    while True:
        try:
            return send()
        except requests.ConnectionError as exc:
            refused = bool(exc.args) and isinstance(getattr(exc.args[0], "reason", None),
                                                    urllib3.exceptions.NewConnectionError)
            if not refused or time.monotonic() > deadline:
                raise
            time.sleep(0.2)
