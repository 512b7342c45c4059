"""The inference payload parser: valid readings pass, and anything else is a counted kind, never a crash."""

import itertools
import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indmlops.inference.parse import ERROR_KINDS, MAX_PAYLOAD_BYTES, BadPayload, identifier_problem, parse_reading
from indmlops.simulator import Plant

VALID = next(Plant(seed=3).readings())


def encode(doc) -> bytes:
    return json.dumps(doc, allow_nan=True).encode()


def test_simulator_readings_parse_unchanged():
    for r in itertools.islice(Plant(seed=4, lines=2, machines=3).readings(), 500):
        parsed = parse_reading(encode(r))
        assert (parsed.id, parsed.seq, parsed.features) == (r["id"], r["seq"], r["features"])


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=20),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=10), kids, max_size=4),
    max_leaves=20,
)


@settings(max_examples=1000, deadline=None)
@given(st.binary(max_size=300) | json_values.map(encode))
def test_arbitrary_payload_is_a_reading_or_a_known_kind(payload):
    try:
        parse_reading(payload)
    except BadPayload as exc:
        assert exc.kind in ERROR_KINDS


def mutated(**changes):
    doc = json.loads(json.dumps(VALID))
    for path, value in changes.items():
        *parents, leaf = path.split("__")
        target = doc
        for p in parents:
            target = target[p]
        if value is DELETE:
            del target[leaf]
        else:
            target[leaf] = value
    return encode(doc)


DELETE = object()
CASES = {
    "bad_json": b'{"schema": 1,',
    "not_object": b"[1, 2]",
    "schema_version/2": mutated(schema=2),
    "schema_version/missing": mutated(schema=DELETE),
    "schema_version/true": mutated(schema=True),
    "schema_version/1.0": mutated(schema=1.0),
    "bad_identifier/id-empty": mutated(id=""),
    "bad_identifier/id-129-chars": mutated(id="r" * 129),
    "missing_field/id": mutated(id=DELETE),
    "missing_field/features.pressure_bar": mutated(features__pressure_bar=DELETE),
    "wrong_type/seq-string": mutated(seq="7"),
    "wrong_type/feature-string": mutated(features__temperature_c="hot"),
    "wrong_type/feature-bool": mutated(features__temperature_c=True),
    "non_finite/nan": mutated(features__temperature_c=math.nan),
    "non_finite/inf": mutated(features__vibration_rms_mm_s=math.inf),
    "non_finite/1e999": json.dumps(VALID).replace(str(VALID["features"]["pressure_bar"]), "1e999").encode(),
    "too_large": mutated(padding="x" * MAX_PAYLOAD_BYTES),
    "out_of_range/seq-negative": mutated(seq=-1),
    "out_of_range/ts_ns-beyond-int64": mutated(ts_ns=2**63),
    "out_of_range/feature-huge-int": mutated(features__temperature_c=10**400),
    "out_of_range/feature-beyond-float32": mutated(features__temperature_c=-3.5e38),
    "bad_identifier/line-plus": mutated(line="a+b"),
    "bad_identifier/machine-hash": mutated(machine="#"),
    "bad_identifier/machine-slash": mutated(machine="m/1"),
    "bad_identifier/line-empty": mutated(line=""),
    "bad_identifier/machine-control": mutated(machine="m\u0085"),
    "bad_identifier/line-surrogate": mutated(line="\ud83d"),
    "bad_identifier/machine-noncharacter": mutated(machine="m\uffff"),
    "bad_identifier/id-nul": mutated(id="r\u0000"),
}


@pytest.mark.parametrize("case", list(CASES), ids=[f"payload/{c}" for c in CASES])
def test_malformed_payload_rejected_with_its_kind(case):
    with pytest.raises(BadPayload) as err:
        parse_reading(CASES[case])
    assert err.value.kind == case.split("/")[0]


@settings(max_examples=2000, deadline=None)
@given(st.text(max_size=140))
def test_an_accepted_identifier_makes_a_topic_level_the_broker_accepts(text):
    """What identifier_problem lets through is a topic level Mosquitto takes; what it refuses, it names."""
    why = identifier_problem(text)
    if why is None:
        topic = f"factory/{text}/m/prediction".encode()  # raises on a lone surrogate
        assert len(topic.split(b"/")) == 4 and b"+" not in topic and b"#" not in topic and b"\x00" not in topic
        assert all(not (0x7F <= ord(c) <= 0x9F or ord(c) < 0x20) for c in text)
        assert 0 < len(text) <= 128
    else:
        assert isinstance(why, str) and why


def test_identifier_rules_name_what_is_wrong():
    assert identifier_problem("line-1") is None and identifier_problem("Halle 3 · Presse") is None
    assert "'+'" in identifier_problem("a+b") and "U+0000" in identifier_problem("\x00")
    assert "surrogate" in identifier_problem("\ud800") and "noncharacter" in identifier_problem("\U0001fffe")
    assert "129 characters" in identifier_problem("x" * 129)
    assert identifier_problem("plant-1/line-2/#42", topic_level=False) is None  # a reading id may hold them
    assert "U+0007" in identifier_problem("r\x07", topic_level=False)


def test_a_reading_id_with_slashes_and_wildcards_is_predicted_not_refused():
    assert parse_reading(mutated(id="plant-1/line+2/#42")).id == "plant-1/line+2/#42"


def test_feature_state_forgets_the_least_recently_seen_machine_beyond_its_bound():
    from indmlops.features import FeatureState

    state = FeatureState(max_machines=3)
    reading = VALID["features"]
    for key in ("a", "b", "c", "a", "d"):  # "a" seen again before "d" arrives: "b" is the oldest
        state.vector(key, reading)
    assert list(state._last) == ["c", "a", "d"]
