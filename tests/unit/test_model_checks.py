"""The model suite's pure parts: the golden set's coverage, the reference features, what the edge says it serves."""

from __future__ import annotations

import hashlib

import pytest

from indmlops.checks.live import model
from indmlops.features import FeatureState
from indmlops.inference.model import LoadedModel


def test_the_golden_set_covers_every_fault_mode_and_each_machine_in_order():
    golden = model.golden_set(seed=13, machines=4, per_machine=250, mean_gap_s=60)
    assert len(golden) == 1000 and len({r["id"] for r in golden}) == 1000
    assert {r["label"] for r in golden} >= {"normal", "bearing_wear", "overheating", "stuck_sensor", "spike"}
    for m in {r["machine"] for r in golden}:
        seqs = [r["seq"] for r in golden if r["machine"] == m]
        assert seqs == sorted(seqs), m
    ts = [r["ts_ns"] for r in golden]
    assert ts == sorted(ts) and len(set(ts)) == len(ts)  # the edge orders an MQTT stream by ts_ns


def test_a_golden_set_without_a_fault_mode_is_refused_with_what_to_change():
    with pytest.raises(AssertionError, match=r"lacks fault modes \['stuck_sensor'\]: raise per_machine"):
        model.golden_set(seed=7, machines=4, per_machine=250, mean_gap_s=60)


def test_reference_features_are_the_training_codes_machine_by_machine():
    golden = model.golden_set(seed=13, machines=4, per_machine=30, mean_gap_s=5)
    state = FeatureState()
    assert model.features_of(golden) == [state.vector(f"{r['line']}/{r['machine']}", r["features"]) for r in golden]


def test_the_edge_describes_the_bytes_it_serves():
    onnx = LoadedModel("edge-anomaly", "3", "run-1", "onnx", predict_fn=None, payload=b"onnx-bytes")
    d = onnx.describe()
    assert d["version"] == "3" and d["bytes_of"] == "the ONNX artifact"
    assert d["sha256"] == hashlib.sha256(b"onnx-bytes").hexdigest()
    pickled = LoadedModel("edge-anomaly", "3", "run-1", "sklearn", predict_fn=None, payload=b"p")
    assert pickled.describe()["bytes_of"] == "the estimator as this service pickled it"
