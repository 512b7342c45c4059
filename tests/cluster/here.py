"""Where the cluster tier's cluster lives, and who may run it."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from indmlops.paths import REPO_ROOT


def cluster_dir() -> Path:
    """One per clone, outside it (the kubelet and containerd keep sockets and mounts there)."""
    env = os.environ.get("INDMLOPS_CLUSTER_DIR")
    if env:
        return Path(env)
    key = hashlib.sha256(str(REPO_ROOT).encode()).hexdigest()[:12]
    return Path("/var/tmp") / f"indmlops-cluster-{key}"


def require_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("the cluster tier needs root (a bridge, iptables chains, mounts, containerd and the kubelet): "
                    "run `sudo ./lab test` or `sudo .venv/bin/pytest tests/cluster`")
