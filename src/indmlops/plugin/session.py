"""The session around the tests: the report header, the `target` fixture (opened by the one factory), the
option fixtures, and a failed test's evidence with the command that reproduces it."""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from indmlops.broker import canonical
from indmlops.errors import IndMLOpsError, NotSupportedByTarget
from indmlops.plugin.config import intent_file, manifests_dir, option, resolved_options, target_spec
from indmlops.targets.base import Target
from indmlops.targets.factory import TargetSpecError, open_target, preview


def pytest_report_header(config: pytest.Config) -> list[str]:
    opts = resolved_options(config)
    lines = ["indmlops: " + ", ".join(f"{n}={r.value} ({r.source})" for n, r in opts.items()
                                      if n in ("target", "profile", "reports_dir", "keep_stack", "keep_cluster",
                                               "broker_autosave"))]
    lines.append(f"indmlops manifests: {manifests_dir(config)} ({opts['manifests'].source}; static suite)")
    intent, where = intent_file(config)
    lines.append(f"indmlops intent: {intent or 'none'} ({where}; isolation)")
    try:
        return lines + preview(target_spec(config))
    except IndMLOpsError as exc:  # e.g. a malformed INDMLOPS_PORTS: the target fixture reports it as a usage error
        return [*lines, f"indmlops endpoints: unknown ({exc})"]


# MLflow's client retries a failing request 7 times with exponential backoff (minutes in all). A check must
# fail in seconds when a service is down: 2 retries × (1 s, 2 s) backoff, 20 s per request. A value the user
# set in the environment wins.
MLFLOW_CLIENT_BOUNDS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                        "MLFLOW_HTTP_REQUEST_TIMEOUT": "20"}


@pytest.fixture(scope="session", autouse=True)
def mlflow_client_bounded() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        for key, value in MLFLOW_CLIENT_BOUNDS.items():
            if key not in os.environ:
                mp.setenv(key, value)
        yield


@pytest.fixture
def no_s3_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Clients in the test process hold no S3 credentials: artifact access must go through MLflow's proxy."""
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                "MLFLOW_S3_ENDPOINT_URL"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture(scope="session")
def indmlops_options(pytestconfig: pytest.Config) -> dict[str, object]:
    return {n: r.value for n, r in resolved_options(pytestconfig).items()}


@pytest.fixture(scope="session")
def profile(pytestconfig: pytest.Config) -> str:
    return str(option(pytestconfig, "profile"))


@pytest.fixture(scope="session")
def broker_autosave(pytestconfig: pytest.Config, target: Target) -> str:
    """The broker's save policy under test, for loss bounds (indmlops.broker): what the target reads from the
    deployed broker's configuration, else what --broker-autosave says it was deployed with."""
    deployed = target.broker_autosave()
    return canonical(deployed if deployed is not None else option(pytestconfig, "broker_autosave"))


@pytest.fixture(scope="session")
def target(pytestconfig: pytest.Config) -> Iterator[Target]:
    """The system under test, opened by `indmlops.targets.factory` from the options: on --target local a stack that
    was not running is started and stopped again at the end (unless --keep-stack); on --target kind the cluster is
    created or reused (removed again unless --keep-cluster); port-forwards close at the end."""
    spec = target_spec(pytestconfig)
    held = contextlib.ExitStack()
    try:
        opened = held.enter_context(open_target(spec, live_printer(pytestconfig, spec.progress_label)))
    except TargetSpecError as exc:
        given = ", ".join(f"{n}={r.value!r} from {r.source}" for n, r in resolved_options(pytestconfig).items()
                          if r.source != "default")
        raise pytest.UsageError(f"{exc} (options given: {given or 'none'})") from None
    except IndMLOpsError as exc:
        pytest.exit(f"the {spec.name} target could not be set up: {exc}", returncode=3)
    with held:
        yield opened


@pytest.hookimpl(wrapper=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function):
    """A check that needs what the target cannot do is skipped with the target's reason, never passed."""
    try:
        return (yield)
    except NotSupportedByTarget as exc:
        pytest.skip(f"{exc} (choose a target that supports it with --target)")


def live_printer(config: pytest.Config, prefix: str) -> Callable[[str], None]:
    """A progress callback that prints past pytest's capture, so long waits show what they wait for."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capman = config.pluginmanager.get_plugin("capturemanager")

    def progress(msg: str) -> None:
        if reporter and capman:
            with capman.global_and_fixture_disabled():
                reporter.write_line(f"{prefix}: {msg}")

    return progress


def keep_evidence(item: pytest.Item) -> Path:
    """The target's evidence (log tails, component state) and the command to reproduce into reports/<test id>/."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", item.nodeid).strip("_")[:150]
    out = Path(option(item.config, "reports_dir")) / safe
    out.mkdir(parents=True, exist_ok=True)
    opened: Target = getattr(item, "funcargs", {})["target"]
    flags = opened.evidence(out)
    (out / "reproduce.sh").write_text(
        "#!/bin/sh\n# Re-run this test alone against the same target.\n"
        f"cd {shlex.quote(str(item.config.rootpath))} && {shlex.quote(sys.executable)} -m pytest "
        f"{shlex.quote(item.nodeid)} {flags}\n"
    )
    return out
