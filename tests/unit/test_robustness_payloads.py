"""The robustness suite's pure parts: the replayable payload files, the hostile strategies and their verdicts (against
parse.py too), and how the suite tells late from lost and a busy edge from a broken one."""

from __future__ import annotations

import itertools
import json
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indmlops.checks.live import robustness as rb
from indmlops.checks.live.robustness import payloads as saved
from indmlops.checks.live.robustness import strategies as hs
from indmlops.delivery import Ledger
from indmlops.inference.parse import MAX_PAYLOAD_BYTES, BadPayload, identifier_problem, parse_reading

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


TOPIC = ("robust-unit", "m-1")


@settings(max_examples=300, deadline=None)
@given(body=hs.hostile_body(BASE, topic=TOPIC))
def test_hostile_body_verdicts_are_consistent(body):
    assert isinstance(body.data, bytes)
    if len(body.data) > MAX_PAYLOAD_BYTES:
        assert body.expect == hs.Expect(False, frozenset({"too_large"}), body.expect.why, status=413)
    for kind in hs.SERVICE_FAILURE_KINDS:
        assert not body.expect.allows_kind(kind), f"{body.note}: a service failure is never a verdict on input"


def parse_verdict(data: bytes, topic: tuple[str, str] | None) -> str:
    """What the service's parser (and, over MQTT, its topic check) makes of a body: 'predicted' or a kind."""
    try:
        reading = parse_reading(data)
    except BadPayload as exc:
        return exc.kind
    if topic is not None and (reading.line, reading.machine) != topic:
        return "topic_mismatch"
    return "predicted"


@settings(max_examples=1000, deadline=None)
@given(body=hs.hostile_body(BASE, topic=TOPIC))
def test_the_parser_meets_the_contract_verdict_over_mqtt(body):
    # Offline half of the live suite: the strategies' verdicts against parse.py itself, so a disagreement shows up
    # here in a second (and the live suite then checks the deployed edge, framing and all).
    seen = parse_verdict(body.data, TOPIC)
    assert (body.expect.may_predict if seen == "predicted" else body.expect.allows_kind(seen)), \
        f"{body.note}: parser says {seen}, contract {body.expect.describe()}"


@settings(max_examples=300, deadline=None)
@given(body=hs.http_request(line="robust-unit", counter=itertools.count(), seed=7, ts_ns=lambda: 1))
def test_the_parser_meets_the_contract_verdict_over_http(body):
    if body.framing:
        assert not body.expect.may_predict and body.expect.status in (400, 411, 413)
        return
    seen = parse_verdict(body.data, None)
    assert (body.expect.may_predict if seen == "predicted" else body.expect.allows_kind(seen)), \
        f"{body.note}: parser says {seen}, contract {body.expect.describe()}"


@settings(max_examples=100, deadline=None)
@given(body=hs.raw_bytes())
def test_raw_bytes_may_never_be_predicted(body):
    assert not body.expect.may_predict


@settings(max_examples=500, deadline=None)
@given(value=hs.hostile_text())
def test_identifier_rule_restated_agrees_with_the_service(value):
    for level in (True, False):
        assert (hs.identifier_problem(value, topic_level=level) is None) == \
            (identifier_problem(value, topic_level=level) is None), (repr(value), level)


def doc_with(field: str, value=..., drop: bool = False) -> dict:
    doc = json.loads(json.dumps(BASE))
    where, key = (doc["features"], field.split(".", 1)[1]) if field.startswith("features.") else (doc, field)
    if drop:
        del where[key]
    else:
        where[key] = value
    return doc


@pytest.mark.parametrize("field, value, topic, verdict", [
    ("line", "other", TOPIC, "topic_mismatch"),
    ("line", "other", None, "predicted"),
    ("line", "a+b", TOPIC, "bad_identifier"),  # not a mismatch: the identifier is judged first
    ("line", "Linie-ä😀" * 17, TOPIC, "bad_identifier"),  # 136 > 128 characters: long unicode is refused
    ("machine", "m-1" + "x" * 125, None, "predicted"),  # 128 characters: the limit itself is fine
    ("machine", "m\x85", None, "bad_identifier"),  # C1 control
    ("machine", "m\ufdd0", None, "bad_identifier"),  # noncharacter
    ("machine", 5, TOPIC, "wrong_type"),
    ("id", "", None, "bad_identifier"),
    ("id", "x" * 129, None, "bad_identifier"),
    ("id", "x/y+#", None, "predicted"),  # an id travels inside JSON only
    ("id", "x\u0007", None, "bad_identifier"),
    ("schema", 1.0, None, "schema_version"),  # one rule for integer fields: 1.0 is not 1
    ("id", "ä😀\u202e", None, "predicted"),
    ("schema", 2, None, "schema_version"),
    ("schema", "1", None, "schema_version"),
    ("schema", True, None, "schema_version"),
    ("seq", -1, None, "out_of_range"),
    ("seq", 2**63, None, "out_of_range"),
    ("seq", 2**63 - 1, None, "predicted"),
    ("seq", 1.0, None, "wrong_type"),
    ("ts_ns", True, None, "wrong_type"),
    ("features.temperature_c", 10**400, None, "out_of_range"),
    ("features.temperature_c", 1e308, None, "out_of_range"),  # finite, but beyond float32
    ("features.temperature_c", 3.4e38, None, "predicted"),
    ("features.temperature_c", "NaN", None, "wrong_type"),
    ("features", {}, None, "missing_field"),
    ("features", [], None, "wrong_type"),
], ids=lambda v: str(v)[:20])
def test_one_defect_has_exactly_one_verdict(field, value, topic, verdict):
    expect = hs.reading_verdict(doc_with(field, value), topic=topic)
    if verdict == "predicted":
        assert expect == hs.Expect(True), expect
    else:
        assert not expect.may_predict and expect.kinds == {verdict} and not expect.any_kind, expect
    assert parse_verdict(json.dumps(doc_with(field, value)).encode(), topic) == verdict, "parse.py disagrees"


@pytest.mark.parametrize("field", ["schema", "id", "seq", "features", "features.pressure_bar"])
def test_a_missing_field_has_exactly_one_verdict(field):
    expect = hs.reading_verdict(doc_with(field, drop=True), topic=None)
    assert expect.kinds == {"schema_version" if field == "schema" else "missing_field"} and not expect.may_predict


def test_two_defects_allow_either_kind_never_a_prediction():
    doc = doc_with("seq", -1)
    doc["line"] = ""
    expect = hs.reading_verdict(doc, topic=None)
    assert not expect.may_predict and expect.kinds == {"out_of_range", "bad_identifier"}


def test_framing_cases_have_exact_statuses():
    cases = {b.framing: b.expect for b in hs.framing_cases(BASE)}
    assert cases["chunked"].status == 411 and cases["chunked"].kinds == {"bad_request"}
    assert cases["-1"].status == 400 and cases["\u00b2"].kinds == {"bad_request"}
    [big] = [e for f, e in cases.items() if f.isascii() and f.isdigit()]
    assert big.status == 413 and big.kinds == {"too_large"}


def test_identity_levels_empty_and_long_refused_unicode_allowed():
    for line, ok in (("", False), ("Linie-ä😀", True), ("ü" * 129, False)):
        doc = json.loads(json.dumps(BASE))
        doc["line"] = line
        assert hs.reading_verdict(doc, topic=(line, "m-1")).may_predict is ok, line


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


# --- late is not lost, slow is not broken (fake clock) -----------------------------------------------------------

class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0
        self.at: dict[float, list] = {}  # simulated time → actions due then

    def __call__(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.t = round(self.t + s, 3)
        for due in sorted(k for k in self.at if k <= self.t):
            for action in self.at.pop(due):
                action()


def stream_run(predict_at: dict[int, float], n: int = 10, bound_s: float = 60, quiet_s: float = 10):
    """A stream of n acknowledged readings published at t=0; reading seq is predicted at predict_at[seq] (s), during
    the drain; the rest never. Returns the accounting the suite judges."""
    clock = FakeClock()
    ledger = Ledger(clock)
    for seq in range(n):
        ledger.acknowledged(ledger.published("robust/stream", seq, at=0.0))
    for seq, t in predict_at.items():
        clock.at.setdefault(t, []).append(lambda seq=seq: ledger.predicted("robust/stream", seq))
    return rb.settle(ledger, bound_s=bound_s, quiet_s=quiet_s, late_after_s=5, progress=None, sleep=clock.sleep,
                     monotonic=clock)


def test_stream_readings_predicted_late_pass_as_late_not_lost():
    acc = stream_run({seq: 2.0 + 3.0 * seq for seq in range(10)})  # 2, 5, 8 … 29 s: > 5 s is late
    rb.no_valid_reading_lost(acc, "factory/robust/stream/telemetry")
    rb.every_valid_reading_drained(acc, "factory/robust/stream/telemetry")
    assert (acc.on_time, acc.late, acc.lost, acc.undrained) == (2, 8, 0, 0) and acc.drain.stopped == "complete"


def test_stream_gap_before_a_predicted_reading_fails_as_lost_with_the_summary():
    acc = stream_run({seq: 1.0 for seq in range(10) if seq != 3})
    with pytest.raises(AssertionError, match=r"1 acknowledged valid readings on S lost .*robust/stream#3"):
        rb.no_valid_reading_lost(acc, "S")
    rb.every_valid_reading_drained(acc, "S")  # nothing outstanding at the end: the one gap is lost, not undrained


def test_stream_tail_never_predicted_fails_as_not_drained_not_lost():
    acc = stream_run({seq: 1.0 for seq in range(7)}, quiet_s=10)  # the edge stops after 7 readings
    rb.no_valid_reading_lost(acc, "S")
    with pytest.raises(AssertionError, match=r"not drained \(late or stalled, not shown lost\): 3 acknowledged valid "
                                             r"readings on S .*no prediction of the 3 outstanding readings for 10 s"):
        rb.every_valid_reading_drained(acc, "S")


def test_stream_still_draining_at_the_bound_fails_as_not_drained_with_the_rate():
    acc = stream_run({seq: 1.0 + 2.0 * seq for seq in range(10)}, bound_s=10, quiet_s=5)
    assert acc.lost == 0 and acc.undrained == 5
    with pytest.raises(AssertionError, match=r"not drained .*still draining at .* predictions/s when the 10 s bound"):
        rb.every_valid_reading_drained(acc, "S")


def late_wait(*, arrive_at: float | None, unhealthy_at: float | None = None, activity_every: float | None = 0.5,
              bound_s: float = 60, quiet_s: float = 10) -> rb.LateWait:
    clock = FakeClock()
    return rb.wait_late(lambda: arrive_at is not None and clock.t >= arrive_at,
                        health=lambda: ["/healthz 503"] if unhealthy_at is not None and clock.t >= unhealthy_at else [],
                        activity=lambda: int(clock.t / activity_every) if activity_every else 0,
                        bound_s=bound_s, quiet_s=quiet_s, what="the canary", sleep=clock.sleep, monotonic=clock)


def test_a_canary_arriving_late_on_a_healthy_predicting_edge_is_late():
    w = late_wait(arrive_at=25.0)
    assert w.arrived and w.stopped == "arrived" and 25 <= w.seconds < 25.2


def test_an_unhealthy_edge_is_not_waited_for():
    w = late_wait(arrive_at=25.0, unhealthy_at=3.0)
    assert not w.arrived and w.stopped == "unhealthy" and w.seconds < 4.1 and "/healthz 503" in w.detail


def test_a_healthy_edge_predicting_nothing_is_stopped_after_quiet_s():
    w = late_wait(arrive_at=None, activity_every=None, quiet_s=10)
    assert not w.arrived and w.stopped == "no progress" and 10 <= w.seconds < 10.2
    assert "stopped handling readings" in w.detail


def test_a_healthy_busy_edge_that_never_answers_fails_at_the_bound():
    w = late_wait(arrive_at=None, bound_s=30)
    assert not w.arrived and w.stopped == "bound" and "did not come within the 30 s bound" in w.detail
