"""Load `models:/edge-anomaly@champion`: the ONNX fast path when the run has one, scikit-learn otherwise."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class LoadedModel:
    name: str
    version: str
    run_id: str | None  # None: a version registered from outside any run
    flavor: str  # "onnx" or "sklearn"
    predict_fn: Any
    loaded_at: float = field(default_factory=time.time)

    def predict(self, vector: list[float]) -> tuple[str, float]:
        """(label, probability that the reading is a fault) for one feature vector."""
        return self.predict_fn(np.asarray([vector], dtype=np.float32))


def _onnx_predictor(onnx_model) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1  # single rows: threads cost more than they save on 2 cores
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(onnx_model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    input_name = sess.get_inputs()[0].name
    classes: list[str] | None = None

    def predict(x):
        nonlocal classes
        label, proba = sess.run(None, {input_name: x})
        if classes is None:
            classes = list(_onnx_classes(onnx_model))
        return str(label[0]), 1.0 - float(proba[0][classes.index("normal")])

    return predict


def _onnx_classes(onnx_model) -> list[str]:
    for node in onnx_model.graph.node:
        for attr in node.attribute:
            if attr.name == "classlabels_strings":
                return [s.decode() for s in attr.strings]
    raise ValueError("ONNX model carries no class labels")


def _sklearn_predictor(model) -> Any:
    classes = list(model.classes_)
    normal = classes.index("normal")

    def predict(x):
        proba = model.predict_proba(x)[0]
        return classes[int(proba.argmax())], 1.0 - float(proba[normal])

    return predict


def _load_onnx(uri: str):
    """The ONNX model logged at `uri`, read with `onnx` alone. mlflow.onnx.load_model does the same but imports
    pandas, which the inference image leaves out (about 90 MB of its 400 MB budget)."""
    import tempfile
    from pathlib import Path

    import onnx
    import yaml
    from mlflow.artifacts import download_artifacts

    with tempfile.TemporaryDirectory(prefix="indmlops-onnx-") as tmp:
        local = Path(download_artifacts(artifact_uri=uri, dst_path=tmp))
        data = yaml.safe_load((local / "MLmodel").read_text())["flavors"]["onnx"]["data"]
        return onnx.load(str(local / data))


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
            return LoadedModel(name, mv.version, mv.run_id, "onnx", _onnx_predictor(_load_onnx(onnx_uri)))
        except ImportError:
            pass  # onnxruntime/onnx not installed here: the scikit-learn path below still works
    import mlflow.sklearn

    return LoadedModel(name, mv.version, mv.run_id, "sklearn",
                       _sklearn_predictor(mlflow.sklearn.load_model(f"models:/{name}/{mv.version}")))


def current_version(tracking_uri: str, name: str, alias: str) -> str:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri).get_model_version_by_alias(name, alias).version

