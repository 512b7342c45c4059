"""Publish a Plant's readings over MQTT at a steady rate, with QoS 0 or 1, and account for every message."""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from indmlops import wire
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

    @property
    def rate(self) -> float:
        return self.published / self.seconds if self.seconds else 0.0

    def summary(self) -> str:
        acks = f", {self.acked} acknowledged" if self.qos else ""
        return (f"published {self.published} readings in {self.seconds:.2f} s = {self.rate:.0f} msg/s "
                f"(requested {self.requested_rate:.0f}), QoS{self.qos}{acks}; labels {self.labels}")


def publish(plant: Plant, *, endpoint: Endpoint, username: str, password: str, rate: float,
            count: int | None = None, duration: float | None = None, qos: int = 1,
            max_inflight: int = 200, ack_timeout: float = 30.0,
            progress: Callable[[str], None] | None = None) -> PublishStats:
    """Publish `count` readings (or for `duration` seconds) at `rate` msg/s; 0 means as fast as possible.

    The timestamp `ts_ns` is the wall clock at publish time, so receivers can measure latency; everything else
    in a reading is deterministic for the plant's seed. Unacknowledged QoS1 messages are capped (`max_inflight`,
    counting those paho still queues): an unthrottled QoS1 burst collapses Mosquitto (558 msg/s at 100k).
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

    def on_publish(_c, _u, _mid, _rc, _p):
        nonlocal acked
        with lock:
            acked += 1
        if qos:
            window.release()

    client.on_publish = on_publish
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
            info = client.publish(topic, dumps(reading), qos=qos)
            if info.rc != 0:
                raise ConnectionError(f"publish to {topic} on {endpoint} failed: rc={info.rc}")
            labels[reading["label"]] = labels.get(reading["label"], 0) + 1
            sent += 1
            if progress and now >= next_report:
                progress(f"{sent} published, {sent / (now - t0):.0f} msg/s")
                next_report = now + 5
        elapsed = time.perf_counter() - t0
        if qos:
            deadline = time.monotonic() + ack_timeout
            while acked < sent and time.monotonic() < deadline:
                time.sleep(0.01)
    finally:
        wire.mqtt_close(client)
    return PublishStats(sent, acked if qos else 0, elapsed, qos, rate, labels)
