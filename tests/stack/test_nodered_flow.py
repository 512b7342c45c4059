"""The Node-RED PLC/HMI flow on the live stack: predictions reach the HMI, the PLC heartbeat beats."""

import json
import queue
import time
import uuid

import pytest
import requests

from indmlops import wire

pytestmark = pytest.mark.stack

# A machine of its own: on a shared stack live inference keeps overwriting the latest prediction of line-1/m-01.
LINE, MACHINE = "line-test", "m-test"


def hmi_state(target) -> dict:
    r = requests.get(f"{target.endpoint('nodered').url}/hmi/api/state", timeout=5)
    r.raise_for_status()
    return r.json()


def publish_prediction(target, **fields) -> dict:
    inf = target.credentials("mosquitto", "inference")
    prediction = {"id": f"test-{uuid.uuid4().hex}", "line": LINE, "machine": MACHINE, "seq": 1,
                  "label": "normal", "fault": False, "p_fault": 0.01, "model_version": "test",
                  "ts_ns": time.time_ns(), **fields}
    client = wire.mqtt_connect(target.endpoint("mosquitto"), inf.username, inf.password)
    try:
        info = client.publish(f"factory/{LINE}/{MACHINE}/prediction", json.dumps(prediction), qos=1)
        info.wait_for_publish(timeout=5)
        assert info.is_published(), "the broker did not acknowledge the prediction (QoS 1)"
    finally:
        wire.mqtt_close(client)
    return prediction


def test_fault_prediction_reaches_hmi_state_and_alarms(target):
    sent = publish_prediction(target, seq=7, label="overheating", fault=True, p_fault=0.97)
    deadline, state = time.monotonic() + 5, {}
    while time.monotonic() < deadline:
        state = hmi_state(target)
        latest = state["machines"].get(f"{LINE}/{MACHINE}", {})
        if latest.get("id") == sent["id"] and any(a.get("id") == sent["id"] for a in state["alarms"]):
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"prediction {sent['id']} not in /hmi/api/state (machines and alarms) within 5 s: "
                    f"{json.dumps(state)[:800]}")
    assert {k: latest[k] for k in ("label", "fault", "p_fault", "seq")} == {
        "label": "overheating", "fault": True, "p_fault": 0.97, "seq": 7}
    assert isinstance(state["heartbeat_seq"], int)
    page = requests.get(f"{target.endpoint('nodered').url}/hmi", timeout=5)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'http-equiv="refresh" content="2"' in page.text
    assert sent["id"] in page.text
    # Leave the shared HMI as found: the test machine goes back to normal (its alarm stays in the log).
    publish_prediction(target, seq=8)


def test_plc_heartbeat_beats_every_second(target):
    mon = target.credentials("mosquitto", "monitor")
    got: queue.Queue = queue.Queue()
    client = wire.mqtt_connect(target.endpoint("mosquitto"), mon.username, mon.password)
    try:
        client.on_message = lambda _c, _u, m: got.put((m.topic, json.loads(m.payload), time.time_ns()))
        wire.mqtt_subscribe(client, "factory/+/plc/heartbeat", qos=0)
        try:
            topic, first, arrived = got.get(timeout=3)
            _, second, _ = got.get(timeout=2)
        except queue.Empty:
            pytest.fail("no PLC heartbeat on factory/+/plc/heartbeat within 3 s (and the next within 2 s)")
    finally:
        wire.mqtt_close(client)
    assert topic == "factory/line-1/plc/heartbeat"
    assert first["source"] == "node-red" and isinstance(first["seq"], int) and isinstance(first["ts_ns"], int)
    assert abs(arrived - first["ts_ns"]) < 2e9, "heartbeat timestamp is not the wall clock in ns"
    assert second["seq"] == first["seq"] + 1
    assert 0.5e9 < second["ts_ns"] - first["ts_ns"] < 1.5e9


def test_hmi_keeps_the_500_most_recent_machines_when_names_keep_coming(target):
    """Machine names come from the input: invented ones must not grow the HMI's state (flushed to disk every second)
    without bound; the most recently updated machines stay."""
    inf = target.credentials("mosquitto", "inference")
    run = uuid.uuid4().hex[:6]
    client = wire.mqtt_connect(target.endpoint("mosquitto"), inf.username, inf.password)
    try:
        for i in range(520):
            doc = {"id": f"{run}-{i}", "line": f"flood-{run}", "machine": f"m{i}", "seq": 1, "label": "normal",
                   "fault": False, "p_fault": 0.0, "model_version": "test", "ts_ns": time.time_ns()}
            info = client.publish(f"factory/flood-{run}/m{i}/prediction", json.dumps(doc), qos=1)
        info.wait_for_publish(timeout=30)
    finally:
        wire.mqtt_close(client)
    deadline = time.monotonic() + 10
    while True:
        machines = hmi_state(target)["machines"]
        if f"flood-{run}/m519" in machines or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    flood = [k for k in machines if k.startswith(f"flood-{run}/")]
    assert f"flood-{run}/m519" in machines, f"the last prediction never reached the HMI ({len(flood)} of ours there)"
    assert len(machines) <= 500, f"the HMI holds {len(machines)} machines, expected at most 500"
    assert f"flood-{run}/m0" not in machines, "the least recently updated machine was kept, a newer one dropped"
