"""The reading identity contract: re-sends pass, a reused id, a reused sequence number and readings going back in
time are breaches, each named."""

from __future__ import annotations

import itertools
import json

from indmlops.checks.live.identity import identity_breaches
from indmlops.simulator import Plant


def messages(readings: list[dict]) -> list[tuple[str, bytes]]:
    return [(f"factory/{r['line']}/{r['machine']}/telemetry", json.dumps(r).encode()) for r in readings]


def plant(n: int, seed: int = 1) -> list[dict]:
    return list(itertools.islice(Plant(seed=seed, machines=2).readings(), n))


def test_a_publisher_keeping_the_contract_and_its_resends_pass():
    rs = messages(plant(20))
    assert identity_breaches(rs + rs[3:6]) == []  # re-sent copies, identical


def test_a_sequence_number_carrying_two_readings_is_a_breach():
    rs = plant(6)
    twin = dict(rs[2], features={k: v + 1 for k, v in rs[2]["features"].items()})
    [b] = identity_breaches(messages(rs + [twin]))
    assert f"seq {rs[2]['seq']} of line-1/{rs[2]['machine']} carries two different readings" in b


def test_an_id_naming_two_readings_is_a_breach():
    rs = plant(6)
    rs[5]["id"] = rs[1]["id"]
    [b] = identity_breaches(messages(rs))
    assert f"id {rs[1]['id']} names two readings" in b


def test_new_readings_going_back_in_time_are_a_breach():
    rs = plant(6)
    rs[4]["ts_ns"] = rs[0]["ts_ns"] - 1  # same machine as rs[0] and rs[2] (two machines, round-robin)
    [b] = identity_breaches(messages(rs))
    assert "is older than one before it" in b


def test_unparsable_payloads_are_not_this_contracts_concern():
    assert identity_breaches([("factory/a/b/telemetry", b"\xff not json")]) == []
