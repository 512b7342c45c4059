"""The edge inference service (`indmlops serve`), with the model it needs registered first."""

from __future__ import annotations

from indmlops import clients
from indmlops.targets.local import render
from indmlops.targets.local.layout import HOST, StackConfig
from indmlops.targets.local.services.common import endpoint, indmlops_command


def ensure_model(cfg: StackConfig) -> str:
    """Train and register edge-anomaly@champion when the registry has none (the seed's manual step)."""
    from mlflow.exceptions import MlflowException

    from indmlops import training
    from indmlops.inference.model import current_version

    uri = endpoint(cfg, "mlflow").url
    try:
        return f"model {training.MODEL_NAME}@{training.ALIAS} is version " \
               f"{current_version(uri, training.MODEL_NAME, training.ALIAS)}"
    except MlflowException:
        pass
    res = training.train_and_register(uri)
    return (f"no model registered: trained {training.MODEL_NAME} version {res.version} in {res.seconds:.0f} s "
            f"(held-out F1 {res.metrics['f1']:.3f})")


def prepare(cfg: StackConfig) -> dict[str, str]:
    argv = indmlops_command(cfg, "serve", "--http", f"{HOST}:{cfg.ports['inference']}")
    return {"command": render.launch(cfg, "inference", argv), "environment": 'PYTHONUNBUFFERED="1"'}


def ready(cfg: StackConfig) -> str:
    return clients.http_ready(f"{endpoint(cfg, 'inference').url}/readyz", expect_body='"ready":true')


# The supervised simulator is background traffic for the HMI and dashboards: 4 machines at 5 readings/s each.
