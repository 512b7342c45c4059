"""KubernetesTarget against a fake API server: kill, watch until a replacement is Ready, restarts, and each error."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from kube_fake import CONTEXT, FakeCluster, pod, status, target_at, write_kubeconfig

from indmlops.errors import (
    ApiUnauthorized,
    ApiUnreachable,
    ImageNotLoaded,
    IndMLOpsError,
    KubernetesError,
    NoClusterAtContext,
    NotReady,
    NotSupportedByTarget,
    RbacForbidden,
    UnknownComponent,
)
from indmlops.manifests import load_cached
from indmlops.targets.base import Target
from indmlops.targets.kubernetes.components import COMPONENTS
from indmlops.targets.kubernetes.target import KubernetesTarget

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def cluster(httpserver) -> FakeCluster:
    return FakeCluster(httpserver)


@pytest.fixture
def kube(cluster, httpserver, tmp_path):
    # Pod-level behaviour here; protocol readiness through port-forwards: test_kubernetes_readiness.py.
    with target_at(httpserver, tmp_path, protocol_probes=False) as t:
        yield t


@pytest.fixture
def mlflow_running(cluster):
    cluster.pods["it-core"] = [pod("mlflow-a", "uid-a")]
    cluster.route_delete("it-core", "mlflow-a")


def test_target_implements_the_seam(kube):
    assert isinstance(kube, Target)
    assert kube.name == "kind"


def test_component_table_matches_the_rendered_manifests():
    shipped = load_cached(REPO / "manifests" / "overlays" / "kind")
    for c in COMPONENTS.values():
        workloads = [o for o in shipped.workloads() if o.namespace == c.namespace
                     and o.body["spec"]["template"]["metadata"]["labels"].get("app.kubernetes.io/name") == c.app]
        assert workloads, f"no workload in {c.namespace} with pod label app.kubernetes.io/name={c.app} for {c.name}"
        if c.service is None:
            continue
        svc = shipped.get("Service", c.namespace, c.service)
        assert svc is not None, f"Service {c.namespace}/{c.service} for {c.name} is not in the manifests"
        assert svc.body["spec"]["selector"] == {"app.kubernetes.io/name": c.app}, f"Service {svc.ref} selector"
        assert c.port in [p["port"] for p in svc.body["spec"]["ports"]], f"Service {svc.ref}: no port {c.port}"


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # importing mlflow.server configures its SQL mappers
def test_mlflow_accepts_the_host_header_of_a_port_forward_on_any_local_port():
    """The target forwards to a free local port; MLflow's DNS-rebinding guard must let that Host header in."""
    from mlflow.server.security_utils import is_allowed_host_header

    shipped = load_cached(REPO / "manifests" / "overlays" / "kind")
    args = shipped.get("Deployment", "it-core", "mlflow").body["spec"]["template"]["spec"]["containers"][0]["args"]
    allowed = next(a for a in args if a.startswith("--allowed-hosts=")).split("=", 1)[1].split(",")
    for host in ("127.0.0.1:41234", "localhost:5000", "mlflow-svc.it-core.svc:5000"):
        assert is_allowed_host_header(allowed, host), f"deployment it-core/mlflow --allowed-hosts refuses {host}"
    assert not is_allowed_host_header(allowed, "evil.example:5000")


def test_kill_deletes_the_pod_at_once_and_returns_its_uid(kube, cluster, mlflow_running):
    assert kube.identity("mlflow") == "uid-a"
    evidence = kube.kill("mlflow")
    assert (evidence.component, evidence.identity) == ("mlflow", "uid-a")
    assert cluster.deleted == [("it-core", "mlflow-a", "0")]


def test_wait_ready_returns_the_replacement_once_the_watch_sees_it_ready(kube, cluster, mlflow_running):
    cluster.replacement = lambda old: (
        pod("mlflow-b", "uid-b", ready=False, phase="Pending"),
        [{"type": "MODIFIED", "object": pod("mlflow-b", "uid-b", ready=False)},
         {"type": "MODIFIED", "object": pod("mlflow-b", "uid-b", ready=True)}])
    kube.kill("mlflow")
    ready = kube.wait_ready("mlflow", timeout=10)
    assert ready.identity == "uid-b"
    assert "pod it-core/mlflow-b Ready; replaces uid-a" in ready.detail
    assert cluster.watches >= 1
    assert kube.identity("mlflow") == "uid-b"


def test_wait_ready_ignores_the_killed_pod_while_it_terminates(kube, cluster, mlflow_running):
    # The killed pod lingers as Terminating (still "Ready" in its last status) before the replacement is Ready.
    cluster.replacement = lambda old: (
        {**pod("mlflow-a", "uid-a", deleting=True)},
        [{"type": "ADDED", "object": pod("mlflow-c", "uid-c", ready=True)}])
    kube.kill("mlflow")
    assert kube.identity("mlflow") == ""  # a terminating pod is nobody
    assert kube.wait_ready("mlflow", timeout=10).identity == "uid-c"


def test_watch_expired_410_lists_again_and_finds_the_replacement(kube, cluster, mlflow_running):
    gone = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Expired", "code": 410,
            "message": "too old resource version: 100 (200)"}
    cluster.replacement = lambda old: (pod("mlflow-b", "uid-b", ready=False, phase="Pending"),
                                       [{"type": "ERROR", "object": gone}])
    kube.kill("mlflow")
    # The 410 ends the watch before the event behind it; the pod is Ready by then, and only a re-list sees it.
    cluster.pending_watch["it-core"].append({"type": "MODIFIED", "object": pod("mlflow-b", "uid-b")})
    lists_before = cluster.lists
    assert kube.wait_ready("mlflow", timeout=10).identity == "uid-b"
    assert (cluster.watches, cluster.lists - lists_before) == (1, 2)


def test_watch_forbidden_names_the_watch_verb(kube, cluster, mlflow_running):
    cluster.replacement = lambda old: (pod("mlflow-b", "uid-b", ready=False, phase="Pending"), [])
    cluster.watch_response = status(403, "Forbidden", 'pods is forbidden: User "ci" cannot watch resource "pods"')
    kube.kill("mlflow")
    with pytest.raises(RbacForbidden, match=r"RBAC forbids verb 'watch' on resource 'pods' in namespace 'it-core'"):
        kube.wait_ready("mlflow", timeout=5)


def test_wait_ready_without_a_kill_accepts_the_running_pod(kube, mlflow_running):
    assert kube.wait_ready("mlflow", timeout=5).identity == "uid-a"


@pytest.mark.parametrize(("new_claim", "note"), [("minio-data", "; same claims minio-data"),
                                                  ("minio-other", "; claims CHANGED minio-data -> minio-other")])
def test_ready_evidence_says_whether_the_replacement_mounts_the_same_claim(kube, cluster, new_claim, note):
    cluster.pods["it-core"] = [pod("minio-a", "uid-a", app="minio", claim="minio-data")]
    cluster.route_delete("it-core", "minio-a")
    cluster.replacement = lambda old: (pod("minio-b", "uid-b", app="minio", claim=new_claim), [])
    assert kube.claims("s3") == ["minio-data"]
    kube.kill("s3")
    assert kube.wait_ready("s3", timeout=5).detail.endswith(note)
    assert kube.claims("s3") == [new_claim]


def test_volume_identity_names_the_claims_so_durability_can_compare_them(kube, cluster):
    cluster.pods["it-core"] = [pod("minio-a", "uid-a", app="minio", claim="minio-data")]
    assert kube.volume_identity("s3") == "it-core/minio-data"
    cluster.pods["it-core"] = [pod("mlflow-a", "uid-a")]
    with pytest.raises(NotSupportedByTarget, match="mounts no PersistentVolumeClaim"):
        kube.volume_identity("mlflow")


def test_restarts_count_container_restarts_plus_replaced_pods(kube, cluster, mlflow_running):
    cluster.pods["it-core"] = [pod("mlflow-a", "uid-a", restarts=2)]
    assert kube.restarts("mlflow") == 2
    cluster.replacement = lambda old: (pod("mlflow-b", "uid-b", restarts=1), [])
    kube.kill("mlflow")
    # The killed pod's 2 restarts stay counted (a real cluster showed a simulator's 4 dropping to 1 on a kill,
    # which read as "restarts went down"), + 1 pod replaced + 1 container restart of the new pod.
    assert kube.restarts("mlflow") == 4


def test_stuck_pending_replacement_is_not_ready_with_reason_and_events(kube, cluster, mlflow_running):
    cluster.replacement = lambda old: (pod("mlflow-b", "uid-b", ready=False, phase="Pending",
                                           unschedulable=True), [])
    cluster.add_event("it-core", "mlflow-b", "FailedScheduling", "0/2 nodes are available: 2 Insufficient memory.")
    kube.kill("mlflow")
    with pytest.raises(NotReady) as err:
        kube.wait_ready("mlflow", timeout=1)
    msg = str(err.value)
    assert "mlflow was not ready after 1 s" in msg
    assert "pod it-core/mlflow-b uid=uid-b, phase=Pending" in msg
    assert "PodScheduled=False reason=Unschedulable" in msg
    assert "events: Warning FailedScheduling: 0/2 nodes are available" in msg
    assert "kubectl -n it-core describe pod mlflow-b" in msg


def test_no_replacement_at_all_names_the_controller_to_check(kube, cluster, mlflow_running):
    kube.kill("mlflow")
    with pytest.raises(NotReady, match=r"no replacement pod for it-core/mlflow .*kubectl -n it-core get deploy"):
        kube.wait_ready("mlflow", timeout=1)


@pytest.mark.parametrize("reason", ["ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull"])
def test_replacement_without_its_image_fails_at_once_naming_the_image(kube, cluster, mlflow_running, reason):
    cluster.replacement = lambda old: (pod("mlflow-b", "uid-b", ready=False, phase="Pending", waiting=reason,
                                           image="indmlops-mlflow:3.17.2"), [])
    kube.kill("mlflow")
    with pytest.raises(ImageNotLoaded) as err:
        kube.wait_ready("mlflow", timeout=30)
    assert err.value.image == "indmlops-mlflow:3.17.2"
    assert f"reason={reason}" in str(err.value)
    assert "kind load docker-image indmlops-mlflow:3.17.2 --name indmlops" in str(err.value)
    assert cluster.watches == 0  # it did not wait out the 30 s


def test_third_party_image_that_cannot_be_pulled_names_the_registry_not_the_build(kube, cluster, mlflow_running):
    cluster.replacement = lambda old: (pod("mlflow-b", "uid-b", ready=False, phase="Pending",
                                           waiting="ImagePullBackOff", image="postgres:16.10"), [])
    kube.kill("mlflow")
    with pytest.raises(ImageNotLoaded, match=r"cannot pull image postgres:16.10: the node found no registry answer "
                                             r".*crictl pull postgres:16.10"):
        kube.wait_ready("mlflow", timeout=30)


def test_rbac_forbidden_names_verb_resource_namespace_and_the_can_i_command(kube, cluster, httpserver,
                                                                              mlflow_running):
    httpserver.clear_all_handlers()
    cluster._route("it-core")
    httpserver.expect_request("/api/v1/namespaces/it-core/pods/mlflow-a", method="DELETE").respond_with_response(
        status(403, "Forbidden", 'pods "mlflow-a" is forbidden: User "ci" cannot delete resource "pods"'))
    with pytest.raises(RbacForbidden) as err:
        kube.kill("mlflow")
    assert (err.value.verb, err.value.resource, err.value.namespace) == ("delete", "pods", "it-core")
    assert f"kubectl --context {CONTEXT} auth can-i delete pods -n it-core" in str(err.value)
    assert 'User "ci" cannot delete resource "pods"' in str(err.value)


def test_unauthorized_names_the_context_and_how_to_refresh(kube, httpserver):
    httpserver.clear_all_handlers()
    httpserver.expect_request("/api/v1/namespaces/it-core/pods").respond_with_response(
        status(401, "Unauthorized", "Unauthorized"))
    with pytest.raises(ApiUnauthorized, match=rf"context '{CONTEXT}' \(401 Unauthorized\) while trying to list pods"):
        kube.identity("mlflow")


def test_other_api_errors_name_the_action_and_status(kube, httpserver):
    httpserver.clear_all_handlers()
    httpserver.expect_request("/api/v1/namespaces/it-core/pods").respond_with_response(
        status(404, "NotFound", 'namespaces "it-core" not found'))
    with pytest.raises(KubernetesError, match=r'list pods in namespace it-core failed .*HTTP 404.*"it-core" not found'):
        kube.identity("mlflow")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_api_unreachable_says_so_with_the_host_and_a_command(tmp_path):
    cfg = write_kubeconfig(tmp_path / "kubeconfig", f"http://127.0.0.1:{_closed_port()}")
    t = KubernetesTarget("kind", kubeconfig=str(cfg), context=CONTEXT)
    with pytest.raises(ApiUnreachable) as err:
        t.kill("mlflow")
    msg = str(err.value)
    assert "is unreachable while trying to list pods in namespace it-core" in msg
    assert "refused" in msg.lower()
    assert f"kubectl --context {CONTEXT} cluster-info" in msg


def test_no_cluster_at_context_lists_the_contexts_there(tmp_path):
    cfg = write_kubeconfig(tmp_path / "kubeconfig", "https://127.0.0.1:6443", context="kind-other")
    with pytest.raises(NoClusterAtContext) as err:
        KubernetesTarget("kind", kubeconfig=str(cfg), context=CONTEXT)
    assert f"no cluster at context '{CONTEXT}' in kubeconfig {cfg}" in str(err.value)
    assert "contexts there: kind-other" in str(err.value)
    assert "kind create cluster --config manifests/overlays/kind/kind-cluster.yaml" in str(err.value)


def test_missing_kubeconfig_is_no_cluster_at_context(tmp_path):
    with pytest.raises(NoClusterAtContext, match=r"in kubeconfig .*nope .*contexts there: none"):
        KubernetesTarget("kind", kubeconfig=str(tmp_path / "nope"), context=CONTEXT)


def test_credentials_come_from_the_newest_hashed_secret(kube, cluster):
    cluster.add_secret("it-core", "minio-credentials-old0000000", {"root-user": "x", "root-password": "old"},
                       created="2026-11-01T00:00:00Z")
    cluster.add_secret("it-core", "minio-credentials-abc123def4", {"root-user": "indmlops", "root-password": "new"})
    cluster.add_secret("it-core", "minio-credentials-extra-thing", {"root-user": "no", "root-password": "no"})
    s3 = kube.credentials("s3")
    assert (s3.username, s3.password, s3.extra) == ("indmlops", "new",
                                                     {"region": "us-east-1", "bucket": "mlflow-bucket"})
    assert "new" not in repr(s3)


def test_credentials_per_mqtt_role_and_postgres_role(kube, cluster):
    cluster.add_secret("ot-edge", "mqtt-credentials-0123456789", {"monitor": "m", "simulator": "s"})
    cluster.add_secret("it-core", "postgres-credentials-0123456789", {"username": "mlflow", "password": "p"})
    assert (kube.credentials("mosquitto").username, kube.credentials("mosquitto").password) == ("monitor", "m")
    assert kube.credentials("mosquitto", "simulator").password == "s"
    assert kube.credentials("postgres").extra == {"database": "mlflow"}
    assert kube.credentials("postgres", "superuser").extra == {"database": "postgres"}
    with pytest.raises(IndMLOpsError, match=r"no MQTT role 'admin' .*expected one of monitor, simulator"):
        kube.credentials("mosquitto", "admin")
    assert kube.credentials("mlflow").username == ""


def test_missing_secret_is_named_with_how_to_apply(kube):
    with pytest.raises(KubernetesError, match=r"Secret governance/grafana-admin .*not found .*kubectl apply -k"):
        kube.credentials("grafana")


def test_unknown_component_and_absent_endpoint_are_explicit(kube):
    with pytest.raises(UnknownComponent, match="unknown component 'mqtt'"):
        kube.kill("mqtt")
    with pytest.raises(NotSupportedByTarget, match="endpoint 'simulator'"):
        kube.endpoint("simulator")


def test_versions_come_from_the_pod_labels(kube, mlflow_running):
    versions = kube.versions()
    assert versions["mlflow"] == "3.17.2"
    assert versions["grafana"] == "no pod"


def test_evidence_keeps_pod_states_log_tails_and_events(kube, cluster, httpserver, mlflow_running):
    httpserver.expect_request("/api/v1/namespaces/it-core/pods/mlflow-a/log").respond_with_data("boot\nserving\n")
    cluster.add_event("it-core", "mlflow-a", "BackOff", "Back-off restarting failed container")
    cluster.fail["governance/events"] = status(403, "Forbidden",
                                               'events is forbidden: User "ci" cannot list resource "events"')
    files = kube.evidence_files()
    assert files["mlflow.pods.txt"] == "pod it-core/mlflow-a uid=uid-a, phase=Running"
    assert files["mlflow.mlflow-a.mlflow.log.tail"] == "boot\nserving\n"
    assert files["grafana.pods.txt"] == "no pod matches governance/grafana (app.kubernetes.io/name=grafana)"
    assert "Warning BackOff Pod/mlflow-a: Back-off restarting failed container" in files["events.it-core.txt"]
    assert files["events.ot-edge.txt"] == "no events"
    assert files["events.governance.txt"].startswith("unavailable: RBAC forbids verb 'list' on resource 'events'")
