"""MLflow suite: artifacts and models land in mlflow-bucket byte for byte; the doctor names what is broken."""

from __future__ import annotations

import uuid

import pytest

from indmlops.checks.live import doctor, mlflow_store

pytestmark = pytest.mark.mlflow


def test_run_artifacts_land_in_bucket_with_sent_hashes_when_client_has_no_s3_credentials(target, no_s3_credentials):
    ev = mlflow_store.artifacts_land_in_bucket(target)
    print(f"run {ev.run_id}: {len(ev.files)} artifacts at {ev.bucket_prefix}, sha256 equal in the bucket and in "
          f"{ev.proxied_reads} proxied downloads ({ev.seconds:.1f} s)")


def test_registered_model_loads_by_alias_and_predicts_as_before(target, no_s3_credentials):
    ev = mlflow_store.model_registered_and_loads_by_alias(target)
    print(f"{ev.name} v{ev.version} @{ev.alias} (logged model {ev.model_id}): {len(ev.files)} files in the bucket, "
          f"{ev.predictions} predictions identical after loading by alias")


def test_doctor_reports_every_cause_ok_when_stack_ready(target, no_s3_credentials):
    findings = doctor.diagnose(target)
    report = doctor.render(findings)
    print(report)
    topics = [f.topic for f in findings]
    for topic in ("s3 endpoint", "bucket", "server credentials", "artifact proxy", "artifact access",
                  "client credentials", "stale artifact locations"):
        assert topic in topics, f"`indmlops doctor` gave no line for {topic!r}:\n{report}"
    assert all(f.ok for f in findings), f"`indmlops doctor` found a problem on the stack under test:\n{report}"


@pytest.fixture
def bucket_missing(target):
    """A bucket name that does not exist, and a cleanup that deletes the scratch experiments pointing at it."""
    from mlflow.entities import ViewType
    from mlflow.tracking import MlflowClient

    name = f"indmlops-missing-{uuid.uuid4().hex[:10]}"
    yield name
    client = MlflowClient(target.endpoint("mlflow").url)
    for exp in client.search_experiments(view_type=ViewType.ACTIVE_ONLY, max_results=50000):
        if name in exp.artifact_location:
            client.delete_experiment(exp.experiment_id)


def test_upload_fails_and_doctor_names_bucket_when_experiment_points_at_missing_bucket(target, bucket_missing,
                                                                                       no_s3_credentials):
    error = mlflow_store.upload_fails_for_missing_bucket(target, bucket=bucket_missing)
    print(f"upload refused: {error}")
    findings = {f.topic: f for f in doctor.diagnose(target)}
    stale = findings["stale artifact locations"]
    assert stale.status == "FAIL" and f"bucket {bucket_missing} does not exist" in stale.detail, (
        f"`indmlops doctor` did not name the missing bucket {bucket_missing}: {stale.line()}")
    # The shared stack's own bucket is untouched by the negative.
    assert findings["bucket"].ok, findings["bucket"].line()
