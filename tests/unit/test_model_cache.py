"""The inference service's local model cache: round trip, atomic writes, corrupt files ignored with a reason, no
MLflow import on the cached path, and the registry's different version swapped in."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from indmlops.features import FEATURE_NAMES
from indmlops.inference import cache
from indmlops.inference import model as models
from indmlops.inference.cache import CachedModel, CacheUnusable
from indmlops.inference.service import InferenceService
from indmlops.wire import Endpoint

NAME, ALIAS = "edge-anomaly", "champion"


@pytest.fixture(scope="module")
def estimator():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(3)
    x = rng.normal(size=(200, len(FEATURE_NAMES))).astype(np.float32)
    y = np.where(x[:, 0] > 0.5, "spike", "normal")
    return LogisticRegression().fit(x, y)


@pytest.fixture(scope="module")
def onnx_entry(estimator) -> CachedModel:
    from indmlops.training import to_onnx

    return CachedModel(NAME, ALIAS, "7", "onnx", "run-7", to_onnx(estimator).SerializeToString(),
                       tuple(str(c) for c in estimator.classes_))


def sklearn_entry(estimator, version: str = "1") -> CachedModel:
    return CachedModel(NAME, ALIAS, version, "sklearn", f"run-{version}", pickle.dumps(estimator))


def service(cache_dir: Path | None) -> InferenceService:
    return InferenceService(mqtt=Endpoint("mosquitto", "127.0.0.1", 1, "mqtt"), username="inference", password="x",
                            tracking_uri="http://127.0.0.1:1", http_port=0, model_cache=cache_dir)


def test_model_cache_round_trip_keeps_every_field(tmp_path, onnx_entry):
    path = cache.write(tmp_path, onnx_entry)

    assert path == tmp_path / "edge-anomaly@champion.model"
    assert cache.read(tmp_path, NAME, ALIAS) == onnx_entry
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left behind


@pytest.mark.parametrize("flavor", ["onnx", "sklearn"])
def test_cached_model_predicts_as_the_registry_model_would(tmp_path, estimator, onnx_entry, flavor):
    entry = onnx_entry if flavor == "onnx" else sklearn_entry(estimator)
    models.save_cached(tmp_path, models.from_cache(entry), ALIAS)
    loaded = models.load_cached(tmp_path, NAME, ALIAS)
    vector = [2.0] + [0.0] * (len(FEATURE_NAMES) - 1)

    label, p_fault = loaded.predict(vector)

    assert (loaded.version, loaded.flavor, label) == (entry.version, flavor, "spike")
    assert p_fault == pytest.approx(1.0 - estimator.predict_proba([vector])[0][0], abs=1e-4)


def _truncate(p: Path) -> None:
    p.write_bytes(p.read_bytes()[:-10])


def _flip_last_byte(p: Path) -> None:
    data = bytearray(p.read_bytes())
    data[-1] ^= 0xFF
    p.write_bytes(bytes(data))


def _rewrite_header(**changes):
    def mutate(p: Path) -> None:
        head, _, payload = p.read_bytes().partition(b"\n")
        p.write_bytes(json.dumps({**json.loads(head), **changes}).encode() + b"\n" + payload)
    return mutate


CORRUPTIONS = {
    "truncated": (_truncate, "payload is"),
    "bit-flipped": (_flip_last_byte, "does not match its sha256"),
    "not-json": (lambda p: p.write_bytes(b"\x00\xff garbage"), "is unusable"),
    "empty": (lambda p: p.write_bytes(b""), "no header line"),
    "other-model": (_rewrite_header(name="other"), "holds other@champion"),
    "unknown-flavor": (_rewrite_header(flavor="pmml"), "flavor 'pmml'"),
    "newer-format": (_rewrite_header(format="indmlops-model-cache/9"), "format 'indmlops-model-cache/9'"),
    "unreadable": (lambda p: (p.unlink(), p.mkdir()), "cannot read"),
}


@pytest.mark.parametrize("corrupt", list(CORRUPTIONS), ids=list(CORRUPTIONS))
def test_model_cache_unusable_is_ignored_with_reason_when_corrupt(tmp_path, estimator, capsys, corrupt):
    mutate, reason = CORRUPTIONS[corrupt]
    path = cache.write(tmp_path, sklearn_entry(estimator))
    mutate(path)

    with pytest.raises(CacheUnusable, match=reason):
        cache.read(tmp_path, NAME, ALIAS)
    svc = service(tmp_path)
    try:
        assert svc._load_cached() is False
    finally:
        svc.http.server_close()
    out = capsys.readouterr().out
    assert "inference: model cache ignored:" in out and reason in out and svc.model is None


def test_model_cache_payload_that_does_not_load_is_ignored(tmp_path):
    cache.write(tmp_path, CachedModel(NAME, ALIAS, "3", "sklearn", None, b"not a pickle"))

    with pytest.raises(CacheUnusable, match="does not load: UnpicklingError"):
        models.load_cached(tmp_path, NAME, ALIAS)


def test_model_cache_write_keeps_old_file_when_interrupted(tmp_path, estimator, monkeypatch):
    cache.write(tmp_path, sklearn_entry(estimator, "1"))
    renames: list[tuple[str, str]] = []

    def failing_replace(src, dst):
        renames.append((str(src), str(dst)))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cache.os, "replace", failing_replace)
    with pytest.raises(OSError, match="No space left"):
        cache.write(tmp_path, sklearn_entry(estimator, "2"))

    # The new file was complete under a temporary name in the same directory (rename is atomic only within one
    # file system), and the failed write left the old file whole and no temporary file behind.
    (src, dst), = renames
    assert Path(src).parent == tmp_path and Path(src).name.endswith(".tmp")
    assert dst == str(tmp_path / f"{NAME}@{ALIAS}.model")
    assert cache.read(tmp_path, NAME, ALIAS).version == "1"
    assert [p.name for p in tmp_path.iterdir()] == [f"{NAME}@{ALIAS}.model"]


def test_model_cache_path_imports_no_mlflow_and_no_onnx(tmp_path, onnx_entry):
    cache.write(tmp_path, onnx_entry)
    code = textwrap.dedent(f"""
        import sys
        from indmlops.inference.service import InferenceService
        from indmlops.wire import Endpoint
        svc = InferenceService(mqtt=Endpoint("mosquitto", "127.0.0.1", 1, "mqtt"), username="inference",
                               password="x", tracking_uri="http://127.0.0.1:1", http_port=0,
                               model_cache={str(tmp_path)!r})
        assert svc._load_cached(), "not loaded from the cache"
        assert svc.model.version == "7" and svc.model.flavor == "onnx"
        svc.model.predict([0.0] * {len(FEATURE_NAMES)})
        print(sorted(m for m in ("mlflow", "onnx", "sklearn") if m in sys.modules))
    """)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONWARNINGS": "ignore"})

    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip().splitlines()[-1] == "[]", res.stdout


def test_registry_version_differing_from_cache_is_swapped_in_and_cached(tmp_path, estimator, monkeypatch):
    cache.write(tmp_path, sklearn_entry(estimator, "1"))
    svc = service(tmp_path)
    asked: list[str] = []

    def load(_uri, name, _alias):
        asked.append(name)
        return models.from_cache(sklearn_entry(estimator, "2"))

    monkeypatch.setattr(models, "current_version", lambda *_a: "2")
    monkeypatch.setattr(models, "load", load)
    try:
        assert svc._load_cached() and svc.model is not None and svc.model.version == "1"
        assert svc.load_model() is True
        assert svc.load_model() is False  # the same version again: nothing loaded
    finally:
        svc.http.server_close()

    assert svc.model.version == "2" and asked == [NAME]
    assert svc.metrics.registry.get_sample_value("indmlops_inference_model_swaps_total") == 1
    assert cache.read(tmp_path, NAME, ALIAS).version == "2"


def test_registry_same_version_as_cache_keeps_cached_model(tmp_path, estimator, monkeypatch):
    cache.write(tmp_path, sklearn_entry(estimator, "1"))
    svc = service(tmp_path)
    monkeypatch.setattr(models, "current_version", lambda *_a: "1")
    monkeypatch.setattr(models, "load", lambda *_a: pytest.fail("the cached version was loaded again"))
    try:
        assert svc._load_cached()
        cached = svc.model
        assert svc.load_model() is False
    finally:
        svc.http.server_close()

    assert svc.model is cached


def test_registry_down_leaves_cached_model_serving(tmp_path, estimator, monkeypatch):
    cache.write(tmp_path, sklearn_entry(estimator, "1"))
    svc = service(tmp_path)

    def refused(*_a):
        raise ConnectionError("refused")

    monkeypatch.setattr(models, "current_version", refused)
    try:
        assert svc._load_cached() and svc.load_model() is False
    finally:
        svc.http.server_close()

    assert svc.model is not None and svc.model.version == "1" and svc.last_model_error == "ConnectionError: refused"


def test_no_cache_configured_loads_from_registry_and_writes_nothing(tmp_path, estimator, monkeypatch):
    svc = service(None)
    monkeypatch.setattr(models, "current_version", lambda *_a: "4")
    monkeypatch.setattr(models, "load", lambda *_a: models.from_cache(sklearn_entry(estimator, "4")))
    try:
        assert svc._load_cached() is False and svc.load_model() is True
    finally:
        svc.http.server_close()

    assert svc.model is not None and svc.model.version == "4" and list(tmp_path.iterdir()) == []
