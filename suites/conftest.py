"""Fixtures shared by the suites."""

import pytest

from indmlops import intent


@pytest.fixture(scope="session")
def smoke_intent() -> dict:
    return intent.load("smoke")


@pytest.fixture
def no_s3_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Clients in the test process hold no S3 credentials: artifact access must go through MLflow's proxy."""
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                "MLFLOW_S3_ENDPOINT_URL"):
        monkeypatch.delenv(var, raising=False)
