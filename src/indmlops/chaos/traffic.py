"""QoS1 readings across a fault, accounted per reading: acknowledged by the broker, predicted, lost, duplicated.

`start` publishes the simulator's readings for `machines` machines of a line of its own at `rate` readings/s
(at most `max_inflight` unacknowledged). Publisher and receiver hold persistent sessions, so a broker restart
neither drops their subscriptions nor their in-flight messages. `stop` drains (waits while predictions keep
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

from chaoslib.exceptions import InterruptExecution
from paho.mqtt.client import Client, MQTTv311
from paho.mqtt.enums import CallbackAPIVersion

from indmlops import wire
from indmlops.chaos import context
from indmlops.delivery import Key, Ledger
from indmlops.simulator import Plant


class Traffic:
    def __init__(self, configuration: dict | None, rate: float, machines: int, max_inflight: int) -> None:
        t = context.target(configuration)
        self.ep = t.endpoint("mosquitto")
        self.pub_creds = t.credentials("mosquitto", "simulator")
        self.sub_creds = t.credentials("mosquitto", "monitor")
        self.line = f"chaos-{uuid.uuid4().hex[:8]}"
        self.rate, self.machines = rate, machines
        self.lock = threading.Lock()
        self.ledger = Ledger()
        self.sent: dict[int, Key] = {}  # mid → the reading's ledger key, until acknowledged
        self.early: set[int] = set()  # mids acknowledged before publish() returned them
        self.stamps: dict[Key, set[int]] = {}  # published_ns of each prediction: a redelivered message repeats one
        self.published = 0
        self.window = threading.Semaphore(max_inflight)
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
        self.t0 = time.monotonic()
        self.thread.start()

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
        with self.lock:
            stamps = self.stamps.setdefault(key, set())
            distinct = doc["published_ns"] not in stamps
            stamps.add(doc["published_ns"])
        self.ledger.predicted(*key, distinct=distinct)

    def _publish_loop(self) -> None:
        interval = 1.0 / self.rate
        for reading in Plant(seed=int.from_bytes(os.urandom(4), "big"), lines=1, machines=self.machines).readings():
            if self.stopping.is_set():
                return
            due = self.t0 + self.published * interval
            if (delay := due - time.monotonic()) > 0:
                time.sleep(delay)
            if not self.window.acquire(timeout=0.5):
                continue  # the broker is away: keep the schedule, do not pile up (that reading is not sent)
            reading["line"] = self.line
            reading["ts_ns"] = time.time_ns()
            key = self.ledger.published(reading["machine"], reading["seq"])
            # Not under self.lock: paho calls on_publish holding its own message lock, which publish() takes too.
            info = self.tx.publish(f"factory/{self.line}/{reading['machine']}/telemetry",
                                   json.dumps(reading, separators=(",", ":")), qos=1)
            with self.lock:
                self.published += 1
                early = info.mid in self.early
                if early:
                    self.early.discard(info.mid)
                else:
                    self.sent[info.mid] = key
            if early:
                self.ledger.acknowledged(key)

    def stop(self, drain_bound_s: float, drain_quiet_s: float, max_lost: int | None,
             late_after_s: float = 10.0) -> dict:
        self.stopping.set()
        self.thread.join(5)
        seconds = time.monotonic() - self.t0
        drain = self.ledger.drain(bound_s=drain_bound_s, quiet_s=drain_quiet_s,
                                  progress=lambda line: print(f"traffic {self.line}: {line}", flush=True))
        acc = self.ledger.account(late_after_s, drain)
        for c, cid, creds in ((self.tx, self.tx_id, self.pub_creds), (self.rx, self.rx_id, self.sub_creds)):
            wire.mqtt_close(c)
            with contextlib.suppress(wire.NoAnswer):  # broker gone: its sessions went with it
                wire.forget_session(self.ep, creds.username, creds.password, cid)
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
                  "summary": acc.summary()}
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
    tr = Traffic(configuration, rate, machines, max_inflight)
    _running[name] = tr
    return {"line": tr.line, "rate": rate, "machines": machines}


def stop(drain_bound_s: float = 120.0, drain_quiet_s: float = 15.0, bound_for: str | None = None,
         name: str = "default", configuration: dict | None = None) -> dict:
    """Stop, drain and account. The drain waits while predictions keep coming, at most `drain_bound_s`, and ends
    early after `drain_quiet_s` without one. `bound_for` names the faulted component whose loss bound
    (fixtures/slo.yaml, chaos.max_lost_acknowledged) interrupts the experiment when exceeded; without it, loss is
    only reported."""
    tr = _running.pop(name, None)
    if tr is None:
        raise InterruptExecution(f"traffic {name!r} was never started in this run")
    return tr.stop(drain_bound_s, drain_quiet_s, context.loss_bound(bound_for) if bound_for else None)


def stop_all(configuration: dict | None = None) -> list[str]:
    """Rollback: stop whatever traffic an interrupted run left behind."""
    names = list(_running)
    for name in names:
        _running.pop(name).stop(0, 0, None)
    return names
