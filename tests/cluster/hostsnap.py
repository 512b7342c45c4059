"""What a cluster could leave behind on the host, as comparable sets: processes, sysctls, links, iptables chains and
rules, mounts, paths. Counters the kernel moves by itself are learned (two readings apart) and left out."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from indmlops.targets.kubernetes.cluster.host import FIXED_PATHS, IPTABLES, TABLES, mounts_under

# The cluster's programs by name; any other process counts when its command line names the cluster's directory
# (containerd, its shims). Not runc or overlay mounts in general: Podman, on the same host, runs and mounts them.
NAMES = {"etcd", "kube-apiserver", "kube-controller", "kube-scheduler", "kubelet", "kube-proxy", "pause"}
# Where the cluster could leave a mount: its directory, the kubelet's and CNI's fixed paths, network namespaces,
# containerd's default places.
MOUNT_ROOTS = ("/run/netns", "/run/containerd", "/var/lib/containerd", *FIXED_PATHS)
VOLATILE_PREFIXES = ("kernel.random.", "fs.", "kernel.ns_last_pid", "net.netfilter.nf_conntrack_count",
                     "kernel.pty.nr", "kernel.tainted", "kernel.sched_domain")


def processes(cluster_dir: Path) -> set[str]:
    out = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            comm = (entry / "comm").read_text().strip()
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        if int(entry.name) != os.getpid() and (comm in NAMES or (str(cluster_dir) in cmd and "pytest" not in cmd)):
            out.add(f"{comm}: {cmd[:200]}")
    return out


def sysctls() -> dict[str, str]:
    out = {}
    for root, _dirs, files in os.walk("/proc/sys"):
        for f in files:
            path = os.path.join(root, f)
            key = path[len("/proc/sys/"):].replace("/", ".")
            if key.startswith(VOLATILE_PREFIXES):
                continue
            try:
                out[key] = Path(path).read_text().strip()
            except OSError:
                continue
    return out


def iptables() -> set[str]:
    out = set()
    for tool in IPTABLES:
        for table in TABLES:
            res = subprocess.run([f"{tool}-save", "-t", table], capture_output=True, text=True, check=False)
            for line in res.stdout.splitlines():
                if line.startswith("-A "):
                    out.add(f"{tool}/{table}: {line}")
                elif line.startswith(":"):
                    name, policy = line[1:].split()[:2]
                    if policy == "-":  # a user chain; built-in chains' policies are compared below
                        out.add(f"{tool}/{table}: chain {name}")
                    elif policy != "ACCEPT":
                        out.add(f"{tool}/{table}: policy {name} {policy}")
    return out


def snapshot(cluster_dir: Path) -> dict[str, set[str]]:
    netns = {str(p) for p in Path("/run/netns").glob("*")} if Path("/run/netns").is_dir() else set()
    return {
        "process": processes(cluster_dir),
        "sysctl": {f"{k}={v}" for k, v in sysctls().items()},
        "link": set(os.listdir("/sys/class/net")),
        "iptables": iptables(),
        "mount": set(mounts_under((str(cluster_dir), *MOUNT_ROOTS))),
        "path": {p for p in FIXED_PATHS if os.path.lexists(p)} | netns,
    }


def baseline(cluster_dir: Path) -> tuple[dict[str, set[str]], set[str]]:
    """The snapshot, and the sysctls that changed on their own between two readings a second apart."""
    first = snapshot(cluster_dir)
    time.sleep(1)
    second = snapshot(cluster_dir)
    moving = {item.split("=", 1)[0] for item in first["sysctl"] ^ second["sysctl"]}
    return second, moving


def differences(before: dict[str, set[str]], after: dict[str, set[str]], moving: set[str]) -> list[str]:
    out = []
    for kind in before:
        b, a = before[kind], after[kind]
        if kind == "sysctl":
            b = {i for i in b if i.split("=", 1)[0] not in moving}
            a = {i for i in a if i.split("=", 1)[0] not in moving}
        out += [f"{kind} added: {i}" for i in sorted(a - b)] + [f"{kind} gone: {i}" for i in sorted(b - a)]
    return out
