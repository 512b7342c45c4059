"""The reading identity contract of the OT plane: what makes a reading the same reading, for the edge's idempotence
(indmlops.inference: a re-send is answered with its first prediction) and every consumer's accounting.

A reading is identified by its line, machine, sequence number, id and timestamp. A publisher may send one reading
more than once (its outbox re-sends what went missing), but every copy is byte for byte the same. It breaks the
contract when one id stands for two readings, when one sequence number of a machine carries two different readings
within one run of the publisher (same timestamp source, no restart between), or when a machine's new readings go
back in time.
"""

from __future__ import annotations

import json
import queue
import time

from indmlops import wire
from indmlops.targets.base import Target


def identity_breaches(readings: list[tuple[str, bytes]]) -> list[str]:
    """Breaches of the contract in (topic, payload) messages in arrival order; unparsable payloads are the edge's
    robustness concern, not this contract's, and are skipped."""
    by_id: dict[str, tuple[str, str, int]] = {}
    by_seq: dict[tuple[str, str, int], bytes] = {}
    newest: dict[tuple[str, str], int] = {}
    out: list[str] = []
    for topic, payload in readings:
        try:
            doc = json.loads(payload)
            line, machine, seq = doc["line"], doc["machine"], int(doc["seq"])
            rid, ts = str(doc["id"]), int(doc["ts_ns"])
        except (ValueError, KeyError, TypeError):
            continue
        key = (line, machine, seq)
        if key in by_seq:
            if by_seq[key] != payload:
                out.append(f"{topic}: seq {seq} of {line}/{machine} carries two different readings (a re-send must be "
                           f"the same reading byte for byte): {by_seq[key][:120]!r} vs {payload[:120]!r}")
            continue  # a re-send: the same reading again
        by_seq[key] = payload
        if rid in by_id and by_id[rid] != key:
            out.append(f"{topic}: id {rid} names two readings: {by_id[rid]} and {key}")
        by_id.setdefault(rid, key)
        stream = (line, machine)
        if ts < newest.get(stream, ts):
            out.append(f"{topic}: a new reading of {line}/{machine} (seq {seq}) is older than one before it "
                       f"(ts_ns {ts} < {newest[stream]}): the edge would judge it without history")
        newest[stream] = max(ts, newest.get(stream, ts))
    return out


def publishers_keep_reading_identity(target: Target, *, seconds: float = 4.0, min_readings: int = 20) -> str:
    """Watch every telemetry topic for `seconds` (the stack's own simulator publishes all the while) and judge the
    readings against the contract; fails when too few readings came to judge anything."""
    mon = target.credentials("mosquitto", "monitor")
    got: queue.Queue[tuple[str, bytes]] = queue.Queue()
    client = wire.mqtt_connect(target.endpoint("mosquitto"), mon.username, mon.password,
                               on_message=lambda _c, _u, m: got.put((m.topic, bytes(m.payload))))
    try:
        wire.mqtt_subscribe(client, "factory/+/+/telemetry", qos=1)
        time.sleep(seconds)
    finally:
        wire.mqtt_close(client)
    seen = [got.get_nowait() for _ in range(got.qsize())]
    assert len(seen) >= min_readings, (f"only {len(seen)} readings on factory/+/+/telemetry in {seconds:g} s at "
                                       f"{target.endpoint('mosquitto')} (need {min_readings} to judge the identity "
                                       "contract): is the simulator publishing?")
    breaches = identity_breaches(seen)
    assert not breaches, (f"{len(breaches)} breaches of the reading identity contract in {len(seen)} readings:\n  "
                          + "\n  ".join(breaches[:10]))
    return f"{len(seen)} readings on {len({t for t, _p in seen})} topics keep the identity contract"
