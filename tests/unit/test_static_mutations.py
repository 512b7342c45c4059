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
LONG_JOB = "minio-bucket-bootstrap-for-the-mlflow-artifact-store-and-registry"  # 65 characters

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
        {"NetworkPolicies:isolation", "NetworkPolicy/ot-edge/simulator-egress:ipblock-scope"}),
    "image-latest": (lambda m: container(m, GRAFANA).update(image="grafana/grafana:latest"),
                     {f"{GRAFANA}:pinned-images"}),
    "image-untagged": (lambda m: container(m, POSTGRES).update(image="postgres"), {f"{POSTGRES}:pinned-images"}),
    # The literal also differs from the Secret MLflow logs in with (credentials).
    "plaintext-password-env": (lambda m: replace(env(m, POSTGRES, "POSTGRES_PASSWORD"), "valueFrom", value="hunter2"),
                               {f"{POSTGRES}:no-secret-literals", f"{MLFLOW}:credentials"}),
    "password-in-args": (lambda m: container(m, MLFLOW)["args"].append(
        "--backend-store-uri=postgresql+psycopg://mlflow:hunter2@postgres-svc:5432/mlflow"),
        {f"{MLFLOW}:no-secret-literals", f"{MLFLOW}:credentials"}),
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
        # The intent's flows to MLflow go through mlflow-svc, which no longer reaches port 5000; so do its clients.
        {"Service/it-core/mlflow-svc:service-ports", "NetworkPolicies:isolation", f"{JUPYTER}:addresses",
         f"{INFERENCE}:addresses"}),
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
    # ---- class 1: API values the schema does not check ----
    # Each of these the API server rejects (or, marked, mishandles); the schema checks only the type.
    "pull-policy-lowercase": (lambda m: container(m, MLFLOW).update(imagePullPolicy="ifNotPresent"),
                              {f"{MLFLOW}:field-values"}),
    "container-port-out-of-range": (lambda m: container(m, SIMULATOR).setdefault("ports", []).append(
        {"name": "metrics", "containerPort": 90100, "protocol": "TCP"}), {f"{SIMULATOR}:field-values"}),
    "liveness-success-threshold": (lambda m: container(m, MLFLOW)["livenessProbe"].update(successThreshold=3),
                                   {f"{MLFLOW}:field-values"}),
    "probe-with-two-handlers": (lambda m: container(m, MLFLOW)["readinessProbe"].update(tcpSocket={"port": "http"}),
                                {f"{MLFLOW}:field-values"}),
    "startup-probe-port-quoted-number": (
        lambda m: container(m, MLFLOW)["startupProbe"]["httpGet"].update(port="5000"), {f"{MLFLOW}:field-values"}),
    "replicas-negative": (lambda m: m.find(JUPYTER).body["spec"].update(replicas=-1), {f"{JUPYTER}:field-values"}),
    "recreate-with-rolling-update-settings": (
        lambda m: m.find(NODERED).body["spec"]["strategy"].update(rollingUpdate={"maxSurge": 0}),
        {f"{NODERED}:field-values"}),
    "rollout-that-cannot-progress": (lambda m: m.find(MLFLOW).body["spec"].update(
        strategy={"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}}),
        {f"{MLFLOW}:field-values"}),
    "max-unavailable-quoted-number": (lambda m: m.find(SIMULATOR).body["spec"].update(
        strategy={"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "1"}}), {f"{SIMULATOR}:field-values"}),
    "grace-period-negative": (lambda m: pod_spec(m, SIMULATOR).update(terminationGracePeriodSeconds=-1),
                              {f"{SIMULATOR}:field-values"}),
    "deadline-copied-into-a-deployment": (lambda m: pod_spec(m, INFERENCE).update(activeDeadlineSeconds=600),
                                          {f"{INFERENCE}:field-values"}),
    "backoff-limit-negative": (lambda m: m.find(JOB).body["spec"].update(backoffLimit=-1), {f"{JOB}:field-values"}),
    "job-with-hand-written-selector": (lambda m: m.find(JOB).body["spec"].update(selector={"matchLabels": dict(
        m.find(JOB).pod_labels())}), {f"{JOB}:field-values"}),
    "job-name-too-long": (lambda m: m.find(JOB).meta.update(name=LONG_JOB), {f"Job/it-core/{LONG_JOB}:object-names"}),
    # The bootstrap Job made a nightly CronJob: a Quartz schedule (seconds first), an hour past 23.
    "cronjob-schedule-with-seconds": (lambda m: (add(m, cronjob_of(m, JOB, "0 0 2 * * *")), drop(m, JOB)),
                                      {"CronJob/it-core/bucket-check:field-values"}),
    "cronjob-schedule-out-of-range": (lambda m: (add(m, cronjob_of(m, JOB, "0 24 * * *")), drop(m, JOB)),
                                      {"CronJob/it-core/bucket-check:field-values"}),
    "statefulset-pod-policy-lowercase": (lambda m: m.find(POSTGRES).body["spec"].update(podManagementPolicy="parallel"),
                                         {f"{POSTGRES}:field-values"}),
    "volume-mode-decimal": (lambda m: volume(m, GRAFANA, "dashboards")["configMap"].update(defaultMode=644),
                            {f"{GRAFANA}:field-values"}),
    "sub-path-absolute": (lambda m: container(m, MLFLOW)["volumeMounts"][0].update(subPath="/metrics"),
                          {f"{MLFLOW}:field-values"}),
    "toleration-exists-with-value": (lambda m: pod_spec(m, INFERENCE).update(tolerations=[
        {"key": "edge", "operator": "Exists", "value": "true", "effect": "NoSchedule"}]),
        {f"{INFERENCE}:field-values"}),
    "node-affinity-exists-with-values": (lambda m: pod_spec(m, INFERENCE).update(affinity={"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [
            {"key": "node-role.kubernetes.io/edge", "operator": "Exists", "values": ["true"]}]}]}}}),
        {f"{INFERENCE}:field-values", f"{INFERENCE}:scheduling"}),  # and no kind node has that label
    "service-port-defined-twice": (
        lambda m: m.find("Service/it-core/minio-svc").body["spec"]["ports"][1].update(port=9000),
        {"Service/it-core/minio-svc:field-values"}),
    "service-second-port-without-name": (
        lambda m: m.find("Service/it-core/mlflow-svc").body["spec"]["ports"].append({"port": 80, "targetPort": 5000}),
        {"Service/it-core/mlflow-svc:object-names"}),
    "node-port-on-cluster-ip-service": (
        lambda m: m.find("Service/it-core/minio-svc").body["spec"]["ports"][1].update(nodePort=30901),
        {"Service/it-core/minio-svc:field-values"}),
    "session-affinity-typo": (lambda m: m.find("Service/governance/grafana-svc").body["spec"].update(
        sessionAffinity="ClientIp"), {"Service/governance/grafana-svc:field-values"}),
    "external-traffic-policy-on-cluster-ip": (lambda m: m.find("Service/governance/grafana-svc").body["spec"].update(
        externalTrafficPolicy="Local"), {"Service/governance/grafana-svc:field-values"}),
    "secret-plain-text-under-data": (lambda m: next(s for s in m.of_kind("Secret") if s.ref.startswith(
        "Secret/it-core/minio-credentials")).body["data"].update({"root-password": "dev-only-minio-change-me"}),
        {"Secret/it-core/minio-credentials:field-values"}),
    "configmap-key-with-a-space": (lambda m: m.find("ConfigMap/ot-edge/nodered-flows").body["data"].update(
        {"flows backup.json": "[]"}), {"ConfigMap/ot-edge/nodered-flows:object-names"}),
    "claim-of-zero-bytes": (lambda m: m.find(CLAIM).body["spec"]["resources"]["requests"].update(storage="0"),
                            {f"{CLAIM}:field-values"}),
    "container-name-with-underscore": (lambda m: container(m, INFERENCE).update(name="edge_inference"),
                                       {f"{INFERENCE}:object-names"}),
    "policy-type-lowercase": (lambda m: m.find("NetworkPolicy/it-core/mlflow-ingress").body["spec"].update(
        policyTypes=["ingress"]),  # the policy no longer applies to ingress: its allow rules are lost
        {"NetworkPolicy/it-core/mlflow-ingress:field-values", "NetworkPolicies:isolation"}),
    "host-alias-with-a-bad-plc-address": (lambda m: pod_spec(m, NODERED).update(hostAliases=[
        {"ip": "192.168.10.300", "hostnames": ["plc-line-1"]}]), {f"{NODERED}:field-values"}),
    "node-selector-value-with-a-space": (lambda m: pod_spec(m, INFERENCE).update(
        nodeSelector={"topology.kubernetes.io/zone": "hall 3"}),  # and no kind node is in that zone
        {f"{INFERENCE}:field-values", f"{INFERENCE}:scheduling"}),
    "resource-name-typo": (lambda m: container(m, GRAFANA)["resources"]["requests"].update(memroy="128Mi"),
                           {f"{GRAFANA}:requests-limits"}),
    "service-ports-dropped": (lambda m: m.find("Service/governance/grafana-svc").body["spec"].update(ports=[]),
                              {"Service/governance/grafana-svc:field-values"}),
    # ---- class 6: NetworkPolicy ipBlock peers and the isolation intent ----
    # Cluster networks (fixtures/static.yaml, kind's defaults): pods 10.244.0.0/16, services 10.96.0.0/12. An
    # ipBlock reaching into them matches every pod: the one source whose egress no policy restricts (a pod of
    # another namespace) gets in. "The internet" (198.51.100.7:443) is reached by any egress range covering it.
    "egress-https-to-the-internet-without-except": (  # also reopens every pod's 443 and every ClusterIP
        lambda m: m.find("NetworkPolicy/ot-edge/inference-egress").body["spec"]["egress"].append(
            {"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": [{"port": 443, "protocol": "TCP"}]}),
        {"NetworkPolicies:isolation", "NetworkPolicy/ot-edge/inference-egress:ipblock-scope"}),
    "egress-https-to-the-internet-excepting-the-cluster": (  # the internet cell only: no pod, no ClusterIP
        lambda m: m.find("NetworkPolicy/ot-edge/inference-egress").body["spec"]["egress"].append(
            {"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.244.0.0/16", "10.96.0.0/12"]}}],
             "ports": [{"port": 443, "protocol": "TCP"}]}),
        {"NetworkPolicies:isolation"}),
    "ingress-from-the-plant-network-10-slash-8": (
        lambda m: m.find("NetworkPolicy/ot-edge/mosquitto-ingress").body["spec"]["ingress"].append(
            {"from": [{"ipBlock": {"cidr": "10.0.0.0/8"}}], "ports": [{"port": 1883, "protocol": "TCP"}]}),
        {"NetworkPolicies:isolation", "NetworkPolicy/ot-edge/mosquitto-ingress:ipblock-scope"}),
    "ingress-from-the-plant-network-excepting-the-cluster": (  # must NOT be an isolation hole: nothing fails
        lambda m: m.find("NetworkPolicy/ot-edge/mosquitto-ingress").body["spec"]["ingress"].append(
            {"from": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.244.0.0/16", "10.96.0.0/12"]}}],
             "ports": [{"port": 1883, "protocol": "TCP"}]}),
        set()),
    "ingress-from-the-office-lan": (  # disjoint from the cluster's networks: nothing fails
        lambda m: m.find("NetworkPolicy/it-core/mlflow-ingress").body["spec"]["ingress"].append(
            {"from": [{"ipBlock": {"cidr": "192.168.0.0/16"}}], "ports": [{"port": 5000, "protocol": "TCP"}]}),
        set()),
    "ingress-from-the-pod-network-itself": (  # "every pod may query the database": no except can fix it
        lambda m: m.find("NetworkPolicy/it-core/postgres-ingress").body["spec"]["ingress"].append(
            {"from": [{"ipBlock": {"cidr": "10.244.0.0/16"}}]}),
        {"NetworkPolicies:isolation", "NetworkPolicy/it-core/postgres-ingress:ipblock-scope"}),
    "egress-to-the-dns-service-ip": (  # a ClusterIP: up to the network plugin; kube-dns is allowed anyway
        lambda m: m.find("NetworkPolicy/it-core/allow-dns").body["spec"]["egress"].append(
            {"to": [{"ipBlock": {"cidr": "10.96.0.10/32"}}], "ports": [{"port": 53, "protocol": "UDP"}]}),
        {"NetworkPolicy/it-core/allow-dns:ipblock-scope"}),
    "cidr-octet-out-of-range": (  # the API rejects the policy; the matrix fails closed (the range may be pods)
        lambda m: m.find("NetworkPolicy/it-core/mlflow-ingress").body["spec"]["ingress"].append(
            {"from": [{"ipBlock": {"cidr": "192.168.300.0/24"}}], "ports": [{"port": 5000, "protocol": "TCP"}]}),
        {"NetworkPolicies:isolation", "NetworkPolicy/it-core/mlflow-ingress:ipblock-scope"}),
    "except-outside-its-cidr": (  # 192.169 for 192.168: the API rejects it
        lambda m: m.find("NetworkPolicy/it-core/mlflow-ingress").body["spec"]["ingress"].append(
            {"from": [{"ipBlock": {"cidr": "192.168.0.0/16", "except": ["192.169.10.0/24"]}}],
             "ports": [{"port": 5000, "protocol": "TCP"}]}),
        {"NetworkPolicy/it-core/mlflow-ingress:ipblock-scope"}),
    "ipv6-block-with-an-ipv4-except": (  # copied from the IPv4 rule; IPv4-only cluster, so no pod is matched
        lambda m: m.find("NetworkPolicy/ot-edge/simulator-egress").body["spec"]["egress"].append(
            {"to": [{"ipBlock": {"cidr": "::/0", "except": ["10.244.0.0/16"]}}]}),
        {"NetworkPolicy/ot-edge/simulator-egress:ipblock-scope"}),
    "single-host-written-with-its-network-prefix": (  # 10.244.1.7/16 is all of 10.244.0.0/16, not one pod
        lambda m: m.find("NetworkPolicy/governance/prometheus-egress").body["spec"]["egress"].append(
            {"to": [{"ipBlock": {"cidr": "10.244.1.7/16"}}], "ports": [{"port": 5432, "protocol": "TCP"}]}),
        {"NetworkPolicy/governance/prometheus-egress:ipblock-scope"}),
    "ipblock-and-selector-in-one-peer": (  # the API rejects the peer; the evaluator reads the ipBlock
        lambda m: m.find("NetworkPolicy/ot-edge/simulator-egress").body["spec"]["egress"].append(
            {"to": [{"ipBlock": {"cidr": "203.0.113.0/24"},
                     "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "governance"}}}]}),
        {"NetworkPolicy/ot-edge/simulator-egress:ipblock-scope"}),
    # ---- class 6: unusual but valid YAML ----
    # null is absent to the API, which applies its default: replicas 1, targetPort = port, type ClusterIP, TCP.
    "replicas-null": (lambda m: m.find(MOSQUITTO).body["spec"].update(replicas=None), set()),
    "service-port-without-target-port": (
        lambda m: m.find("Service/it-core/mlflow-svc").body["spec"]["ports"][0].pop("targetPort"), set()),
    "service-type-null": (lambda m: m.find("Service/governance/grafana-svc").body["spec"].update(type=None), set()),
    "port-protocol-null": (lambda m: (container(m, INFERENCE)["ports"][0].update(protocol=None),
                                      m.find("NetworkPolicy/ot-edge/inference-ingress").body["spec"]["ingress"][0][
                                          "ports"][0].update(protocol=None)), set()),
    "env-null": (lambda m: container(m, PROMETHEUS).update(env=None), set()),
    "ports-empty": (lambda m: container(m, SIMULATOR).update(ports=[]), set()),
    # optional: true — a missing object is no error (the operator may add it; the pod starts without it), unless only
    # a typo away from one of the set's. A key missing from an object the set defines can never resolve here: the
    # container silently goes without it, so optional hides the mistake (issue 25).
    "optional-configmap-volume-missing": (lambda m: volume(m, GRAFANA, "dashboards")["configMap"].update(
        name="grafana-dashboards-x", optional=True), set()),
    "optional-secret-volume-missing": (lambda m: volume(m, NODERED, "credentials")["secret"].update(
        secretName="mqtt-credentials-x", optional=True), set()),
    "optional-secret-key-ref-missing-key": (
        lambda m: env(m, SIMULATOR, "MQTT_PASSWORD")["valueFrom"]["secretKeyRef"].update(key="sim", optional=True),
        {f"{SIMULATOR}:references"}),
    "optional-env-from-missing": (lambda m: container(m, INFERENCE).update(envFrom=[
        {"configMapRef": {"name": "inference-extra", "optional": True}},
        {"secretRef": {"name": "inference-extra", "optional": True}}]), set()),
    "env-from-missing": (lambda m: container(m, INFERENCE).update(envFrom=[{"configMapRef": {"name": "inference-x"}}]),
                         {f"{INFERENCE}:references"}),
    # A volume's items pick keys: a missing one keeps the pod from starting, unless the source is optional.
    "volume-item-key-missing": (lambda m: volume(m, GRAFANA, "dashboards")["configMap"].update(
        items=[{"key": "stack-overview.jsn", "path": "stack-overview.json"}]), {f"{GRAFANA}:references"}),
    "optional-volume-item-key-missing": (lambda m: volume(m, GRAFANA, "dashboards")["configMap"].update(
        items=[{"key": "stack-overview.jsn", "path": "stack-overview.json"}], optional=True),
        {f"{GRAFANA}:references"}),
    # A quoted number in an IntOrString port is a port *name* to the API, and a name needs a letter: rejected.
    "service-target-port-quoted-number": (
        lambda m: m.find("Service/it-core/mlflow-svc").body["spec"]["ports"][0].update(targetPort="5000"),
        {"Service/it-core/mlflow-svc:service-ports", "Service/it-core/mlflow-svc:field-values",
         "NetworkPolicies:isolation"}),
    "probe-port-quoted-number": (lambda m: container(m, MLFLOW)["livenessProbe"]["httpGet"].update(port="5000"),
                                 {f"{MLFLOW}:probes", f"{MLFLOW}:field-values"}),
    "networkpolicy-port-quoted-number": (
        lambda m: m.find("NetworkPolicy/it-core/mlflow-ingress").body["spec"]["ingress"][0]["ports"][0].update(
            port="5000"), {"NetworkPolicies:isolation", "NetworkPolicy/it-core/mlflow-ingress:field-values"}),
    "service-target-port-number": (
        lambda m: m.find("Service/it-core/mlflow-svc").body["spec"]["ports"][0].update(targetPort=5000), set()),
    # A quoted number where the API takes an integer: the schema says so, and the rules reading it cannot judge it.
    "replicas-quoted": (lambda m: m.find(MOSQUITTO).body["spec"].update(replicas="1"),
                        {f"{MOSQUITTO}:singleton-replicas", f"{MOSQUITTO}:rwo-recreate",
                         *(f"{MOSQUITTO}:schema/{v}" for v in ("1.34", "1.35", "1.36", "1.37"))}),
    # A Secret written with stringData (plain text) instead of data (base64): read alike.
    "secret-in-string-data": (lambda m: to_string_data(m, "Secret/governance/grafana-admin"), set()),
    "broker-config-in-string-data": (lambda m: to_string_data(m, "Secret/ot-edge/mosquitto-config"), set()),
    "broker-in-string-data-allows-anonymous": (
        lambda m: (to_string_data(m, "Secret/ot-edge/mosquitto-config"),
                   edit_string_data(m, "Secret/ot-edge/mosquitto-config", "mosquitto.conf",
                                    "allow_anonymous false", "allow_anonymous true")), {BROKER_CASE}),
    "default-password-in-string-data": (
        lambda m: (to_string_data(m, "Secret/governance/grafana-admin"),
                   edit_string_data(m, "Secret/governance/grafana-admin", "admin-password", None, "admin")),
        {"Secret/governance/grafana-admin:default-credentials"}),
    # YAML spellings that load to the same objects: anchors and merge keys, a List, empty documents.
    "yaml-anchors-and-merge-keys": (lambda m: reload_with_merge_keys(m, MLFLOW), set()),
    "yaml-list-of-objects": (lambda m: reload_as_list(m, "ot-edge"), set()),
    "yaml-empty-documents": (lambda m: reload_text(m, SIMULATOR, lambda text: f"---\n\n---\n{text}---\n...\n"),
                             set()),
    # ---- classes 2-5: wiring, data placement, security, availability ----
    # Wiring: what an application is told (fixtures/applications.yaml) must reach the right listener.
    "s3-endpoint-in-the-wrong-namespace": (
        lambda m: env(m, MLFLOW, "MLFLOW_S3_ENDPOINT_URL").update(value="http://minio-svc.ot-edge.svc:9000"),
        {f"{MLFLOW}:addresses"}),
    "s3-endpoint-on-the-console-port": (
        lambda m: env(m, MLFLOW, "MLFLOW_S3_ENDPOINT_URL").update(value="http://minio-svc.it-core.svc:9001"),
        {f"{MLFLOW}:addresses"}),
    "inference-broker-host-typo": (lambda m: set_arg(m, INFERENCE, "mosquitto-svc.ot-edge.svc:1883",
                                                     "mosquitto.ot-edge.svc:1883"), {f"{INFERENCE}:addresses"}),
    "simulator-broker-compose-name": (lambda m: set_arg(m, SIMULATOR, "mosquitto-svc.ot-edge.svc:1883",
                                                        "mqtt-broker:1883"), {f"{SIMULATOR}:addresses"}),
    "hmi-broker-port-tls": (lambda m: env(m, NODERED, "INDMLOPS_MQTT_PORT").update(value="8883"),
                            {f"{NODERED}:addresses"}),
    "notebook-tracking-uri-localhost": (
        lambda m: env(m, JUPYTER, "MLFLOW_TRACKING_URI").update(value="http://localhost:5000"),
        {f"{JUPYTER}:addresses"}),
    "grafana-datasource-wrong-port": (
        lambda m: edit_data(m, "ConfigMap/governance/grafana-datasources", "datasources.yaml",
                            "prometheus-svc.governance.svc:9090", "prometheus-svc.governance.svc:9091"),
        {"ConfigMap/governance/grafana-datasources:addresses"}),
    "backend-store-on-the-wrong-host": (
        lambda m: set_arg(m, MLFLOW, "--backend-store-uri=", "--backend-store-uri=postgresql+psycopg://"
                          "mlflow@postgres.it-core.svc:5432/mlflow"), {f"{MLFLOW}:addresses"}),
    "minio-service-forwards-to-the-console": (
        lambda m: m.find("Service/it-core/minio-svc").body["spec"]["ports"][0].update(targetPort="console"),
        {f"{MLFLOW}:addresses", "NetworkPolicies:isolation"}),
    "mlflow-binds-loopback": (lambda m: set_arg(m, MLFLOW, "--host=", "--host=127.0.0.1"), {f"{MLFLOW}:binds"}),
    "mlflow-port-moved": (lambda m: set_arg(m, MLFLOW, "--port=", "--port=5001"),  # its clients reach 5000
                          {f"{MLFLOW}:binds", f"{JUPYTER}:addresses", f"{INFERENCE}:addresses"}),
    "broker-listener-line-dropped": (lambda m: edit_broker(m, "listener 1883 0.0.0.0\n", ""),  # local-only mode
                                     {f"{MOSQUITTO}:binds"}),
    "broker-listens-on-localhost": (lambda m: edit_broker(m, "listener 1883 0.0.0.0", "listener 1883 127.0.0.1"),
                                    {f"{MOSQUITTO}:binds"}),
    "minio-console-address-dropped": (
        lambda m: container(m, MINIO).update(args=["server", "/data", "--address", ":9000"]), {f"{MINIO}:binds"}),
    "inference-port-differs-from-its-listener": (
        lambda m: container(m, INFERENCE)["ports"][0].update(containerPort=8080),
        {f"{INFERENCE}:binds", "NetworkPolicies:isolation"}),
    "mlflow-allowed-hosts-without-the-namespace-form": (
        lambda m: set_arg(m, MLFLOW, "--allowed-hosts=", "--allowed-hosts=mlflow-svc:5000,localhost:*"),
        {f"{JUPYTER}:addresses", f"{INFERENCE}:addresses"}),
    "service-selects-every-stack-pod": (
        lambda m: m.find("Service/it-core/mlflow-svc").body["spec"].update(
            selector={"app.kubernetes.io/part-of": "indmlops"}),
        {"Service/it-core/mlflow-svc:service-selects", "Service/it-core/mlflow-svc:service-ports",
         f"{JUPYTER}:addresses", f"{INFERENCE}:addresses", "NetworkPolicies:isolation"}),
    "bucket-job-creates-a-longer-name": (
        lambda m: container(m, JOB).update(args=[container(m, JOB)["args"][0].replace(
            "mc mb --ignore-existing lab/mlflow-bucket", "mc mb --ignore-existing lab/mlflow-bucket-dev")]),
        {f"{MLFLOW}:bucket-bootstrap"}),
    "config-item-key-missing": (lambda m: volume(m, PROMETHEUS, "config").update(
        configMap={**volume(m, PROMETHEUS, "config")["configMap"], "items": [{"key": "prom.yml", "path": "x.yml"}]}),
        {f"{PROMETHEUS}:references", f"{PROMETHEUS}:setting-refs", RULES_CASE}),
    "service-account-missing": (lambda m: pod_spec(m, SIMULATOR).update(serviceAccountName="simulator"),
                                {f"{SIMULATOR}:references"}),
    "inference-tracking-uri-dropped": (lambda m: drop_arg(m, INFERENCE, "--tracking-uri"),
                                       {f"{INFERENCE}:addresses"}),
    "s3-endpoint-env-dropped": (lambda m: container(m, MLFLOW).update(
        env=[e for e in container(m, MLFLOW)["env"] if e["name"] != "MLFLOW_S3_ENDPOINT_URL"]),
        {f"{MLFLOW}:addresses"}),
    "password-env-renamed": (lambda m: env(m, SIMULATOR, "MQTT_PASSWORD").update(name="MQTT_PASS"),
                             {f"{SIMULATOR}:setting-refs"}),
    "acl-file-not-mounted": (lambda m: edit_broker(m, "acl_file /mosquitto/config/acl.conf",
                                                   "acl_file /mosquitto/config/acl"), {f"{MOSQUITTO}:setting-refs"}),
    "prometheus-config-file-elsewhere": (
        lambda m: set_arg(m, PROMETHEUS, "--config.file=", "--config.file=/etc/prometheus/config.yml"),
        {f"{PROMETHEUS}:setting-refs"}),
    "undefined-variable-in-args": (lambda m: container(m, SIMULATOR)["args"].extend(["--lines", "$(LINES)"]),
                                   {f"{SIMULATOR}:setting-refs"}),
    "mlflow-probe-path-typo": (lambda m: container(m, MLFLOW)["readinessProbe"]["httpGet"].update(path="/healthz"),
                               {f"{MLFLOW}:probe-paths"}),
    "minio-probe-on-the-root": (lambda m: container(m, MINIO)["livenessProbe"]["httpGet"].update(path="/"),
                                {f"{MINIO}:probe-paths"}),
    "database-claim-template-of-an-unknown-class": (
        lambda m: m.find(POSTGRES).body["spec"]["volumeClaimTemplates"][0]["spec"].update(storageClassName="gp3"),
        {f"{POSTGRES}:pvc-access-mode"}),
    "mlflow-db-password-from-the-user-key": (
        lambda m: env(m, MLFLOW, "PGPASSWORD")["valueFrom"]["secretKeyRef"].update(key="username"),
        {f"{MLFLOW}:credentials"}),
    "mlflow-db-name-differs": (
        lambda m: set_arg(m, MLFLOW, "--backend-store-uri=", "--backend-store-uri=postgresql+psycopg://"
                          "mlflow@postgres-svc.it-core.svc:5432/mlflow_db"), {f"{MLFLOW}:credentials"}),
    "minio-root-user-from-another-key": (
        lambda m: env(m, MINIO, "MINIO_ROOT_USER")["valueFrom"]["secretKeyRef"].update(key="root-password"),
        {f"{MLFLOW}:credentials"}),
    # The target cluster (fixtures/static.yaml nodes) and RBAC.
    "inference-scaled-to-zero": (lambda m: m.find(INFERENCE).body["spec"].update(replicas=0),
                                 {f"{INFERENCE}:singleton-replicas"}),
    "mlflow-rollout-paused": (lambda m: m.find(MLFLOW).body["spec"].update(paused=True),
                              {f"{MLFLOW}:singleton-replicas"}),
    "edge-pinned-to-a-plant-node-label": (lambda m: pod_spec(m, INFERENCE).update(nodeSelector={"site": "line-1"}),
                                          {f"{INFERENCE}:scheduling"}),
    "broker-pinned-to-the-tainted-control-plane": (
        lambda m: pod_spec(m, MOSQUITTO).update(nodeSelector={"node-role.kubernetes.io/control-plane": ""}),
        {f"{MOSQUITTO}:scheduling"}),
    "broker-on-the-control-plane-tolerated": (
        lambda m: pod_spec(m, MOSQUITTO).update(
            nodeSelector={"node-role.kubernetes.io/control-plane": ""},
            tolerations=[{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists",
                          "effect": "NoSchedule"}]), set()),
    "database-requires-ssd-nodes": (lambda m: pod_spec(m, POSTGRES).update(affinity={"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [
            {"key": "disktype", "operator": "In", "values": ["ssd"]}]}]}}}), {f"{POSTGRES}:scheduling"}),
    "default-account-made-cluster-admin": (lambda m: add(m, {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": "ot-edge-admin"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": "ot-edge"}]}),
        {"ClusterRoleBinding/ot-edge-admin:rbac"}),
    "secrets-readable-by-every-account": (lambda m: add(m, {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "read-all", "namespace": "it-core"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
        "subjects": [{"kind": "Group", "name": "system:authenticated", "apiGroup": "rbac.authorization.k8s.io"}]}),
        {"RoleBinding/it-core/read-all:rbac"}),
    "grafana-admin-password-in-a-configmap": (
        lambda m: m.find("ConfigMap/governance/grafana-datasources").body["data"].update(
            {"grafana.ini": "[security]\nadmin_user = admin\nadmin_password = Pl4nt-0ps!\n"}),
        {"ConfigMap/governance/grafana-datasources:no-secret-literals"}),
    "minio-password-key-in-a-configmap": (
        lambda m: m.find("ConfigMap/governance/grafana-datasources").body["data"].update(
            {"MINIO_ROOT_PASSWORD": "s3cr3t-plant"}),
        {"ConfigMap/governance/grafana-datasources:no-secret-literals"}),
    "grafana-datasources-mounted-beside-provisioning": (
        lambda m: next(v for v in container(m, GRAFANA)["volumeMounts"] if v["name"] == "datasources").update(
            mountPath="/etc/grafana/datasources"), {f"{GRAFANA}:setting-refs"}),
    "mlflow-service-selector-copied-from-minio": (
        lambda m: m.find("Service/it-core/mlflow-svc").body["spec"].update(
            selector={"app.kubernetes.io/name": "minio"}),
        # MLflow's own --allowed-hosts now names a Service that does not front it: judged as an address too.
        {"Service/it-core/mlflow-svc:service-selects", "Service/it-core/mlflow-svc:service-ports",
         f"{JUPYTER}:addresses", f"{INFERENCE}:addresses", f"{MLFLOW}:addresses", "NetworkPolicies:isolation"}),
    # One edge at a time: it holds a persistent MQTT session under a fixed client id.
    "inference-rolling-update": (
        lambda m: m.find(INFERENCE).body["spec"].update(strategy={"type": "RollingUpdate"}),
        {f"{INFERENCE}:one-instance"}),
    "inference-strategy-dropped": (lambda m: m.find(INFERENCE).body["spec"].pop("strategy"),
                                   {f"{INFERENCE}:one-instance"}),
    "inference-strategy-null": (lambda m: m.find(INFERENCE).body["spec"].update(strategy=None),
                                {f"{INFERENCE}:one-instance"}),
    "inference-scaled-to-two-for-throughput": (lambda m: m.find(INFERENCE).body["spec"].update(replicas=2),
                                               {f"{INFERENCE}:one-instance"}),
    "mlflow-squeezed-to-128mi": (
        lambda m: container(m, MLFLOW)["resources"].update(requests={"cpu": "200m", "memory": "64Mi"},
                                                           limits={"cpu": "2", "memory": "128Mi"}),
        {f"{MLFLOW}:memory-floor"}),
    # Data placement and durability: where the application is told to write, and whether it keeps it.
    "mlflow-backend-store-in-a-sqlite-file": (
        lambda m: set_arg(m, MLFLOW, "--backend-store-uri=", "--backend-store-uri=sqlite:////tmp/mlflow.db"),
        {f"{MLFLOW}:addresses"}),
    "mlflow-artifacts-on-the-container-disk": (
        lambda m: set_arg(m, MLFLOW, "--artifacts-destination=", "--artifacts-destination=/mlartifacts"),
        {f"{MLFLOW}:persistence"}),
    "pgdata-outside-the-claim": (lambda m: env(m, POSTGRES, "PGDATA").update(value="/pgdata"),
                                 {f"{POSTGRES}:stateful-pvc"}),
    "tsdb-path-moved": (lambda m: set_arg(m, PROMETHEUS, "--storage.tsdb.path=", "--storage.tsdb.path=/tsdb"),
                        {f"{PROMETHEUS}:stateful-pvc"}),
    "minio-serves-a-scratch-directory": (lambda m: set_arg(m, MINIO, "/data", "/tmp/data"),
                                         {f"{MINIO}:stateful-pvc"}),
    "broker-persistence-off": (lambda m: edit_broker(m, "persistence true", "persistence false"),
                               {f"{MOSQUITTO}:persistence"}),
    "broker-persistence-location-moved": (
        lambda m: edit_broker(m, "persistence_location /mosquitto/data/", "persistence_location /tmp/"),
        {f"{MOSQUITTO}:stateful-pvc"}),
    "grafana-claim-mounted-read-only": (
        lambda m: next(v for v in container(m, GRAFANA)["volumeMounts"] if v["mountPath"] == "/var/lib/grafana")
        .update(readOnly=True), {f"{GRAFANA}:stateful-pvc"}),
    "broker-saves-at-its-default-half-hour": (lambda m: edit_broker(m, "autosave_interval 1\n", ""),
                                              {f"{MOSQUITTO}:persistence"}),
    "broker-saves-every-ten-minutes": (lambda m: edit_broker(m, "autosave_interval 1\n", "autosave_interval 600\n"),
                                       {f"{MOSQUITTO}:persistence"}),
    "postgres-asynchronous-commit": (lambda m: container(m, POSTGRES).update(args=["-c", "synchronous_commit=off"]),
                                     {f"{POSTGRES}:persistence"}),
    "postgres-fsync-off": (lambda m: container(m, POSTGRES).update(args=["-c", "fsync=off"]),
                           {f"{POSTGRES}:persistence"}),
    "broker-killed-at-once": (lambda m: pod_spec(m, MOSQUITTO).update(terminationGracePeriodSeconds=0),
                              {f"{MOSQUITTO}:shutdown-grace"}),
    "database-grace-two-seconds": (lambda m: pod_spec(m, POSTGRES).update(terminationGracePeriodSeconds=2),
                                   {f"{POSTGRES}:shutdown-grace"}),
    # Security.
    "notebook-token-disabled": (lambda m: container(m, JUPYTER)["args"].append("--IdentityProvider.token="),
                                {f"{JUPYTER}:app-auth"}),
    "grafana-anonymous-access": (lambda m: container(m, GRAFANA)["env"].append(
        {"name": "GF_AUTH_ANONYMOUS_ENABLED", "value": "true"}), {f"{GRAFANA}:app-auth"}),
    "namespace-enforces-baseline": (
        lambda m: m.find("Namespace/ot-edge").body["metadata"]["labels"].update(
            {"pod-security.kubernetes.io/enforce": "baseline"}), {"Namespace/ot-edge:pod-security"}),
    "broker-host-port": (lambda m: container(m, MOSQUITTO)["ports"][0].update(hostPort=1883),
                         {f"{MOSQUITTO}:security-context"}),
    # Availability: a slow starter killed by its liveness probe mid-start.
    "database-startup-probe-dropped": (lambda m: container(m, POSTGRES).pop("startupProbe"),
                                       {f"{POSTGRES}:startup-probe"}),
    "mlflow-startup-probe-too-short": (lambda m: container(m, MLFLOW)["startupProbe"].update(failureThreshold=3),
                                       {f"{MLFLOW}:startup-probe"}),
    # Issue 25, static classes. A credential left blank: every pod that takes it is named.
    "database-password-blank": (lambda m: m.find("Secret/it-core/postgres-credentials").body["data"].update(
        password=""), {f"{MLFLOW}:references", f"{POSTGRES}:references"}),
    "broker-role-password-whitespace": (lambda m: blank_string(m, "Secret/ot-edge/mqtt-credentials", "inference"),
                                        {f"{INFERENCE}:references", f"{MOSQUITTO}:references",
                                         f"{NODERED}:references"}),
    # A Service port of another transport than its listener's.
    "broker-service-udp": (lambda m: service_port(m, "Service/ot-edge/mosquitto-svc", "mqtt").update(protocol="UDP"),
                           {"Service/ot-edge/mosquitto-svc:service-ports"}),
    "database-service-sctp": (lambda m: service_port(m, "Service/it-core/postgres-svc", "postgres").update(
        protocol="SCTP"), {"Service/it-core/postgres-svc:service-ports"}),
    # appProtocol tells proxies and meshes what the port speaks: HTTP on the broker's port breaks every MQTT client.
    "broker-service-app-protocol-http": (lambda m: service_port(m, "Service/ot-edge/mosquitto-svc", "mqtt").update(
        appProtocol="http"), {"Service/ot-edge/mosquitto-svc:service-ports"}),
    "database-service-app-protocol-postgresql": (lambda m: service_port(m, "Service/it-core/postgres-svc",
                                                                        "postgres").update(appProtocol="postgresql"),
                                                 set()),
    "registry-service-app-protocol-http": (lambda m: service_port(m, "Service/it-core/mlflow-svc", "http").update(
        appProtocol="http"), set()),
    # optional: true over a reference that can never resolve here.
    "optional-misspelt-secret-key": (lambda m: env(m, MLFLOW, "AWS_SECRET_ACCESS_KEY")["valueFrom"][
        "secretKeyRef"].update(key="root-pasword", optional=True), {f"{MLFLOW}:references"}),
    "optional-misspelt-secret-name": (lambda m: env(m, MLFLOW, "PGPASSWORD")["valueFrom"]["secretKeyRef"].update(
        name="postgres-credential", optional=True), {f"{MLFLOW}:references"}),
    "optional-volume-misspelt-item": (lambda m: volume(m, MOSQUITTO, "credentials")["secret"].update(
        optional=True,
        items=[{"key": k, "path": k} for k in ("simulator", "inferense", "nodered", "monitor", "probe")]),
        {f"{MOSQUITTO}:references"}),
    # A projected volume that leaves out a file the application reads (its config names the ACL file).
    "broker-config-projected-without-acl": (lambda m: project_only(m, MOSQUITTO, "config", "mosquitto.conf"),
                                            {f"{MOSQUITTO}:setting-refs"}),
}


def blank_string(m: Manifests, ref: str, key: str) -> None:
    body = m.find(ref).body
    body["data"].pop(key)
    body.setdefault("stringData", {})[key] = "  \n"


def service_port(m: Manifests, ref: str, name: str) -> dict:
    return next(p for p in m.find(ref).body["spec"]["ports"] if p["name"] == name)


def project_only(m: Manifests, ref: str, vol: str, key: str) -> None:
    v = volume(m, ref, vol)
    source = v.pop("secret")
    v["projected"] = {"sources": [{"secret": {"name": source["secretName"], "items": [{"key": key, "path": key}]}}]}


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


def set_arg(m: Manifests, ref: str, prefix: str, new: str) -> None:
    args = container(m, ref)["args"]
    i = next(i for i, a in enumerate(args) if a.startswith(prefix))
    args[i] = new


def drop_arg(m: Manifests, ref: str, flag: str) -> None:
    args = container(m, ref)["args"]
    i = args.index(flag)
    del args[i:i + 2]


def edit_data(m: Manifests, ref: str, key: str, old: str, new: str) -> None:
    data = m.find(ref).body["data"]
    assert old in data[key], old
    data[key] = data[key].replace(old, new)


def rules_data(m: Manifests) -> dict:
    return next(cm for cm in m.of_kind("ConfigMap") if cm.name.startswith("prometheus-rules")).body["data"]


def pod_spec_labels(m, ref):
    return m.find(ref).body["spec"]["template"]["metadata"]["labels"]


def to_string_data(m: Manifests, ref: str) -> None:
    """The Secret's data (base64) written as stringData (plain text), as a hand-written Secret may be."""
    import base64

    body = m.find(ref).body
    body["stringData"] = {k: base64.b64decode(v).decode() for k, v in body.pop("data").items()}


def edit_string_data(m: Manifests, ref: str, key: str, old: str | None, new: str) -> None:
    values = m.find(ref).body["stringData"]
    assert old is None or old in values[key], old
    values[key] = new if old is None else values[key].replace(old, new)


def reload_text(m: Manifests, ref: str, edit: Callable[[str], str]) -> None:
    """Dump the object to YAML, edit the text, and load it back the way a manifest file is read."""
    from indmlops.manifests import _load_docs

    obj = m.find(ref)
    [new] = _load_docs(edit(yaml.safe_dump(obj.body)), obj.source)
    obj.body = new.body


def reload_with_merge_keys(m: Manifests, ref: str) -> None:
    # The pod template's labels written as the selector's labels (an anchor) merged (`<<:`) with the rest.
    body = m.find(ref).body
    selector, labels = body["spec"]["selector"]["matchLabels"], dict(pod_spec_labels(m, ref))
    rest = ", ".join(f"{k}: {v!r}" for k, v in labels.items() if k not in selector)
    body["spec"]["template"]["metadata"]["labels"] = selector  # one object twice: dumped as anchor and alias
    reload_text(m, ref, lambda text: text.replace("labels: *id001", f"labels: {{<<: *id001, {rest}}}"))
    assert pod_spec_labels(m, ref) == labels and "&id001" not in str(m.find(ref).body)


def reload_as_list(m: Manifests, namespace: str) -> None:
    """Every object of the namespace loaded back from one `kind: List` document."""
    from indmlops.manifests import _load_docs

    objs = [o for o in m.objects if o.namespace == namespace]
    text = yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": [o.body for o in objs]})
    for obj, new in zip(objs, _load_docs(text, "list.yaml"), strict=True):
        assert new.body == obj.body
        obj.body = new.body


def cronjob_of(m: Manifests, job_ref: str, schedule: str) -> dict:
    """A CronJob running the Job of `job_ref` on `schedule` (the same pods: no other rule sees a difference)."""
    import copy

    job = m.find(job_ref)
    return {"apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": {"name": "bucket-check", "namespace": job.namespace},
            "spec": {"schedule": schedule, "jobTemplate": {"spec": copy.deepcopy(job.body["spec"])}}}


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
