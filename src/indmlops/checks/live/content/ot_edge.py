"""Known content in the OT plane: the broker's retained and queued messages, Node-RED's persisted context."""

from __future__ import annotations

import json
import os
import queue
import time

import requests

from indmlops import broker, wire
from indmlops.checks.live.content.base import Content, _lost
from indmlops.errors import IndMLOpsError
from indmlops.targets.base import Target

# --- MQTT --------------------------------------------------------------------------------------------------

def _topic(tag: str, kind: str) -> str:
    # The probe role may read and write indmlops/probe/# only (config/mosquitto/acl.conf).
    return f"indmlops/probe/durability/{tag}/{kind}"


def _collect(target: Target, topic_filter: str, want: int, *, client_id: str | None = None,
             clean_session: bool = True, subscribe: bool = True, timeout: float = 10.0,
             retained_only: bool = False) -> dict[str, bytes]:
    """Messages arriving on `topic_filter` until `want` distinct topics are seen or `timeout` passes."""
    creds = target.credentials("mosquitto", "probe")
    got: queue.Queue = queue.Queue()
    client = wire.mqtt_connect(target.endpoint("mosquitto"), creds.username, creds.password,
                                 client_id=client_id, clean_session=clean_session,
                                 on_message=lambda _c, _u, m: got.put((m.topic, m.payload, m.retain)))
    out: dict[str, bytes] = {}
    try:
        if subscribe:
            wire.mqtt_subscribe(client, topic_filter, qos=1)
        deadline = time.monotonic() + timeout
        while len(out) < want and time.monotonic() < deadline:
            try:
                topic, payload, retain = got.get(timeout=0.2)
            except queue.Empty:
                continue
            if retain or not retained_only:
                out[topic] = payload
    finally:
        wire.mqtt_close(client)
    return out


def _deployed_policy(target: Target) -> str:
    """What the running broker's own configuration says it saves: read for the loss message, never for the verdict
    (the verdict is what the kill took)."""
    try:
        policy = target.broker_autosave()
    except IndMLOpsError as exc:  # persistence off, or no save timer: the broker keeps nothing across a kill
        return f"the running broker's configuration: {exc}"
    if policy is None:
        return "the running broker's save policy cannot be read on this target"
    return f"the running broker's configuration: {broker.parse(policy).describe()}"


def mqtt_retained(target: Target, tag: str, *, count: int = 100) -> Content:
    """`count` retained QoS1 messages, one per topic, each acknowledged by the broker."""
    creds = target.credentials("mosquitto", "probe")
    base = _topic(tag, "retained")
    sent = {f"{base}/{i}": os.urandom(16).hex().encode() for i in range(count)}
    pub = wire.mqtt_connect(target.endpoint("mosquitto"), creds.username, creds.password)
    try:
        for info in [pub.publish(t, p, qos=1, retain=True) for t, p in sent.items()]:
            info.wait_for_publish(10)
    finally:
        wire.mqtt_close(pub)
    where = f"broker {target.endpoint('mosquitto')} topics {base}/#"

    def verify() -> int:
        got = _collect(target, f"{base}/#", count, retained_only=True)
        _lost("retained MQTT messages", where, sorted(set(sent) - set(got)),
              [t for t in sent if t in got and got[t] != sent[t]], count,
              f"each was acknowledged (PUBACK) before the kill; {_deployed_policy(target)}")
        return count

    def cleanup() -> None:
        c = wire.mqtt_connect(target.endpoint("mosquitto"), creds.username, creds.password)
        try:
            for info in [c.publish(t, b"", qos=1, retain=True) for t in sent]:  # empty retained = delete
                info.wait_for_publish(10)
        finally:
            wire.mqtt_close(c)

    return Content("retained MQTT messages", count, sum(len(p) for p in sent.values()), where, verify, cleanup)


def mqtt_queued(target: Target, tag: str, *, count: int = 200) -> Content:
    """`count` acknowledged QoS1 messages queued for an offline persistent session (client id of its own).

    A second offline session subscribed alike is resumed before the kill: what it did not get, the broker never
    queued (a queue limit drops a message when it arrives, after its PUBACK). The loss message tells those apart
    from what the kill took."""
    creds = target.credentials("mosquitto", "probe")
    ep = target.endpoint("mosquitto")
    base, client_id = _topic(tag, "queued"), f"indmlops-durability-{tag}"
    control_id = f"{client_id}-control"
    for cid in (client_id, control_id):
        sub = wire.mqtt_connect(ep, creds.username, creds.password, client_id=cid, clean_session=False)
        try:
            wire.mqtt_subscribe(sub, f"{base}/#", qos=1)
        finally:
            wire.mqtt_close(sub)
    sent = {f"{base}/{i}": os.urandom(16).hex().encode() for i in range(count)}
    pub = wire.mqtt_connect(ep, creds.username, creds.password)
    try:
        for info in [pub.publish(t, p, qos=1) for t, p in sent.items()]:
            info.wait_for_publish(10)
    finally:
        wire.mqtt_close(pub)
    try:
        control = _collect(target, f"{base}/#", count, client_id=control_id, clean_session=False, subscribe=False)
    finally:
        wire.forget_session(ep, creds.username, creds.password, control_id)
    never_queued = set(sent) - set(control)
    where = f"broker {ep} session {client_id} ({base}/#)"

    def verify() -> int:
        got = _collect(target, f"{base}/#", count, client_id=client_id, clean_session=False, subscribe=False)
        lost = sorted(set(sent) - set(got))
        at_enqueue = (f"{len(never_queued)} of them the broker never queued, before any kill: a second offline "
                      f"session subscribed alike got {len(control)} of {count} when resumed before the kill (a queue "
                      "limit, max_queued_messages or max_queued_bytes, drops a message on arrival after its PUBACK); "
                      f"{len(set(lost) - never_queued)} lost by the kill; ") if never_queued else ""
        _lost("queued QoS1 messages", where, lost, [t for t in sent if t in got and got[t] != sent[t]], count,
              f"{at_enqueue}each was acknowledged (PUBACK) before the kill; {_deployed_policy(target)}")
        return count

    def cleanup() -> None:
        # Resume the session with clean_session: the broker forgets it and stops queueing for it.
        wire.forget_session(ep, creds.username, creds.password, client_id)

    return Content("queued QoS1 messages", count, sum(len(p) for p in sent.values()), where, verify, cleanup)


# --- Node-RED ----------------------------------------------------------------------------------------------

def nodered_context(target: Target, tag: str, *, machines: int = 5) -> Content:
    """Predictions published as the inference role land in the flow's persisted context (the HMI's state)."""
    creds = target.credentials("mosquitto", "inference")
    ep = target.endpoint("mosquitto")
    # A fixed set of machine keys, overwritten by every run: the flow context does not grow with each test.
    sent = {f"durability/m-{i}": {"id": f"{tag}-{i}", "label": "normal", "fault": False, "p_fault": i / 10,
                                  "model_version": tag} for i in range(machines)}
    url = f"{target.endpoint('nodered').url}/hmi/api/state"

    def state() -> dict:
        return requests.get(url, timeout=5).json().get("machines", {})

    # Node-RED subscribes with a clean session and reconnects 5 s after losing the broker (after a mosquitto
    # kill, say): predictions published meanwhile never reach it. Publish again every 2 s until the flow has
    # recorded them all (the same ids: idempotent), within 30 s.
    pub = wire.mqtt_connect(ep, creds.username, creds.password)
    deadline, seen, sent_at = time.monotonic() + 30, {}, 0.0
    try:
        while True:
            if time.monotonic() - sent_at > 2:
                for info in [pub.publish(f"factory/{k}/prediction", json.dumps(v), qos=1) for k, v in sent.items()]:
                    info.wait_for_publish(10)
                sent_at = time.monotonic()
            seen = state()
            if all(seen.get(k, {}).get("id") == v["id"] for k, v in sent.items()):
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"Node-RED {url}: the flow did not record {sorted(sent)} within 30 s "
                                     f"(last state had {sorted(seen)[:10]})")
            time.sleep(0.2)
    finally:
        wire.mqtt_close(pub)
    where = f"Node-RED flow context 'machines' via {url}"

    def verify() -> int:
        got = state()
        lost = [k for k in sent if k not in got]
        changed = [f"{k}: id {got[k].get('id')!r} != {v['id']!r}" for k, v in sent.items()
                   if k in got and any(got[k].get(f) != v[f] for f in v)]
        _lost("Node-RED context entries", where, lost, changed, machines,
              "recorded before the kill; localfilesystem context flushes every flushInterval seconds")
        return machines

    size = sum(len(json.dumps(v)) for v in sent.values())
    return Content("Node-RED context entries", machines, size, where, verify)
