"""QoS1 readings across a fault, accounted per reading: acknowledged by the broker, predicted, lost, duplicated.

`start` publishes the simulator's readings for `machines` machines of a line of its own at `rate` readings/s
(at most `max_inflight` unacknowledged). Publisher and receiver hold persistent sessions, so a broker restart
neither drops their subscriptions nor their in-flight messages. `stop` waits until every acknowledged reading has
its prediction (or `settle_s` passes), then reports; readings the broker acknowledged but never predicted are
lost, and a sequence number predicted twice is a duplicate. With `max_lost` set, loss beyond it interrupts the
experiment, so `chaos run` fails on it too.
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

from indmlops import probes
from indmlops.chaos import context
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
        self.sent: dict[int, tuple[str, int]] = {}  # mid → (machine, seq)
        self.acked: set[tuple[str, int]] = set()
        self.early: set[int] = set()  # mids acknowledged before publish() returned them
        self.predicted: dict[tuple[str, int], set[int]] = {}  # (machine, seq) → published_ns of each prediction
        self.messages = 0  # prediction messages received, redeliveries of one message included
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
        c = probes.no_nagle(Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTv311,
                                   clean_session=False))
        c.username_pw_set(creds.username, creds.password)
        c.reconnect_delay_set(0.1, 2)
        return c

    def _connect(self, c: Client) -> None:
        c.connect(self.ep.host, self.ep.port, keepalive=10)
        c.loop_start()

    def _on_publish(self, _c, _u, mid, _rc, _p) -> None:
        with self.lock:
            key = self.sent.pop(mid, None)
            if key is not None:
                self.acked.add(key)
            else:  # acknowledged before the publishing thread recorded the mid
                self.early.add(mid)
        self.window.release()

    def _on_prediction(self, _c, _u, msg) -> None:
        doc = json.loads(msg.payload)
        key = (doc["machine"], doc["seq"])
        with self.lock:
            self.messages += 1
            self.predicted.setdefault(key, set()).add(doc["published_ns"])

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
            # Not under self.lock: paho calls on_publish holding its own message lock, which publish() takes too.
            info = self.tx.publish(f"factory/{self.line}/{reading['machine']}/telemetry",
                                   json.dumps(reading, separators=(",", ":")), qos=1)
            key = (reading["machine"], reading["seq"])
            with self.lock:
                self.published += 1
                if info.mid in self.early:
                    self.early.discard(info.mid)
                    self.acked.add(key)
                else:
                    self.sent[info.mid] = key

    def stop(self, settle_s: float, max_lost: int | None) -> dict:
        self.stopping.set()
        self.thread.join(5)
        seconds = time.monotonic() - self.t0
        deadline = time.monotonic() + settle_s
        while time.monotonic() < deadline:
            with self.lock:
                if not self.sent and self.acked <= self.predicted.keys():
                    break
            time.sleep(0.1)
        with self.lock:
            acked, predicted = set(self.acked), dict(self.predicted)
            unacked, messages = len(self.sent), self.messages
        for c, cid, creds in ((self.tx, self.tx_id, self.pub_creds), (self.rx, self.rx_id, self.sub_creds)):
            probes.mqtt_close(c)
            with contextlib.suppress(probes.ProbeFailed):  # broker gone: its sessions went with it
                probes.forget_session(self.ep, creds.username, creds.password, cid)
        lost = sorted(acked - predicted.keys())
        # QoS1 is at least once. A reading the broker redelivers after a kill is predicted again (a second
        # prediction, new published_ns); a prediction the broker redelivers arrives twice (same published_ns).
        dup = sorted(k for k, stamps in predicted.items() if len(stamps) > 1)
        redelivered = messages - sum(len(stamps) for stamps in predicted.values())
        report = {"line": self.line, "seconds": round(seconds, 2), "published": self.published,
                  "acknowledged": len(acked), "unacknowledged": unacked, "predicted": len(predicted),
                  "lost_acknowledged": len(lost), "duplicates": len(dup), "redelivered": redelivered,
                  "lost_examples": [f"{m}#{s}" for m, s in lost[:10]],
                  "duplicate_examples": [f"{m}#{s}" for m, s in dup[:10]]}
        if max_lost is not None and len(lost) > max_lost:
            raise InterruptExecution(f"{len(lost)} acknowledged QoS1 readings of line {self.line} got no prediction "
                                     f"(allowed {max_lost}), e.g. {report['lost_examples']}: {report}")
        return report


_running: dict[str, Traffic] = {}


def start(rate: float = 100.0, machines: int = 5, max_inflight: int = 100, name: str = "default",
          configuration: dict | None = None) -> dict:
    if name in _running:
        _running.pop(name).stop(0, None)
    tr = Traffic(configuration, rate, machines, max_inflight)
    _running[name] = tr
    return {"line": tr.line, "rate": rate, "machines": machines}


def stop(settle_s: float = 30.0, bound_for: str | None = None, name: str = "default",
         configuration: dict | None = None) -> dict:
    """Stop and account. `bound_for` names the faulted component whose loss bound (fixtures/slo.yaml,
    chaos.max_lost_acknowledged) interrupts the experiment when exceeded; without it, loss is only reported."""
    tr = _running.pop(name, None)
    if tr is None:
        raise InterruptExecution(f"traffic {name!r} was never started in this run")
    return tr.stop(settle_s, context.loss_bound(bound_for) if bound_for else None)


def stop_all(configuration: dict | None = None) -> list[str]:
    """Rollback: stop whatever traffic an interrupted run left behind."""
    names = list(_running)
    for name in names:
        _running.pop(name).stop(0, None)
    return names
