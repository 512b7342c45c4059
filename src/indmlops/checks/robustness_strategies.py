"""Hypothesis strategies for hostile edge input: mutated readings, raw bytes, broker-valid hostile topic segments,
and the contract's verdict on each (which error kinds a rejection may carry, whether a prediction is allowed)."""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass
from collections.abc import Callable, Iterator
from typing import Any

from hypothesis import strategies as st

from indmlops.inference.parse import MAX_PAYLOAD_BYTES
from indmlops.simulator import Plant
from indmlops.simulator.model import SIGNALS

INT64 = (-(2**63), 2**63 - 1)
FIELDS = ("schema", "id", "line", "machine", "seq", "ts_ns", "features", *(f"features.{s}" for s in SIGNALS))
# Service failures, not verdicts on the input: a hostile reading must never be answered with one of these.
SERVICE_FAILURE_KINDS = frozenset({"predict_failed", "publish_failed", "internal"})


@dataclass(frozen=True)
class Expect:
    """What the contract allows for one payload: a prediction (`may_predict`), or a rejection of one of `kinds`
    (empty: any validation kind)."""

    may_predict: bool
    kinds: frozenset[str] = frozenset()
    why: str = ""

    def allows_kind(self, kind: str) -> bool:
        return kind not in SERVICE_FAILURE_KINDS and (not self.kinds or kind in self.kinds)

    def describe(self) -> str:
        verdicts = (["a prediction"] if self.may_predict else []) + \
            [f"an error of kind {'|'.join(sorted(self.kinds)) if self.kinds else 'any validation kind'}"]
        return " or ".join(verdicts) + (f" ({self.why})" if self.why else "")


@dataclass(frozen=True)
class Body:
    """One hostile body: its bytes, what was done to the template, and the contract's verdict."""

    data: bytes
    note: str
    expect: Expect
    reading_id: str | None = None  # the id a prediction would carry, when the body has a usable one


def template(seed: int, *, line: str, machine: str, ts_ns: int) -> dict[str, Any]:
    """A valid reading from the simulator, relabelled to our own line and machine, stamped now."""
    reading = next(Plant(seed=seed, lines=1, machines=1).readings())
    reading.update(line=line, machine=machine, ts_ns=ts_ns)
    return reading


# --- values -----------------------------------------------------------------------------------------------------

def hostile_text(max_size: int = 300) -> st.SearchStrategy[str]:
    """Strings a parser may choke on: any code point (lone surrogates too), NUL and control characters, MQTT
    wildcards and separators, and very long runs."""
    special = st.sampled_from(["", "+", "#", "/", "\x00", "\ud800", "\udfff", "a/b", "+/#", "$SYS", "\u202e",
                               "\n\r\t", "😀" * 40, "x" * 5000, "\\u0000", "NaN", "-0"])
    return st.one_of(special, st.text(max_size=max_size), st.text(st.characters(codec="utf-8"), max_size=max_size),
                     st.builds(lambda a, b: a + b, st.text(max_size=20), special))


def hostile_ints() -> st.SearchStrategy[int]:
    return st.one_of(st.sampled_from([0, -1, INT64[0], INT64[1], INT64[1] + 1, INT64[0] - 1, 2**64, 10**20,
                                      10**308, 10**309, 10**400, -(10**400)]),
                     st.integers(), st.integers(min_value=-(10**500), max_value=10**500))


def hostile_floats() -> st.SearchStrategy[float]:
    return st.one_of(st.sampled_from([1e308, -1e308, -0.0, 5e-324, 2.2250738585072014e-308, 1.5, -1.5, 9.2e18]),
                     st.floats(allow_nan=False, allow_infinity=False))


def hostile_values(depth: int = 2) -> st.SearchStrategy[Any]:
    scalars = st.one_of(hostile_text(), hostile_ints(), hostile_floats(), st.booleans(), st.none())
    return st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) |
                        st.dictionaries(hostile_text(20), inner, max_size=4), max_leaves=8) if depth else scalars


def topic_segment() -> st.SearchStrategy[str]:
    """A topic level the broker accepts (valid UTF-8 without control characters, non-characters or wildcards) but
    a careless consumer may not: unicode, very long, empty."""
    chars = st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Cn"), exclude_characters="+#/")
    return st.one_of(st.just(""), st.text(chars, min_size=1, max_size=40), st.text(chars, min_size=1000,
                                                                                     max_size=3000))


# --- the contract's verdict on one value in one field -------------------------------------------------------------

def _nonchar(c: str) -> bool:
    o = ord(c)
    return 0xFDD0 <= o <= 0xFDEF or (o & 0xFFFE) == 0xFFFE


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _verdict(field: str, value: Any, *, channel: str, topic_segment_value: str | None) -> Expect:
    """What the edge may do with a template whose `field` holds `value` (the only defect). `topic_segment_value`:
    the arriving topic's level for line/machine over MQTT (the body must name the same)."""
    wrong = Expect(False, frozenset({"wrong_type"}), f"{field} has the wrong type")
    if field == "schema":
        ok = value == 1 and not isinstance(value, bool)  # 1.0 == 1: a lenient parser may take it
        return Expect(ok, frozenset({"schema_version", "wrong_type"}), "" if ok else "schema must be 1")
    if field in ("id", "line", "machine"):
        if not isinstance(value, str):
            return wrong
        kinds = {"bad_identifier", "wrong_type"}
        if channel == "mqtt" and field != "id":
            kinds.add("topic_mismatch")
            if value != topic_segment_value:
                return Expect(False, frozenset(kinds), f"body {field} differs from the topic's")
        # Unsafe: empty, a wildcard or separator, NUL; in line/machine also what the broker refuses in a topic (control
        # characters, surrogates, non-characters): publishing there disconnects the service. Long is a policy: both ok.
        unsafe = value == "" or any(c in value for c in "+#/\x00") or \
            (field != "id" and any(unicodedata.category(c) in ("Cc", "Cs") or _nonchar(c) for c in value))
        return Expect(not unsafe, frozenset(kinds), f"{field} {_short(value)} is not topic-safe" if unsafe else "")
    if field in ("seq", "ts_ns"):
        if isinstance(value, float) or not _is_int(value):
            return wrong
        inside = INT64[0] <= value <= INT64[1]
        return Expect(inside, frozenset({"out_of_range"}), "" if inside else f"{field} outside int64")
    if field == "features":
        return Expect(False, frozenset({"wrong_type", "missing_field"}), "features is not the signals' object")
    if field.startswith("features."):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return Expect(False, frozenset({"wrong_type"}), f"{field} is not a number")
        if _is_int(value) and abs(value) > 1.7976931348623157e308:
            return Expect(False, frozenset({"out_of_range"}), f"{field} beyond float")
        return Expect(True)
    raise ValueError(f"no verdict for field {field!r}")


def identity_verdict(line: str, machine: str, *, channel: str) -> Expect:
    """The verdict on a template's own line and machine (the topic's levels over MQTT)."""
    return combine(_verdict("line", line, channel=channel, topic_segment_value=line),
                   _verdict("machine", machine, channel=channel, topic_segment_value=machine))


def combine(a: Expect, b: Expect) -> Expect:
    """Two defects at once: a prediction only if both allow it; the service may report either one."""
    kinds = frozenset() if not a.kinds or not b.kinds else a.kinds | b.kinds
    return Expect(a.may_predict and b.may_predict, kinds, "; ".join(w for w in (a.why, b.why) if w))


def _set(doc: dict[str, Any], field: str, value: Any) -> None:
    if field.startswith("features."):
        doc["features"][field.split(".", 1)[1]] = value
    else:
        doc[field] = value


def _encode(doc: Any, ascii_only: bool) -> bytes:
    # ensure_ascii=False with a lone surrogate cannot be UTF-8: encode it anyway, the wire gets invalid UTF-8.
    return json.dumps(doc, ensure_ascii=ascii_only, separators=(",", ":")).encode("utf-8", "surrogatepass")


def _sized(data: bytes, expect: Expect) -> Expect:
    if len(data) > MAX_PAYLOAD_BYTES:
        return Expect(False, frozenset({"too_large"}), f"{len(data)} bytes > {MAX_PAYLOAD_BYTES}")
    if b"\xed\xa0" in data or b"\xed\xbf" in data or b"\xed\xb0" in data:  # a surrogate encoded raw
        # Not valid UTF-8, so not JSON (RFC 8259 §8.1); a lenient decoder may still read it.
        kinds = expect.kinds | {"bad_json"} if expect.kinds else expect.kinds  # empty: any kind already
        return Expect(expect.may_predict, kinds, expect.why or "invalid UTF-8")
    return expect


@st.composite
def mutated_reading(draw: st.DrawFn, base: dict[str, Any], *, channel: str) -> Body:
    """The template with one defect: a field set to a hostile value, removed, an extra (deeply nested) field, or
    padding up to and past the size limit. `base` must be valid; its line/machine are the topic's."""
    doc = json.loads(json.dumps(base))
    doc["id"] = f"{base['id']}-{draw(st.integers(0, 2**32))}"
    how = draw(st.sampled_from(["set", "set", "set", "drop", "extra", "nest", "pad"]))
    ascii_only = draw(st.booleans())
    if how == "set":
        field = draw(st.sampled_from(FIELDS))
        value = draw(st.one_of(hostile_text(), hostile_ints(), hostile_floats(), st.booleans(), st.none(),
                               hostile_values()))
        _set(doc, field, value)
        seg = base["line"] if field == "line" else base["machine"] if field == "machine" else None
        expect = _verdict(field, value, channel=channel, topic_segment_value=seg)
        note = f"{field} = {_short(value)}"
    elif how == "drop":
        field = draw(st.sampled_from(FIELDS))
        if field.startswith("features."):
            del doc["features"][field.split(".", 1)[1]]
        else:
            del doc[field]
        kinds = {"missing_field"} | ({"schema_version"} if field == "schema" else set())
        expect, note = Expect(False, frozenset(kinds), f"{field} missing"), f"without {field}"
    elif how == "extra":
        key, value = draw(hostile_text(40)), draw(hostile_values())
        if key in doc:
            key = f"x-{key}"
        doc[key] = value
        expect, note = Expect(True, why="extra fields are ignored"), f"extra field {_short(key)} = {_short(value)}"
    elif how == "nest":
        depth = draw(st.sampled_from([10, 100, 1000, 5000, 100_000]))
        doc["extra"] = "NEST"
        text = _encode(doc, ascii_only).replace(b'"NEST"', b"[" * depth + b"]" * depth)
        expect = combine(identity_verdict(base["line"], base["machine"], channel=channel),
                         Expect(True, frozenset({"bad_json"}), f"extra field nested {depth} deep"))
        return Body(text, f"extra field nested {depth} deep", _sized(text, expect), doc["id"])
    else:
        size = draw(st.sampled_from([MAX_PAYLOAD_BYTES - 400, MAX_PAYLOAD_BYTES - 300, MAX_PAYLOAD_BYTES,
                                     MAX_PAYLOAD_BYTES + 1, MAX_PAYLOAD_BYTES + 100, 4 * MAX_PAYLOAD_BYTES]))
        doc["pad"] = ""
        room = size - len(_encode(doc, True))
        doc["pad"] = "p" * max(0, room)
        expect, note = Expect(True, why="padding inside the limit"), f"padded to {size} bytes"
    data = _encode(doc, ascii_only)
    rid = doc.get("id") if isinstance(doc.get("id"), str) else None
    expect = combine(identity_verdict(base["line"], base["machine"], channel=channel), expect)
    return Body(data, note, _sized(data, expect), rid)


def raw_bytes() -> st.SearchStrategy[Body]:
    """Arbitrary bytes and JSON that is not a reading: never a prediction."""
    blobs = st.one_of(st.binary(max_size=512), st.sampled_from([b"", b"null", b"[]", b"1e400", b"NaN", b'"x"',
                                                                b"\xff\xfe", b"{", b"{}" * 9000, b"\x00" * 100]),
                      st.binary(min_size=MAX_PAYLOAD_BYTES - 8, max_size=MAX_PAYLOAD_BYTES + 64))
    return blobs.map(lambda b: Body(b, f"{len(b)} raw bytes", _sized(b, Expect(False, why="not a reading"))))


def hostile_body(base: dict[str, Any], *, channel: str) -> st.SearchStrategy[Body]:
    return st.one_of(mutated_reading(base, channel=channel), mutated_reading(base, channel=channel), raw_bytes())


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} chars)"


@st.composite
def mqtt_message(draw: st.DrawFn, *, tag: str, counter: Iterator[int], seed: int,
                 ts_ns: Callable[[], int]) -> tuple[str, Body]:
    """(topic, body): a hostile topic level (unicode, very long, empty) on line or machine, the other level unique to
    this message (`tag`-N) so its outcome can be matched, and a hostile body made from a reading of that topic."""
    seg, unique = draw(topic_segment()), f"{tag}-{next(counter)}"
    line, machine = (seg, unique) if draw(st.booleans()) else (unique, seg)
    base = template(seed, line=line, machine=machine, ts_ns=ts_ns())
    return f"factory/{line}/{machine}/telemetry", draw(hostile_body(base, channel="mqtt"))
