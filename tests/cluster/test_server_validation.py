"""Server-side validation against the real cluster: the shipped manifests are accepted object by object; what only
a server knows (the API versions it serves, which namespaces exist, what is deployed and cannot be changed in
place) is rejected, and each verdict says why: rejected, not served by this version, or a namespace nobody declares.

Kubernetes 1.20's dry run allocates no Service IP or node port, so a clusterIP outside the Service range is
accepted by it (the real create would fail): not something this check can see on 1.20."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from indmlops.manifests import load
from indmlops.paths import REPO_ROOT
from indmlops.targets.kubernetes.api import KubeApi
from indmlops.targets.kubernetes.dryrun import ServerValidator
from indmlops.targets.kubernetes.portforward import kubectl_binary

pytestmark = pytest.mark.cluster

BROKEN = {
    "cronjob-v1.yaml": """
apiVersion: batch/v1
kind: CronJob
metadata: {name: nightly, namespace: plant}
spec:
  schedule: "0 3 * * *"
  jobTemplate: {spec: {template: {spec: {restartPolicy: Never, containers: [{name: c, image: "x:1"}]}}}}
""",
    "deployment-beta.yaml": """
apiVersion: apps/v1beta2
kind: Deployment
metadata: {name: old, namespace: plant}
spec:
  selector: {matchLabels: {app: old}}
  template: {metadata: {labels: {app: old}}, spec: {containers: [{name: c, image: "x:1"}]}}
""",
    "configmap-nowhere.yaml": """
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: nowhere}
data: {a: b}
""",
    "good.yaml": """
apiVersion: v1
kind: Namespace
metadata: {name: plant}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: plant}
data: {a: b}
""",
}


@pytest.fixture(scope="module")
def validator(cluster_up):
    v = ServerValidator(KubeApi(str(cluster_up.kubeconfig), None))
    yield v
    v.close()


def test_each_verdict_says_why_the_server_refuses(validator, tmp_path):
    for name, text in BROKEN.items():
        (tmp_path / name).write_text(text)
    objects = {o.ref: o for o in load(tmp_path).objects}
    declared = frozenset({"plant"})
    verdicts = {ref: validator.validate(o.body, declared) for ref, o in objects.items()}
    got = {ref: v.outcome for ref, v in verdicts.items()}
    assert got == {
        "Namespace/plant": "accepted",
        "ConfigMap/plant/settings": "accepted",
        "CronJob/plant/nightly": "not-served",
        "Deployment/plant/old": "not-served",
        "ConfigMap/nowhere/settings": "rejected",
    }, {ref: v.detail for ref, v in verdicts.items()}
    assert "serves CronJob as batch/v1beta1" in verdicts["CronJob/plant/nightly"].detail
    assert "v1.20.2" in verdicts["CronJob/plant/nightly"].detail
    assert "serves Deployment as apps/v1" in verdicts["Deployment/plant/old"].detail
    assert "declare no Namespace 'nowhere'" in verdicts["ConfigMap/nowhere/settings"].detail
    assert validator.created_namespaces == ["plant"]  # made for the dry runs, removed at close


DEPLOYED = """
apiVersion: v1
kind: Namespace
metadata: {name: plant-live}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: hmi, namespace: plant-live}
spec:
  replicas: 0
  selector: {matchLabels: {app: hmi}}
  template: {metadata: {labels: {app: hmi}}, spec: {containers: [{name: c, image: "x:1"}]}}
"""


def test_a_change_the_deployed_object_cannot_take_is_rejected_as_immutable(cluster_up, validator):
    """What is deployed matters: a Deployment whose selector changed cannot be applied over the running one."""
    kubectl = [kubectl_binary(), "--kubeconfig", str(cluster_up.kubeconfig)]
    subprocess.run([*kubectl, "apply", "-f", "-"], input=DEPLOYED, text=True, check=True, capture_output=True)
    try:
        changed = next(o for o in load_text(DEPLOYED) if o["kind"] == "Deployment")
        changed["spec"]["selector"] = {"matchLabels": {"app": "hmi", "line": "2"}}
        changed["spec"]["template"]["metadata"]["labels"]["line"] = "2"
        verdict = validator.validate(changed, frozenset({"plant-live"}))
        assert verdict.outcome == "rejected", verdict
        assert verdict.status == 422 and any("field is immutable" in c for c in verdict.causes), verdict
        unchanged = next(o for o in load_text(DEPLOYED) if o["kind"] == "Deployment")
        assert validator.validate(unchanged, frozenset({"plant-live"})).accepted
    finally:
        subprocess.run([*kubectl, "delete", "namespace", "plant-live", "--wait=false"], capture_output=True,
                       check=False)


def load_text(text: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(text) if d]


def run_static(cluster, manifests: Path, reports: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "suites/static", "-k", "server-dry-run", "-p", "no:cacheprovider", "-q",
         "--target", "kubeconfig", "--kubeconfig", str(cluster.kubeconfig), "--manifests", str(manifests),
         "--reports-dir", str(reports), "--intent", "none"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600, check=False)


def test_static_suite_has_the_cluster_judge_every_shipped_object(cluster_up, tmp_path):
    shipped = REPO_ROOT / "manifests" / "overlays" / "kind"
    res = run_static(cluster_up, shipped, tmp_path)
    count = len(load(shipped).objects)
    assert res.returncode == 0 and f"{count} passed" in res.stdout, res.stdout[-3000:] + res.stderr[-2000:]


def test_static_suite_fails_the_object_the_server_rejects_and_names_it(cluster_up, tmp_path):
    manifests = tmp_path / "m"
    manifests.mkdir()
    for name in ("good.yaml", "configmap-nowhere.yaml", "cronjob-v1.yaml"):
        (manifests / name).write_text(BROKEN[name])
    res = run_static(cluster_up, manifests, tmp_path / "reports")
    out = res.stdout
    assert res.returncode == 1, out[-3000:]
    assert "2 failed, 2 passed" in out, out[-3000:]
    assert "ConfigMap/nowhere/settings:server-dry-run" in out and "configmap-nowhere.yaml" in out
    assert "CronJob/plant/nightly:server-dry-run" in out and "does not serve CronJob in batch/v1" in out
