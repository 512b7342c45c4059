"""QoS1 readings across a fault, accounted per reading: acknowledged by the broker, predicted, lost, duplicated,
and how long the edge took to be current again after each recovery.

`start` publishes the simulator's readings for `machines` machines of a line of its own at `rate` readings/s
(at most `max_inflight` unacknowledged), as a conforming publisher of the stack: through an outbox
(`indmlops.outbox`) that keeps each reading until its prediction arrives and re-sends what a broker kill lost.
What it had to re-send is reported apart (`resent_gap`), so a loss the outbox repaired is still judged: none may
follow an inference kill (the broker holds the edge's queue), and a broker kill may cost at most what its save
policy leaves unsaved (indmlops.broker.max_resent). Publisher and receiver hold persistent sessions, so a broker
restart neither drops their subscriptions nor their in-flight messages.

Catch-up: every recovery the chaos actions record (`wait_ready`) is a mark; `stop` first keeps publishing until
the edge is current again after the last mark (`in_a_row` predictions in a row arriving within `current_ms` of
their reading's publication) or the catch-up bound runs out, then stops and drains (waits while predictions keep
coming, up to a bound, printing progress), then accounts every reading with `indmlops.delivery`: on time, late,
lost (a later reading of its machine was predicted, so it never will be), or undrained (the run ended before the
edge got there: not evidence of loss). A sequence number predicted twice is a duplicate. With `max_lost` set, loss
beyond it interrupts the experiment, so `chaos run` fails on it too; undrained readings interrupt it as well, with
how the drain ended, so a stalled or slow edge is not passed over and not called lossy.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
import uuid
from collections.abc import Callable
from typing import cast

from chaoslib.exceptions import InterruptExecution
from paho.mqtt.client import Client, MQTTv311
from paho.mqtt.enums import CallbackAPIVersion

from indmlops import wire
from indmlops.catchup import CatchUp, catch_up
from indmlops.chaos import context
from indmlops.delivery import Accounting, Key, Ledger
from indmlops.outbox import Outbox
from indmlops.simulator import Plant
from indmlops.targets.base import Target


class Traffic:
    def __init__(self, t: Target, rate: float, machines: int, max_inflight: int, prefix: str = "chaos") -> None:
        self.ep = t.endpoint("mosquitto")
        self.pub_creds = t.credentials("mosquitto", "simulator")
        self.sub_creds = t.credentials("mosquitto", "monitor")
        self.line = f"{prefix}-{uuid.uuid4().hex[:8]}"
        self.rate, self.machines = rate, machines
        self.lock = threading.Lock()
        self.ledger = Ledger()
        self.sent: dict[int, Key] = {}  # mid → the reading's ledger key, until acknowledged
        self.early: set[int] = set()  # mids acknowledged before publish() returned them
        self.stamps: dict[Key, set[int]] = {}  # published_ns of each prediction: a redelivered message repeats one
        self.published = 0
        self.window = threading.Semaphore(max_inflight)
        self.window_wait_s = 0.0  # publishing time spent waiting for an in-flight slot (the broker's acks)
        self.publishing_s = 0.0  # set when the publishing loop ends
        self.outbox = Outbox()  # under self.lock
        self.weak_qos = 0  # predictions that arrived below QoS 1: published weaker than the contract
        self.arrivals: list[tuple[float, float]] = []  # (arrival, delay) of each first prediction, in arrival order
        self.stopping = threading.Event()
        self.rx_id, self.tx_id = f"indmlops-chaos-rx-{self.line}", f"indmlops-chaos-tx-{self.line}"
        self.rx = self._client(self.rx_id, self.sub_creds)
        self.rx.on_message = self._on_prediction
        subscribed = threading.Event()
        self.rx.on_subscribe = lambda *_a: subscribed.set()
        self.rx.on_connect = lambda c, *_a: c.subscribe(f"factory/{self.line}/+/prediction", qos=1)
        self._connect(self.rx)
        if not subscribed.wait(10):
            raise InterruptExecution(f"traffic: no SUBACK from {self.ep} for the prediction subscription")
        self.tx = self._client(self.tx_id, self.pub_creds)
        self.tx.on_publish = self._on_publish
        self._connect(self.tx)
        self.thread = threading.Thread(target=self._publish_loop, name="chaos-traffic", daemon=True)
        self.t0, self.t0_wall = time.monotonic(), time.time()
        self.closed = threading.Event()  # the drain ended: nothing is re-sent any more
        self.resender = threading.Thread(target=self._resend_loop, name="chaos-outbox", daemon=True)
        self.thread.start()
        self.resender.start()

    @staticmethod
    def _client(client_id: str, creds) -> Client:
        c = wire.no_nagle(Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTv311,
                                   clean_session=False))
        c.username_pw_set(creds.username, creds.password)
        c.reconnect_delay_set(0.1, 2)  # type: ignore[arg-type]  # paho types the delays int; floats work
        return c

    def _connect(self, c: Client) -> None:
        c.connect(self.ep.host, self.ep.port, keepalive=10)
        c.loop_start()

    def _on_publish(self, _c, _u, mid, _rc, _p) -> None:
        with self.lock:
            key = self.sent.pop(mid, None)
            if key is None:  # acknowledged before the publishing thread recorded the mid
                self.early.add(mid)
        if key is not None:
            self.ledger.acknowledged(key)
        self.window.release()

    def _on_prediction(self, _c, _u, msg) -> None:
        doc = json.loads(msg.payload)
        key = (doc["machine"], doc["seq"])
        now = time.time()
        with self.lock:
            if msg.qos < 1:  # subscribed at QoS 1: it arrives at 0 only when the edge published it at 0
                self.weak_qos += 1
            stamps = self.stamps.setdefault(key, set())
            distinct = doc["published_ns"] not in stamps
            stamps.add(doc["published_ns"])
            if self.outbox.confirmed(key):
                self.arrivals.append((now, now - doc["ts_ns"] / 1e9))
        self.ledger.predicted(*key, distinct=distinct)

    def _send(self, topic: str, body: str, key: Key) -> None:
        # Not under self.lock: paho calls on_publish holding its own message lock, which publish() takes too.
        info = self.tx.publish(topic, body, qos=1)
        with self.lock:
            early = info.mid in self.early
            if early:
                self.early.discard(info.mid)
            else:
                self.sent[info.mid] = key
        if early:
            self.ledger.acknowledged(key)

    def _resend_loop(self) -> None:
        while not self.closed.wait(0.2):
            self._resend_due()

    def _resend_due(self) -> None:
        with self.lock:
            due = self.outbox.due()
        for key, payload, _reason in due:
            if not self.window.acquire(timeout=0.5):
                return  # the broker is away: the outbox shows these missing again later
            topic, body = cast("tuple[str, str]", payload)
            self._send(topic, body, cast(Key, key))

    def _publish_loop(self) -> None:
        try:
            self._publish()
        finally:
            self.publishing_s = time.monotonic() - self.t0

    def _publish(self) -> None:
        interval = 1.0 / self.rate
        for reading in Plant(seed=int.from_bytes(os.urandom(4), "big"), lines=1, machines=self.machines).readings():
            if self.stopping.is_set():
                return
            due = self.t0 + self.published * interval
            if (delay := due - time.monotonic()) > 0:
                time.sleep(delay)
            waited = time.monotonic()
            got = self.window.acquire(timeout=0.5)
            self.window_wait_s += time.monotonic() - waited
            if not got:
                continue  # the broker is away: keep the schedule, do not pile up (that reading is not sent)
            reading["line"] = self.line
            reading["ts_ns"] = time.time_ns()
            key = self.ledger.published(reading["machine"], reading["seq"])
            topic, body = f"factory/{self.line}/{reading['machine']}/telemetry", json.dumps(reading,
                                                                                            separators=(",", ":"))
            with self.lock:
                self.published += 1
                self.outbox.sent(key, (topic, body))
            self._send(topic, body, key)

    def close(self) -> None:
        """Disconnect both clients and forget their persistent sessions (the broker would keep them otherwise)."""
        for c, cid, creds in ((self.tx, self.tx_id, self.pub_creds), (self.rx, self.rx_id, self.sub_creds)):
            wire.mqtt_close(c)
            with contextlib.suppress(wire.NoAnswer):  # broker gone: its sessions went with it
                wire.forget_session(self.ep, creds.username, creds.password, cid)

    def marks(self) -> list[float]:
        """Wall-clock times of the recoveries recorded while this traffic ran (chaos.actions.wait_ready)."""
        return sorted(rec["ready_at"] for recs in context.state.recoveries.values() for rec in recs
                      if rec.get("ready_at", 0.0) >= self.t0_wall and not rec.get("during_outage_of"))

    def catch_ups(self, bound_s: float | None, current_s: float, in_a_row: int) -> list[CatchUp]:
        with self.lock:
            arrivals = list(self.arrivals)
        return [catch_up(arrivals, m, current_s=current_s, in_a_row=in_a_row, bound_s=bound_s) for m in self.marks()]

    def await_current(self, bound_s: float, current_s: float, in_a_row: int) -> None:
        """Keep publishing until the edge is current again after the last recovery, or `bound_s` after it: a plant
        does not stop sending while its edge catches up, and "current" can only be seen on fresh readings."""
        marks = self.marks()
        if not marks:
            return
        deadline = marks[-1] + bound_s + 1.0
        while time.time() < deadline:
            with self.lock:
                arrivals = list(self.arrivals)
            if catch_up(arrivals, marks[-1], current_s=current_s, in_a_row=in_a_row).current_at is not None:
                return
            time.sleep(0.2)

    def finish(self, drain_bound_s: float, drain_quiet_s: float, late_after_s: float,
               progress: Callable[[str], None] | None = None) -> tuple[Accounting, float]:
        """Stop publishing, drain (no re-sends after it) and account; returns the accounting and the seconds the
        traffic ran. The clients stay connected: `close` ends them."""
        self.stopping.set()
        self.thread.join(5)
        seconds = time.monotonic() - self.t0
        drain = self.ledger.drain(bound_s=drain_bound_s, quiet_s=drain_quiet_s, progress=progress)
        self.closed.set()
        self.resender.join(5)
        return self.ledger.account(late_after_s, drain), seconds

    def stop(self, drain_bound_s: float, drain_quiet_s: float, max_lost: int | None,
             late_after_s: float = 10.0, catch_up_bound_s: float | None = None) -> dict:
        plan = context.catch_up_plan()
        if catch_up_bound_s is not None:
            self.await_current(catch_up_bound_s, plan["current_s"], plan["in_a_row"])
        acc, seconds = self.finish(drain_bound_s, drain_quiet_s, late_after_s,
                                   progress=lambda line: print(f"traffic {self.line}: {line}", flush=True))
        catch_ups = self.catch_ups(catch_up_bound_s, plan["current_s"], plan["in_a_row"])
        context.state.catch_ups.extend(catch_ups)
        with self.lock:
            outbox = self.outbox.stats.as_dict()
        self.close()
        # QoS1 is at least once. A reading the broker redelivers after a kill is predicted again (a second
        # prediction, new published_ns); a prediction the broker redelivers arrives twice (same published_ns).
        report = {"line": self.line, "seconds": round(seconds, 2), "published": acc.published,
                  "acknowledged": acc.acknowledged, "unacknowledged": acc.unacknowledged,
                  "predicted": acc.predicted, "on_time": acc.on_time, "late": acc.late,
                  "late_delay_s": acc.late_delay_s, "lost_acknowledged": acc.lost, "undrained": acc.undrained,
                  "duplicates": acc.duplicates, "redelivered": self.ledger.messages - sum(
                      len(s) for s in self.stamps.values()),
                  "lost_examples": acc.lost_examples, "undrained_examples": acc.undrained_examples,
                  "duplicate_examples": acc.duplicate_examples, "drain": acc.drain.__dict__ if acc.drain else None,
                  "outbox": outbox, "resent_gap": outbox["resent_gap"], "rate": self.rate,
                  "predictions_below_qos1": self.weak_qos,
                  "catch_up": [c.as_dict() for c in catch_ups],
                  "summary": acc.summary() + (f"; outbox re-sent {outbox['resent_gap']} shown missing, "
                                              f"{outbox['resent_probe']} probes, gave up {outbox['given_up']}")
                  + "".join(f"; recovery {i}: {c.text()}" for i, c in enumerate(catch_ups, 1))}
        if max_lost is not None and acc.lost > max_lost:
            raise InterruptExecution(f"lost: {acc.lost} acknowledged QoS1 readings of line {self.line} got no "
                                     f"prediction while later readings of their machines did (allowed {max_lost}): "
                                     f"{acc.summary()}")
        if max_lost is not None and acc.undrained:
            raise InterruptExecution(f"not drained (late or stalled, not shown lost): {acc.undrained} acknowledged "
                                     f"readings of line {self.line} had no prediction when the drain ended: "
                                     f"{acc.summary()}")
        return report


_running: dict[str, Traffic] = {}


def start(rate: float = 100.0, machines: int = 5, max_inflight: int = 100, name: str = "default",
          configuration: dict | None = None) -> dict:
    if name in _running:
        _running.pop(name).stop(0, 0, None)
    tr = Traffic(context.target(configuration), rate, machines, max_inflight)
    _running[name] = tr
    return {"line": tr.line, "rate": rate, "machines": machines}


def stop(drain_bound_s: float = 120.0, drain_quiet_s: float = 15.0, bound_for: str | None = None,
         catch_up_for: str | None = None, name: str = "default", configuration: dict | None = None) -> dict:
    """Await catch-up, stop, drain and account. First, while readings keep flowing, wait until the edge is current
    again after the last recovery, at most the catch-up bound of `catch_up_for` (a key of fixtures/slo.yaml
    chaos.catch_up.max_s; default `bound_for`). The drain then waits while predictions keep coming, at most
    `drain_bound_s`, and ends early after `drain_quiet_s` without one. `bound_for` names the faulted component
    whose loss bound (fixtures/slo.yaml, chaos.max_lost_acknowledged) interrupts the experiment when exceeded;
    without it, loss is only reported."""
    tr = _running.pop(name, None)
    if tr is None:
        raise InterruptExecution(f"traffic {name!r} was never started in this run")
    key = catch_up_for or bound_for
    return tr.stop(drain_bound_s, drain_quiet_s, context.loss_bound(bound_for) if bound_for else None,
                   catch_up_bound_s=context.catch_up_bound(key) if key else None)


def stop_all(drain_bound_s: float = 30.0, drain_quiet_s: float = 5.0, configuration: dict | None = None) -> list[dict]:
    """Rollback: stop whatever traffic an interrupted run left behind, and still account it (a short drain), so a
    run interrupted by a failed recovery keeps its evidence: proven losses are counted, not thrown away."""
    reports = []
    for name in list(_running):
        report = _running.pop(name).stop(drain_bound_s, drain_quiet_s, None)
        reports.append({"name": name, **report})
    return reports
