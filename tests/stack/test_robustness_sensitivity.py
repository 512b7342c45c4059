"""The robustness checks fail, naming the payload, against a poisonable edge: an inference service whose MQTT
callback lets a reading with a wildcard in its line kill the network loop (paho's publish raises on it), as the
service did before it was hardened. Run against the session's stack with the deployed inference stopped."""

from __future__ import annotations

import json
import socket
import time
import uuid

import pytest

from indmlops import training
from indmlops.checks.live import robustness as rb
from indmlops.checks.live.robustness import strategies as hs
from indmlops.inference.model import current_version
from indmlops.inference.service import InferenceService
from indmlops.wire import Endpoint

pytestmark = [pytest.mark.stack, pytest.mark.robustness]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Poisonable:
    """Wraps the started service's MQTT callback without containment: a reading whose line holds '+' or '#'
    makes the callback publish to a wildcard topic, which raises in paho's network thread and ends it."""

    def __init__(self, svc: InferenceService) -> None:
        self.inner = svc.client.on_message
        svc.client.suppress_exceptions = False
        svc.client.on_message = self

    def __call__(self, client, userdata, msg) -> None:
        try:
            line = json.loads(msg.payload).get("line", "")
        except (ValueError, AttributeError):
            line = ""
        if isinstance(line, str) and ("+" in line or "#" in line):
            client.publish(f"factory/{line}/x/prediction", b"{}", qos=1)  # ValueError: wildcard in topic
        self.inner(client, userdata, msg)


class Through:
    """The session's target, with inference answered by the variant under test (not supervised: 0 restarts)."""

    def __init__(self, target, port: int) -> None:
        self._t, self.port, self.name = target, port, target.name

    def endpoint(self, service: str) -> Endpoint:
        return Endpoint("inference", "127.0.0.1", self.port, "http") if service == "inference" \
            else self._t.endpoint(service)

    def restarts(self, component: str) -> int:
        return 0 if component == "inference" else self._t.restarts(component)

    def __getattr__(self, name: str):
        return getattr(self._t, name)


@pytest.fixture
def poisonable_edge(target, stopped, tmp_path):
    uri = target.endpoint("mlflow").url
    current_version(uri, training.MODEL_NAME, training.ALIAS)  # the stack's `up` registered the champion
    inf = target.credentials("mosquitto", "inference")
    port = free_port()
    with stopped("inference"):  # the deployed one would predict the canaries and hide the variant's death
        svc = InferenceService(mqtt=target.endpoint("mosquitto"), username=inf.username, password=inf.password,
                               tracking_uri=uri, http_port=port, watch_interval=0.5,
                               client_id=f"indmlops-poisonable-{uuid.uuid4().hex[:8]}")
        svc.start()
        deadline = time.monotonic() + 30
        while not svc.ready()[0]:
            assert time.monotonic() < deadline, f"poisonable variant not ready: {svc.ready()[1]}"
            time.sleep(0.1)
        Poisonable(svc)
        edge = rb.Edge(Through(target, port), tmp_path / "robustness", rb.budget("quick"))
        try:
            yield edge
        finally:
            edge.close()
            svc.stop(forget_session=True)


def test_mqtt_check_fails_naming_the_payload_that_kills_the_loop(poisonable_edge):
    edge = poisonable_edge
    base = hs.template(1, line=f"{edge.tag}-1", machine="m", ts_ns=time.time_ns())
    # A harmless hostile reading first: the check passes on the variant while its loop lives.
    bad_json = hs.Body(b"{not json", "bad JSON", hs.Expect(False, frozenset({"bad_json"})))
    assert rb.mqtt_hostile_handled(edge, [(f"factory/{base['line']}/m/telemetry", bad_json)]) == ["bad_json"]
    poison = dict(base, line="a+b", id=f"{edge.tag}-poison")
    body = hs.Body(json.dumps(poison).encode(), "line = 'a+b'",
                   hs.reading_verdict(poison, topic=(base["line"], "m2")), poison["id"])
    assert body.expect.kinds == {"bad_identifier"}
    with pytest.raises(AssertionError) as err:
        rb.mqtt_hostile_handled(edge, [(f"factory/{base['line']}/m2/telemetry", body)])
    message = str(err.value)
    print(message)
    saved = edge.reports / "001.mqtt.bin"
    assert f"after payload {saved} on factory/{base['line']}/m2/telemetry" in message, message
    # The loop is dead, so /healthz says so: a failure of the edge at once, not a late answer waited for.
    assert "neither an error report nor a prediction within 5 s; /healthz 503" in message, message
    assert "0 of 2 valid readings predicted within 5 s" in message, message
    assert not edge.late, edge.late
    assert saved.read_bytes() == body.data and (edge.reports / "reproduce.sh").exists()


def test_http_check_fails_naming_the_payload_when_the_handler_drops_the_connection(poisonable_edge, monkeypatch):
    edge = poisonable_edge
    # The variant's HTTP path is the hardened one; make its request handling raise as the old one did on 10**400.
    from indmlops.inference import http as http_module

    def overflow(*_a, **_k):
        raise OverflowError("int too large to convert to float")

    monkeypatch.setattr(http_module, "parse_reading", overflow)
    body = hs.Body(b'{"features":{"temperature_c":1' + b"0" * 400 + b"}}", "features.temperature_c = 10**400",
                   hs.Expect(False, frozenset({"out_of_range"})))
    with pytest.raises(AssertionError) as err:
        rb.http_hostile_rejected(edge, body)
    message = str(err.value)
    print(message)
    assert f"after payload {edge.reports / '001.http.bin'} on /predict" in message, message
    assert "connection dropped" in message or "HTTP 5" in message, message


def test_a_late_error_report_on_a_healthy_edge_fails_as_a_timing_claim(poisonable_edge):
    """The variant reports a bad reading 1.5 × outcome_s late without blocking its loop (healthy, predicting):
    the check waits it out as late, not lost, and the bound then fails it with the delay (a timing claim)."""
    import threading

    from indmlops.hostcheck import explained

    edge = poisonable_edge
    delay = 1.5 * edge.budget.outcome_s
    inner = InferenceService._dead_letter

    def later(self, msg, exc):
        threading.Timer(delay, inner, (self, msg, exc)).start()

    InferenceService._dead_letter = later  # the variant only: the deployed inference is stopped meanwhile
    try:
        base = hs.template(1, line=f"{edge.tag}-late", machine="m", ts_ns=time.time_ns())
        bad_json = hs.Body(b"{not json", "bad JSON", hs.Expect(False, frozenset({"bad_json"})))
        assert rb.mqtt_hostile_handled(edge, [(f"factory/{base['line']}/m/telemetry", bad_json)]) == ["bad_json"]
    finally:
        InferenceService._dead_letter = inner
    assert len(edge.late_s) == 1 and edge.late_s[0][1] > edge.budget.outcome_s, edge.late
    with pytest.raises(AssertionError, match=r"1 answers came after their bound \(worst: error for") as err:
        rb.answers_on_time(edge)
    [breach] = err.value.breaches
    assert breach.unit == "s" and breach.bound == edge.budget.outcome_s and breach.measured >= delay
    assert not explained(err.value, [])[0]  # a quiet host explains nothing
