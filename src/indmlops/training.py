"""`indmlops train`: a fault-detection model trained on simulator data, logged and registered in MLflow."""

from __future__ import annotations

import itertools
import os
import tempfile
import time
from dataclasses import dataclass

from indmlops.features import FEATURE_NAMES, FeatureState
from indmlops.simulator.model import LABELS, Plant

MODEL_NAME = "edge-anomaly"
ALIAS = "champion"
EXPERIMENT = "edge-anomaly"


def dataset(seed: int, n: int, *, lines: int = 2, machines: int = 5, mean_gap_s: float = 900.0):
    """(X, y) for `n` readings of a seeded plant: y is the ground-truth label (normal or a fault mode)."""
    import numpy as np

    plant = Plant(seed=seed, lines=lines, machines=machines, mean_gap_s=mean_gap_s)
    state = FeatureState()
    X = np.empty((n, len(FEATURE_NAMES)), dtype=np.float32)
    y = []
    for i, r in enumerate(itertools.islice(plant.readings(), n)):
        X[i] = state.vector(f"{r['line']}/{r['machine']}", r["features"])
        y.append(r["label"])
    return X, np.array(y)


@dataclass
class TrainResult:
    run_id: str
    version: str
    metrics: dict[str, float]
    seconds: float


def fit(X, y, *, trees: int = 40, depth: int = 12, seed: int = 0):
    from sklearn.ensemble import RandomForestClassifier

    model = RandomForestClassifier(n_estimators=trees, max_depth=depth, n_jobs=1, random_state=seed,
                                   class_weight="balanced_subsample")
    return model.fit(X, y)


def evaluate(model, X, y) -> dict[str, float]:
    """Fault detection (any fault vs normal) precision/recall/F1, plus macro F1 over the fault modes."""
    from sklearn.metrics import f1_score, precision_recall_fscore_support

    pred = model.predict(X)
    p, r, f, _ = precision_recall_fscore_support(y != "normal", pred != "normal", average="binary", zero_division=0)
    labels = [lab for lab in LABELS if lab in set(y)]
    return {"precision": float(p), "recall": float(r), "f1": float(f),
            "macro_f1_modes": float(f1_score(y, pred, labels=labels, average="macro", zero_division=0))}


def to_onnx(model):
    import numpy as np
    from skl2onnx import to_onnx as convert

    return convert(model, np.zeros((1, len(FEATURE_NAMES)), dtype=np.float32),
                   options={id(model): {"zipmap": False}}, target_opset={"": 17, "ai.onnx.ml": 3})


def train_and_register(tracking_uri: str, *, train_seed: int = 1, test_seed: int = 2, n_train: int = 120_000,
                       n_test: int = 40_000, trees: int = 40, depth: int = 12) -> TrainResult:
    """Train on one seed, evaluate on another (unseen plant), log everything, register, point the alias."""
    import mlflow
    import mlflow.onnx
    import mlflow.sklearn
    import pandas as pd
    from mlflow.data.pandas_dataset import from_pandas
    from mlflow.models import infer_signature
    from mlflow.tracking import MlflowClient

    t0 = time.monotonic()
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment(EXPERIMENT)
    X, y = dataset(train_seed, n_train)
    Xt, yt = dataset(test_seed, n_test)
    model = fit(X, y, trees=trees, depth=depth, seed=train_seed)
    metrics = evaluate(model, Xt, yt)
    with mlflow.start_run(run_name=f"rf-{trees}x{depth}-seed{train_seed}") as run:
        mlflow.log_params({"model": "RandomForestClassifier", "trees": trees, "max_depth": depth,
                           "train_seed": train_seed, "test_seed": test_seed, "n_train": n_train, "n_test": n_test,
                           "features": ",".join(FEATURE_NAMES)})
        mlflow.log_metrics(metrics)
        frame = pd.DataFrame(X, columns=FEATURE_NAMES).assign(label=y)
        mlflow.log_input(from_pandas(frame, name=f"simulator-seed{train_seed}", targets="label"),
                         context="training")
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "train.csv.gz")
            frame.to_csv(path, index=False, compression="gzip")
            mlflow.log_artifact(path, artifact_path="dataset")
        example = pd.DataFrame(X[:5], columns=FEATURE_NAMES)
        signature = infer_signature(example, model.predict(X[:5]))
        # MLflow 3 saves scikit-learn models with skops, which refuses types it does not know: the forest's
        # tree structure is the one type a RandomForestClassifier adds.
        info = mlflow.sklearn.log_model(model, name="model", signature=signature, input_example=example,
                                        skops_trusted_types=["sklearn.tree._tree.Tree"])
        mlflow.onnx.log_model(to_onnx(model), name="onnx")
        client = MlflowClient(tracking_uri)
        mv = mlflow.register_model(info.model_uri, MODEL_NAME)
        client.set_model_version_tag(MODEL_NAME, mv.version, "onnx_uri", f"runs:/{run.info.run_id}/onnx")
        client.set_registered_model_alias(MODEL_NAME, ALIAS, mv.version)
    return TrainResult(run.info.run_id, str(mv.version), metrics, time.monotonic() - t0)
