"""The simulator against the live broker: every reading arrives, in order per machine, as published."""

import itertools
import json
import queue

import pytest

from indmlops import wire
from indmlops.simulator import Plant
from indmlops.simulator.publish import publish

pytestmark = pytest.mark.stack


@pytest.mark.parametrize("qos", [0, 1])
def test_published_readings_arrive_complete_and_in_order(target, qos):
    ep = target.endpoint("mosquitto")
    inf, sim = target.credentials("mosquitto", "inference"), target.credentials("mosquitto", "simulator")
    got: queue.Queue = queue.Queue()
    sub = wire.mqtt_connect(ep, inf.username, inf.password)
    try:
        sub.on_message = lambda _c, _u, m: got.put((m.topic, json.loads(m.payload)))
        wire.mqtt_subscribe(sub, "factory/+/+/telemetry", qos=1)
        plant = Plant(seed=99, lines=2, machines=2)
        stats = publish(plant, endpoint=ep, username=sim.username, password=sim.password, rate=2000,
                        count=400, qos=qos)
        expected = {r["id"] for r in itertools.islice(Plant(seed=99, lines=2, machines=2).readings(), 400)}
        received = []  # the supervised background simulator publishes too: keep only this plant's readings
        while len(received) < stats.published:
            topic, r = got.get(timeout=5)
            if r["id"] in expected:
                received.append((topic, r))
    finally:
        wire.mqtt_close(sub)
    assert stats.published == 400 and (qos == 0 or stats.acked == 400), f"expected 400 of 400: {stats.summary()}"
    expected = Plant(seed=99, lines=2, machines=2).readings()
    want = [next(expected) for _ in range(400)]
    assert sorted(r["id"] for _, r in received) == sorted(r["id"] for r in want)
    for topic, r in received:
        assert topic == f"factory/{r['line']}/{r['machine']}/telemetry"
    per_machine: dict[str, list[int]] = {}
    for _, r in received:
        per_machine.setdefault(r["machine"] + r["line"], []).append(r["seq"])
    assert all(s == sorted(s) for s in per_machine.values()), "per-machine order changed in transit"


def test_publish_fails_clearly_with_wrong_password(target):
    with pytest.raises(wire.MqttRefused, match="CONNACK refused for user 'simulator'"):
        publish(Plant(), endpoint=target.endpoint("mosquitto"), username="simulator", password="wrong",
                rate=10, count=1)
