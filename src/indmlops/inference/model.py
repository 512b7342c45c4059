"""Load `models:/edge-anomaly@champion`: the ONNX fast path when the run has one, scikit-learn otherwise; or the
same from the local model cache (indmlops.inference.cache) without importing MLflow."""

from __future__ import annotations

import os
import pickle
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from indmlops.inference import cache
from indmlops.inference.cache import CachedModel


@dataclass
class LoadedModel:
    name: str
    version: str
    run_id: str | None  # None: a version registered from outside any run
    flavor: str  # "onnx" or "sklearn"
    predict_fn: Any
    loaded_at: float = field(default_factory=time.time)
    payload: bytes = field(default=b"", repr=False)  # what the cache keeps: ONNX bytes, or the estimator pickled
    classes: tuple[str, ...] = ()  # onnx: labels in probability order

    @property
    def sha256(self) -> str:
        """Of what is served: the ONNX file as the registry stores it, or the estimator as this service pickled it."""
        import hashlib

        return hashlib.sha256(self.payload).hexdigest()

    def describe(self) -> dict[str, str | None]:
        return {"name": self.name, "version": self.version, "flavor": self.flavor, "run_id": self.run_id,
                "sha256": self.sha256, "bytes_of": "the ONNX artifact" if self.flavor == "onnx"
                else "the estimator as this service pickled it"}

    def predict(self, vector: list[float]) -> tuple[str, float]:
        """(label, probability that the reading is a fault) for one feature vector."""
        return self.predict_fn(np.asarray([vector], dtype=np.float32))


def _onnx_predictor(data: bytes, classes: Sequence[str]) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1  # single rows: threads cost more than they save on 2 cores
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
    input_name = sess.get_inputs()[0].name
    normal = list(classes).index("normal")

    def predict(x):
        label, proba = sess.run(None, {input_name: x})
        return str(label[0]), 1.0 - float(proba[0][normal])

    return predict


def _onnx_classes(onnx_model) -> tuple[str, ...]:
    for node in onnx_model.graph.node:
        for attr in node.attribute:
            if attr.name == "classlabels_strings":
                return tuple(s.decode() for s in attr.strings)
    raise ValueError("ONNX model carries no class labels")


def _sklearn_predictor(model) -> Any:
    classes = list(model.classes_)
    normal = classes.index("normal")

    def predict(x):
        proba = model.predict_proba(x)[0]
        return classes[int(proba.argmax())], 1.0 - float(proba[normal])

    return predict


def _load_onnx(uri: str):
    """The ONNX model logged at `uri` and its file's bytes as stored (what the edge serves must hash to the artifact
    in the bucket), read with `onnx` alone. mlflow.onnx.load_model does the same but imports pandas, which the
    inference image leaves out (about 90 MB of its 400 MB budget)."""
    import tempfile
    from pathlib import Path

    import onnx
    import yaml
    from mlflow.artifacts import download_artifacts

    with tempfile.TemporaryDirectory(prefix="indmlops-onnx-") as tmp:
        local = Path(download_artifacts(artifact_uri=uri, dst_path=tmp))
        data = yaml.safe_load((local / "MLmodel").read_text())["flavors"]["onnx"]["data"]
        raw = (local / data).read_bytes()
        return onnx.load_from_string(raw), raw


def load(tracking_uri: str, name: str, alias: str, *, prefer_onnx: bool = True) -> LoadedModel:
    """Resolve the alias to a version and load it; raises MlflowException if there is none."""
    import mlflow
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    mv = client.get_model_version_by_alias(name, alias)
    mlflow.set_tracking_uri(tracking_uri)
    onnx_uri = mv.tags.get("onnx_uri")
    if prefer_onnx and onnx_uri:
        try:
            proto, data = _load_onnx(onnx_uri)
            classes = _onnx_classes(proto)
            return LoadedModel(name, mv.version, mv.run_id, "onnx", _onnx_predictor(data, classes), payload=data,
                               classes=classes)
        except ImportError:
            pass  # onnxruntime/onnx not installed here: the scikit-learn path below still works
    import mlflow.sklearn

    estimator = mlflow.sklearn.load_model(f"models:/{name}/{mv.version}")
    return LoadedModel(name, mv.version, mv.run_id, "sklearn", _sklearn_predictor(estimator),
                       payload=pickle.dumps(estimator, protocol=pickle.HIGHEST_PROTOCOL))


def from_cache(entry: CachedModel) -> LoadedModel:
    """The cached model ready to predict, with neither MLflow nor `onnx` imported (1.3 s and 2 s of imports here):
    onnxruntime reads the ONNX bytes itself, and the labels come from the cache's header."""
    if entry.flavor == "onnx":
        if not entry.classes:
            raise ValueError("the cached ONNX model has no class labels")
        predict_fn = _onnx_predictor(entry.payload, entry.classes)
    elif entry.flavor == "sklearn":
        # Our own file, written by this service from the estimator MLflow loaded (skops-checked on that load).
        predict_fn = _sklearn_predictor(pickle.loads(entry.payload))
    else:
        raise ValueError(f"unknown flavor {entry.flavor!r}")
    return LoadedModel(entry.name, entry.version, entry.run_id, entry.flavor, predict_fn, payload=entry.payload,
                       classes=entry.classes)


def to_cache(model: LoadedModel, alias: str) -> CachedModel:
    return CachedModel(model.name, alias, model.version, model.flavor, model.run_id, model.payload, model.classes)


def current_version(tracking_uri: str, name: str, alias: str) -> str:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri).get_model_version_by_alias(name, alias).version



def load_cached(directory: str | os.PathLike[str], name: str, alias: str) -> LoadedModel:
    """The model in the cache, ready to predict; raises CacheUnusable saying why not (missing, corrupt, written for
    another model, or its bytes do not load)."""
    entry = cache.read(Path(directory), name, alias)
    try:
        return from_cache(entry)
    except Exception as exc:  # a payload that passed its checksum but does not load (onnxruntime gone, pickle of
        #                       a scikit-learn that is not installed): ignore it like a corrupt file
        raise cache.CacheUnusable(f"{cache.path_for(Path(directory), name, alias)} does not load: "
                                  f"{type(exc).__name__}: {str(exc)[:200]}") from None


def save_cached(directory: str | os.PathLike[str], model: LoadedModel, alias: str) -> Path:
    return cache.write(Path(directory), to_cache(model, alias))
