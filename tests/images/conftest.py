"""Fixtures for the image tests: the container engine, and the images built once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from indmlops import containers

SKIP_ENV = "INDMLOPS_SKIP_IMAGES"


@pytest.fixture(scope="session")
def engine() -> str:
    """Docker or Podman. None of them is a failure, not a skip: CI must build the images. Opting out is
    explicit: INDMLOPS_SKIP_IMAGES=1 skips with that reason."""
    if os.environ.get(SKIP_ENV, "") not in ("", "0"):
        pytest.skip(f"{SKIP_ENV}={os.environ[SKIP_ENV]} from environment: image build and smoke tests opted out")
    try:
        return containers.detect_engine(os.environ.get("INDMLOPS_ENGINE") or None)
    except containers.NoEngine as exc:
        pytest.fail(f"{exc}. The image tests need Docker or Podman (./lab installs Podman on Debian); "
                    f"set {SKIP_ENV}=1 to skip them deliberately.", pytrace=False)


@pytest.fixture(scope="session")
def images_built(engine: str, pytestconfig: pytest.Config) -> containers.BuildResult:
    """All images, built (or found up to date in the build cache) by scripts/build-images.sh; the build log is
    kept in <reports>/images/build.log."""
    from indmlops.plugin import option

    reporter = pytestconfig.pluginmanager.get_plugin("terminalreporter")
    capman = pytestconfig.pluginmanager.get_plugin("capturemanager")
    if reporter and capman:
        with capman.global_and_fixture_disabled():
            reporter.write_line(f"indmlops images: building {', '.join(containers.IMAGES)} with {engine} "
                                "(scripts/build-images.sh)")
    res = containers.build(engine=engine)
    out = Path(option(pytestconfig, "reports_dir")) / "images"
    out.mkdir(parents=True, exist_ok=True)
    (out / "build.log").write_text(res.output)
    if res.returncode != 0:
        tail = "\n".join(res.output.splitlines()[-40:])
        pytest.fail(f"image build failed (exit {res.returncode}) after {res.seconds:.0f} s:\n{res.failing_step}\n"
                    f"full log: {out / 'build.log'}\n--- last lines ---\n{tail}", pytrace=False)
    if reporter and capman:
        with capman.global_and_fixture_disabled():
            sizes = ", ".join(f"{ref} {containers.image_size_mb(engine, ref)} MB" for ref in res.images)
            reporter.write_line(f"indmlops images: built in {res.seconds:.1f} s on {res.base}: {sizes}")
    return res
