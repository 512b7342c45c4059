"""Parse and validate one telemetry payload; every way it can be wrong has a kind that is counted."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from indmlops.simulator.model import SCHEMA_VERSION, SIGNALS

MAX_PAYLOAD_BYTES = 16 * 1024  # a reading is ~300 B; 16 KiB leaves room for extra fields, not for abuse

# Kinds of a reading that cannot be predicted: the first group is the payload's fault, found by parse_reading; the
# second is found on the way to a prediction (the topic it came on, the model, the broker, an HTTP request's framing),
# and `internal` is anything else that went wrong handling that one reading: counted and dead-lettered, never fatal.
PAYLOAD_KINDS = ("too_large", "bad_json", "not_object", "missing_field", "wrong_type", "non_finite",
                 "schema_version", "out_of_range", "bad_identifier")
ERROR_KINDS = PAYLOAD_KINDS + ("topic_mismatch", "bad_request", "predict_failed", "publish_failed", "internal")

# The model takes float32 (ONNX and the scikit-learn pipeline alike): a finite float64 beyond this becomes inf there.
FLOAT32_MAX = 3.4028234663852886e38
INT64_MAX = 2**63 - 1
MAX_IDENTIFIER_CHARS = 128


class BadPayload(ValueError):
    def __init__(self, kind: str, detail: str) -> None:
        assert kind in ERROR_KINDS, kind
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


@dataclass(frozen=True)
class Reading:
    id: str
    line: str
    machine: str
    seq: int
    ts_ns: int
    features: dict[str, float]


def _reject_constant(name: str):
    raise BadPayload("non_finite", f"JSON constant {name} is not a number")


def _short(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} chars)"


def identifier_problem(value: str, *, topic_level: bool = True) -> str | None:
    """Why `value` cannot name a line or machine (`topic_level`: it must be one level of an MQTT topic) or a reading
    (not `topic_level`: it only travels inside JSON, so '/' is fine), or None.

    The rules are the broker's (MQTT 3.1.1 §1.5.3, §4.7; Mosquitto rejects the packet and drops the connection):
    UTF-8 without U+0000, surrogates or noncharacters, and no control characters (Mosquitto 2.0 refuses
    U+0001-U+001F and U+007F-U+009F); and what a topic level cannot hold: '/' and the wildcards '+' and '#'.
    A topic level may be empty for the broker; a name may not. A reading's id obeys the same characters, so every
    consumer of a prediction (the HMI's JSON.parse, a historian) can take it, but may hold '/', '+' and '#'.
    """
    if not value:
        return "empty"
    if len(value) > MAX_IDENTIFIER_CHARS:
        return f"{len(value)} characters, at most {MAX_IDENTIFIER_CHARS}"
    for ch in value:
        cp = ord(ch)
        if topic_level and ch in "/+#":
            return f"contains {ch!r}, which MQTT reserves in topics"
        if cp < 0x20 or 0x7F <= cp <= 0x9F:
            return f"contains the control character U+{cp:04X}"
        if 0xD800 <= cp <= 0xDFFF:
            return f"contains the lone surrogate U+{cp:04X} (not UTF-8)"
        if 0xFDD0 <= cp <= 0xFDEF or (cp & 0xFFFE) == 0xFFFE:
            return f"contains the noncharacter U+{cp:04X}"
    return None


def parse_reading(payload: bytes | str, *, max_bytes: int = MAX_PAYLOAD_BYTES) -> Reading:
    """Return a validated Reading or raise BadPayload(kind, detail). Never raises anything else."""
    if len(payload) > max_bytes:
        raise BadPayload("too_large", f"{len(payload)} bytes > {max_bytes}")
    try:
        doc = json.loads(payload, parse_constant=_reject_constant)
    except BadPayload:
        raise
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise BadPayload("bad_json", str(exc)[:120]) from None
    if not isinstance(doc, dict):
        raise BadPayload("not_object", f"top level is {type(doc).__name__}")
    schema = doc.get("schema")
    # The integer 1: not true, and not 1.0, as seq and ts_ns must be integers too (one rule for integer fields).
    if not isinstance(schema, int) or isinstance(schema, bool) or schema != SCHEMA_VERSION:
        raise BadPayload("schema_version", f"schema {schema!r}, expected {SCHEMA_VERSION}")
    for key, kind in (("id", str), ("line", str), ("machine", str), ("seq", int), ("ts_ns", int),
                      ("features", dict)):
        if key not in doc:
            raise BadPayload("missing_field", key)
        value = doc[key]
        if not isinstance(value, kind) or isinstance(value, bool):
            raise BadPayload("wrong_type", f"{key} is {type(value).__name__}, expected {kind.__name__}")
    feats = doc["features"]
    values: dict[str, float] = {}
    for key in ("seq", "ts_ns"):
        if not 0 <= doc[key] <= INT64_MAX:
            raise BadPayload("out_of_range", f"{key} = {_short(doc[key])}, expected 0..2**63-1")
    for s in SIGNALS:
        if s not in feats:
            raise BadPayload("missing_field", f"features.{s}")
        v = feats[s]
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            raise BadPayload("wrong_type", f"features.{s} is {type(v).__name__}, expected number")
        if isinstance(v, int) and abs(v) > FLOAT32_MAX:  # float() of a 400-digit int raises OverflowError
            raise BadPayload("out_of_range", f"features.{s} = {_short(v)} is beyond float32")
        v = float(v)
        if not math.isfinite(v):
            raise BadPayload("non_finite", f"features.{s} = {v}")
        if abs(v) > FLOAT32_MAX:
            raise BadPayload("out_of_range", f"features.{s} = {v:g} is beyond float32, what the model takes")
        values[s] = v
    for key in ("id", "line", "machine"):
        if why := identifier_problem(doc[key], topic_level=key != "id"):
            raise BadPayload("bad_identifier", f"{key} {_short(doc[key])}: {why}")
    return Reading(doc["id"], doc["line"], doc["machine"], doc["seq"], doc["ts_ns"], values)
