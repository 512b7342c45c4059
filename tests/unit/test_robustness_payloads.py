"""The robustness suite's pure parts: the replayable payload files, the hostile strategies and their verdicts."""

from __future__ import annotations

import json
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indmlops.checks import robustness as rb
from indmlops.checks import robustness_payloads as saved
from indmlops.checks import robustness_strategies as hs
from indmlops.inference.parse import MAX_PAYLOAD_BYTES

BASE = hs.template(7, line="robust-unit", machine="m-1", ts_ns=1_700_000_000_000_000_000)


@settings(max_examples=50, deadline=None)
@given(channel=st.sampled_from(saved.CHANNELS), where=st.text(max_size=300), data=st.binary(max_size=2000),
       note=st.text(max_size=50))
def test_saved_payload_reads_back_byte_for_byte(tmp_path_factory, channel, where, data, note):
    d = tmp_path_factory.mktemp("payloads")
    path = saved.save(d, saved.Payload(channel, where, data, note), failure="x")
    [(read_path, back)] = saved.load(d)
    assert read_path == path and path.name == f"001.{channel}.bin"
    assert (back.channel, back.where, back.data, back.note) == (channel, where, data, note)
    assert "python" in (d / "reproduce.sh").read_text() and (d / "reproduce.sh").stat().st_mode & 0o100


def test_saved_payloads_numbered_in_order_and_sidecar_required(tmp_path):
    for i in range(3):
        saved.save(tmp_path, saved.Payload("mqtt", f"factory/a/{i}/telemetry", b"{"))
    assert [p.name for p, _ in saved.load(tmp_path)] == ["001.mqtt.bin", "002.mqtt.bin", "003.mqtt.bin"]
    (tmp_path / "002.json").unlink()
    with pytest.raises(ValueError, match="002.mqtt.bin: its sidecar 002.json is missing"):
        saved.load(tmp_path)


def test_payload_refuses_an_unknown_channel():
    with pytest.raises(ValueError, match="channel 'amqp'"):
        saved.Payload("amqp", "/", b"")


@settings(max_examples=300, deadline=None)
@given(seg=hs.topic_segment())
def test_topic_segments_are_broker_valid(seg):
    seg.encode("utf-8")  # no lone surrogate
    assert not set(seg) & set("+#/")
    assert not any(unicodedata.category(c) in ("Cc", "Cs") for c in seg)


@settings(max_examples=300, deadline=None)
@given(body=hs.hostile_body(BASE, channel="mqtt"))
def test_hostile_body_verdicts_are_consistent(body):
    assert isinstance(body.data, bytes)
    if len(body.data) > MAX_PAYLOAD_BYTES:
        assert body.expect == hs.Expect(False, frozenset({"too_large"}), body.expect.why)
    for kind in hs.SERVICE_FAILURE_KINDS:
        assert not body.expect.allows_kind(kind), f"{body.note}: a service failure is never a verdict on input"


@settings(max_examples=100, deadline=None)
@given(body=hs.raw_bytes())
def test_raw_bytes_may_never_be_predicted(body):
    assert not body.expect.may_predict


@pytest.mark.parametrize("field, value, may_predict, kind", [
    ("line", "a+b", False, "topic_mismatch"),
    ("features.temperature_c", 10**400, False, "out_of_range"),
    ("ts_ns", 10**400, False, "out_of_range"),
    ("seq", -1, True, None),
    ("id", "x/y", False, "bad_identifier"),
    ("schema", 2, False, "schema_version"),
    ("machine", "m\x01", False, "bad_identifier"),
], ids=lambda v: str(v)[:20])
def test_verdict_of_single_defects(field, value, may_predict, kind):
    seg = BASE["line"] if field == "line" else BASE["machine"] if field == "machine" else None
    expect = hs._verdict(field, value, channel="mqtt", topic_segment_value=seg)
    assert expect.may_predict is may_predict
    assert kind is None or expect.allows_kind(kind)


def test_identity_verdict_refuses_an_empty_level_and_allows_unicode():
    assert not hs.identity_verdict("", "m", channel="mqtt").may_predict
    assert hs.identity_verdict("Linie-ä😀", "m", channel="mqtt").may_predict


def test_template_is_a_valid_reading_of_the_given_topic():
    doc = json.loads(json.dumps(BASE))
    assert (doc["line"], doc["machine"], doc["schema"]) == ("robust-unit", "m-1", 1)


@pytest.mark.parametrize("profile", ["quick", "full"])
def test_budget_profiles_load(profile):
    b = rb.budget(profile)
    assert b.http_examples > 0 and b.mqtt_examples > 0 and b.canary_s > 0


def test_budget_names_file_and_profile_when_a_key_is_missing():
    with pytest.raises(ValueError, match=r"robustness.yaml: profiles.quick: KeyError"):
        rb.budget("quick", {"profiles": {"quick": {"derandomize": True}}})
