"""A fresh cluster's registry holds no model, and the inference service is Ready only once it has loaded
`edge-anomaly@champion`: before inference is deployed, the bootstrap model (training.BOOTSTRAP, fitted in about a
second) is registered through a port-forward to MLflow when the alias points nowhere, as the local target does.
`indmlops train` against the same MLflow replaces it with the full model."""

from __future__ import annotations

import time
from collections.abc import Callable

from indmlops import clients, training
from indmlops.errors import KubernetesError
from indmlops.targets.kubernetes.components import COMPONENTS
from indmlops.targets.kubernetes.portforward import PortForwards

Progress = Callable[[str], None]
INFERENCE_STEP = "ot-edge/inference"  # the deploy step (deploy.plan) the model must exist before


def ensure_champion(kubeconfig: str | None, context: str, progress: Progress, timeout: float = 120.0) -> str:
    """The version `edge-anomaly@champion` points at, registering the bootstrap model first when there is none."""
    mlflow = COMPONENTS["mlflow"]
    assert mlflow.service is not None and mlflow.port is not None
    forwards = PortForwards(kubeconfig, context)
    try:
        url = f"http://127.0.0.1:{forwards.local_port(mlflow.namespace, mlflow.service, mlflow.port)}"
        name = f"{training.MODEL_NAME}@{training.ALIAS}"
        deadline, last = time.monotonic() + timeout, ""
        while True:
            try:
                version = clients.mlflow_alias_version(url, training.MODEL_NAME, training.ALIAS)
                break
            except Exception as exc:  # MLflow answering its port before its registry (database migrations)
                last = f"{type(exc).__name__}: {exc}"
                if time.monotonic() > deadline:
                    raise KubernetesError(f"MLflow at {mlflow.where} did not answer the registry within "
                                          f"{timeout:.0f} s: {last}") from None
                time.sleep(1)
        if version is not None:
            progress(f"model {name} is version {version}")
            return version
        t0 = time.monotonic()
        result = training.register(url, training.fit_candidate(**training.BOOTSTRAP))
        progress(f"model {name}: registered the bootstrap model as version {result.version} in "
                 f"{time.monotonic() - t0:.1f} s (`indmlops train --tracking-uri ...` makes the full one)")
        return str(result.version)
    finally:
        forwards.close()
