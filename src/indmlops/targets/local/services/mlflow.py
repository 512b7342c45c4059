"""MLflow: tracking server and model registry over PostgreSQL and the S3 store."""

from __future__ import annotations

import shutil

from indmlops import clients
from indmlops.errors import MissingDependency
from indmlops.targets.local import render
from indmlops.targets.local.layout import BUCKET, HOST, StackConfig
from indmlops.targets.local.services.common import PROJECT_INSTALL, endpoint, venv_bin


def mlflow_environment(cfg: StackConfig) -> dict[str, str]:
    s3, pg = cfg.credentials["s3"], cfg.credentials["postgres"]
    return {
        "MLFLOW_S3_ENDPOINT_URL": endpoint(cfg, "s3").url,
        "AWS_ACCESS_KEY_ID": s3["access_key"],
        "AWS_SECRET_ACCESS_KEY": s3["secret_key"],
        "AWS_DEFAULT_REGION": s3["region"],
        "PGPASSWORD": pg["password"],  # keeps the password out of the process list
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }


def prepare(cfg: StackConfig) -> dict[str, str]:
    mlflow = venv_bin("mlflow")
    if not mlflow:
        raise MissingDependency("mlflow", PROJECT_INSTALL.format(what="pip install mlflow"))
    pg = cfg.credentials["postgres"]
    metrics_dir = cfg.layout.data / "mlflow" / "metrics"
    if metrics_dir.exists():
        shutil.rmtree(metrics_dir)  # multiprocess metric files of dead workers would be summed forever
    metrics_dir.mkdir(parents=True)
    argv = [
        mlflow, "server",
        "--backend-store-uri", f"postgresql+psycopg://{pg['user']}@{HOST}:{cfg.ports['postgres']}/{pg['database']}",
        "--artifacts-destination", f"s3://{BUCKET}", "--serve-artifacts",
        # One uvicorn worker: the server then runs in uvicorn's own process, and a start imports the app once
        # (3.4 s of a core) instead of once per worker plus a supervising parent; alone, /health answered after
        # 5.7–6.4 s with one worker against 7.4 s with two. The local target's clients are a handful of tests,
        # `train` and the inference service's alias check every 5 s; Flask handlers run in the worker's thread pool.
        "--host", HOST, "--port", str(cfg.ports["mlflow"]), "--workers", "1",
        "--expose-prometheus", str(metrics_dir),
    ]
    env = ",".join(f'{k}="{v}"' for k, v in mlflow_environment(cfg).items())
    return {"command": render.launch(cfg, "mlflow", argv), "environment": env, "stopwaitsecs": "20"}


def ready(cfg: StackConfig) -> str:
    return clients.http_ready(f"{endpoint(cfg, 'mlflow').url}{clients.MLFLOW_READY_PATH}",
                              expect_body=clients.MLFLOW_READY_BODY)
