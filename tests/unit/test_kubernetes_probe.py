"""Probe pods and the enforcement canary of KubernetesTarget against a fake API server with a fake network."""

from __future__ import annotations

import json
import shlex

import pytest
from kube_fake import CONTEXT, target_at
from kube_probe_fake import FakeProbeCluster

from indmlops.errors import ImageNotLoaded, IsolationNotEnforced, KubernetesError, RbacForbidden
from indmlops.targets.base import Peer, ProbeRequest
from indmlops.targets.kubernetes import probe_pods as kube_probe

MLFLOW = Peer("it-core/mlflow", "it-core", (("app.kubernetes.io/name", "mlflow"),))
POSTGRES = Peer("it-core/postgres", "it-core", (("app.kubernetes.io/name", "postgres"),))
SIMULATOR = Peer("ot-edge/simulator", "ot-edge", (("app.kubernetes.io/name", "simulator"),))
ELSEWHERE = Peer("cluster/other-namespace-pod", "indmlops-elsewhere")


def policy_network(cluster_ref: list[FakeProbeCluster]):
    """Only MLflow reaches PostgreSQL; a namespace with any NetworkPolicy admits nothing (the canary's deny-all)."""
    def reach(labels, ns, host, port, proto):
        cluster = cluster_ref[0]
        dst_ns = next((k[0] for k, p in cluster.pods.items() if p["status"].get("podIP") == host), None)
        if dst_ns in cluster.policies:
            return False, "timeout"
        if host == "10.244.1.5" and port == 5432:
            return (True, "connected") if labels.get("app.kubernetes.io/name") == "mlflow" else (False, "timeout")
        return True, "connected"
    return reach


@pytest.fixture
def fake(httpserver):
    ref: list[FakeProbeCluster] = []
    cluster = FakeProbeCluster(httpserver, policy_network(ref))
    ref.append(cluster)
    cluster.add_workload_pod("it-core", "postgres-0", {"app.kubernetes.io/name": "postgres"}, "10.244.1.5")
    return cluster


@pytest.fixture
def kube(fake, httpserver, tmp_path):
    lines: list[str] = []
    with target_at(httpserver, tmp_path, protocol_probes=False, progress=lines.append) as t:
        t.progress_lines = lines
        yield t


def test_probe_runs_as_the_source_workload_and_reports_each_flow(kube, fake):
    results = kube.probe([ProbeRequest(MLFLOW, POSTGRES, 5432), ProbeRequest(SIMULATOR, POSTGRES, 5432)], 2.0)
    assert [(r.reachable, r.outcome.split()[0], r.address) for r in results] == [
        (True, "connected", "10.244.1.5"), (False, "timeout", "10.244.1.5")]
    by_ns = {p["metadata"]["namespace"]: p for p in fake.created_pods}
    mlflow_probe = by_ns["it-core"]
    labels = mlflow_probe["metadata"]["labels"]
    assert labels["app.kubernetes.io/name"] == "mlflow" and kube_probe.PROBE_LABEL in labels
    assert by_ns["ot-edge"]["metadata"]["labels"]["app.kubernetes.io/name"] == "simulator"
    spec = mlflow_probe["spec"]
    container = spec["containers"][0]
    # Never Ready (so never a Service endpoint), controlled by a ConfigMap (so no ReplicaSet adopts it).
    assert container["readinessProbe"] == {"exec": {"command": ["false"]}, "periodSeconds": 300}
    owner = mlflow_probe["metadata"]["ownerReferences"][0]
    assert owner["kind"] == "ConfigMap" and owner["controller"] is True
    assert spec["securityContext"]["runAsNonRoot"] and container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container["image"] == kube_probe.PROBE_IMAGE and container["args"][-1] == "10.244.1.5:5432/TCP"
    # The run's owners are deleted (and with them its pods): nothing is left behind.
    assert sorted(ns for ns, _ in fake.deleted_config_maps) == ["it-core", "ot-edge"]
    assert not [k for k in fake.pods if k[1].startswith("indmlops-probe-")]
    assert any("2 probe pod(s) finished" in line for line in kube.progress_lines)


def test_probe_from_a_namespace_the_manifests_lack_creates_and_removes_it(kube, fake):
    [result] = kube.probe([ProbeRequest(ELSEWHERE, POSTGRES, 5432)], 2.0)
    assert result.reachable is False
    assert fake.created_namespaces == ["indmlops-elsewhere"] and fake.deleted_namespaces == ["indmlops-elsewhere"]
    created = next(p for p in fake.created_pods if p["metadata"]["namespace"] == "indmlops-elsewhere")
    assert set(created["metadata"]["labels"]) == {kube_probe.PROBE_LABEL}


def test_destination_without_a_running_pod_is_unknown_with_how_to_look(kube, fake):
    grafana = Peer("governance/grafana", "governance", (("app.kubernetes.io/name", "grafana"),))
    [result] = kube.probe([ProbeRequest(MLFLOW, grafana, 3000)], 2.0)
    assert result.reachable is None
    assert "no running pod of governance/grafana" in result.outcome
    assert "get pods -l app.kubernetes.io/name=grafana" in result.outcome


def test_external_destination_is_probed_at_its_own_address(kube, fake):
    internet = Peer("internet", "", (), "93.184.215.14")
    [result] = kube.probe([ProbeRequest(MLFLOW, internet, 443)], 2.0)
    assert result.address == "93.184.215.14" and fake.created_pods[0]["spec"]["containers"][0]["args"][-1] == \
        "93.184.215.14:443/TCP"


def test_reproduce_command_repeats_the_probe_as_the_source(kube, fake):
    [result] = kube.probe([ProbeRequest(SIMULATOR, POSTGRES, 5432)], 2.0)
    argv = shlex.split(result.reproduce)
    assert argv[:5] == ["kubectl", "--kubeconfig", argv[2], "--context", CONTEXT]
    assert argv[5:9] == ["-n", "ot-edge", "run", "indmlops-probe-repro"]
    assert "--labels=app.kubernetes.io/name=simulator" in argv
    overrides = json.loads(next(a for a in argv if a.startswith("--overrides="))[len("--overrides="):])
    container = overrides["spec"]["containers"][0]
    assert container["name"] == "indmlops-probe-repro" and container["readinessProbe"]["exec"]["command"] == ["false"]
    assert argv[argv.index("--"):] == ["--", "probe", "--timeout", "2", "10.244.1.5:5432/TCP"]


def test_probe_image_not_loaded_is_named_at_once(kube, fake):
    fake.mode = "image-missing"
    with pytest.raises(ImageNotLoaded, match=r"indmlops-probe:.*kind load docker-image"):
        kube.probe([ProbeRequest(MLFLOW, POSTGRES, 5432)], 2.0)
    assert fake.deleted_config_maps, "the run's pods were left behind"


def test_probe_pod_stuck_pending_reports_its_state_and_events(kube, fake, monkeypatch):
    monkeypatch.setattr(kube_probe, "POD_BUDGET", 1.0)
    fake.mode = "stuck"
    fake.events = [{"metadata": {"name": "e1"}, "involvedObject": {"kind": "Pod", "name": "x"}, "type": "Warning",
                    "reason": "FailedScheduling", "message": "0/2 nodes are available: 2 Insufficient cpu."}]
    with pytest.raises(KubernetesError, match=r"did not finish within 1 s: pod it-core/indmlops-probe-.*"
                                              r"phase=Pending.*ContainerCreating.*FailedScheduling.*describe pod"):
        kube.probe([ProbeRequest(MLFLOW, POSTGRES, 5432)], 2.0)


def test_probe_pod_without_a_result_line_is_unknown_with_its_log(kube, fake):
    fake.mode = "no-marker"
    [result] = kube.probe([ProbeRequest(MLFLOW, POSTGRES, 5432)], 2.0)
    assert (result.reachable is None and "printed no result" in result.outcome
            and "Too many open files" in result.outcome)


def test_rbac_forbidding_pod_creation_names_verb_resource_and_namespace(kube, fake):
    fake.forbid.add(("create", "pods"))
    with pytest.raises(RbacForbidden, match=r"verb 'create' on resource 'pods' in namespace 'it-core'.*auth can-i"):
        kube.probe([ProbeRequest(MLFLOW, POSTGRES, 5432)], 2.0)


def test_canary_passes_when_the_deny_all_policy_takes_effect(kube, fake):
    evidence = kube.enforcement_canary(5.0)
    assert evidence.before.startswith("connected") and "timeout" in evidence.after
    [ns] = fake.policies
    assert ns.startswith("indmlops-canary-") and fake.policies[ns][0]["spec"] == {"podSelector": {},
                                                                                   "policyTypes": ["Ingress"]}
    assert fake.deleted_namespaces == [ns]
    client = [p for p in fake.created_pods if p["metadata"]["name"].startswith("indmlops-canary-client")]
    assert client[1]["spec"]["containers"][0]["args"][:5] == ["probe", "--timeout", "2", "--until-blocked", "5"]


def test_canary_fails_loudly_when_the_network_ignores_network_policy(kube, fake):
    fake.reach = lambda labels, ns, host, port, proto: (True, "connected")  # a CNI without NetworkPolicy support
    with pytest.raises(IsolationNotEnforced, match=r"NetworkPolicy is not enforced.*still reachable.*"
                                                   r"indmlops-canary-deny-all.*--allow-unenforced"):
        kube.enforcement_canary(5.0)
    assert fake.deleted_namespaces and fake.deleted_namespaces[0].startswith("indmlops-canary-")


def test_canary_says_not_supported_when_no_network_policy_implementation_runs(kube, fake):
    fake.reach = lambda labels, ns, host, port, proto: (True, "connected")  # the plain bridge CNI, say
    fake.add_workload_pod("kube-system", "coredns-1", {"k8s-app": "kube-dns"}, "10.244.0.2",
                          image="registry.k8s.io/coredns/coredns:v1.11.1")
    with pytest.raises(IsolationNotEnforced) as err:
        kube.enforcement_canary(5.0)
    msg = str(err.value)
    assert "No NetworkPolicy implementation runs on this cluster" in msg and "not supported here" in msg
    assert "Calico" in msg and "Cilium" in msg and "installs Calico" in msg and "--allow-unenforced" in msg


@pytest.mark.parametrize(("image", "ready", "name"), [
    ("docker.io/calico/node:v3.30.0", False, "Calico"),
    ("quay.io/cilium/cilium:v1.16.1@sha256:0123", True, "Cilium"),
])
def test_canary_says_broken_when_an_implementation_runs_but_ignored_the_policy(kube, fake, image, ready, name):
    fake.reach = lambda labels, ns, host, port, proto: (True, "connected")
    fake.add_workload_pod("kube-system", "agent-7x2q", {"k8s-app": "agent"}, "10.0.0.2", image=image, ready=ready)
    fake.add_workload_pod("kube-system", "done-job", {}, "", phase="Succeeded", image="docker.io/calico/node:v1")
    with pytest.raises(IsolationNotEnforced) as err:
        kube.enforcement_canary(5.0)
    msg = str(err.value)
    assert f"{name} runs here (kube-system/agent-7x2q ({image}, {'Ready' if ready else 'NOT Ready'}))" in msg
    assert "broken, not ready or not watching" in msg and "kubectl -n kube-system logs agent-7x2q" in msg
    assert "done-job" not in msg and "No NetworkPolicy implementation" not in msg


def test_canary_says_the_implementation_is_unknown_when_pods_cannot_be_listed(kube, fake):
    fake.reach = lambda labels, ns, host, port, proto: (True, "connected")
    fake.forbid.add(("list", "pods@cluster"))
    with pytest.raises(IsolationNotEnforced, match=r"NetworkPolicy is not enforced.*implementation runs here is "
                                                   r"unknown: listing the cluster's pods failed.*forbidden"):
        kube.enforcement_canary(5.0)


def test_canary_refuses_to_judge_when_probes_cannot_reach_anything(kube, fake):
    fake.reach = lambda labels, ns, host, port, proto: (False, "timeout")  # e.g. probe pods without a route
    with pytest.raises(KubernetesError, match=r"could not reach its listener .* before any NetworkPolicy existed.*"
                                              r"cannot tell allowed from denied"):
        kube.enforcement_canary(5.0)
    assert not fake.policies
