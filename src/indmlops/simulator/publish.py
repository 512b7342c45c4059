"""Publish a Plant's readings over MQTT at a steady rate, with QoS 0 or 1, and account for every message.

With QoS 1 the simulator is a conforming publisher of the stack: its outbox (indmlops.outbox) keeps each reading
until the edge's prediction of it arrives, and re-sends what a broker kill lost (the broker saves on a timer).
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from indmlops import wire
from indmlops.outbox import Outbox
from indmlops.simulator.model import Plant
from indmlops.wire import Endpoint


@dataclass
class PublishStats:
    published: int
    acked: int
    seconds: float
    qos: int
    requested_rate: float
    labels: dict[str, int]
    outbox: dict | None = None  # indmlops.outbox.OutboxStats, when the readings went through one

    @property
    def rate(self) -> float:
        return self.published / self.seconds if self.seconds else 0.0

    def summary(self) -> str:
        acks = f", {self.acked} acknowledged" if self.qos else ""
        box = ""
        if self.outbox is not None:
            o = self.outbox
            box = (f"; outbox: {o['confirmed']} confirmed by a prediction, {o['pending']} waiting, re-sent "
                   f"{o['resent_gap']} shown missing and {o['resent_probe']} probes, gave up {o['given_up']}, "
                   f"dropped {o['overflowed']} when full")
        return (f"published {self.published} readings in {self.seconds:.2f} s = {self.rate:.0f} msg/s "
                f"(requested {self.requested_rate:.0f}), QoS{self.qos}{acks}; labels {self.labels}{box}")


def publish(plant: Plant, *, endpoint: Endpoint, username: str, password: str, rate: float,
            count: int | None = None, duration: float | None = None, qos: int = 1,
            max_inflight: int = 200, ack_timeout: float = 30.0, outbox: bool = False,
            outbox_capacity: int = 100_000, confirm_wait: float = 10.0,
            progress: Callable[[str], None] | None = None) -> PublishStats:
    """Publish `count` readings (or for `duration` seconds) at `rate` msg/s; 0 means as fast as possible.

    The timestamp `ts_ns` is the wall clock at publish time, so receivers can measure latency; everything else
    in a reading is deterministic for the plant's seed. Unacknowledged QoS1 messages are capped (`max_inflight`,
    counting those paho still queues): an unthrottled QoS1 burst collapses Mosquitto (558 msg/s at 100k).

    `outbox` (QoS 1): subscribe to the predictions of the plant's lines and keep every reading until its prediction
    arrives, re-sending what went missing; at most `outbox_capacity` wait (at 20 readings/s, 100,000 is 83 min of
    an absent edge), the oldest dropped first and counted. At the end, wait up to `confirm_wait` s for the last
    predictions.
    """
    if qos not in (0, 1):
        raise ValueError(f"qos must be 0 or 1, got {qos}")
    if rate < 0:
        raise ValueError(f"rate must be >= 0 msg/s, got {rate}")
    if count is None and duration is None:
        raise ValueError("give count or duration, or the simulator never stops")
    client = wire.mqtt_connect(endpoint, username, password)
    acked = 0
    lock = threading.Lock()
    window = threading.Semaphore(max_inflight)
    box = Outbox(capacity=outbox_capacity) if outbox and qos else None
    if box is not None:
        def on_prediction(_c, _u, msg) -> None:
            try:
                doc = json.loads(msg.payload)
                key = (doc["line"], doc["machine"], doc["seq"])
            except (ValueError, KeyError, TypeError):
                return  # not a prediction of ours: nothing to confirm
            with lock:
                box.confirmed(key)

        client.on_message = on_prediction
        filters = [(f"factory/{line}/+/prediction", 1) for line in sorted({m.line for m in plant.machines})]
        for topic, _qos in filters:
            wire.mqtt_subscribe(client, topic, qos=1, timeout=10)
        # A clean session: after a reconnect (a broker restart) the subscriptions are made again.
        client.on_connect = lambda c, _u, _f, rc, _p: None if rc.is_failure else c.subscribe(filters)

    resent: list = []  # MQTTMessageInfo of each re-sent copy not acknowledged yet
    resent_acked = 0  # re-sent copies acknowledged: their PUBACKs are not more readings acknowledged

    def settle_resent() -> int:
        """Move acknowledged re-sends into the count (a simulator runs for years: the list must not grow with
        them); the number of re-sent copies acknowledged so far. Call under `lock`."""
        nonlocal resent_acked
        waiting = [i for i in resent if not i.is_published()]  # one pass: a PUBACK between two would be lost
        resent_acked += len(resent) - len(waiting)
        resent[:] = waiting
        return resent_acked

    def on_publish(_c, _u, _mid, _rc, _p):
        nonlocal acked
        with lock:
            acked += 1
        if qos:
            window.release()

    client.on_publish = on_publish

    def resend() -> None:
        """Send again what the outbox shows missing; a copy that cannot go now is shown missing again later."""
        if box is None:
            return
        with lock:
            due = box.due()
        for _key, payload, _reason in due:
            if not window.acquire(timeout=0.5):
                return
            topic, body = cast("tuple[str, str]", payload)
            # Not under `lock`: paho calls on_publish holding its own lock, which publish() takes too.
            info = client.publish(topic, body, qos=1)
            with lock:
                resent.append(info)
                settle_resent()

    labels: dict[str, int] = {}
    dumps = json.JSONEncoder(separators=(",", ":")).encode
    interval = 1.0 / rate if rate else 0.0
    stream = plant.readings() if count is None else itertools.islice(plant.readings(), count)
    sent = 0
    t0 = time.perf_counter()
    stop_at = t0 + duration if duration is not None else float("inf")
    next_report = t0 + 5
    try:
        for reading in stream:
            now = time.perf_counter()
            if now >= stop_at:
                break
            if interval:
                due = t0 + sent * interval
                if due - now > 0.001:  # sleep only when more than 1 ms ahead: fewer wake-ups, same average rate
                    time.sleep(due - now)
            if qos and not window.acquire(timeout=ack_timeout):
                raise TimeoutError(f"broker {endpoint} acknowledged nothing for {ack_timeout:.0f} s "
                                   f"({sent} published, {acked} acknowledged)")
            reading["ts_ns"] = time.time_ns()
            topic = f"factory/{reading['line']}/{reading['machine']}/telemetry"
            body = dumps(reading)
            info = client.publish(topic, body, qos=qos)
            if info.rc != 0:
                raise ConnectionError(f"publish to {topic} on {endpoint} failed: rc={info.rc}")
            if box is not None:
                with lock:
                    box.sent((reading["line"], reading["machine"], reading["seq"]), (topic, body))
                resend()
            labels[reading["label"]] = labels.get(reading["label"], 0) + 1
            sent += 1
            if progress and now >= next_report:
                progress(f"{sent} published, {sent / (now - t0):.0f} msg/s")
                next_report = now + 5
        elapsed = time.perf_counter() - t0
        if qos:
            deadline = time.monotonic() + ack_timeout
            while time.monotonic() < deadline:
                with lock:
                    if acked - settle_resent() >= sent:
                        break
                time.sleep(0.01)
        if box is not None:
            deadline = time.monotonic() + confirm_wait
            while len(box) and time.monotonic() < deadline:
                resend()
                time.sleep(0.05)
    finally:
        wire.mqtt_close(client)
    with lock:
        readings_acked = acked - settle_resent()
    return PublishStats(sent, readings_acked if qos else 0, elapsed, qos, rate, labels,
                        box.stats.as_dict() if box is not None else None)
