"""Steady-state probes. Each returns True or raises with what it saw (the journal keeps the message).

The content a probe guards is made by its first call in a run (the hypothesis "before" the fault) and verified,
byte for byte, by every later call ("after"): a run in MLflow with a metric and an artifact, an object in the
bucket. Both live in their own names, so concurrent users of the stack are not disturbed.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
import uuid
from pathlib import Path

from indmlops.chaos import context
from indmlops.checks.live import smoke


def reading_gets_prediction(within: float = 5.0, configuration: dict | None = None) -> bool:
    """A fresh reading gets its prediction within `within` s; after a fault, also the edge was current again within
    its catch-up bound after every recovery the run's traffic saw: a prediction about the past is no recovery. After
    a fault the wait is the largest catch-up bound of the faulted components (fixtures/slo.yaml chaos.catch_up)."""
    late = [c for c in context.state.catch_ups if not c.met]
    if late:
        raise AssertionError("the edge was not current again after a recovery: "
                             + "; ".join(c.text() for c in late))
    bounds = [context.catch_up_bound(k) for k in context.state.kills if k in ("inference", "mosquitto")]
    smoke.reading_gets_prediction(context.target(configuration), within=max([within, *bounds]))
    return True


def mlflow_known_run_intact(configuration: dict | None = None) -> bool:
    """MLflow answers, lists the run made before the fault, with its metric, and serves its artifact unchanged."""
    from mlflow.tracking import MlflowClient

    t = context.target(configuration)
    uri = t.endpoint("mlflow").url
    client = MlflowClient(tracking_uri=uri)
    known = context.state.known.get("mlflow")
    if known is None:
        exp_id = client.create_experiment(f"indmlops-chaos-{uuid.uuid4().hex[:8]}")
        run = client.create_run(exp_id)
        client.log_metric(run.info.run_id, "chaos_known", 42.0)
        body = os.urandom(64 * 1024)
        with tempfile.TemporaryDirectory() as tmp:
            with open(os.path.join(tmp, "known.bin"), "wb") as fh:
                fh.write(body)
            client.log_artifact(run.info.run_id, os.path.join(tmp, "known.bin"))
        client.set_terminated(run.info.run_id)
        context.state.known["mlflow"] = known = {"experiment": exp_id, "run": run.info.run_id,
                                                 "sha256": hashlib.sha256(body).hexdigest()}
    listed = [r.info.run_id for r in client.search_runs([known["experiment"]])]
    assert known["run"] in listed, f"MLflow {uri}: run {known['run']} missing from experiment {known['experiment']}"
    metric = client.get_run(known["run"]).data.metrics.get("chaos_known")
    assert metric == 42.0, f"MLflow {uri}: run {known['run']} metric chaos_known = {metric}, expected 42.0"
    with tempfile.TemporaryDirectory() as tmp:
        path = client.download_artifacts(known["run"], "known.bin", tmp)
        got = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    assert got == known["sha256"], f"MLflow {uri}: artifact known.bin of run {known['run']} changed (sha256 {got})"
    return True


def known_object_reads_back(configuration: dict | None = None) -> bool:
    """The bucket holds the object written before the fault, unchanged."""
    from indmlops.clients import s3_client

    t = context.target(configuration)
    creds = t.credentials("s3")
    s3 = s3_client(t.endpoint("s3"), creds.username, creds.password, creds.extra["region"])
    bucket = creds.extra["bucket"]
    known = context.state.known.get("s3")
    if known is None:
        body = os.urandom(128 * 1024)
        key = f"indmlops-chaos/{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}.bin"
        s3.put_object(Bucket=bucket, Key=key, Body=body)
        context.state.known["s3"] = known = {"key": key, "sha256": hashlib.sha256(body).hexdigest()}
    got = hashlib.sha256(s3.get_object(Bucket=bucket, Key=known["key"])["Body"].read()).hexdigest()
    assert got == known["sha256"], f"s3://{bucket}/{known['key']}: content changed (sha256 {got})"
    return True
