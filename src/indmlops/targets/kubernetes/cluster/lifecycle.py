"""`indmlops cluster up | down | status`: the single-node cluster's life, from built binaries to a Ready node and
back to a host as it was found."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import requests
import urllib3

from indmlops.errors import IndMLOpsError
from indmlops.paths import REPO_ROOT
from indmlops.targets.kubernetes.cluster import NODE_NAME, PLAN, NetworkPlan, host, images, pki, processes
from indmlops.targets.kubernetes.cluster.components import Component, Layout, components, write_configs
from indmlops.targets.kubernetes.portforward import kubectl_binary

Progress = Callable[[str], None]
BUILD_SCRIPT = REPO_ROOT / "scripts" / "build-kubernetes.sh"
READY_TIMEOUT = 120.0  # a cold start on two busy cores: API ~10 s, node Ready ~30 s; 4x margin
STOP_ORDER = ("kube-controller-manager", "kube-scheduler", "volume-provisioner", "cluster-dns", "kube-proxy",
              "kubelet", "kube-apiserver", "etcd", "containerd")
# What each tool's absence means, and the Debian package that brings it.
RUNTIME_TOOLS = {"etcd": "etcd-server", "containerd": "containerd", "ctr": "containerd", "runc": "runc",
                 "iptables": "iptables", "ip": "iproute2", "mount": "mount"}
CNI_PLUGINS = ("bridge", "host-local", "portmap", "loopback")
# Wiped by `down`: the cluster's objects, pods, addresses and volumes. Kept: certificates, images, logs.
RESET = ("etcd", "kubelet", "cni/ipam", "containerd/state", "volumes")


class ClusterError(IndMLOpsError):
    """The cluster could not be built, started, reached or stopped; the message says which part and what to do."""


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    pid: int | None
    healthy: bool
    detail: str


def default_state_dir() -> Path:
    env = os.environ.get("INDMLOPS_CLUSTER_DIR")
    return Path(env) if env else Path("/var/lib/indmlops-cluster")


class SingleNodeCluster:
    def __init__(self, state_dir: Path | None = None, plan: NetworkPlan = PLAN, progress: Progress = print) -> None:
        self.layout = Layout((state_dir or default_state_dir()).resolve())
        self.plan, self.progress = plan, progress

    @property
    def kubeconfig(self) -> Path:
        return self.layout.kubeconfig

    @property
    def ledger_path(self) -> Path:
        return self.layout.root / "host.json"

    # --- up ------------------------------------------------------------------------------------------------------

    def up(self, timeout: float = READY_TIMEOUT) -> float:
        """Start what is not running and wait until the node is Ready. Returns the seconds it took."""
        start = time.monotonic()
        self._require_root()
        self._require_tools()
        bin_dir = self._binaries()
        t0 = time.monotonic()  # `timeout` is for starting: a first build alone takes minutes
        self.layout.root.mkdir(parents=True, exist_ok=True)
        self.layout.root.chmod(0o700)
        if not self.ledger_path.exists():  # before the first change: what to put back
            host.Ledger.take().save(self.ledger_path)
        comps = components(self.plan, self.layout, bin_dir, sys.executable)
        self._check_ports([c for c in comps if processes.running(c.name, self.layout.run) is None])
        try:
            host.prepare_network(self.plan)
            pki.ensure(self.layout.pki, self.plan)
            self._write_kubeconfigs()
            write_configs(self.plan, self.layout)
            for comp in comps:
                self._start(comp, t0, timeout)
                if comp.name == "containerd":
                    images.ensure_pause(bin_dir / "pause", self.layout, self.progress)
                if comp.name == "kube-proxy":
                    self._bootstrap_objects()
            self._wait_node_ready(t0, timeout)
        except BaseException:
            self.progress(f"cluster up failed; logs in {self.layout.logs}; `indmlops cluster down` puts the host "
                          "back")
            raise
        took = time.monotonic() - t0
        built = f" (+{t0 - start:.0f} s to find or build the binaries)" if t0 - start >= 1 else ""
        self.progress(f"node {NODE_NAME} Ready in {took:.1f} s{built}; kubeconfig {self.kubeconfig} "
                      f"(kubectl --kubeconfig {self.kubeconfig} get nodes)")
        return took

    def _require_root(self) -> None:
        if os.geteuid() != 0:
            raise ClusterError("the cluster needs root: it creates a bridge, iptables chains and mounts, and runs "
                               "containerd and the kubelet; run `sudo indmlops cluster up`")

    def _require_tools(self) -> None:
        missing = sorted({pkg for tool, pkg in RUNTIME_TOOLS.items() if shutil.which(tool) is None}
                         | {"containernetworking-plugins" for p in CNI_PLUGINS if not Path("/usr/lib/cni", p).exists()})
        if missing:
            raise ClusterError(f"missing Debian packages for the cluster: {' '.join(missing)} (install them with "
                               f"`apt-get install {' '.join(missing)}` or scripts/install-system-packages.sh)")

    def _binaries(self) -> Path:
        """Built once per recipe (scripts/build-kubernetes.sh); the build's progress lines pass through."""
        proc = subprocess.Popen(["bash", str(BUILD_SCRIPT), "--print-dir"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        assert proc.stderr is not None and proc.stdout is not None
        for line in proc.stderr:
            self.progress(line.rstrip())
        out = proc.stdout.read().strip()
        if proc.wait() != 0:
            what = {3: "a build tool is missing (named above)"}.get(proc.returncode, "the build failed (see above)")
            raise ClusterError(f"Kubernetes server binaries: {what}; scripts/build-kubernetes.sh exit "
                               f"{proc.returncode}")
        return Path(out.splitlines()[-1])

    def _check_ports(self, to_start: list[Component]) -> None:
        names = {c.name for c in to_start}
        wanted = [("127.0.0.1", self.plan.etcd_client_port, "etcd"), ("127.0.0.1", self.plan.etcd_peer_port, "etcd"),
                  ("127.0.0.1", 10257, "kube-controller-manager"), ("127.0.0.1", 10259, "kube-scheduler"),
                  ("127.0.0.1", 10248, "kubelet"), ("127.0.0.1", 10249, "kube-proxy"),
                  ("127.0.0.1", 10256, "kube-proxy")]
        for addr, port, owner in wanted:
            if owner not in names:
                continue
            with socket.socket() as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    s.bind((addr, port))
                except OSError:
                    raise ClusterError(f"port {addr}:{port} (for {owner}) is in use by another process: find it "
                                       f"with `ss -ltnp 'sport = :{port}'`") from None

    def _write_kubeconfigs(self) -> None:
        cfg = self.layout.config
        cfg.mkdir(parents=True, exist_ok=True)
        url = self.plan.api_url
        for ident, file in (("controller-manager", "controller-manager"), ("scheduler", "scheduler"),
                            ("kube-proxy", "kube-proxy"), ("kubelet-client", "kubelet"), ("dns", "dns"),
                            ("provisioner", "provisioner")):
            (cfg / f"{file}.kubeconfig").write_text(pki.kubeconfig(self.layout.pki, ident, url))
        self.kubeconfig.write_text(pki.kubeconfig(self.layout.pki, "admin", url))
        self.kubeconfig.chmod(0o600)

    def _start(self, comp: Component, t0: float, timeout: float) -> None:
        if processes.running(comp.name, self.layout.run) is not None:
            self.progress(f"{comp.name}: already running")
            return
        started = time.monotonic()
        processes.start(comp.name, comp.argv, comp.env, self.layout.run, self.layout.logs)
        if comp.health == "node":
            time.sleep(0.5)
            if processes.running(comp.name, self.layout.run) is None:
                raise ClusterError(f"{comp.name} exited at once: {self._log_tail(comp.name)}")
            self.progress(f"{comp.name}: started")
            return
        while not self._healthy(comp):
            if processes.running(comp.name, self.layout.run) is None:
                raise ClusterError(f"{comp.name} exited: {self._log_tail(comp.name)}")
            if time.monotonic() - t0 > timeout:
                raise ClusterError(f"{comp.name} did not answer {comp.health} within {timeout:.0f} s of `up`: "
                                   f"{self._log_tail(comp.name)}")
            time.sleep(0.3)
        self.progress(f"{comp.name}: ready in {time.monotonic() - started:.1f} s")

    def _healthy(self, comp: Component) -> bool:
        if comp.health == "node":
            return processes.running(comp.name, self.layout.run) is not None
        if comp.health.startswith("socket:"):
            return _socket_answers(comp.health.removeprefix("socket:"))
        try:
            r = requests.get(comp.health, timeout=2, **self._tls(comp.health))
        except (requests.RequestException, OSError):
            return False
        return r.status_code == 200

    def _tls(self, url: str) -> dict:
        pk = self.layout.pki
        if url.startswith(self.plan.api_url):
            return {"verify": str(pk / "ca.crt"), "cert": (str(pk / "admin.crt"), str(pk / "admin.key"))}
        if url.startswith("https://127.0.0.1"):  # the components' own self-signed serving certificates
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
            return {"verify": False}
        return {}

    def _log_tail(self, name: str, lines: int = 8) -> str:
        log = self.layout.logs / f"{name}.log"
        try:
            tail = log.read_text(errors="replace").strip().splitlines()[-lines:]
        except OSError:
            return f"no log ({log})"
        return " | ".join(tail) + f" (log: {log})"

    def _bootstrap_objects(self) -> None:
        """The default StorageClass (kind's name, `standard`, served by the volume provisioner), and what the cluster
        DNS and the provisioner may read and write."""
        res = subprocess.run([kubectl_binary(), "--kubeconfig", str(self.kubeconfig), "apply", "-f", "-"],
                             input=BOOTSTRAP, capture_output=True, text=True, timeout=60, check=False)
        if res.returncode != 0:
            raise ClusterError(f"the cluster's own objects could not be applied: {res.stderr.strip()}")

    def _wait_node_ready(self, t0: float, timeout: float) -> None:
        last = "not registered"
        while time.monotonic() - t0 < timeout:
            last = self.node_condition()
            if last == "Ready":
                return
            time.sleep(1)
        raise ClusterError(f"node {NODE_NAME} not Ready within {timeout:.0f} s of `up` (last: {last}); "
                           f"kubelet: {self._log_tail('kubelet', 4)}")

    def node_condition(self) -> str:
        url = f"{self.plan.api_url}/api/v1/nodes/{NODE_NAME}"
        if not (self.layout.pki / "ca.crt").exists():
            return "API unreachable (no cluster made in this directory yet)"
        try:
            r = requests.get(url, timeout=5, **self._tls(url))
        except (requests.RequestException, OSError) as exc:
            return f"API unreachable ({type(exc).__name__})"
        if r.status_code == 404:
            return "not registered"
        if r.status_code != 200:
            return f"API answered {r.status_code}"
        for cond in r.json().get("status", {}).get("conditions", []):
            if cond.get("type") == "Ready":
                return "Ready" if cond.get("status") == "True" else f"NotReady ({cond.get('message', '')})"
        return "no Ready condition"

    # --- down ----------------------------------------------------------------------------------------------------

    def down(self, purge: bool = False) -> list[str]:
        """Stop everything `up` started and put the host back; `purge` also removes the state directory
        (certificates, images, logs). Returns what could not be undone."""
        self._require_root()
        t0 = time.monotonic()
        run = self.layout.run
        if not self.ledger_path.exists() and not any(processes.running(n, run) for n in STOP_ORDER):
            self.progress(f"no cluster running in {self.layout.root}: nothing to stop")
            if purge:
                shutil.rmtree(self.layout.root, ignore_errors=True)
            return []
        for name in ("kube-controller-manager", "kube-scheduler"):  # nothing recreates or reschedules pods now
            processes.stop(name, run)
        self._remove_containers()
        for name in STOP_ORDER:
            if processes.stop(name, run):
                self.progress(f"{name}: stopped")
        shims = processes.with_argument(str(self.layout.containerd_sock))
        # Containers of a containerd that died: their shims still run them.
        stuck = processes.kill_all(processes.descendants(shims) + shims)
        left = [f"process {pid} (killed, not gone after 10 s)" for pid in stuck]
        if self.ledger_path.exists():
            left += host.restore(host.Ledger.load(self.ledger_path), (self.plan.pod_bridge, self.plan.node_bridge),
                                 (str(self.layout.root),), self.progress)
            if not left:
                self.ledger_path.unlink()
        for part in RESET:
            shutil.rmtree(self.layout.root / part, ignore_errors=True)
        if purge and not left:
            shutil.rmtree(self.layout.root, ignore_errors=True)
        self.progress(f"cluster down in {time.monotonic() - t0:.1f} s" + (f"; left: {left}" if left else
                      "; host as it was found"))
        return left

    def _remove_containers(self) -> None:
        """Every pod's containers and sandbox, through containerd while it runs (its CNI teardown frees the
        addresses and veths); whatever is left after 30 s is killed below."""
        if processes.running("containerd", self.layout.run) is None:
            return
        ctr = ["ctr", "--address", str(self.layout.containerd_sock), "--namespace", "k8s.io"]
        api_up = not self.node_condition().startswith("API unreachable")
        if processes.running("kubelet", self.layout.run) is not None and api_up:
            subprocess.run([kubectl_binary(), "--kubeconfig", str(self.kubeconfig), "delete", "pods", "--all",
                            "--all-namespaces", "--grace-period=0", "--force", "--wait=false"],
                           capture_output=True, text=True, timeout=60, check=False)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and _lines(ctr + ["tasks", "ls", "-q"]):
                time.sleep(1)
        for task in _lines(ctr + ["tasks", "ls", "-q"]):
            subprocess.run(ctr + ["tasks", "kill", "-s", "SIGKILL", task], capture_output=True, timeout=30)
            subprocess.run(ctr + ["tasks", "delete", "-f", task], capture_output=True, timeout=30)
        for cont in _lines(ctr + ["containers", "ls", "-q"]):
            subprocess.run(ctr + ["containers", "delete", cont], capture_output=True, timeout=30)

    # --- status --------------------------------------------------------------------------------------------------

    def host_pids(self) -> list[int]:
        """The cluster's processes on this host: its control plane, containerd and the kubelet, and every pod."""
        from indmlops.targets.kubernetes.hostpids import pod_pids

        plane = [processes.running(c.name, self.layout.run)
                 for c in components(self.plan, self.layout, Path("/"), sys.executable)]
        return [p for p in plane if p is not None] + pod_pids()

    def status(self) -> list[ComponentStatus]:
        comps = components(self.plan, self.layout, Path("/"), sys.executable)
        out = []
        for comp in comps:
            pid = processes.running(comp.name, self.layout.run)
            healthy = pid is not None and self._healthy(comp)
            detail = ("not running" if pid is None else "answers" if healthy else
                      f"running, {comp.health} does not answer")
            out.append(ComponentStatus(comp.name, pid, healthy, detail))
        node = self.node_condition() if out[1].healthy else "API not running"
        out.append(ComponentStatus(f"node/{NODE_NAME}", None, node == "Ready", node))
        return out


def _socket_answers(path: str) -> bool:
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(1)
        try:
            s.connect(path)
        except OSError:
            return False
    return True


def _lines(argv: list[str]) -> list[str]:
    res = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    return res.stdout.split() if res.returncode == 0 else []


def render_status(rows: list[ComponentStatus]) -> str:
    width = max(len(r.name) for r in rows)
    return "\n".join(f"{r.name:<{width}}  {'ok ' if r.healthy else 'NO '} "
                     f"{'pid ' + str(r.pid) if r.pid else '':<10} {r.detail}" for r in rows)


BOOTSTRAP = """\
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: standard
  annotations: {storageclass.kubernetes.io/is-default-class: "true"}
provisioner: indmlops.io/hostpath
reclaimPolicy: Delete
volumeBindingMode: Immediate
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "indmlops:cluster-dns"}
rules:
- apiGroups: [""]
  resources: [services, endpoints]
  verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "indmlops:cluster-dns"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "indmlops:cluster-dns"}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: indmlops-cluster-dns}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "indmlops:volume-provisioner"}
rules:
- apiGroups: [""]
  resources: [persistentvolumeclaims]
  verbs: [get, list, watch]
- apiGroups: [""]
  resources: [persistentvolumes]
  verbs: [get, list, watch, create, delete]
- apiGroups: [storage.k8s.io]
  resources: [storageclasses]
  verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "indmlops:volume-provisioner"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "indmlops:volume-provisioner"}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: indmlops-volume-provisioner}
"""
