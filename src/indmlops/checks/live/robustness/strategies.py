"""Hypothesis strategies for hostile edge input: mutated readings, raw bytes, broker-valid hostile topic segments,
and the contract's verdict on each (which error kinds a rejection may carry, whether a prediction is allowed)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from indmlops.inference.parse import MAX_PAYLOAD_BYTES
from indmlops.simulator import Plant
from indmlops.simulator.model import SCHEMA_VERSION, SIGNALS

INT64 = (-(2**63), 2**63 - 1)
FIELDS = ("schema", "id", "line", "machine", "seq", "ts_ns", "features", *(f"features.{s}" for s in SIGNALS))
# Service failures, not verdicts on the input: a hostile reading must never be answered with one of these.
SERVICE_FAILURE_KINDS = frozenset({"predict_failed", "publish_failed", "internal"})


@dataclass(frozen=True)
class Expect:
    """What the contract allows for one payload: a prediction (`may_predict`) and/or a rejection of one of `kinds`
    (`any_kind`: whichever validation kind the parser meets first, for bytes that are no reading at all). With
    neither kinds nor any_kind the payload is a valid reading and must be predicted."""

    may_predict: bool
    kinds: frozenset[str] = frozenset()
    why: str = ""
    any_kind: bool = False
    status: int | None = None  # HTTP: the exact status of the rejection, where the contract fixes one

    def __post_init__(self) -> None:
        if not self.may_predict and not self.kinds and not self.any_kind:
            raise ValueError(f"an Expect that allows nothing ({self.why})")

    def allows_kind(self, kind: str) -> bool:
        return kind not in SERVICE_FAILURE_KINDS and (self.any_kind or kind in self.kinds)

    def describe(self) -> str:
        verdicts = (["a prediction"] if self.may_predict else [])
        if self.any_kind or self.kinds:
            verdicts.append(f"an error of kind {'|'.join(sorted(self.kinds)) if self.kinds else 'any validation kind'}"
                            + (f" (HTTP {self.status})" if self.status else ""))
        return " or ".join(verdicts) + (f" ({self.why})" if self.why else "")


def reject(kind: str, why: str, status: int | None = None) -> Expect:
    return Expect(False, frozenset({kind}), why, status=status)


@dataclass(frozen=True)
class Body:
    """One hostile body: its bytes, what was done to the template, and the contract's verdict. `framing`: how an
    HTTP request delimits it, when that is the hostile part ("chunked", or a Content-Length value sent as is)."""

    data: bytes
    note: str
    expect: Expect
    reading_id: str | None = None  # the id a prediction would carry, when the body has a usable one
    framing: str = ""


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


# --- the contract's verdict on a reading ---------------------------------------------------------------------------
#
# The rules (src/indmlops/inference/parse.py, restated here so the suite checks the service against them rather than
# against itself): at most MAX_PAYLOAD_BYTES; JSON (NaN/Infinity constants: non_finite); an object; schema the integer
# 1 (not 1.0, not true); id, line, machine strings, seq and ts_ns integers (not bool, not 1.0), features an object
# holding every signal as a number; seq, ts_ns in 0..2**63-1; each feature finite and within float32 (what the model
# takes); line and machine topic-safe, id the same but for '/', '+' and '#' (else bad_identifier); over MQTT the body's
# line/machine equal the topic's (else topic_mismatch, judged only on a reading that parsed). One defect has one kind.
# With several, the service names the first it checks: the order is its own, not the contract's, so any of them is
# accepted.

MAX_IDENTIFIER_CHARS = 128
FLOAT32_MAX = 3.4028234663852886e38


def identifier_problem(value: str, *, topic_level: bool = True) -> str | None:
    """Why `value` cannot be one topic level (a line, a machine) or, with `topic_level` False, a reading's id: empty,
    over 128 characters, '/', '+', '#' (topic levels only), a control character (U+0000-U+001F, U+007F-U+009F), a lone
    surrogate, a noncharacter."""
    if not value:
        return "empty"
    if len(value) > MAX_IDENTIFIER_CHARS:
        return f"{len(value)} characters > {MAX_IDENTIFIER_CHARS}"
    for c in value:
        o = ord(c)
        if (topic_level and c in "/+#") or o < 0x20 or 0x7F <= o <= 0x9F or 0xD800 <= o <= 0xDFFF \
                or 0xFDD0 <= o <= 0xFDEF or (o & 0xFFFE) == 0xFFFE:
            return f"holds U+{o:04X}"
    return None


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _all_of(defects: list[Expect]) -> Expect:
    """Several defects at once: a prediction only if each allows one; a rejection may name any of them."""
    return Expect(all(d.may_predict for d in defects), frozenset().union(*(d.kinds for d in defects)),
                  "; ".join(d.why for d in defects if d.why), any(d.any_kind for d in defects))


def _feature_defects(feats: dict[str, Any]) -> list[Expect]:
    out = []
    for s in SIGNALS:
        if s not in feats:
            out.append(reject("missing_field", f"features.{s} missing"))
            continue
        v = feats[s]
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            out.append(reject("wrong_type", f"features.{s} is not a number"))
        elif isinstance(v, float) and not math.isfinite(v):  # 1e400 in the text decodes to inf
            out.append(reject("non_finite", f"features.{s} = {v}"))
        elif abs(v) > FLOAT32_MAX:
            out.append(reject("out_of_range", f"features.{s} = {_short(v)} beyond float32"))
    return out


def reading_verdict(doc: Any, *, topic: tuple[str, str] | None) -> Expect:
    """The contract's verdict on a decoded JSON document sent as a reading: over MQTT on `topic` (its line and
    machine levels), over HTTP with `topic` None. Exact where there is one defect."""
    if not isinstance(doc, dict):
        return reject("not_object", f"top level is {type(doc).__name__}")
    defects: list[Expect] = []
    schema = doc.get("schema")
    if not (_is_int(schema) and schema == SCHEMA_VERSION):  # one rule for integer fields: 1.0 is not 1
        defects.append(reject("schema_version", f"schema {_short(schema)}, not {SCHEMA_VERSION}"))
    for key, typ in (("id", str), ("line", str), ("machine", str), ("seq", int), ("ts_ns", int), ("features", dict)):
        if key not in doc:
            defects.append(reject("missing_field", f"{key} missing"))
            continue
        v = doc[key]
        if not isinstance(v, typ) or isinstance(v, bool):
            defects.append(reject("wrong_type", f"{key} is {type(v).__name__}"))
        elif key in ("seq", "ts_ns") and isinstance(v, int) and not 0 <= v <= INT64[1]:
            defects.append(reject("out_of_range", f"{key} = {_short(v)} outside 0..2**63-1"))
        elif key == "features" and isinstance(v, dict):
            defects.extend(_feature_defects(v))
        elif isinstance(v, str) and (why := identifier_problem(v, topic_level=key != "id")):
            defects.append(reject("bad_identifier", f"{key} {_short(v)}: {why}"))
    if any(not d.may_predict for d in defects):
        return _all_of(defects)
    if topic is not None and (doc["line"], doc["machine"]) != topic:
        defects.append(reject("topic_mismatch", f"body {_short(doc['line'])}/{_short(doc['machine'])} is not the "
                                                f"topic's {_short(topic[0])}/{_short(topic[1])}"))
    return _all_of(defects) if defects else Expect(True)


def _set(doc: dict[str, Any], field: str, value: Any) -> None:
    if field.startswith("features."):
        doc["features"][field.split(".", 1)[1]] = value
    else:
        doc[field] = value


def _encode(doc: Any, ascii_only: bool) -> bytes:
    # ensure_ascii=False with a lone surrogate cannot be UTF-8: encode it anyway, the wire gets invalid UTF-8.
    return json.dumps(doc, ensure_ascii=ascii_only, separators=(",", ":")).encode("utf-8", "surrogatepass")


def _on_the_wire(data: bytes, expect: Expect) -> Expect:
    """The verdict on the document, adjusted for what its bytes are."""
    if len(data) > MAX_PAYLOAD_BYTES:
        return reject("too_large", f"{len(data)} bytes > {MAX_PAYLOAD_BYTES}", status=413)
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        # A lone surrogate encoded raw: not UTF-8, so not JSON for a strict reader (RFC 8259 §8.1 binds senders);
        # parse.py decodes it (surrogatepass) and judges the string. Both are within the contract.
        return Expect(expect.may_predict, expect.kinds | {"bad_json"}, expect.why or "invalid UTF-8",
                      expect.any_kind)
    return expect


@st.composite
def mutated_reading(draw: st.DrawFn, base: dict[str, Any], *, topic: tuple[str, str] | None) -> Body:
    """The template with one defect: a field set to a hostile value, removed, an extra (deeply nested) field, or
    padding up to and past the size limit. `base` must be valid; over MQTT `topic` holds the levels it was sent on
    (which may themselves be hostile: then the body carries that defect too)."""
    doc = json.loads(json.dumps(base))
    doc["id"] = f"{base['id']}-{draw(st.integers(0, 2**32))}"
    how = draw(st.sampled_from(["set", "set", "set", "drop", "extra", "nest", "pad"]))
    ascii_only = draw(st.booleans())
    nested: Expect | None = None
    if how == "set":
        field = draw(st.sampled_from(FIELDS))
        value = draw(st.one_of(hostile_text(), hostile_ints(), hostile_floats(), st.booleans(), st.none(),
                               hostile_values()))
        _set(doc, field, value)
        note = f"{field} = {_short(value)}"
    elif how == "drop":
        field = draw(st.sampled_from(FIELDS))
        if field.startswith("features."):
            del doc["features"][field.split(".", 1)[1]]
        else:
            del doc[field]
        note = f"without {field}"
    elif how == "extra":
        key, value = draw(hostile_text(40)), draw(hostile_values())
        if key in doc:
            key = f"x-{key}"
        doc[key] = value
        note = f"extra field {_short(key)} = {_short(value)}"
    elif how == "nest":
        depth = draw(st.sampled_from([10, 100, 1000, 5000, 100_000]))
        doc["extra"] = "NEST"
        data = _encode(doc, ascii_only).replace(b'"NEST"', b"[" * depth + b"]" * depth)
        if depth >= 1000:
            # RFC 8259 §9 lets a parser limit the nesting depth, and the limit is the interpreter's (Python's json
            # gives up near its recursion limit, 1000): a prediction or bad_json.
            nested = Expect(True, frozenset({"bad_json"}), f"extra field nested {depth} deep")
        expect = reading_verdict(doc, topic=topic)
        if nested is not None:
            expect = _all_of([expect, nested])
        return Body(data, f"extra field nested {depth} deep", _on_the_wire(data, expect), doc["id"])
    else:
        size = draw(st.sampled_from([MAX_PAYLOAD_BYTES - 400, MAX_PAYLOAD_BYTES - 300, MAX_PAYLOAD_BYTES,
                                     MAX_PAYLOAD_BYTES + 1, MAX_PAYLOAD_BYTES + 100, 4 * MAX_PAYLOAD_BYTES]))
        doc["pad"] = ""
        room = size - len(_encode(doc, True))
        doc["pad"] = "p" * max(0, room)
        note = f"padded to {size} bytes"
    data = _encode(doc, ascii_only)
    rid = doc.get("id") if isinstance(doc.get("id"), str) else None
    return Body(data, note, _on_the_wire(data, reading_verdict(doc, topic=topic)), rid)


def raw_bytes() -> st.SearchStrategy[Body]:
    """Arbitrary bytes and JSON that is not a reading: never a prediction. Bytes are no reading with one defect:
    which kind they get is whichever the parser meets first."""
    blobs = st.one_of(st.binary(max_size=512), st.sampled_from([b"", b"null", b"[]", b"1e400", b"NaN", b'"x"',
                                                                b"\xff\xfe", b"{", b"{}" * 9000, b"\x00" * 100]),
                      st.binary(min_size=MAX_PAYLOAD_BYTES - 8, max_size=MAX_PAYLOAD_BYTES + 64))
    return blobs.map(lambda b: Body(b, f"{len(b)} raw bytes",
                                    _on_the_wire(b, Expect(False, why="not a reading", any_kind=True))))


def framing_cases(base: dict[str, Any]) -> list[Body]:
    """HTTP requests whose framing is the defect, around a valid reading: a chunked body (411), a Content-Length
    that is no byte count (400; '²' is a digit to str.isdigit, not to int()), one over the limit (413)."""
    data = _encode(base, True)
    cases = [Body(data, "Transfer-Encoding: chunked", reject("bad_request", "chunked body", 411), framing="chunked")]
    for value in ("-1", "abc", "1e3", "0x10", "+5", "5 5", "\u00b2"):
        cases.append(Body(data, f"Content-Length: {value!r}",
                          reject("bad_request", f"Content-Length {value!r}", 400), framing=value))
    big = data + b" " * (MAX_PAYLOAD_BYTES + 1 - len(data))
    cases.append(Body(big, f"Content-Length: {len(big)}", reject("too_large", "declared over the limit", 413),
                      framing=str(len(big))))
    return cases


def hostile_body(base: dict[str, Any], *, topic: tuple[str, str] | None) -> st.SearchStrategy[Body]:
    return st.one_of(mutated_reading(base, topic=topic), mutated_reading(base, topic=topic), raw_bytes())


@st.composite
def http_request(draw: st.DrawFn, *, line: str, counter: Iterator[int], seed: int,
                 ts_ns: Callable[[], int]) -> Body:
    """A hostile /predict request about a machine of its own (`line`/http-N): the edge keeps each machine's previous
    reading for the change features, so sharing one would make a verdict depend on the example before."""
    base = template(seed, line=line, machine=f"http-{next(counter)}", ts_ns=ts_ns())
    return draw(st.one_of(hostile_body(base, topic=None), st.sampled_from(framing_cases(base))))


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
    return f"factory/{line}/{machine}/telemetry", draw(hostile_body(base, topic=(line, machine)))
