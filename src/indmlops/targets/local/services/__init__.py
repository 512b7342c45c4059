"""The services of the local stack, one module each (how it is found, configured, started, found ready and
bootstrapped), and `SERVICES`, the order the stack starts them in."""

from __future__ import annotations

from indmlops.errors import IndMLOpsError
from indmlops.targets.local.services import inference, mlflow, mosquitto, nodered, postgres, prometheus, s3, simulator
from indmlops.targets.local.services.common import Service, endpoint, in_thread, postgres_bin, venv_bin, which
from indmlops.targets.local.services.mlflow import mlflow_environment
from indmlops.targets.local.services.nodered import NODERED_JS
from indmlops.targets.local.services.s3 import ensure_bucket

__all__ = ["NODERED_JS", "SERVICES", "Service", "endpoint", "ensure_bucket", "in_thread", "mlflow_environment",
           "postgres_bin", "venv_bin", "which", "with_requirements"]

SERVICES: dict[str, Service] = {
    s.name: s
    for s in (
        Service("postgres", (), postgres.prepare, postgres.ready, postgres.bootstrap),
        Service("s3", (), s3.prepare, s3.ready, s3.ensure_bucket,
                ports=("s3", "s3-grpc", "s3-master", "s3-master-grpc", "s3-volume", "s3-volume-grpc",
                       "s3-filer", "s3-filer-grpc", "s3-metrics")),
        Service("mosquitto", (), mosquitto.prepare, mosquitto.ready, mosquitto.bootstrap),
        Service("prometheus", (), prometheus.prepare, prometheus.ready),
        Service("nodered", ("mosquitto",), nodered.prepare, nodered.ready),
        # MLflow starts with everything else, as pods in a cluster do: it spends its first ~3.3 s importing before it
        # opens the backend store, by when PostgreSQL (ready ~1.2 s after its start, role and database ~0.1 s
        # later) answers; if it does not, MLflow retries the connection itself (10 tries, 0.1 s doubling to 51 s:
        # ~100 s in all) and supervisord restarts it after that. It needs the bucket only when artifacts move;
        # `up mlflow` still brings PostgreSQL and S3 along.
        Service("mlflow", ("postgres", "s3"), mlflow.prepare, mlflow.ready, start_timeout=90.0, start_after=()),
        # The inference service starts once MLflow answers; beside its start (its imports take ~2.5 s) `up`
        # registers the bootstrap model if the registry has none, and the service loads it on its next look (1 s).
        Service("inference", ("mosquitto", "mlflow", "s3"), inference.prepare, inference.ready,
                beside=inference.beside, start_timeout=60.0),
        Service("simulator", ("mosquitto",), simulator.prepare, simulator.ready, ports=()),
    )
}


def with_requirements(names: list[str]) -> list[str]:
    """`names` plus everything they need, in SERVICES order (dependencies first)."""
    unknown = [n for n in names if n not in SERVICES]
    if unknown:
        raise IndMLOpsError(f"unknown service(s) {', '.join(unknown)}: expected {', '.join(SERVICES)}")
    wanted: set[str] = set()
    stack = list(names)
    while stack:
        n = stack.pop()
        if n not in wanted:
            wanted.add(n)
            stack.extend(SERVICES[n].requires)
    return [n for n in SERVICES if n in wanted]
