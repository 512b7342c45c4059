"""The edge inference service against the live stack: every reading one prediction, bad input counted, hot swap."""

from __future__ import annotations

import itertools
import json
import queue
import socket
import threading
import time
import uuid

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from indmlops import probes, training
from indmlops.inference.model import current_version
from indmlops.inference.service import InferenceService
from indmlops.simulator import Plant
from indmlops.simulator.publish import publish

pytestmark = pytest.mark.stack


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def model_registered(target):
    """`edge-anomaly@champion` exists; trained on a small sample when the registry has none."""
    from mlflow.exceptions import MlflowException

    uri = target.endpoint("mlflow").url
    try:
        return current_version(uri, training.MODEL_NAME, training.ALIAS)
    except MlflowException:
        return training.train_and_register(uri, n_train=20_000, n_test=5_000, trees=10).version


@pytest.fixture
def service(target, model_registered):
    inf = target.credentials("mosquitto", "inference")
    svc = InferenceService(mqtt=target.endpoint("mosquitto"), username=inf.username, password=inf.password,
                           tracking_uri=target.endpoint("mlflow").url, http_port=free_port(),
                           watch_interval=0.5, client_id=f"indmlops-test-{uuid.uuid4().hex[:8]}")
    svc.start()
    deadline = time.monotonic() + 30
    while not svc.ready()[0]:
        assert time.monotonic() < deadline, f"inference service not ready: {svc.ready()[1]}"
        time.sleep(0.1)
    yield svc
    svc.stop(forget_session=True)


class Watcher:
    """Collects predictions and error reports seen by the monitor role."""

    def __init__(self, target, topics=("factory/+/+/prediction", "factory/+/+/errors")) -> None:
        mon = target.credentials("mosquitto", "monitor")
        self.messages: queue.Queue = queue.Queue()
        self.client = probes.mqtt_connect(target.endpoint("mosquitto"), mon.username, mon.password)
        self.client.on_message = lambda _c, _u, m: self.messages.put((m.topic, json.loads(m.payload)))
        for t in topics:
            probes.mqtt_subscribe(self.client, t, qos=1)

    def collect(self, n: int, timeout: float = 10.0, suffix: str = "prediction", service: str | None = None,
                quiet: float = 3.0, ids: list[str] | None = None) -> list[dict]:
        """Up to `n` messages on topics ending in `suffix` (from `service` only and for `ids` only, if given: the
        supervised simulator's background readings get predictions too); stops early once nothing has
        arrived for `quiet` seconds after the first message."""
        wanted = set(ids) if ids is not None else None
        out, deadline, last = [], time.monotonic() + timeout, None
        while len(out) < n and time.monotonic() < deadline:
            try:
                topic, doc = self.messages.get(timeout=0.1)
            except queue.Empty:
                if last is not None and time.monotonic() - last > quiet:
                    break
                continue
            if topic.endswith(suffix) and (service is None or doc.get("service") == service) and \
                    (wanted is None or doc.get("id") in wanted):
                out.append(doc)
                last = time.monotonic()
        return out

    def close(self) -> None:
        probes.mqtt_close(self.client)


def publish_readings(target, plant: Plant, count: int, rate: float = 1000) -> list[str]:
    sim = target.credentials("mosquitto", "simulator")
    twin = Plant(seed=plant.seed, lines=1, machines=len(plant.machines))  # same seed: same ids, computed ahead
    ids = [r["id"] for r in itertools.islice(twin.readings(), count)]
    stats = publish(plant, endpoint=target.endpoint("mosquitto"), username=sim.username, password=sim.password,
                    rate=rate, count=count, qos=1)
    assert stats.acked == count
    return ids


def test_every_reading_gets_exactly_one_prediction(target, service):
    watcher = Watcher(target)
    try:
        plant = Plant(seed=int(time.time()), lines=1, machines=4)
        ids = publish_readings(target, plant, 500)
        preds = watcher.collect(len(ids), timeout=20, service=service.client_id, ids=ids)
    finally:
        watcher.close()
    seen = [p["id"] for p in preds]
    assert sorted(seen) == sorted(ids), f"{len(set(ids) - set(seen))} readings without prediction, " \
                                        f"{len(seen) - len(set(seen))} duplicated"
    assert all(p["model_version"] == service.model.version for p in preds)


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                    HealthCheck.too_slow])
@given(payload=st.binary(max_size=200) | st.dictionaries(st.text(max_size=8), st.integers() | st.text(max_size=8),
                                                        max_size=5).map(lambda d: json.dumps(d).encode()))
def test_fuzzed_payloads_never_stall_the_service_over_http(service, payload):
    resp = requests.post(f"http://127.0.0.1:{service.http.server_port}/predict", data=payload, timeout=5)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"] in ("bad_json", "not_object", "schema_version", "missing_field", "wrong_type",
                                    "non_finite", "too_large")


def test_bad_mqtt_payloads_are_counted_reported_and_do_not_stall(target, service):
    sim = target.credentials("mosquitto", "simulator")
    before = service.metrics.errors.labels("bad_json")._value.get()
    watcher = Watcher(target)
    client = probes.mqtt_connect(target.endpoint("mosquitto"), sim.username, sim.password)
    try:
        for i in range(200):
            client.publish("factory/fuzz/m-1/telemetry", b"{not json " + str(i).encode(), qos=1).wait_for_publish(5)
        client.publish("factory/fuzz/m-1/telemetry", b"x" * 100_000, qos=1).wait_for_publish(5)
        errors = watcher.collect(201, timeout=10, suffix="errors", service=service.client_id)
        ids = publish_readings(target, Plant(seed=77, lines=1, machines=1), 5)
        preds = watcher.collect(5, timeout=10, service=service.client_id, ids=ids)
    finally:
        probes.mqtt_close(client)
        watcher.close()
    assert len(errors) == 201 and {e["kind"] for e in errors} == {"bad_json", "too_large"}
    assert service.metrics.errors.labels("bad_json")._value.get() - before == 200
    assert len(preds) == 5, "the service stalled after malformed input"


def test_new_champion_swapped_in_under_traffic_without_loss_or_duplicates(target, service):
    import mlflow
    from mlflow.tracking import MlflowClient

    uri = target.endpoint("mlflow").url
    client = MlflowClient(uri)
    old = client.get_model_version_by_alias(training.MODEL_NAME, training.ALIAS)
    watcher = Watcher(target)
    plant = Plant(seed=int(time.time()) + 1, lines=1, machines=4)
    ids: list[str] = []
    sender = threading.Thread(target=lambda: ids.extend(publish_readings(target, plant, 3000, rate=750)))
    try:
        sender.start()
        time.sleep(1.5)
        mlflow.set_tracking_uri(uri)
        new = mlflow.register_model(f"runs:/{old.run_id}/model", training.MODEL_NAME)
        client.set_model_version_tag(training.MODEL_NAME, new.version, "onnx_uri", old.tags.get("onnx_uri", ""))
        client.set_registered_model_alias(training.MODEL_NAME, training.ALIAS, new.version)
        sender.join(30)
        preds = watcher.collect(len(ids), timeout=60, service=service.client_id, quiet=5, ids=ids)
    finally:
        client.set_registered_model_alias(training.MODEL_NAME, training.ALIAS, old.version)
        watcher.close()
    seen = [p["id"] for p in preds]
    assert len(ids) == 3000
    assert sorted(seen) == sorted(ids), f"lost {len(set(ids) - set(seen))}, duplicated {len(seen) - len(set(seen))}"
    versions = [p["model_version"] for p in preds]
    assert {old.version, str(new.version)} <= set(versions), f"no swap observed: versions {set(versions)}"
    switch = versions.index(str(new.version))
    assert set(versions[switch:]) == {str(new.version)}, "predictions went back to the old version after the swap"
