"""MLflow data-path checks: artifacts, logged and registered models land in the bucket byte for byte."""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

from indmlops import clients
from indmlops.targets.base import Target

SCRATCH_PREFIX = "indmlops-mlflow-"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]


def s3_for(target: Target):
    creds = target.credentials("s3")
    return clients.s3_client(target.endpoint("s3"), creds.username, creds.password, creds.extra["region"]), \
        creds.extra["bucket"]


def bucket_hashes(target: Target, prefix: str) -> dict[str, str]:
    """sha256 of every object under `prefix` in the artifact bucket, keyed by the key relative to `prefix`."""
    s3, bucket = s3_for(target)
    out: dict[str, str] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
            out[obj["Key"][len(prefix):]] = sha256(body)
    return out


def compare_hashes(where: str, sent: dict[str, str], stored: dict[str, str]) -> None:
    """Every file the client sent is stored with the same sha256; the message lists each difference."""
    missing = sorted(set(sent) - set(stored))
    changed = sorted(k for k in set(sent) & set(stored) if sent[k] != stored[k])
    assert not missing and not changed, (
        f"{where}: {len(sent)} file(s) sent, {len(missing)} missing from the bucket {missing[:10]}, "
        f"{len(changed)} with another sha256 {[(k, sent[k][:12], stored[k][:12]) for k in changed[:10]]}; "
        f"stored keys: {sorted(stored)[:20]}")


def diagnosis(target: Target) -> str:
    """What `indmlops doctor` blames, for a failure message."""
    from indmlops.checks.live import doctor

    bad = [f.line() for f in doctor.diagnose(target) if not f.ok]
    return "indmlops doctor: " + (" | ".join(bad) if bad else "every check ok")


@contextmanager
def through_proxy(target: Target, what: str) -> Iterator[None]:
    """`what` goes through MLflow's artifact proxy: its failure (an MLflow error, or the HTTP client's own after
    retries of 5xx answers) becomes an assertion that names it and what `indmlops doctor` blames."""
    import requests
    from mlflow.exceptions import MlflowException

    try:
        yield
    except (MlflowException, requests.RequestException) as exc:
        raise AssertionError(f"MLflow {target.endpoint('mlflow')}: {what} failed through the artifact proxy: "
                             f"{_first_line(exc)}; {diagnosis(target)}") from exc


@dataclass
class ArtifactEvidence:
    experiment_id: str
    run_id: str
    files: dict[str, str]  # relative path -> sha256 the client sent
    bucket_prefix: str
    proxied_reads: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


def _artifact_files(n: int = 3, size: int = 64 * 1024) -> dict[str, bytes]:
    files = {f"data/part-{i}.bin": os.urandom(size * (i + 1)) for i in range(n)}
    files["notes/readme.txt"] = f"indmlops mlflow suite {uuid.uuid4().hex}\n".encode()
    return files


def artifacts_land_in_bucket(target: Target, *, n_files: int = 3) -> ArtifactEvidence:
    """A run's artifacts (nested directories, binary and text) land under <exp>/<run>/artifacts/ in the bucket
    with the sha256 the client sent, and read back through MLflow's proxy by a client without S3 credentials."""
    from mlflow.tracking import MlflowClient

    uri = target.endpoint("mlflow").url
    client = MlflowClient(uri)
    t0 = time.perf_counter()
    exp_id = client.create_experiment(f"{SCRATCH_PREFIX}{uuid.uuid4().hex[:10]}")
    run = client.create_run(exp_id)
    run_id = run.info.run_id
    files = _artifact_files(n_files)
    with tempfile.TemporaryDirectory() as tmp:
        for rel, body in files.items():
            p = Path(tmp, rel)
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(body)
        with through_proxy(target, f"run {run_id}: the upload of {len(files)} artifacts"):
            client.log_artifacts(run_id, tmp)
    client.set_terminated(run_id)
    artifact_uri = client.get_run(run_id).info.artifact_uri
    assert artifact_uri.startswith("mlflow-artifacts:"), (
        f"MLflow {uri}: run {run_id} has artifact URI {artifact_uri!r}; expected mlflow-artifacts:/... (proxied): "
        "clients would need S3 credentials")
    sent = {rel: sha256(body) for rel, body in files.items()}
    prefix = f"{exp_id}/{run_id}/artifacts/"
    compare_hashes(f"run {run_id} artifacts at s3://{s3_for(target)[1]}/{prefix}", sent, bucket_hashes(target, prefix))
    ev = ArtifactEvidence(exp_id, run_id, sent, prefix)
    ev.proxied_reads = proxied_reads_match(target, run_id, sent)
    ev.seconds = time.perf_counter() - t0
    return ev


def proxied_reads_match(target: Target, run_id: str, sent: dict[str, str]) -> int:
    """Download every artifact through MLflow (no S3 credentials in this process) and compare sha256."""
    from mlflow.tracking import MlflowClient

    held = [v for v in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "MLFLOW_S3_ENDPOINT_URL") if os.environ.get(v)]
    assert not held, f"this process holds S3 settings {held}: proxied access would not be proven (unset them)"
    client = MlflowClient(target.endpoint("mlflow").url)
    with tempfile.TemporaryDirectory() as tmp:
        with through_proxy(target, f"the download of run {run_id}'s artifacts"):
            local = client.download_artifacts(run_id, "", tmp)
        got = {str(p.relative_to(local)): sha256(p.read_bytes()) for p in Path(local).rglob("*") if p.is_file()}
    compare_hashes(f"run {run_id} artifacts downloaded through {target.endpoint('mlflow')}", sent, got)
    return len(got)


@dataclass
class ModelEvidence:
    run_id: str
    model_id: str
    name: str
    version: str
    alias: str
    files: dict[str, str]
    predictions: int


def _toy_model(seed: int):
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(seed)
    X = rng.normal(size=(200, 4))
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int)
    return LogisticRegression().fit(X, y), rng.normal(size=(50, 4))


def model_registered_and_loads_by_alias(target: Target, *, name: str | None = None) -> ModelEvidence:
    """Log a model, register a version, point an alias at it: its files are in the bucket with the hashes of
    the same model saved locally, and `models:/<name>@<alias>` loads back and predicts exactly as before."""
    import mlflow
    import mlflow.sklearn
    import numpy as np
    from mlflow.tracking import MlflowClient

    uri = target.endpoint("mlflow").url
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    name = name or f"{SCRATCH_PREFIX}model-{uuid.uuid4().hex[:8]}"
    alias = "indmlops-check"
    model, X = _toy_model(int(uuid.uuid4().int % 2**31))
    before = model.predict_proba(X)
    exp_id = client.create_experiment(f"{SCRATCH_PREFIX}{uuid.uuid4().hex[:10]}")
    # The same model saved locally: cloudpickle is deterministic for one object, so model.pkl must match the
    # bucket's byte for byte (MLmodel carries ids and times; it is compared with the proxied copy instead).
    with tempfile.TemporaryDirectory() as tmp:
        mlflow.sklearn.save_model(model, os.path.join(tmp, "m"), serialization_format="cloudpickle")
        sent_pkl = sha256(Path(tmp, "m", "model.pkl").read_bytes())
    with mlflow.start_run(experiment_id=exp_id) as run, through_proxy(target, "logging a model"):
        info = mlflow.sklearn.log_model(model, name="model", serialization_format="cloudpickle")
    mv = mlflow.register_model(info.model_uri, name)
    client.set_registered_model_alias(name, alias, mv.version)
    by_alias = client.get_model_version_by_alias(name, alias)
    assert by_alias.version == mv.version, f"alias {name}@{alias} points at {by_alias.version}, set to {mv.version}"
    logged = client.get_logged_model(info.model_id)
    loc = logged.artifact_location
    assert loc.startswith("mlflow-artifacts:/"), f"logged model {info.model_id}: artifact location {loc!r} not proxied"
    prefix = loc.removeprefix("mlflow-artifacts:/").strip("/") + "/"
    stored = bucket_hashes(target, prefix)
    s3_where = f"registered {name} v{mv.version} (logged model {info.model_id}) at s3://{s3_for(target)[1]}/{prefix}"
    compare_hashes(s3_where, {"model.pkl": sent_pkl}, stored)
    for required in ("MLmodel", "requirements.txt"):
        assert required in stored, f"{s3_where}: {required} missing; stored {sorted(stored)}"
    with tempfile.TemporaryDirectory() as tmp, through_proxy(target, f"the download of models:/{name}@{alias}"):
        local = mlflow.artifacts.download_artifacts(f"models:/{name}@{alias}", dst_path=tmp)
        proxied = {str(p.relative_to(local)): sha256(p.read_bytes()) for p in Path(local).rglob("*") if p.is_file()}
    compare_hashes(f"models:/{name}@{alias} downloaded through {uri}", stored, proxied)
    loaded = mlflow.sklearn.load_model(f"models:/{name}@{alias}")
    after = loaded.predict_proba(X)
    assert np.array_equal(before, after), (
        f"models:/{name}@{alias} (v{mv.version}) predicts differently after the round trip: max |diff| "
        f"{float(np.abs(before - after).max()):.3g} over {len(X)} rows")
    return ModelEvidence(run.info.run_id, info.model_id, name, str(mv.version), alias, stored, len(X))


def upload_fails_for_missing_bucket(target: Target, *, bucket: str) -> str:
    """A scratch experiment whose artifact location is s3://<bucket> (which must not exist): a client holding
    the S3 credentials cannot upload, and the error names the bucket. Returns the error line."""
    from boto3.exceptions import S3UploadFailedError
    from botocore.exceptions import ClientError
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    s3, _ = s3_for(target)
    try:
        s3.head_bucket(Bucket=bucket)
        raise AssertionError(f"bucket {bucket!r} exists at {target.endpoint('s3')}: the negative needs a missing one")
    except ClientError:
        pass
    client = MlflowClient(target.endpoint("mlflow").url)
    exp_id = client.create_experiment(f"{SCRATCH_PREFIX}missing-{uuid.uuid4().hex[:8]}",
                                      artifact_location=f"s3://{bucket}/artifacts")
    run_id = client.create_run(exp_id).info.run_id
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp, "a.txt")
        p.write_text("must not land\n")
        try:
            with s3_environment(target):
                client.log_artifact(run_id, str(p))
        except (MlflowException, ClientError, S3UploadFailedError) as exc:  # depends on the upload path taken
            text = str(exc)
            assert "NoSuchBucket" in text or bucket in text, (
                f"upload to s3://{bucket} failed, but the error does not name the bucket: {text[:300]}")
            client.set_terminated(run_id, status="FAILED")
            return f"experiment {exp_id}: {_first_line(exc)}"
    raise AssertionError(f"experiment {exp_id} with artifact location s3://{bucket}/artifacts: the upload "
                         f"succeeded although bucket {bucket!r} does not exist at {target.endpoint('s3')}")


class s3_environment:
    """Give this process the target's S3 credentials and endpoint for direct (non-proxied) artifact access."""

    def __init__(self, target: Target) -> None:
        creds = target.credentials("s3")
        self.values = {"AWS_ACCESS_KEY_ID": creds.username, "AWS_SECRET_ACCESS_KEY": creds.password,
                       "AWS_DEFAULT_REGION": creds.extra["region"],
                       "MLFLOW_S3_ENDPOINT_URL": target.endpoint("s3").url}
        self.saved: dict[str, str | None] = {}

    def __enter__(self) -> Self:
        for k, v in self.values.items():
            self.saved[k] = os.environ.get(k)
            os.environ[k] = v
        return self

    def __exit__(self, *_exc) -> None:
        for k, v in self.saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
