"""`indmlops cluster up` gives a Ready node that runs pods with claims, Services and names; `down` leaves the host
exactly as it was found, also after every component was killed."""

from __future__ import annotations

import signal
import subprocess
import time

import hostsnap
import pytest
from dnslib import QTYPE, RCODE, DNSRecord
from here import cluster_dir, require_root

from indmlops.targets.kubernetes.cluster import NODE_NAME, PLAN
from indmlops.targets.kubernetes.cluster.components import PAUSE_IMAGE
from indmlops.targets.kubernetes.cluster.lifecycle import STOP_ORDER, SingleNodeCluster
from indmlops.targets.kubernetes.cluster.processes import running, signal_group
from indmlops.targets.kubernetes.portforward import kubectl_binary

pytestmark = pytest.mark.cluster

WORKLOAD = f"""
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: data, namespace: default}}
spec: {{accessModes: [ReadWriteOnce], resources: {{requests: {{storage: 10Mi}}}}}}
---
apiVersion: v1
kind: Pod
metadata: {{name: sleeper, namespace: default, labels: {{app: sleeper}}}}
spec:
  containers:
  - {{name: c, image: "{PAUSE_IMAGE}", imagePullPolicy: Never, volumeMounts: [{{name: d, mountPath: /data}}]}}
  volumes: [{{name: d, persistentVolumeClaim: {{claimName: data}}}}]
---
apiVersion: v1
kind: Service
metadata: {{name: sleeper, namespace: default}}
spec: {{selector: {{app: sleeper}}, ports: [{{port: 80}}]}}
"""


def kubectl(cluster: SingleNodeCluster, *args: str, stdin: str | None = None) -> str:
    res = subprocess.run([kubectl_binary(), "--kubeconfig", str(cluster.kubeconfig), *args], input=stdin,
                         capture_output=True, text=True, timeout=60, check=False)
    assert res.returncode == 0, f"kubectl {' '.join(args)}: {res.stderr}"
    return res.stdout


def wait_for(what: str, probe, timeout: float = 90.0) -> str:
    deadline, last = time.monotonic() + timeout, ""
    while time.monotonic() < deadline:
        last = probe()
        if last.startswith("ok"):
            return last
        time.sleep(1)
    pytest.fail(f"{what} not reached within {timeout:.0f} s; last seen: {last}")


def dns(name: str) -> DNSRecord:
    return DNSRecord.parse(DNSRecord.question(name).send(PLAN.node_ip, 53, timeout=3))


def run_workload(cluster: SingleNodeCluster) -> None:
    kubectl(cluster, "apply", "-f", "-", stdin=WORKLOAD)

    def pod_state() -> str:
        out = kubectl(cluster, "get", "pod", "sleeper", "-o",
                      "jsonpath={.status.phase} {.status.podIP} {.spec.nodeName}").split()
        return f"ok {out}" if out[:1] == ["Running"] and len(out) == 3 else f"{out}"
    wait_for("pod default/sleeper Running with an IP", pod_state)
    phase = kubectl(cluster, "get", "pvc", "data", "-o", "jsonpath={.status.phase}")
    assert phase == "Bound", f"PersistentVolumeClaim default/data: expected Bound (hostpath provisioner), got {phase}"
    ip = kubectl(cluster, "get", "svc", "sleeper", "-o", "jsonpath={.spec.clusterIP}")

    def answered() -> str:
        reply = dns("sleeper.default.svc.cluster.local")
        got = [str(r.rdata) for r in reply.rr if r.rtype == QTYPE.A]
        return f"ok {got}" if got == [ip] else f"rcode {RCODE.get(reply.header.rcode)} answers {got}"
    wait_for(f"cluster DNS answering sleeper.default.svc.cluster.local with {ip}", answered, 15)
    outside = dns("example.com")
    assert outside.header.rcode == RCODE.NXDOMAIN and not outside.rr, \
        f"cluster DNS for a name outside the cluster: expected NXDOMAIN at once (nothing forwarded), got {outside}"


def test_cluster_up_runs_pods_and_down_leaves_the_host_as_found():
    require_root()
    where = cluster_dir()
    before, moving = hostsnap.baseline(where)
    cluster = SingleNodeCluster(where, progress=lambda m: print(f"cluster: {m}", flush=True))
    try:
        took = cluster.up()
        print(f"node Ready in {took:.1f} s")
        assert cluster.node_condition() == "Ready"
        rows = {r.name: r for r in cluster.status()}
        assert all(r.healthy for r in rows.values()), f"indmlops cluster status: {rows}"
        run_workload(cluster)
    finally:
        left = cluster.down(purge=True)
    assert left == [], f"indmlops cluster down could not undo: {left}"
    diff = hostsnap.differences(before, hostsnap.snapshot(where), moving)
    assert not diff, "the host differs after `indmlops cluster down`:\n" + "\n".join(diff)
    assert not where.exists(), f"`down --purge` left the state directory {where}"


def test_down_after_every_component_was_killed_still_restores_the_host():
    """A crash (or kill -9 of the whole tree) leaves pods' containers, mounts, veths and chains behind: `down`
    must find and remove them from its ledger and the containerd socket alone."""
    require_root()
    where = cluster_dir()
    before, moving = hostsnap.baseline(where)
    cluster = SingleNodeCluster(where, progress=lambda m: print(f"cluster: {m}", flush=True))
    try:
        cluster.up()
        run_workload(cluster)
        for name in STOP_ORDER:
            pid = running(name, cluster.layout.run)
            if pid is not None:
                signal_group(pid, signal.SIGKILL)
        time.sleep(1)
        assert cluster.node_condition().startswith("API unreachable"), "the API still answers after kill -9"
    finally:
        left = cluster.down(purge=True)
    assert left == [], f"indmlops cluster down could not undo: {left}"
    diff = hostsnap.differences(before, hostsnap.snapshot(where), moving)
    assert not diff, "the host differs after a crash and `indmlops cluster down`:\n" + "\n".join(diff)
    assert NODE_NAME  # the node is named in every message above
