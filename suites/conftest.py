"""Fixtures shared by the suites."""

import pytest

from indmlops import intent
from indmlops.checks.static.isolation import Intent, IntentError
from indmlops.manifests import Manifests, load_cached
from indmlops.plugin import manifests_dir
from indmlops.plugin.config import isolation_intent as session_intent


@pytest.fixture(scope="session")
def smoke_intent() -> dict:
    return intent.load("smoke")


@pytest.fixture(scope="session")
def static_manifests(pytestconfig: pytest.Config) -> Manifests:
    """The rendered --manifests: what the static suite judges and what the live isolation suite probes."""
    return load_cached(manifests_dir(pytestconfig))


@pytest.fixture(scope="session")
def isolation_intent(pytestconfig: pytest.Config) -> Intent | None:
    """The --intent the NetworkPolicies are compared with (indmlops.plugin.config.intent_file: by default the
    project's intent for the project's manifests, none for others); a bad file fails with its name and source."""
    try:
        return session_intent(pytestconfig)
    except IntentError as exc:
        pytest.fail(f"the isolation intent could not be read: {exc}", pytrace=False)
