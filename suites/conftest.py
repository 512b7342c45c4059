"""Fixtures shared by the suites."""

from pathlib import Path

import pytest

from indmlops import intent
from indmlops.checks.static.isolation import Intent, load_intent
from indmlops.manifests import Manifests, load_cached
from indmlops.paths import REPO_ROOT
from indmlops.plugin import manifests_dir

PROJECT_MANIFESTS = REPO_ROOT / "manifests"
INTENT_FILE = REPO_ROOT / "fixtures" / "isolation" / "intent.yaml"


def intent_applies(path: Path) -> bool:
    """The isolation intent describes the project's own manifests; foreign ones are judged without it."""
    return path == PROJECT_MANIFESTS or PROJECT_MANIFESTS in path.parents


@pytest.fixture(scope="session")
def smoke_intent() -> dict:
    return intent.load("smoke")


@pytest.fixture(scope="session")
def static_manifests(pytestconfig: pytest.Config) -> Manifests:
    """The rendered --manifests: what the static suite judges and what the live isolation suite probes."""
    return load_cached(manifests_dir(pytestconfig))


@pytest.fixture(scope="session")
def isolation_intent(pytestconfig: pytest.Config) -> Intent | None:
    return load_intent(INTENT_FILE) if intent_applies(manifests_dir(pytestconfig)) else None
