"""The MLflow checks fail, naming the cause, when the bucket is gone or MLflow's artifact destination is broken.

Both mutations run on one scratch stack (PostgreSQL, SeaweedFS, MLflow on their own ports), never the shared one.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from indmlops.checks.live import doctor, mlflow_store
from indmlops.targets.local.target import LocalTarget

pytestmark = [pytest.mark.stack, pytest.mark.mlflow]


@pytest.fixture(scope="module")
def mlflow_scratch(module_scratch_stack) -> LocalTarget:
    stack = module_scratch_stack()
    stack.up(["mlflow"])
    return LocalTarget(stack.layout.state_dir)


@pytest.fixture
def bucket_deleted(mlflow_scratch):
    """mlflow-bucket emptied and deleted on the scratch stack; created again afterwards."""
    from indmlops.targets.local.services import ensure_bucket

    s3, bucket = mlflow_store.s3_for(mlflow_scratch)
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            s3.delete_object(Bucket=bucket, Key=obj["Key"])
    s3.delete_bucket(Bucket=bucket)
    yield bucket
    ensure_bucket(mlflow_scratch.cfg)


def test_artifact_check_and_doctor_name_the_bucket_when_bucket_deleted(mlflow_scratch, bucket_deleted,
                                                                       no_s3_credentials):
    with pytest.raises(AssertionError) as err:
        mlflow_store.artifacts_land_in_bucket(mlflow_scratch)
    print(err.value)
    assert f"bucket: {bucket_deleted} does not exist" in str(err.value), str(err.value)
    line = {f.topic: f for f in doctor.diagnose(mlflow_scratch)}["bucket"].line()
    assert line.startswith("FAIL bucket: mlflow-bucket does not exist"), line
    cli = _doctor_cli(mlflow_scratch)
    assert cli.returncode == 1 and "FAIL bucket: mlflow-bucket does not exist" in cli.stdout, cli.stdout + cli.stderr


def _doctor_cli(target: LocalTarget) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "indmlops.cli", "--state-dir", str(target.state_dir), "doctor"],
                          check=False, capture_output=True, text=True, timeout=120)


def test_doctor_cli_prints_one_line_per_cause_and_exits_0_when_stack_ready(target, no_s3_credentials):
    cli = _doctor_cli(target)
    print(cli.stdout)
    assert cli.returncode == 0, cli.stdout + cli.stderr
    lines = cli.stdout.strip().splitlines()
    assert len(lines) == 7 and all(line.startswith("ok ") for line in lines), cli.stdout


def test_artifact_check_fails_naming_destination_when_mlflow_artifact_destination_broken(mlflow_scratch,
                                                                                        no_s3_credentials):
    conf = mlflow_scratch.stack.layout.supervisor_conf
    text = conf.read_text()
    assert "--artifacts-destination s3://mlflow-bucket" in text, f"{conf}: MLflow's destination not found"
    conf.write_text(text.replace("--artifacts-destination s3://mlflow-bucket",
                                 "--artifacts-destination s3://indmlops-broken-destination"))
    sup = mlflow_scratch.stack.supervisor
    sup.reload_config()
    sup.start("mlflow")
    mlflow_scratch.wait_ready("mlflow", 90)
    with pytest.raises(AssertionError) as err:
        mlflow_store.artifacts_land_in_bucket(mlflow_scratch)
    print(err.value)
    said = str(err.value)
    assert "failed through the artifact proxy" in said and "indmlops-broken-destination" in said, said
    proxy = {f.topic: f for f in doctor.diagnose(mlflow_scratch)}["artifact proxy"]
    assert proxy.status == "FAIL" and "indmlops-broken-destination" in proxy.detail, proxy.line()
    # The destination is not the stack's bucket: the doctor does not blame MLflow's S3 settings instead.
    assert "own S3 settings differ" not in proxy.detail, proxy.line()
