"""The processes of a Kubernetes target that run on this host: what the host check must count as the stack's own.

On this machine's cluster (`indmlops cluster`) the control plane runs as host processes and every pod in a
`kubepods` cgroup; a kind cluster's nodes are containers on this host whose init process heads all they run.
Counted as ours, their CPU and writes cannot excuse the stack's own slowness as "other work on the host". A
cluster elsewhere (`--target kubeconfig`) runs on other machines: nothing of it is here to count.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


def _kubepods_dirs(root: Path) -> list[Path]:
    # cgroup v2: /sys/fs/cgroup/kubepods*; v1: one hierarchy per controller, /sys/fs/cgroup/<controller>/kubepods*
    # (the cgroupfs driver's `kubepods`, the systemd driver's `kubepods.slice`). One v1 hierarchy that has it is
    # enough: a pod's processes are in every controller's tree alike.
    direct = sorted(root.glob("kubepods*"))
    if direct:
        return direct
    for controller in ("pids", "cpu,cpuacct", "cpu", "memory", "freezer"):
        found = sorted((root / controller).glob("kubepods*"))
        if found:
            return found
    return []


def pod_pids(root: Path = CGROUP_ROOT) -> list[int]:
    """Every pid in a pod's cgroup on this host (empty when the kubelet here runs no pod, or reads fail)."""
    pids: set[int] = set()
    for top in _kubepods_dirs(root):
        for procs in top.rglob("cgroup.procs"):
            try:
                pids.update(int(p) for p in procs.read_text().split())
            except (OSError, ValueError):
                continue  # a pod gone between the walk and the read
    return sorted(pids)


def container_init_pids(engine: str, names: Iterable[str]) -> list[int]:
    """The host pid of each running container's init (`docker|podman inspect`), for kind's node containers."""
    out = []
    for name in names:
        try:
            done = subprocess.run([engine, "inspect", "--format", "{{.State.Pid}}", name], capture_output=True,
                                  text=True, timeout=20, check=False)
        except (OSError, subprocess.TimeoutExpired):
            continue
        text = done.stdout.strip()
        if done.returncode == 0 and text.isdigit() and int(text) > 0:
            out.append(int(text))
    return out
