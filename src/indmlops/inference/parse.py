"""Parse and validate one telemetry payload; every way it can be wrong has a kind that is counted."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from indmlops.simulator.model import SCHEMA_VERSION, SIGNALS

MAX_PAYLOAD_BYTES = 16 * 1024  # a reading is ~300 B; 16 KiB leaves room for extra fields, not for abuse

ERROR_KINDS = ("too_large", "bad_json", "not_object", "missing_field", "wrong_type", "non_finite",
               "schema_version")


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
    if schema != SCHEMA_VERSION or isinstance(schema, bool):
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
    for s in SIGNALS:
        if s not in feats:
            raise BadPayload("missing_field", f"features.{s}")
        v = feats[s]
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            raise BadPayload("wrong_type", f"features.{s} is {type(v).__name__}, expected number")
        v = float(v)
        if not math.isfinite(v):
            raise BadPayload("non_finite", f"features.{s} = {v}")
        values[s] = v
    if not doc["id"] or len(doc["id"]) > 128:
        raise BadPayload("wrong_type", "id must be a non-empty string of at most 128 characters")
    return Reading(doc["id"], doc["line"], doc["machine"], doc["seq"], doc["ts_ns"], values)
