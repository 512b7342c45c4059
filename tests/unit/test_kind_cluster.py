"""The kind lifecycle (--target kind) against stub kind/docker/podman/kubectl and a fake API server: create or
reuse, CNI only when missing, image loads per engine, the seed's apply order, progress, timeouts, teardown, errors."""

from __future__ import annotations

import pytest
from kind_fake import make_stubs
from kube_fake import (
    CONTEXT,
    FakeCluster,
    FakeKindApi,
    node,
    pod,
    server_kubeconfig,
    workload,
)

from indmlops.containers import IMAGES, qualified
from indmlops.errors import ImageNotLoaded, NotReady
from indmlops.manifests import load
from indmlops.targets.kubernetes import deploy as kube_deploy
from indmlops.targets.kubernetes.kind import (
    KIND_OVERLAY,
    KindCluster,
    KindError,
    project_images,
)

OBJECTS = load(KIND_OVERLAY).objects
WORKLOADS = [o for o in OBJECTS if o.kind in kube_deploy.WORKLOAD_KINDS]
BUILT = [im.source for im in project_images(OBJECTS)]


@pytest.fixture
def cluster(httpserver) -> FakeCluster:
    return FakeCluster(httpserver)  # pods and events of it-core, ot-edge, governance


@pytest.fixture(autouse=True)
def quick_polls(monkeypatch):
    """The fake answers at once: poll it every 50 ms, not every second (pytest-kubernetes' ready check sleeps 1 s
    per try; our readiness waits poll every second)."""
    import time

    import pytest_kubernetes.providers.base as pk_base

    from indmlops.targets.kubernetes import deploy as kube_deploy

    monkeypatch.setattr(pk_base, "sleep", lambda s: time.sleep(min(s, 0.05)))
    monkeypatch.setattr(kube_deploy, "POLL", 0.05)


@pytest.fixture
def api(httpserver, cluster) -> FakeKindApi:
    fake = FakeKindApi(httpserver)
    fake.set_workloads([workload(o.body) for o in WORKLOADS])
    return fake


@pytest.fixture
def stubs(httpserver, tmp_path, monkeypatch):
    """docker answers, every project image is built, no cluster yet."""
    kc = server_kubeconfig(httpserver, tmp_path, "fake.kubeconfig")
    s = make_stubs(tmp_path, kc.read_text(), images=BUILT)
    monkeypatch.setenv("PATH", f"{s.bin}:/usr/bin:/bin")
    monkeypatch.delenv("KIND_EXPERIMENTAL_PROVIDER", raising=False)
    return s


def lifecycle(stubs, tmp_path, lines: list[str] | None = None, **kw) -> KindCluster:
    out = [] if lines is None else lines
    kc = KindCluster(tmp_path / "home kube" / "config", kubectl=stubs.kubectl, progress=out.append, **kw)
    kc.model_bootstrap = lambda *_: out.append("model bootstrap") or "1"  # the fake serves no MLflow
    return kc


def kind_calls(stubs, verb: str) -> list[str]:
    return [line for line in stubs.log() if line.startswith(f"kind {verb}")]


def test_absent_cluster_is_created_from_kind_cluster_yaml_and_deleted_at_the_end(api, stubs, tmp_path):
    lines: list[str] = []
    kind = lifecycle(stubs, tmp_path, lines)
    kind.up()
    create = kind_calls(stubs, "create cluster")
    assert len(create) == 1 and "--config " + str(KIND_OVERLAY / "kind-cluster.yaml") in create[0]
    assert f"--kubeconfig {tmp_path / 'home kube' / 'config'}" in create[0]
    assert (tmp_path / "home kube" / "config").exists() and kind.context == CONTEXT
    assert lines[0].startswith("created cluster indmlops (docker, context kind-indmlops)")
    kind.down(keep=False)
    assert kind_calls(stubs, "delete cluster") == [
        f"kind delete cluster --name indmlops --kubeconfig {tmp_path / 'home kube' / 'config'} [provider=docker]"]
    assert lines[-1].startswith("deleted cluster indmlops (created by this session)")
    assert (tmp_path / "home kube" / "config").exists(), "the user's kubeconfig must never be unlinked"


def test_created_cluster_is_kept_with_keep_cluster(api, stubs, tmp_path):
    lines: list[str] = []
    kind = lifecycle(stubs, tmp_path, lines)
    kind.up()
    kind.down(keep=True)
    assert kind_calls(stubs, "delete") == []
    assert lines[-1].startswith("kept cluster indmlops (--keep-cluster)")


def test_existing_cluster_is_reused_never_deleted_and_only_namespaces_it_created_are_removed(api, stubs, tmp_path):
    stubs.knob("clusters", "indmlops\n")
    api.namespaces |= {"it-core"}  # deployed before this session: stays
    lines: list[str] = []
    kind = lifecycle(stubs, tmp_path, lines)
    kind.up()
    assert kind_calls(stubs, "create") == []
    assert len(kind_calls(stubs, "export kubeconfig --name indmlops")) == 1
    assert lines[0].startswith("reusing cluster indmlops")
    kind.down(keep=False)
    assert kind_calls(stubs, "delete") == []
    assert api.deleted_namespaces == ["governance", "ot-edge"]
    assert lines[-1].startswith("deleted namespaces governance, ot-edge (created by this session)")


def test_reused_cluster_keeps_namespaces_with_keep_cluster(api, stubs, tmp_path):
    stubs.knob("clusters", "indmlops\n")
    kind = lifecycle(stubs, tmp_path)
    kind.up()
    kind.down(keep=True)
    assert api.deleted_namespaces == [] and kind_calls(stubs, "delete") == []


def test_docker_images_are_tagged_as_the_manifests_name_them_and_loaded(api, stubs, tmp_path):
    lifecycle(stubs, tmp_path).up()
    loads = kind_calls(stubs, "load")
    refs = {im.name: im.ref for im in project_images(OBJECTS)}
    assert set(refs) == set(IMAGES)
    assert refs["mlflow"] == "indmlops-mlflow:3.17.2" and refs["inference"] == "indmlops-inference:0.1.0"
    assert loads == [f"kind load docker-image {refs[n]} --name indmlops [provider=docker]" for n in IMAGES]
    assert "docker tag localhost/indmlops-mlflow:3.17.2 indmlops-mlflow:3.17.2" in stubs.log()


def test_podman_images_go_in_as_archives_under_qualified_names_with_kinds_podman_provider(api, httpserver,
                                                                                           tmp_path, monkeypatch):
    kc = server_kubeconfig(httpserver, tmp_path, "fake.kubeconfig")
    s = make_stubs(tmp_path, kc.read_text(), engines=("podman",), images=BUILT)
    monkeypatch.setenv("PATH", f"{s.bin}:/usr/bin:/bin")
    monkeypatch.setenv("KIND_EXPERIMENTAL_PROVIDER", "podman")
    lifecycle(s, tmp_path).up()
    log = s.log()
    assert "podman tag localhost/indmlops-mlflow:3.17.2 docker.io/library/indmlops-mlflow:3.17.2" in log
    saves = [line for line in log if line.startswith("podman save -o ")]
    assert len(saves) == len(IMAGES) and saves[0].endswith("docker.io/library/indmlops-" + IMAGES[0] + ":" +
                                                           project_images(OBJECTS)[0].ref.split(":")[1])
    loads = kind_calls(s, "load")
    assert len(loads) == len(IMAGES) and all("load image-archive " in x and "[provider=podman]" in x for x in loads)
    assert kind_calls(s, "create cluster")[0].endswith("[provider=podman]")


def test_qualified_names_match_the_kubelets_lookup():
    assert qualified("indmlops-x:1") == "docker.io/library/indmlops-x:1"
    assert qualified("acme/indmlops-x:1") == "docker.io/acme/indmlops-x:1"
    assert qualified("registry.local:5000/indmlops-x:1") == "registry.local:5000/indmlops-x:1"


def test_cni_is_applied_when_nodes_lack_one_and_nodes_then_turn_ready(api, stubs, tmp_path):
    api.nodes = [node("indmlops-control-plane", False), node("indmlops-worker", False)]
    api.nodes_after_cni = [node("indmlops-control-plane", True), node("indmlops-worker", True)]
    api.cni_marker = stubs.state / "cni-applied"
    lines: list[str] = []
    lifecycle(stubs, tmp_path, lines).up()
    cni = [x for x in stubs.log() if " apply -f https://" in x]
    assert len(cni) == 1 and "projectcalico/calico/v3.30.0/manifests/calico.yaml" in cni[0]
    assert any(x.startswith("CNI: applied https://") for x in lines)
    assert any(x.startswith("nodes Ready in") for x in lines)


def test_cni_is_not_applied_when_calico_node_runs(api, stubs, tmp_path):
    api.set_workloads([{"apiVersion": "apps/v1", "kind": "DaemonSet",
                        "metadata": {"name": "calico-node", "namespace": "kube-system"},
                        "spec": {"selector": {"matchLabels": {"k8s-app": "calico-node"}},
                                 "template": {"spec": {"containers": [{"name": "calico-node"}]}}}}])
    lines: list[str] = []
    lifecycle(stubs, tmp_path, lines).up()
    assert not [x for x in stubs.log() if " apply -f https://" in x]
    assert "CNI: calico-node already installed" in lines


def test_cni_apply_failure_names_the_manifest_and_kubectls_error(api, stubs, tmp_path):
    api.nodes = [node("indmlops-worker", False)]
    stubs.knob("cni-fails", "error: unable to read URL: dial tcp: lookup raw.githubusercontent.com: no such host")
    with pytest.raises(KindError, match=r"the CNI manifest https://\S+calico.yaml could not be applied \(exit 1\): "
                                        r"error: unable to read URL.*--cni-manifest PATH"):
        lifecycle(stubs, tmp_path).up()


def test_nodes_that_stay_not_ready_are_named_with_their_reason(api, stubs, tmp_path):
    api.nodes = [node("indmlops-worker", False)]
    with pytest.raises(KindError, match=r"nodes not Ready after 1 s: node indmlops-worker NotReady \(KubeletNotReady: "
                                        r".*cni plugin not initialized\)"):
        lifecycle(stubs, tmp_path, nodes_timeout=1.0).up()


def test_manifests_are_applied_in_the_seeds_order_with_progress(api, stubs, tmp_path):
    lines: list[str] = []
    lifecycle(stubs, tmp_path, lines).up()
    applied = stubs.applied()
    assert {k for k, _, _ in applied[0]} == {"Namespace", "PersistentVolumeClaim"}
    assert applied[1][0][1] == "it-core" and all(k not in kube_deploy.WORKLOAD_KINDS for k, _, _ in applied[1])
    workloads = [f"{ns}/{n}" for step in applied for k, ns, n in step if k in kube_deploy.WORKLOAD_KINDS]
    assert workloads == ["it-core/postgres", "it-core/minio", "it-core/minio-bucket-bootstrap", "it-core/mlflow",
                         "it-core/jupyter", "ot-edge/mosquitto", "ot-edge/nodered", "ot-edge/inference",
                         "ot-edge/simulator", "governance/prometheus", "governance/grafana"]  # nightly's wait order
    assert sum(len(step) for step in applied) == len(OBJECTS)
    ready = [x.split(" ready in ")[0] for x in lines if " ready in " in x and not x.startswith("all ")]
    assert ready == workloads
    assert lines[-1].startswith("all ready in ")


def test_seed_order_covers_every_workload_the_manifests_deploy():
    assert {(o.namespace, o.kind, o.name) for o in WORKLOADS} == set(kube_deploy.SEED_ORDER)


def test_readiness_timeout_names_the_workload_and_its_last_state(api, cluster, stubs, tmp_path):
    api.workloads.clear()
    api.set_workloads([workload(o.body, ready=o.name != "postgres") for o in WORKLOADS])
    cluster.pods["it-core"] = [pod("postgres-0", "uid-p", app="postgres", ready=False, phase="Pending",
                                   unschedulable=True, image="postgres:16.10-alpine3.22")]
    cluster.add_event("it-core", "postgres-0", "FailedScheduling", "0/2 nodes are available: 2 Insufficient memory.")
    with pytest.raises(NotReady) as err:
        lifecycle(stubs, tmp_path, default_timeout=1.0).up()
    msg = str(err.value)
    assert msg.startswith("it-core/postgres was not ready after 1 s; last observed: StatefulSet it-core/postgres "
                          "0/1 ready, 1 updated, 1 total; pod it-core/postgres-0 uid=uid-p, phase=Pending, "
                          "PodScheduled=False reason=Unschedulable (0/2 nodes are available")
    assert "events: Warning FailedScheduling: 0/2 nodes are available: 2 Insufficient memory." in msg
    assert msg.endswith("reproduce with `kubectl -n it-core describe statefulset/postgres`")


def test_project_image_the_node_cannot_get_fails_at_once(api, cluster, stubs, tmp_path):
    api.workloads.clear()
    api.set_workloads([workload(o.body, ready=o.name != "mlflow") for o in WORKLOADS])
    cluster.pods["it-core"] = [pod("mlflow-a", "uid-m", ready=False, waiting="ErrImageNeverPull",
                                   image="indmlops-mlflow:3.17.2")]
    with pytest.raises(ImageNotLoaded, match=r"it-core/mlflow cannot start \(seen after 0 s\).*kind load docker-image "
                                             r"indmlops-mlflow:3.17.2 --name indmlops"):
        lifecycle(stubs, tmp_path, default_timeout=30.0).up()


def test_kind_missing_says_how_to_get_the_pinned_release(stubs, tmp_path):
    (stubs.bin / "kind").unlink()
    with pytest.raises(KindError, match=r"kind is not installed .*kind.sigs.k8s.io/dl/v0.30.0/kind-linux-amd64"):
        lifecycle(stubs, tmp_path)


def test_no_container_engine_is_named(stubs, tmp_path, monkeypatch):
    (stubs.bin / "docker").unlink()
    monkeypatch.setenv("PATH", str(stubs.bin))  # kind, kubectl, and neither docker nor podman
    with pytest.raises(KindError, match=r"kind runs its nodes as containers: no container engine: no Docker engine "
                                        r"answers and podman is not installed"):
        lifecycle(stubs, tmp_path)


def test_image_not_built_says_how_to_build_it_before_anything_is_created(api, stubs, tmp_path):
    stubs.knob("images", "".join(f"{i}\n" for i in BUILT if "inference" not in i))
    with pytest.raises(KindError, match=r"image localhost/indmlops-inference:0.1.0 is not built \(docker image "
                                        r"inspect: Error: docker: No such image.*\): build it with `indmlops images "
                                        r"build inference`"):
        lifecycle(stubs, tmp_path).up()
    assert kind_calls(stubs, "create") == []


def test_create_failure_carries_kinds_stderr_and_deletes_nothing(api, stubs, tmp_path):
    stubs.knob("create-fails", "ERROR: failed to create cluster: node(s) already exist for a cluster with the name")
    kind = lifecycle(stubs, tmp_path)
    with pytest.raises(KindError, match=r"kind could not create cluster indmlops from \S+kind-cluster.yaml: "
                                        r"`.+/kind' create cluster --config .* failed \(exit 1\): ERROR: failed to "
                                        r"create cluster: node\(s\) already exist"):
        kind.up()
    kind.down(keep=False)
    assert kind_calls(stubs, "delete") == []
