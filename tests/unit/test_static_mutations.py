"""Sensitivity of the static suite: single mutations of the shipped manifests, each caught by a named check."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from indmlops.checks.static.isolation import load_intent
from indmlops.checks.static.rules import RULES, StaticPolicy, cases, failing, message, run
from indmlops.manifests import Manifests, load, load_cached

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def policy() -> StaticPolicy:
    return StaticPolicy.from_fixture(yaml.safe_load((REPO / "fixtures" / "static.yaml").read_text()), REPO / "images")


@pytest.fixture(scope="module")
def intent():
    return load_intent(REPO / "fixtures" / "isolation" / "intent.yaml")


@pytest.fixture
def shipped() -> Manifests:
    return load_cached(REPO / "manifests" / "overlays" / "kind")


def container(m: Manifests, ref: str, name: str | None = None) -> dict:
    obj = m.find(ref)
    return next(c for c in obj.containers(init=False) if name is None or c["name"] == name)


def pod_spec(m: Manifests, ref: str) -> dict:
    return m.find(ref).pod_spec()


def volume(m: Manifests, ref: str, name: str) -> dict:
    return next(v for v in pod_spec(m, ref)["volumes"] if v["name"] == name)


def drop(m: Manifests, ref: str) -> None:
    m.remove(ref)


def replace(d: dict, remove: str, **add) -> None:
    del d[remove]
    d.update(add)


def env(m: Manifests, ref: str, name: str) -> dict:
    return next(e for e in container(m, ref)["env"] if e["name"] == name)


def edit_prometheus(m: Manifests, old: str, new: str) -> None:
    data = m.find("ConfigMap/governance/prometheus-config").body["data"]
    assert old in data["prometheus.yml"]
    data["prometheus.yml"] = data["prometheus.yml"].replace(old, new)


MLFLOW, MINIO, POSTGRES = "Deployment/it-core/mlflow", "Deployment/it-core/minio", "StatefulSet/it-core/postgres"
JUPYTER, JOB = "Deployment/it-core/jupyter", "Job/it-core/minio-bucket-bootstrap"
MOSQUITTO, NODERED = "Deployment/ot-edge/mosquitto", "Deployment/ot-edge/nodered"
SIMULATOR, INFERENCE = "Deployment/ot-edge/simulator", "Deployment/ot-edge/inference"
PROMETHEUS, GRAFANA = "Deployment/governance/prometheus", "Deployment/governance/grafana"
SCRAPE = "ConfigMap/governance/prometheus-config:scrape-target/prometheus.yml"
RULES_CASE = "ConfigMap/governance/prometheus-config:prometheus-rules/prometheus.yml"
BROKER_CASE = "Secret/ot-edge/mosquitto-config:broker-auth/mosquitto.conf"
CLAIM = "PersistentVolumeClaim/it-core/minio-data"

# name -> (mutation, the case ids that must fail). Each mutation changes one thing of the rendered set.
MUTATIONS: dict[str, tuple[Callable[[Manifests], None], set[str]]] = {
    "drop-default-deny": (lambda m: drop(m, "NetworkPolicy/ot-edge/default-deny"),
                          {"Namespace/ot-edge:default-deny", "NetworkPolicies:isolation"}),
    "drop-allow-policy": (lambda m: drop(m, "NetworkPolicy/it-core/postgres-ingress"),
                          {"NetworkPolicies:isolation"}),
    "widen-ingress-to-all-sources": (
        lambda m: m.find("NetworkPolicy/it-core/mlflow-ingress").body["spec"]["ingress"][0].pop("from"),
        {"NetworkPolicies:isolation"}),
    "widen-egress-to-anywhere": (
        lambda m: m.find("NetworkPolicy/ot-edge/simulator-egress").body["spec"]["egress"].append(
            {"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}),
        {"NetworkPolicies:isolation"}),
    "image-latest": (lambda m: container(m, GRAFANA).update(image="grafana/grafana:latest"),
                     {f"{GRAFANA}:pinned-images"}),
    "image-untagged": (lambda m: container(m, POSTGRES).update(image="postgres"), {f"{POSTGRES}:pinned-images"}),
    "plaintext-password-env": (lambda m: replace(env(m, POSTGRES, "POSTGRES_PASSWORD"), "valueFrom", value="hunter2"),
                               {f"{POSTGRES}:no-secret-literals"}),
    "password-in-args": (lambda m: container(m, MLFLOW)["args"].append(
        "--backend-store-uri=postgresql+psycopg://mlflow:hunter2@postgres-svc:5432/mlflow"),
        {f"{MLFLOW}:no-secret-literals"}),
    "remove-readiness-probe": (lambda m: container(m, INFERENCE).pop("readinessProbe"), {f"{INFERENCE}:probes"}),
    "probe-on-undeclared-port": (lambda m: container(m, MLFLOW)["livenessProbe"]["httpGet"].update(port="metrics"),
                                 {f"{MLFLOW}:probes"}),
    "pvc-to-emptydir": (lambda m: replace(volume(m, MINIO, "data"), "persistentVolumeClaim", emptyDir={}),
                        {f"{MINIO}:stateful-pvc"}),
    "rolling-update-on-rwo": (lambda m: m.find(NODERED).body["spec"].update(strategy={"type": "RollingUpdate"}),
                              {f"{NODERED}:rwo-recreate"}),
    "remove-bucket-job": (lambda m: drop(m, JOB), {f"{MLFLOW}:bucket-bootstrap", "NetworkPolicies:isolation"}),
    "wrong-service-port": (
        lambda m: m.find("Service/it-core/mlflow-svc").body["spec"]["ports"][0].update(targetPort=5001),
        # The intent's flows to MLflow go through mlflow-svc, which no longer reaches port 5000.
        {"Service/it-core/mlflow-svc:service-ports", "NetworkPolicies:isolation"}),
    "missing-limits": (lambda m: container(m, PROMETHEUS)["resources"].pop("limits"), {f"{PROMETHEUS}:resources"}),
    "privileged-container": (lambda m: container(m, MOSQUITTO)["securityContext"].update(privileged=True),
                             {f"{MOSQUITTO}:security-context"}),
    "privilege-escalation": (lambda m: container(m, MINIO)["securityContext"].update(allowPrivilegeEscalation=True),
                             {f"{MINIO}:security-context"}),
    "run-as-root": (lambda m: pod_spec(m, JUPYTER)["securityContext"].update(runAsNonRoot=False, runAsUser=0),
                    {f"{JUPYTER}:security-context"}),
    "capabilities-kept": (lambda m: container(m, SIMULATOR)["securityContext"].pop("capabilities"),
                          {f"{SIMULATOR}:security-context"}),
    "missing-configmap": (lambda m: volume(m, GRAFANA, "dashboards")["configMap"].update(name="grafana-dashboards-x"),
                          {f"{GRAFANA}:references"}),
    "missing-secret-key": (lambda m: env(m, SIMULATOR, "MQTT_PASSWORD")["valueFrom"]["secretKeyRef"].update(key="sim"),
                           {f"{SIMULATOR}:references"}),
    "service-selects-nothing": (
        lambda m: m.find("Service/ot-edge/nodered-svc").body["spec"].update(
            selector={"app.kubernetes.io/name": "node-red"}),
        {"Service/ot-edge/nodered-svc:service-selects"}),
    "scrape-target-missing-service": (lambda m: edit_prometheus(m, "inference-svc.ot-edge", "inference.ot-edge"),
                                      {f"{SCRAPE}/inference"}),
    "scrape-target-wrong-port": (lambda m: edit_prometheus(m, "mlflow-svc.it-core.svc:5000",
                                                           "mlflow-svc.it-core.svc:5001"),
                                 {f"{SCRAPE}/mlflow"}),
    "nodeport-service": (lambda m: m.find("Service/governance/grafana-svc").body["spec"].update(type="NodePort"),
                         {"Service/governance/grafana-svc:service-type"}),
    "namespace-without-pod-security": (
        lambda m: m.find("Namespace/it-core").meta["labels"].pop("pod-security.kubernetes.io/enforce"),
        {"Namespace/it-core:pod-security"}),
    # What an unquoted `version: 2025-10-20` renders to: the schemas accept any string, the API does not.
    "label-value-invalid": (lambda m: pod_spec_labels(m, JUPYTER).update({"app.kubernetes.io/version":
                                                                            "2025-10-20T00:00:00Z"}),
                            {f"{JUPYTER}:labels"}),
    "schema-typo": (lambda m: container(m, INFERENCE)["ports"][0].update(containerport=8088),
                    {f"{INFERENCE}:schema/{v}" for v in ("1.34", "1.35", "1.36", "1.37")}),
    "project-image-without-dockerfile": (lambda m: container(m, INFERENCE).update(image="indmlops-edge:0.1.0"),
                                         {"Image/indmlops-edge:0.1.0:project-image"}),
    # The StatefulSet's governing Service (the shipped set had the first one: a ClusterIP Service).
    "statefulset-governed-by-clusterip-service": (
        lambda m: m.find(POSTGRES).body["spec"].update(serviceName="postgres-svc"),
        {f"{POSTGRES}:statefulset-service"}),
    "statefulset-service-missing": (lambda m: drop(m, "Service/it-core/postgres-headless"),
                                    {f"{POSTGRES}:statefulset-service"}),
    "statefulset-service-selects-other-pods": (
        lambda m: m.find("Service/it-core/postgres-headless").body["spec"].update(
            selector={"app.kubernetes.io/name": "postgresql"}),
        {f"{POSTGRES}:statefulset-service", "Service/it-core/postgres-headless:service-selects"}),
    "statefulset-service-without-selector": (
        lambda m: m.find("Service/it-core/postgres-headless").body["spec"].pop("selector"),
        {f"{POSTGRES}:statefulset-service", "Service/it-core/postgres-headless:service-selects"}),
    # Rule files: the shipped set lacked the SLO rules file in the ConfigMap Prometheus mounts.
    "slo-rules-file-not-in-configmap": (
        lambda m: rules_data(m).pop("slo.yml"), {RULES_CASE}),
    "rules-configmap-not-mounted": (
        lambda m: volume(m, PROMETHEUS, "rules")["configMap"].update(
            name=volume(m, PROMETHEUS, "config")["configMap"]["name"]), {RULES_CASE}),
    "rules-mounted-elsewhere": (
        lambda m: next(v for v in container(m, PROMETHEUS)["volumeMounts"] if v["name"] == "rules").update(
            mountPath="/etc/prometheus/alerts"), {RULES_CASE}),
    "rule-files-pattern-matches-nothing": (lambda m: edit_prometheus(m, "/etc/prometheus/rules/*.yml",
                                                                     "/etc/prometheus/rules/*.yaml"), {RULES_CASE}),
    "rule-files-left-out": (lambda m: edit_prometheus(m, "rule_files:\n- /etc/prometheus/rules/*.yml\n", ""),
                            {RULES_CASE}),
    "alert-renamed-in-the-mounted-file": (
        lambda m: rules_data(m).update(**{"slo.yml": rules_data(m)["slo.yml"].replace(
            "alert: EdgeSLOBreach_mqtt_e2e_p99_quick", "alert: EdgeSloBreach_mqtt_e2e_p99_quick")}), {RULES_CASE}),
    # Service-account tokens: none of the stack's pods uses the API.
    "token-automounted-by-the-pod": (lambda m: pod_spec(m, NODERED).update(automountServiceAccountToken=True),
                                     {f"{NODERED}:sa-token"}),
    "token-setting-left-out": (lambda m: pod_spec(m, JOB).pop("automountServiceAccountToken"), {f"{JOB}:sa-token"}),
    "token-from-a-service-account-that-mounts-it": (
        lambda m: (pod_spec(m, GRAFANA).pop("automountServiceAccountToken"),
                   pod_spec(m, GRAFANA).update(serviceAccountName="grafana"),
                   add(m, {"apiVersion": "v1", "kind": "ServiceAccount",
                           "metadata": {"name": "grafana", "namespace": "governance"},
                           "automountServiceAccountToken": True})),
        {f"{GRAFANA}:sa-token"}),
    # The broker: anonymous clients, no password check, one listener of several left open.
    "broker-allows-anonymous": (lambda m: edit_broker(m, "allow_anonymous false", "allow_anonymous true"),
                                {BROKER_CASE}),
    "broker-without-password-file": (lambda m: edit_broker(m, "password_file /mosquitto/run/passwd\n", ""),
                                     {BROKER_CASE}),
    "broker-second-listener-open": (
        lambda m: edit_broker(m, "per_listener_settings false", "per_listener_settings true",
                              append="\nlistener 9001 0.0.0.0\nallow_anonymous true\n"),
        {BROKER_CASE}),
    # API invariants the schema cannot express: each of these the API server would reject.
    "selector-does-not-match-template": (
        lambda m: m.find(MLFLOW).body["spec"]["selector"]["matchLabels"].update({"app.kubernetes.io/name": "mlflw"}),
        {f"{MLFLOW}:selector"}),
    "selector-missing": (lambda m: m.find(INFERENCE).body["spec"].pop("selector"),  # the schema requires it too
                         {f"{INFERENCE}:selector",
                          *(f"{INFERENCE}:schema/{v}" for v in ("1.34", "1.35", "1.36", "1.37"))}),
    "request-above-limit": (lambda m: container(m, MLFLOW)["resources"]["requests"].update(memory="64Gi"),
                            {f"{MLFLOW}:requests-limits"}),
    "quantity-misspelt": (lambda m: container(m, NODERED)["resources"]["limits"].update(memory="512MB"),
                          {f"{NODERED}:requests-limits"}),
    "deployment-restart-never": (lambda m: pod_spec(m, SIMULATOR).update(restartPolicy="Never"),
                                 {f"{SIMULATOR}:restart-policy"}),
    "job-restart-always": (lambda m: pod_spec(m, JOB).update(restartPolicy="Always"), {f"{JOB}:restart-policy"}),
    "mount-of-undefined-volume": (
        lambda m: next(v for v in container(m, GRAFANA)["volumeMounts"] if v["name"] == "dashboards").update(
            name="dashboard"),
        {f"{GRAFANA}:pod-names"}),
    "port-name-too-long": (lambda m: container(m, INFERENCE)["ports"][0].update(name="http-inference-api"),
                           {f"{INFERENCE}:pod-names", f"{INFERENCE}:probes",
                            "Service/ot-edge/inference-svc:service-ports", "NetworkPolicies:isolation"}),
    "object-defined-twice": (lambda m: add(m, dict(m.find("ConfigMap/ot-edge/nodered-flows").body)),
                             {"Objects:unique-objects"}),
    # Availability: the API accepts these, the cluster cannot run them (or runs them broken).
    "project-image-pulled-always": (lambda m: container(m, INFERENCE).update(imagePullPolicy="Always"),
                                    {f"{INFERENCE}:pull-policy"}),
    "registry-image-never-pulled": (lambda m: container(m, MOSQUITTO).update(imagePullPolicy="Never"),
                                    {f"{MOSQUITTO}:pull-policy"}),
    "claim-read-write-many": (lambda m: m.find(CLAIM).body["spec"].update(accessModes=["ReadWriteMany"]),
                              {f"{CLAIM}:pvc-access-mode"}),
    "claim-of-an-unknown-class": (lambda m: m.find(CLAIM).body["spec"].update(storageClassName="fast-ssd"),
                                  {f"{CLAIM}:pvc-access-mode"}),
    "broker-scaled-to-two": (lambda m: m.find(MOSQUITTO).body["spec"].update(replicas=2),  # on one RWO claim, too
                             {f"{MOSQUITTO}:singleton-replicas", f"{MOSQUITTO}:rwo-recreate"}),
    "database-scaled-to-three": (lambda m: m.find(POSTGRES).body["spec"].update(replicas=3),
                                 {f"{POSTGRES}:singleton-replicas"}),
    # Credentials: a password in a URL whatever the setting is called, and the defaults every scanner tries.
    "password-in-a-url-env": (lambda m: container(m, MLFLOW).setdefault("env", []).append(
        {"name": "MLFLOW_TRACKING_URI", "value": "http://admin:s3cr3t@mlflow-svc.it-core.svc:5000"}),
        {f"{MLFLOW}:url-credentials"}),
    "password-in-a-url-in-a-configmap": (
        lambda m: edit_prometheus(m, "    - mlflow-svc.it-core.svc:5000\n",
                                  "    - mlflow-svc.it-core.svc:5000\n    # remote: http://prom:hunter2@x/\n"),
        {"ConfigMap/governance/prometheus-config:url-credentials"}),
    "default-minio-password": (lambda m: set_secret(m, "Secret/it-core/minio-credentials", "root-password",
                                                    "minioadmin"),
                               {"Secret/it-core/minio-credentials:default-credentials"}),
    "default-grafana-password": (lambda m: set_secret(m, "Secret/governance/grafana-admin", "admin-password", "Admin"),
                                 {"Secret/governance/grafana-admin:default-credentials"}),
}


def set_secret(m: Manifests, ref: str, key: str, value: str) -> None:
    import base64

    data = next(s for s in m.of_kind("Secret") if s.ref.startswith(ref)).body["data"]
    assert key in data
    data[key] = base64.b64encode(value.encode()).decode()


def add(m: Manifests, body: dict) -> None:
    from indmlops.manifests import Obj

    m.objects.append(Obj(body, "mutation"))
    m.__post_init__()


def edit_broker(m: Manifests, old: str, new: str, append: str = "") -> None:
    import base64

    data = m.find("Secret/ot-edge/mosquitto-config").body["data"]
    text = base64.b64decode("".join(data["mosquitto.conf"].split())).decode()
    assert old in text, old
    data["mosquitto.conf"] = base64.b64encode((text.replace(old, new) + append).encode()).decode()


def rules_data(m: Manifests) -> dict:
    return next(cm for cm in m.of_kind("ConfigMap") if cm.name.startswith("prometheus-rules")).body["data"]


def pod_spec_labels(m, ref):
    return m.find(ref).body["spec"]["template"]["metadata"]["labels"]


def test_shipped_manifests_pass_every_static_check(shipped, policy, intent):
    assert failing(shipped, policy, intent) == {}


@pytest.mark.parametrize("name", list(MUTATIONS), ids=[f"mutation/{n}" for n in MUTATIONS])
def test_mutation_is_caught_by_the_named_check(name, shipped, policy, intent):
    mutate, expected = MUTATIONS[name]
    mutate(shipped)
    found = failing(shipped, policy, intent)
    assert set(found) == expected, f"{name}: expected exactly {sorted(expected)} to fail; failing: {sorted(found)}"
    by_id = {c.id: c for c in cases(shipped, policy)}
    for case_id in expected:
        text = message(by_id[case_id], found[case_id])
        assert text.startswith(f"{by_id[case_id].subject} (") and f"[{by_id[case_id].rule}" in text, text


def rule_of(case_id: str) -> str:
    # `<subject>:<rule>[/arg]`; an Image subject carries its own `:tag`.
    return re.match(r"^(?:Image/[^:]+:[^:]+|[^:]+):([a-z-]+)", case_id).group(1)


def test_catalogue_covers_every_rule():
    assert {rule_of(c) for _, expected in MUTATIONS.values() for c in expected} == set(RULES)


def test_finding_names_object_file_rule_expected_and_found(shipped, policy, intent):
    container(shipped, GRAFANA).update(image="grafana/grafana:latest")
    case = next(c for c in cases(shipped, policy) if c.id == f"{GRAFANA}:pinned-images")
    text = message(case, run(case, shipped, policy, intent))
    assert text.startswith(f"{GRAFANA} (")
    assert "manifests/base/04-governance/grafana.yaml" in text
    assert "[pinned-images]" in text and "'grafana/grafana:latest'" in text and "expected an exact version" in text


def test_intent_services_must_exist_and_reach_the_allowed_port(shipped, policy, intent):
    drop(shipped, "Service/ot-edge/mosquitto-svc")
    case = next(c for c in cases(shipped, policy) if c.rule == "isolation")
    text = "\n".join(run(case, shipped, policy, intent))
    assert "ot-edge/simulator -> ot-edge/mosquitto:1883 via Service ot-edge/mosquitto-svc: no such Service" in text


def test_isolation_failure_prints_expected_computed_and_differing_cells(shipped, policy, intent):
    drop(shipped, "NetworkPolicy/ot-edge/default-deny")
    case = next(c for c in cases(shipped, policy) if c.rule == "isolation")
    text = "\n".join(run(case, shipped, policy, intent))
    assert "ALLOWED by policies, intent denies: cluster/other-namespace-pod -> ot-edge/nodered:1880/TCP" in text
    assert "expected (intent allows exactly):" in text and "computed from the NetworkPolicies:" in text


def test_a_mutated_source_file_is_caught_through_kustomize_and_named(tmp_path, policy, intent, monkeypatch):
    # The same path as a user's edit: a source file changes, kustomize renders, the finding names that file.
    for d in ("manifests", "config"):
        shutil.copytree(REPO / d, tmp_path / d, ignore=shutil.ignore_patterns("node_modules"))
    source = tmp_path / "manifests" / "base" / "02-it-core" / "mlflow.yaml"
    source.write_text(source.read_text().replace("image: indmlops-mlflow:3.17.2", "image: indmlops-mlflow:latest"))
    monkeypatch.chdir(tmp_path)
    m = load(tmp_path / "manifests" / "overlays" / "kind")
    found = failing(m, policy, intent)
    assert set(found) == {f"{MLFLOW}:pinned-images"}, sorted(found)
    case = next(c for c in cases(m, policy) if c.id == f"{MLFLOW}:pinned-images")
    assert case.source == "manifests/base/02-it-core/mlflow.yaml"
