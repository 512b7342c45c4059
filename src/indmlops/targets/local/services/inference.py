"""The edge inference service (`indmlops serve`), with the model it needs registered beside its start."""

from __future__ import annotations

from collections.abc import Callable

from indmlops import clients, training
from indmlops.targets.local import render
from indmlops.targets.local.layout import HOST, StackConfig
from indmlops.targets.local.services.common import endpoint, in_thread, indmlops_command


def _fit_bootstrap() -> training.Candidate:
    cand = training.fit_candidate(**training.BOOTSTRAP)
    training.import_registration_modules()  # while MLflow is still starting, rather than after
    return cand


class ModelBootstrap:
    """Sees that `edge-anomaly@champion` exists once the inference service starts, registering the small bootstrap
    model (training.BOOTSTRAP) when the registry has none.

    On a fresh stack the registry is certainly empty, so the candidate is fitted at once, in `up`'s own process
    while MLflow starts (fit 0.7 s, imports ~3.4 s of a core): once MLflow answers, only logging and registering
    remain (~2.5 s). Elsewhere it is fitted only if the registry turns out to have no model."""

    def __init__(self, cfg: StackConfig, fresh: bool, *,
                 fit: Callable[[], training.Candidate] = _fit_bootstrap,
                 register: Callable[[str, training.Candidate], training.TrainResult] = training.register,
                 lookup: Callable[[str], str | None] = lambda url: clients.mlflow_alias_version(
                     url, training.MODEL_NAME, training.ALIAS)) -> None:
        self.url = endpoint(cfg, "mlflow").url
        self._fit, self._register, self._lookup = fit, register, lookup
        self.candidate = in_thread(fit, "indmlops-up-fit") if fresh else None

    def ensure(self) -> str:
        """Runs once MLflow answers: nothing to do when the alias points somewhere, else register the candidate."""
        version = self._lookup(self.url)
        name = f"{training.MODEL_NAME}@{training.ALIAS}"
        if version is not None:
            return f"model {name} is version {version}"
        cand = self.candidate.result() if self.candidate else self._fit()
        res = self._register(self.url, cand)
        return (f"no model registered: registered the bootstrap model as {name} version {res.version} (held-out "
                f"F1 {res.metrics['f1']:.3f}); `indmlops train` makes the full model")


def beside(cfg: StackConfig, fresh: bool) -> Callable[[], str]:
    return ModelBootstrap(cfg, fresh).ensure


def prepare(cfg: StackConfig) -> dict[str, str]:
    argv = indmlops_command(cfg, "serve", "--http", f"{HOST}:{cfg.ports['inference']}")
    return {"command": render.launch(cfg, "inference", argv), "environment": 'PYTHONUNBUFFERED="1"'}


def ready(cfg: StackConfig) -> str:
    return clients.http_ready(f"{endpoint(cfg, 'inference').url}/readyz", expect_body='"ready":true')


# The supervised simulator is background traffic for the HMI and dashboards: 4 machines at 5 readings/s each.
