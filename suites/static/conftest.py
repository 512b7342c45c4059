"""Wiring of the static suite: render --manifests once per session, one test per (subject, rule) case."""

from __future__ import annotations

import pytest

from indmlops import intent as fixtures
from indmlops.checks.static.isolation import IntentError
from indmlops.checks.static.rules import StaticPolicy, cases
from indmlops.manifests import ManifestError, load_cached
from indmlops.paths import REPO_ROOT
from indmlops.plugin import manifests_dir, option, resolved_options
from indmlops.plugin.config import isolation_intent


def _policy() -> StaticPolicy:
    return StaticPolicy.from_fixture(fixtures.load("static"), REPO_ROOT / "images")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "server_case" in metafunc.fixturenames:
        _server_cases(metafunc)
    if "static_case" not in metafunc.fixturenames:
        return
    path = manifests_dir(metafunc.config)
    try:
        found = cases(load_cached(path), _policy())
    except ManifestError as exc:
        # One failing test that says why (and where the directory came from), not a collection traceback.
        given = resolved_options(metafunc.config)["manifests"]
        error = ManifestError(f"--manifests {given.value!r} from {given.source}: {exc}")
        metafunc.parametrize("static_case", [pytest.param(error, id="manifests:render")])
        return
    try:
        isolation_intent(metafunc.config)
    except IntentError as exc:  # likewise one failing test naming the file and where --intent came from
        metafunc.parametrize("static_case", [pytest.param(exc, id="intent:load")])
        return
    metafunc.parametrize("static_case", found, ids=[c.id for c in found])


def _server_cases(metafunc: pytest.Metafunc) -> None:
    """One server-side dry run per rendered object when the target is a cluster; on the local target one case
    that says there is no API server to ask (never a silent absence)."""
    if option(metafunc.config, "target") == "local":
        metafunc.parametrize("server_case", [pytest.param(None, id="server-dry-run:no-api-server")])
        return
    try:
        objects = load_cached(manifests_dir(metafunc.config)).objects
    except ManifestError:
        objects = []  # the static cases above already carry the render error as a failing test
    metafunc.parametrize("server_case", objects, ids=[f"{o.ref}:server-dry-run" for o in objects])


@pytest.fixture(scope="session")
def static_policy() -> StaticPolicy:
    return _policy()
