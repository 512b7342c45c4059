"""The edge is idempotent: a reading that arrives again (re-sent by its publisher's outbox) gets its first prediction
again, byte for byte, and leaves the machine's feature history alone; the answers it remembers are bounded."""

from __future__ import annotations

import itertools
import json
from types import SimpleNamespace

import numpy as np
import pytest

from indmlops.features import FIRST_DELTAS, FeatureState
from indmlops.inference import model as models
from indmlops.inference.service import InferenceService
from indmlops.simulator import Plant
from indmlops.simulator.model import SIGNALS
from indmlops.wire import Endpoint


class FakeClient:
    """What _handle needs of paho: publish() with a mid; ack() recorded."""

    def __init__(self) -> None:
        self.mids = itertools.count(1)
        self.published: list[tuple[str, str]] = []
        self.acked: list[int] = []

    def publish(self, topic: str, payload: str, qos: int = 0):
        assert qos == 1, f"{topic} published with QoS {qos}: the contract is QoS 1"
        self.published.append((topic, payload))
        return SimpleNamespace(mid=next(self.mids))

    def ack(self, mid: int, qos: int) -> None:
        self.acked.append(mid)


@pytest.fixture
def svc():
    s = InferenceService(mqtt=Endpoint("mosquitto", "127.0.0.1", 1, "mqtt"), username="inference", password="x",
                         tracking_uri="http://127.0.0.1:1", http_port=0)
    seen: list[list[float]] = []

    def predict(x):
        seen.append([float(v) for v in np.asarray(x)[0]])
        return "normal", 0.01

    s.model = models.LoadedModel("edge-anomaly", "3", None, "sklearn", predict)
    s.seen = seen  # type: ignore[attr-defined]
    s.client = FakeClient()
    yield s
    s.http.server_close()


def deliver(svc: InferenceService, reading: dict, mid: int) -> None:
    msg = SimpleNamespace(topic=f"factory/{reading['line']}/{reading['machine']}/telemetry",
                          payload=json.dumps(reading).encode(), mid=mid)
    svc._on_message(svc.client, None, msg)
    # the broker holds our answer: acknowledge the reading (as paho's on_publish would)
    for our_mid in list(svc._ack_after):
        svc._on_publish(svc.client, None, our_mid, None, None)


def test_a_reading_sent_again_gets_its_first_prediction_again_and_history_is_untouched(svc):
    r = list(itertools.islice(Plant(seed=5, machines=1).readings(), 4))
    for i, reading in enumerate(r[:3]):
        deliver(svc, reading, 100 + i)
    first = svc.client.published[0][1]
    deliver(svc, r[0], 200)  # the outbox re-sends reading 0: the broker lost its prediction
    assert svc.client.published[-1][1] == first  # the same prediction, same published_ns
    assert svc.metrics.registry.get_sample_value("indmlops_inference_answered_again_total") == 1
    assert len(svc.seen) == 3  # the model was not asked again
    deliver(svc, r[3], 201)
    # reading 3's change is against reading 2, not against the re-sent reading 0
    prev = [float(r[2]["features"][s]) for s in SIGNALS]
    now = [float(r[3]["features"][s]) for s in SIGNALS]
    assert svc.seen[-1][4:] == pytest.approx([a - b for a, b in zip(now, prev)], abs=1e-4)
    assert sorted(svc.client.acked) == [100, 101, 102, 200, 201]  # every copy acknowledged once answered


def test_a_late_reading_nobody_remembers_is_predicted_without_history(svc, monkeypatch):
    monkeypatch.setattr(InferenceService, "ANSWERED_MAX", 2)
    r = list(itertools.islice(Plant(seed=6, machines=1).readings(), 5))
    for i, reading in enumerate(r[:4]):
        deliver(svc, reading, 10 + i)
    assert len(svc._answered) == 2  # bounded
    deliver(svc, r[0], 20)  # forgotten: predicted again, without history (older than the machine's newest)
    assert len(svc.seen) == 5 and svc.seen[-1][4:] == pytest.approx(list(FIRST_DELTAS))
    deliver(svc, r[4], 21)
    prev = [float(r[3]["features"][s]) for s in SIGNALS]
    now = [float(r[4]["features"][s]) for s in SIGNALS]
    assert svc.seen[-1][4:] == pytest.approx([a - b for a, b in zip(now, prev)], abs=1e-4)


def signals(*values: float) -> dict[str, float]:
    return dict(zip(SIGNALS, values))


def test_feature_state_ignores_an_older_reading_but_orders_nothing_without_an_order():
    fs = FeatureState()
    fs.vector("l/m", signals(1, 1, 1, 1), order=5)
    assert fs.vector("l/m", signals(9, 9, 9, 9), order=3)[4:] == list(FIRST_DELTAS)
    assert fs.vector("l/m", signals(2, 2, 2, 2), order=6)[4:] == [1.0, 1.0, 1.0, 1.0]  # against 5, not the late 3
    free = FeatureState()  # training and HTTP give no seq: every reading is the newest
    free.vector("l/m", signals(1, 1, 1, 1))
    assert free.vector("l/m", signals(3, 1, 1, 1))[4:] == [2.0, 0.0, 0.0, 0.0]


def test_a_restarted_publisher_reusing_sequence_numbers_gets_fresh_predictions_with_history(svc):
    """A simulator restarted with a new seed starts its seq again: new readings, not re-sends of old ones."""
    first = list(itertools.islice(Plant(seed=7, machines=1).readings(), 3))
    for i, reading in enumerate(first):
        reading["ts_ns"] = 1_000 + i
        deliver(svc, reading, 300 + i)
    again = list(itertools.islice(Plant(seed=8, machines=1).readings(), 2))  # seq 1, 2 again; new ids, later ts
    for i, reading in enumerate(again):
        reading["ts_ns"] = 2_000 + i
        deliver(svc, reading, 400 + i)
    assert len(svc.seen) == 5  # each predicted: none answered from the old run's seq
    assert svc.metrics.registry.get_sample_value("indmlops_inference_answered_again_total") == 0
    prev = [float(again[0]["features"][s]) for s in SIGNALS]
    now = [float(again[1]["features"][s]) for s in SIGNALS]
    assert svc.seen[-1][4:] == pytest.approx([a - b for a, b in zip(now, prev)], abs=1e-4)  # history kept going
