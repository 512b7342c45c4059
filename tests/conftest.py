"""Fixtures for the project's own tests: scratch stacks on their own ports and state directories."""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from indmlops.targets.local.layout import DEFAULT_PORTS, ports_from_environment, resolve_ports
from indmlops.targets.local.stack import LocalStack

# Scratch stacks get their own ports (offset from the defaults) so they never disturb the shared stack. Every
# port must stay below the kernel's ephemeral range (32768+): there a client socket of any process may hold it
# for a moment, which made a port-freedom assertion flaky. The highest default port is 29333, so offsets stay
# within 1000..3400 (25 stacks, cycled; a run uses about 15). An offset whose ports meet the session's own stack
# (INDMLOPS_PORT_OFFSET=2000 puts it at the 11th) is skipped: that stack runs while the scratch stacks start.
_session_ports = set((ports_from_environment() or DEFAULT_PORTS).values())
_offsets = itertools.cycle([o for o in range(1000, 3401, 100) if not _session_ports & set(resolve_ports(o).values())])


def scratch_dir() -> Path:
    # Not under tmp_path: /tmp/pytest-of-root is 0700, which the postgres and mosquitto users cannot traverse.
    d = Path(tempfile.mkdtemp(prefix="indmlops-test-", dir="/var/tmp"))
    d.chmod(0o755)
    return d


def _scratch_factory() -> Iterator:
    made: list[tuple[LocalStack, Path]] = []

    def make(**kwargs) -> LocalStack:
        d = scratch_dir()
        stack = LocalStack(d / "state", resolve_ports(next(_offsets)), **kwargs)
        made.append((stack, d))
        return stack

    yield make
    for stack, d in made:
        stack.down()
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def scratch_stack() -> Iterator:
    """Factory: LocalStack(services...) in a fresh state dir on fresh ports; torn down and removed after."""
    yield from _scratch_factory()


@pytest.fixture(scope="module")
def module_scratch_stack() -> Iterator:
    """The same factory for a module whose tests share one scratch stack (slow services such as MLflow + S3)."""
    yield from _scratch_factory()


@pytest.fixture
def stopped(target):
    """Context manager: stop a supervised service for the block, then start it and wait until it is ready."""
    return target.outage


@pytest.fixture(scope="session")
def is_root() -> bool:
    return os.geteuid() == 0
