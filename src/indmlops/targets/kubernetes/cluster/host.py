"""What the cluster changes on the host, written down before it changes it and put back on `down`: sysctls the
kubelet, kube-proxy and the CNI bridge set, links, iptables chains, mounts, directories outside the state dir.

The ledger (state/host.json) is written before the first change, so a `down` after a crash, a kill -9 or a reboot
of this process still knows what the host was like."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from indmlops.errors import IndMLOpsError
from indmlops.targets.kubernetes.cluster import NetworkPlan

# Written by kubelet (setupKernelTunables), kube-proxy (route_localnet, conntrack: its flags leave those alone),
# the CNI bridge (ip_forward) and up() itself (bridge netfilter, so pod -> ClusterIP -> pod on one bridge is NATed).
SYSCTLS = (
    "kernel.panic", "kernel.panic_on_oops", "kernel.keys.root_maxkeys", "kernel.keys.root_maxbytes",
    "vm.overcommit_memory", "vm.panic_on_oom", "net.ipv4.ip_forward", "net.ipv4.conf.all.forwarding",
    "net.ipv4.conf.all.route_localnet", "net.bridge.bridge-nf-call-iptables", "net.bridge.bridge-nf-call-ip6tables",
    "net.netfilter.nf_conntrack_max", "net.netfilter.nf_conntrack_tcp_timeout_established",
    "net.netfilter.nf_conntrack_tcp_timeout_close_wait", "net.ipv6.conf.all.forwarding",
)
# Paths the kubelet, kube-proxy, CNI and the hostpath provisioner use whatever their flags say (hard-coded in 1.20).
FIXED_PATHS = ("/var/lib/kubelet", "/var/log/pods", "/var/log/containers", "/tmp/hostpath_pv", "/var/lib/cni",
               "/etc/cni", "/opt/cni", "/run/flannel", "/var/lib/dockershim", "/etc/kubernetes")
# Chains of these prefixes that were not there before `up` are the cluster's: kubelet and kube-proxy (KUBE-), the
# egress guard (INDMLOPS-). Not CNI-: Podman's networks use that prefix too, and the cluster's bridge makes none
# (no masquerading; portmap's hostPort chains go with each pod's CNI teardown).
CHAIN_PREFIXES = ("KUBE-", "INDMLOPS-")
IPTABLES = ("iptables", "ip6tables")
TABLES = ("filter", "nat", "mangle", "raw")
EGRESS_CHAIN = "INDMLOPS-K8S-EGRESS"

Progress = Callable[[str], None]


class HostError(IndMLOpsError):
    """The host could not be prepared or put back; the message says which change and what to do by hand."""


def sysctl_path(key: str) -> Path:
    return Path("/proc/sys") / key.replace(".", "/")


def read_sysctls(keys: tuple[str, ...] = SYSCTLS) -> dict[str, str]:
    out = {}
    for key in keys:
        try:
            out[key] = sysctl_path(key).read_text().strip()
        except OSError:
            continue  # not on this kernel (no br_netfilter, no conntrack yet): nothing to restore
    return out


def write_sysctl(key: str, value: str) -> None:
    sysctl_path(key).write_text(value + "\n")


def links() -> set[str]:
    return set(os.listdir("/sys/class/net"))


def run(argv: list[str], check: bool = True) -> subprocess.CompletedProcess:
    res = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    if check and res.returncode != 0:
        raise HostError(f"`{' '.join(argv)}` failed (exit {res.returncode}): {res.stderr.strip()}")
    return res


def chains(tool: str) -> dict[str, list[str]]:
    """table -> chain names, from `<tool>-save` (no chain when the tool is absent)."""
    if shutil.which(tool) is None:
        return {}
    out: dict[str, list[str]] = {}
    for table in TABLES:
        res = run([f"{tool}-save", "-t", table], check=False)
        if res.returncode == 0:
            out[table] = sorted(line[1:].split()[0] for line in res.stdout.splitlines() if line.startswith(":"))
    return out


def mounts_under(roots: tuple[str, ...]) -> list[str]:
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if any(point == r or point.startswith(r.rstrip("/") + "/") for r in roots):
            found.append(point)
    return found


@dataclass
class Ledger:
    sysctls: dict[str, str] = field(default_factory=dict)
    links: list[str] = field(default_factory=list)
    chains: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    absent_paths: list[str] = field(default_factory=list)

    @classmethod
    def take(cls) -> Ledger:
        return cls(read_sysctls(), sorted(links()), {t: chains(t) for t in IPTABLES},
                   [p for p in FIXED_PATHS if not os.path.lexists(p)])

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=1))

    @classmethod
    def load(cls, path: Path) -> Ledger:
        return cls(**json.loads(path.read_text()))


def prepare_network(plan: NetworkPlan) -> None:
    """The node bridge with the node IP, bridge netfilter on, and the egress guard: pods reach pods, Services and
    the node, and nothing beyond (no route out of this machine, the cloud metadata address included)."""
    if not Path(f"/sys/class/net/{plan.node_bridge}").exists():
        run(["ip", "link", "add", plan.node_bridge, "type", "bridge"])
    have = run(["ip", "-o", "-4", "addr", "show", "dev", plan.node_bridge]).stdout
    if f" {plan.node_ip}/" not in have:
        run(["ip", "addr", "add", f"{plan.node_ip}/{plan.node_prefix}", "dev", plan.node_bridge])
    run(["ip", "link", "set", plan.node_bridge, "up"])
    if not sysctl_path("net.bridge.bridge-nf-call-iptables").exists():
        run(["modprobe", "br_netfilter"], check=False)
    if not sysctl_path("net.bridge.bridge-nf-call-iptables").exists():
        raise HostError("net.bridge.bridge-nf-call-iptables is missing (module br_netfilter not loaded, and "
                        "`modprobe br_netfilter` failed): pods could not reach Services on the pod bridge")
    write_sysctl("net.bridge.bridge-nf-call-iptables", "1")
    write_sysctl("net.ipv4.ip_forward", "1")
    if run(["iptables", "-t", "filter", "-nL", EGRESS_CHAIN], check=False).returncode != 0:
        run(["iptables", "-t", "filter", "-N", EGRESS_CHAIN])
        # Destinations the cluster owns pass; everything else a pod sends through this host is dropped.
        run(["iptables", "-A", EGRESS_CHAIN, "-d", plan.cluster_cidr, "-j", "RETURN"])
        run(["iptables", "-A", EGRESS_CHAIN, "-d", plan.service_cidr, "-j", "RETURN"])
        run(["iptables", "-A", EGRESS_CHAIN, "-d", f"{plan.node_ip}/{plan.node_prefix}", "-j", "RETURN"])
        run(["iptables", "-A", EGRESS_CHAIN, "-j", "DROP"])
    guard = ["FORWARD", "-s", plan.cluster_cidr, "-j", EGRESS_CHAIN]
    if run(["iptables", "-C", *guard], check=False).returncode != 0:
        run(["iptables", "-I", *guard])


def _master(link: str) -> str | None:
    target = Path(f"/sys/class/net/{link}/master")
    return os.path.basename(os.readlink(target)) if target.is_symlink() else None


def restore(ledger: Ledger, bridges: tuple[str, ...], state_roots: tuple[str, ...], progress: Progress) -> list[str]:
    """Put the host back as the ledger found it. Returns what could not be undone (each with its reason)."""
    left: list[str] = []
    for point in sorted(mounts_under(state_roots + tuple(ledger.absent_paths) + ("/run/netns",)),
                        key=len, reverse=True):
        if point.startswith("/run/netns") and not Path(point).name.startswith("cni-"):
            continue
        res = run(["umount", "-l", point], check=False)
        if res.returncode != 0:
            left.append(f"mount {point}: {res.stderr.strip()}")
    new = links() - set(ledger.links)
    # A pod's host-side veth is ours when it hangs on our pod bridge; the bridges go after their ports.
    ports = [n for n in new if _master(n) in bridges]
    for name in ports + sorted(n for n in new if n in bridges):
            res = run(["ip", "link", "del", name], check=False)
            if res.returncode != 0 and Path(f"/sys/class/net/{name}").exists():
                left.append(f"link {name}: {res.stderr.strip()}")
    for tool, before in ledger.chains.items():
        left += _drop_chains(tool, before)
    for key, value in ledger.sysctls.items():
        try:
            if sysctl_path(key).read_text().strip() != value:
                write_sysctl(key, value)
        except OSError as exc:
            left.append(f"sysctl {key}={value}: {exc}")
    for path in ledger.absent_paths:
        if os.path.lexists(path):
            shutil.rmtree(path, ignore_errors=True) if os.path.isdir(path) else os.unlink(path)
            if os.path.lexists(path):
                left.append(f"directory {path}: could not be removed")
    for ns in Path("/run/netns").glob("cni-*") if Path("/run/netns").is_dir() else []:
        ns.unlink(missing_ok=True)
    if left:
        progress("could not restore: " + "; ".join(left))
    return left


_JUMP = re.compile(r"(?:-j|-g|--jump|--goto) (\S+)")


def _drop_chains(tool: str, before: dict[str, list[str]]) -> list[str]:
    """Delete every rule that jumps to a chain of ours that is new, then flush and delete those chains."""
    left: list[str] = []
    if shutil.which(tool) is None:
        return left
    for table, known in before.items():
        res = run([f"{tool}-save", "-t", table], check=False)
        if res.returncode != 0:
            continue
        lines = res.stdout.splitlines()
        present = [ln[1:].split()[0] for ln in lines if ln.startswith(":")]
        ours = [c for c in present if c.startswith(CHAIN_PREFIXES) and c not in known]
        if not ours:
            continue
        for ln in lines:
            if not ln.startswith("-A "):
                continue
            m = _JUMP.search(ln)
            chain = ln.split()[1]
            if chain not in ours and m and m.group(1) in ours:
                run([tool, "-t", table, "-D", *shlex.split(ln)[1:]], check=False)
        for chain in ours:
            run([tool, "-t", table, "-F", chain], check=False)
        for chain in ours:
            res2 = run([tool, "-t", table, "-X", chain], check=False)
            if res2.returncode != 0:
                left.append(f"{tool} chain {table}/{chain}: {res2.stderr.strip()}")
    return left
