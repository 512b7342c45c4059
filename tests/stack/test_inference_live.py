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

from indmlops import training, wire
from indmlops.inference.model import current_version
from indmlops.inference.parse import PAYLOAD_KINDS
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
        self.client = wire.mqtt_connect(target.endpoint("mosquitto"), mon.username, mon.password)
        self.client.on_message = lambda _c, _u, m: self.messages.put((m.topic, json.loads(m.payload)))
        for t in topics:
            wire.mqtt_subscribe(self.client, t, qos=1)

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
        wire.mqtt_close(self.client)


def planned_ids(plant: Plant, count: int) -> list[str]:
    twin = Plant(seed=plant.seed, lines=1, machines=len(plant.machines))  # same seed: same ids, computed ahead
    return [r["id"] for r in itertools.islice(twin.readings(), count)]


def publish_readings(target, plant: Plant, count: int, rate: float = 1000, progress=None) -> list[str]:
    sim = target.credentials("mosquitto", "simulator")
    ids = planned_ids(plant, count)
    stats = publish(plant, endpoint=target.endpoint("mosquitto"), username=sim.username, password=sim.password,
                    rate=rate, count=count, qos=1, progress=progress)
    assert stats.acked == count, f"the broker acknowledged {stats.acked} of {count} readings: {stats.summary()}"
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
    assert resp.json()["error"] in PAYLOAD_KINDS


def test_bad_mqtt_payloads_are_counted_reported_and_do_not_stall(target, service):
    sim = target.credentials("mosquitto", "simulator")
    before = service.metrics.errors.labels("bad_json")._value.get()
    watcher = Watcher(target)
    client = wire.mqtt_connect(target.endpoint("mosquitto"), sim.username, sim.password)
    try:
        for i in range(200):
            client.publish("factory/fuzz/m-1/telemetry", b"{not json " + str(i).encode(), qos=1).wait_for_publish(5)
        client.publish("factory/fuzz/m-1/telemetry", b"x" * 100_000, qos=1).wait_for_publish(5)
        errors = watcher.collect(201, timeout=10, suffix="errors", service=service.client_id)
        ids = publish_readings(target, Plant(seed=77, lines=1, machines=1), 5)
        preds = watcher.collect(5, timeout=10, service=service.client_id, ids=ids)
    finally:
        wire.mqtt_close(client)
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
    twin = Plant(seed=plant.seed, lines=1, machines=4)  # same seed, read chunk by chunk as publish() does: same ids
    ids: list[str] = []
    outcome: dict[str, object] = {"progress": "nothing published yet"}
    swapped = threading.Event()
    CHUNK = 250  # readings per publish call at 500/s: traffic flows in 0.5 s steps until the swap is seen

    def send() -> None:
        # Traffic before, during and after the swap, however long loading the new version takes on this host: the
        # swap is judged under traffic, not raced against a fixed count (a fast broker drained 3,000 readings
        # before a slow load finished).
        try:
            after = 0
            while after < 4 and len(ids) < 120 * 500:
                ids.extend(r["id"] for r in itertools.islice(twin.readings(), CHUNK))
                publish_readings(target, plant, CHUNK, rate=500,
                                 progress=lambda text: outcome.update(progress=text))
                after += swapped.is_set()
            outcome["done"] = True
        except BaseException as exc:  # reported by the test below, with how far the publisher got
            outcome["error"] = exc

    sender = threading.Thread(target=send)
    try:
        sender.start()
        time.sleep(1.5)
        mlflow.set_tracking_uri(uri)
        new = mlflow.register_model(f"runs:/{old.run_id}/model", training.MODEL_NAME)
        client.set_model_version_tag(training.MODEL_NAME, new.version, "onnx_uri", old.tags.get("onnx_uri", ""))
        client.set_registered_model_alias(training.MODEL_NAME, training.ALIAS, new.version)
        deadline = time.monotonic() + 60
        while (service.model is None or service.model.version != str(new.version)) and time.monotonic() < deadline:
            time.sleep(0.05)
        swapped.set()
        sender.join(180)
        why = outcome.get("error") or "still running after 180 s"
        assert outcome.get("done"), (f"the publisher of {len(ids)} readings did not finish ({why}); last progress: "
                                     f"{outcome['progress']}: the broker acknowledged too slowly for the swap test")
        assert service.model is not None and service.model.version == str(new.version), (
            f"the service still serves version {service.model.version if service.model else None} 60 s after the "
            f"alias moved to {new.version}: {service.last_model_error}")
        preds = watcher.collect(len(ids), timeout=60, service=service.client_id, quiet=5, ids=ids)
    finally:
        client.set_registered_model_alias(training.MODEL_NAME, training.ALIAS, old.version)
        watcher.close()
    seen = [p["id"] for p in preds]
    missing = set(ids) - set(seen)
    assert sorted(seen) == sorted(ids), (f"{len(missing)} of {len(ids)} acknowledged readings got no prediction "
                                         f"within 60 s (e.g. {sorted(missing)[:3]}), "
                                         f"{len(seen) - len(set(seen))} predicted twice")
    versions = [p["model_version"] for p in preds]
    assert {old.version, str(new.version)} <= set(versions), f"no swap observed: versions {set(versions)}"
    switch = versions.index(str(new.version))
    assert set(versions[switch:]) == {str(new.version)}, "predictions went back to the old version after the swap"


def hostile(template: dict, **changes) -> bytes:
    doc = json.loads(json.dumps(template))
    for path, value in changes.items():
        *parents, leaf = path.split("__")
        node = doc
        for p in parents:
            node = node[p]
        node[leaf] = value
    return json.dumps(doc).encode()


# Each payload is valid JSON with every field of the right JSON type; each once stopped MQTT inference (an exception in
# paho's loop) or could have (a topic the broker refuses drops the connection, and the reading is redelivered).
POISON = {
    "out_of_range/ts_ns-400-digits": ({"ts_ns": 10**400}, "out_of_range"),
    "out_of_range/feature-400-digits": ({"features__temperature_c": 10**400}, "out_of_range"),
    "out_of_range/feature-1e308": ({"features__pressure_bar": 1e308}, "out_of_range"),
    "out_of_range/seq-negative": ({"seq": -1}, "out_of_range"),
    "bad_identifier/line-wildcard": ({"line": "l+#"}, "bad_identifier"),
    "bad_identifier/machine-slash": ({"machine": "m/1"}, "bad_identifier"),
    "bad_identifier/machine-nul": ({"machine": "m\u0000"}, "bad_identifier"),
    "bad_identifier/line-surrogate": ({"line": "\ud800"}, "bad_identifier"),
    "topic_mismatch/other-machine": ({"machine": "not-the-topics"}, "topic_mismatch"),
}


@pytest.mark.parametrize("case", list(POISON), ids=[f"poison/{c}" for c in POISON])
def test_poison_reading_is_dead_lettered_and_the_edge_keeps_predicting(target, service, case):
    changes, kind = POISON[case]
    plant = Plant(seed=int(time.time() * 1000) % 2**31, lines=1, machines=1)
    template = next(Plant(seed=plant.seed, lines=1, machines=1).readings())
    topic = f"factory/{template['line']}/{template['machine']}/telemetry"
    sim = target.credentials("mosquitto", "simulator")
    before = service.metrics.errors.labels(kind)._value.get()
    watcher = Watcher(target)
    client = wire.mqtt_connect(target.endpoint("mosquitto"), sim.username, sim.password)
    try:
        client.publish(topic, hostile(template, **changes), qos=1).wait_for_publish(5)
        errors = watcher.collect(1, timeout=10, suffix="errors", service=service.client_id)
        ids = publish_readings(target, plant, 5)
        preds = watcher.collect(5, timeout=10, service=service.client_id, ids=ids)
    finally:
        wire.mqtt_close(client)
        watcher.close()
    assert service.liveness()[0] and service.ready()[0], f"after {case}: {service.liveness()} {service.ready()}"
    assert [e["kind"] for e in errors] == [kind], f"after {case}: error reports {errors}"
    assert errors[0]["topic"] == topic
    assert service.metrics.errors.labels(kind)._value.get() - before == 1
    assert len(preds) == 5, f"after {case}: {len(preds)} of 5 valid readings predicted: the edge stalled"


def test_model_failure_is_contained_to_its_reading(target, service):
    """A model that raises on one input: that reading is dead-lettered as predict_failed, the next are predicted.
    The failure is keyed to our reading's id: this instance also handles the background simulator's readings."""
    plant = Plant(seed=int(time.time()) % 2**31 + 5, lines=1, machines=1)
    ids = planned_ids(plant, 3)
    real_predict = service.predict

    def flaky(reading, *args, **kwargs):
        if reading.id == ids[0]:
            raise ValueError("Input X contains infinity")
        return real_predict(reading, *args, **kwargs)

    service.predict = flaky
    watcher = Watcher(target)
    try:
        publish_readings(target, plant, 3)
        errors = watcher.collect(1, timeout=10, suffix="errors", service=service.client_id)
        preds = watcher.collect(2, timeout=10, service=service.client_id, ids=ids)
    finally:
        watcher.close()
        service.predict = real_predict
    assert [e["kind"] for e in errors] == ["predict_failed"] and "infinity" in errors[0]["detail"], errors
    assert sorted(p["id"] for p in preds) == sorted(ids[1:]), f"predicted {[p['id'] for p in preds]}, ids {ids}"


def test_stuck_handler_fails_liveness_and_readiness(target, service):
    from indmlops.inference.model import LoadedModel

    real = service.model
    release = threading.Event()
    service.stall_after = 1.0

    def hang(x):
        release.wait(10)
        return real.predict_fn(x)

    service.model = LoadedModel(real.name, real.version, real.run_id, real.flavor, hang)
    base = f"http://127.0.0.1:{service.http.server_port}"
    try:
        publish_readings(target, Plant(seed=int(time.time()) % 2**31 + 9, lines=1, machines=1), 1)
        deadline = time.monotonic() + 10
        while requests.get(f"{base}/healthz", timeout=5).status_code == 200:
            assert time.monotonic() < deadline, "a reading stuck for 10 s, /healthz still 200"
            time.sleep(0.2)
        health = requests.get(f"{base}/healthz", timeout=5)
        ready = requests.get(f"{base}/readyz", timeout=5)
    finally:
        release.set()
        service.model = real
    assert health.status_code == 503 and "stuck handling one reading" in health.json()["detail"], health.text
    assert ready.status_code == 503, ready.text


def test_dead_mqtt_loop_fails_liveness(target, service):
    """Whatever ends paho's loop (here: an exception from a callback we do not contain) shows on /healthz."""
    def boom(*_a):
        raise RuntimeError("injected")

    service.client.on_subscribe = boom
    service.client.subscribe("factory/none/none/telemetry", qos=1)
    deadline = time.monotonic() + 10
    while service.liveness()[0]:
        assert time.monotonic() < deadline, "the MQTT loop ended 10 s ago and liveness still says alive"
        time.sleep(0.1)
    resp = requests.get(f"http://127.0.0.1:{service.http.server_port}/healthz", timeout=5)
    assert resp.status_code == 503 and "RuntimeError: injected" in resp.json()["detail"], resp.text


HOSTILE_HTTP = {
    "chunked": ({"Transfer-Encoding": "chunked"}, b"5\r\nhello\r\n0\r\n\r\n", 411, "bad_request"),
    "length-negative": ({"Content-Length": "-5"}, b"", 400, "bad_request"),
    "length-not-a-number": ({"Content-Length": "ten"}, b"", 400, "bad_request"),
    "length-too-large": ({"Content-Length": str(10**9)}, b"", 413, "too_large"),
}


@pytest.mark.parametrize("case", list(HOSTILE_HTTP), ids=[f"http/{c}" for c in HOSTILE_HTTP])
def test_hostile_http_framing_gets_a_4xx_and_the_service_stays_up(service, case):
    headers, body, status, kind = HOSTILE_HTTP[case]
    port = service.http.server_port
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(f"POST /predict HTTP/1.1\r\nHost: x\r\n{head}\r\n".encode() + body)
        chunks = []
        while chunk := s.recv(65536):  # the refusal closes the connection: a body we cannot delimit poisons it
            chunks.append(chunk)
        reply = b"".join(chunks).decode(errors="replace")
    assert reply.startswith(f"HTTP/1.1 {status}") and f'"error":"{kind}"' in reply, reply[:300]
    ok = requests.post(f"http://127.0.0.1:{port}/predict", data=json.dumps(next(Plant(seed=1).readings())), timeout=5)
    assert ok.status_code == 200, ok.text


def test_a_restart_without_a_cached_model_leaves_the_queue_until_the_model_is_there(target, model_registered,
                                                                                    tmp_path):
    """A new pod has an empty cache (a fresh emptyDir): its persistent session's queue comes on CONNECT, before any
    SUBSCRIBE, so an edge that connects before its model is loaded gets the backlog with nothing to answer it. It
    must not dead-letter (acknowledge) those readings: they wait in the broker until the registry answered."""
    inf = target.credentials("mosquitto", "inference")
    cid = f"indmlops-test-{uuid.uuid4().hex[:8]}"
    gate = threading.Event()

    class LateRegistry(InferenceService):  # the registry answers only when the test says so
        def load_model(self) -> bool:
            gate.wait()
            return super().load_model()

    def make(cls):
        return cls(mqtt=target.endpoint("mosquitto"), username=inf.username, password=inf.password,
                   tracking_uri=target.endpoint("mlflow").url, http_port=free_port(), watch_interval=0.5,
                   client_id=cid, model_cache=tmp_path / "cache")

    first = make(InferenceService)
    first.start()
    deadline = time.monotonic() + 30
    while not first.ready()[0]:
        assert time.monotonic() < deadline, f"inference service not ready: {first.ready()[1]}"
        time.sleep(0.1)
    first.stop()  # the session (and its subscription) stays: readings queue for it
    (tmp_path / "cache").rename(tmp_path / "cache-gone")  # what a new pod's emptyDir holds: nothing
    watcher = Watcher(target)
    second = make(LateRegistry)
    try:
        ids = publish_readings(target, Plant(seed=int(time.time()), lines=1, machines=3), 300)
        second.start()
        time.sleep(2.0)  # with the old order the whole queue arrived here, ~10 ms after CONNECT
        failed = second.metrics.errors.labels("predict_failed")._value.get()
        assert failed == 0, f"{failed:.0f} queued readings dead-lettered as predict_failed before a model was loaded"
        assert not second.ready()[0] and "no model loaded" in second.ready()[1]
        gate.set()
        preds = watcher.collect(len(ids), timeout=30, service=cid, ids=ids)
        missing = set(ids) - {p["id"] for p in preds}
        assert not missing, f"{len(missing)} of {len(ids)} queued readings got no prediction after the model came"
    finally:
        gate.set()
        watcher.close()
        second.stop(forget_session=True)
