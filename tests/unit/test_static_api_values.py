"""Edge cases of the API-value rules (object-names, field-values): unusual values the API accepts must pass, and
each rejection names the field path, the value found and what the API accepts."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from indmlops.checks.static.api_names import check_object_names, is_iana_name
from indmlops.checks.static.api_rules import check_requests_within_limits
from indmlops.checks.static.api_values import check_field_values
from indmlops.checks.static.cron import schedule_problem
from indmlops.manifests import Obj

CONTAINER = {"name": "app", "image": "app:1.0", "ports": [{"name": "http", "containerPort": 8080}]}


def deployment(spec: dict[str, Any] | None = None, pod: dict[str, Any] | None = None, **container: Any) -> Obj:
    body = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{**copy.deepcopy(CONTAINER), **container}], **(pod or {})}},
                     **(spec or {})}}
    return Obj(body, "web.yaml")


def obj(kind: str, name: str = "x", api: str = "v1", **body: Any) -> Obj:
    return Obj({"apiVersion": api, "kind": kind, "metadata": {"name": name, "namespace": "shop"}, **body}, "x.yaml")


def service(*ports: dict[str, Any], **spec: Any) -> Obj:
    return obj("Service", "web-svc", spec={"selector": {"app": "web"}, "ports": list(ports), **spec})


def cronjob(schedule: str, name: str = "nightly", **spec: Any) -> Obj:
    job = {"template": {"spec": {"containers": [dict(CONTAINER)], "restartPolicy": "OnFailure"}}}
    return obj("CronJob", name, "batch/v1", spec={"schedule": schedule, "jobTemplate": {"spec": job}, **spec})


# ---- valid, if unusual: the API accepts these, so the rules must too ----

@pytest.mark.parametrize("o", [
    deployment({"replicas": 0}),
    deployment({"strategy": {"type": "Recreate"}}),
    deployment({"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "100%", "maxUnavailable": 0}}}),
    deployment({"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": "100%"}}}),
    deployment({"progressDeadlineSeconds": 60, "minReadySeconds": 10, "revisionHistoryLimit": 0}),
    deployment(livenessProbe={"httpGet": {"path": "/", "port": "http"}, "successThreshold": 1},
               readinessProbe={"tcpSocket": {"port": 8080}, "successThreshold": 3, "periodSeconds": 0},
               startupProbe={"grpc": {"port": 9090}}),
    deployment(imagePullPolicy="", terminationMessagePolicy="FallbackToLogsOnError"),
    deployment(ports=[{"containerPort": 8080, "hostPort": 0, "protocol": "SCTP"}]),
    deployment(env=[{"name": "my.dotted-name", "value": "x"}, {"name": "POD", "valueFrom": {
        "fieldRef": {"fieldPath": "metadata.labels['app.kubernetes.io/name']"}}}]),
    deployment(volumeMounts=[{"name": "v", "mountPath": "/data", "subPath": "a/b"}],
               pod={"volumes": [{"name": "v"}, {"name": "c", "configMap": {"name": "c", "defaultMode": 0o644}}]}),
    deployment(pod={"terminationGracePeriodSeconds": 0, "dnsPolicy": "None", "dnsConfig": {"nameservers": ["1.1.1.1"]},
                    "tolerations": [{"operator": "Exists"}]}),
    deployment(pod={"initContainers": [{"name": "sidecar", "image": "s:1", "restartPolicy": "Always",
                                        "readinessProbe": {"exec": {"command": ["true"]}}}]}),
    service({"port": 80, "targetPort": "http"}),
    service({"name": "dns", "port": 53, "protocol": "UDP"}, {"name": "dns-tcp", "port": 53, "protocol": "TCP"}),
    service({"port": 5432, "targetPort": 0}, clusterIP="None"),
    service({"port": 80, "nodePort": 30080}, type="NodePort", externalTrafficPolicy="Local"),
    obj("Service", "db", spec={"type": "ExternalName", "externalName": "db.example.com."}),
    obj("Secret", data={"k": "aGVs\nbG8="}, stringData={"plain": "not base64 at all!"}),
    obj("ConfigMap", data={"app.properties": "x"}, binaryData={"logo.png": "iVBORw0KGgo="}),
    obj("PersistentVolumeClaim", spec={"accessModes": ["ReadWriteOncePod"], "storageClassName": "",
                                       "resources": {"requests": {"storage": "100Mi"}}}),
    cronjob("@hourly"), cronjob("*/15 1-5 * JAN-MAR mon-fri"), cronjob("@every 1h30m"), cronjob("0 0 ? * 0"),
    cronjob("5 4 * * *", timeZone="Europe/Berlin"),
    deployment(pod={"hostAliases": [{"ip": "fd00::10", "hostnames": ["plc.line-1"]}], "nodeSelector": {
        "node-role.kubernetes.io/edge": ""}, "os": {"name": "linux"}, "securityContext": {"runAsUser": 0}}),
    obj("StatefulSet", "db", "apps/v1", spec={"updateStrategy": {"type": "OnDelete"}, "replicas": 0, "template": {
        "spec": {"containers": [dict(CONTAINER)]}}, "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {
            "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]}),
], ids=lambda o: f"{o.kind}/{o.name}")
def test_values_the_api_accepts_pass(o):
    assert check_field_values(o) == []
    assert check_object_names(o) == []


def test_wrong_types_are_left_to_the_schema():
    o = deployment({"replicas": "1"}, imagePullPolicy=None, ports=[{"containerPort": "8080"}])
    assert check_field_values(o) == []


@pytest.mark.parametrize(("name", "ok"), [("http", True), ("http-2", True), ("h2c", True), ("metrics-exporter", False),
                                          ("8080", False), ("HTTP", False), ("http--alt", False), ("-http", False)])
def test_port_names_are_iana_service_names(name, ok):
    assert is_iana_name(name) == ok


# ---- rejected: each finding names the path, the value and what the API accepts ----

@pytest.mark.parametrize(("o", "found"), [
    (deployment(imagePullPolicy="always"), "containers[name=app].imagePullPolicy 'always' is not one the API "
                                           "accepts: Always, IfNotPresent, Never"),
    (deployment(ports=[{"containerPort": 0}]), "ports[0].containerPort is missing"),
    (deployment(livenessProbe={"exec": {"command": ["true"]}, "successThreshold": 2}), "successThreshold is 2"),
    (deployment(readinessProbe={"periodSeconds": 5}), "has no handler; the API requires exactly one"),
    (deployment(readinessProbe={"httpGet": {"port": 70000}}), "httpGet.port is 70000"),
    (deployment({"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25"}}}),
     "maxUnavailable '25' is neither an integer nor a percentage"),
    (deployment({"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "120%"}}}),
     "more than 100%"),
    (deployment({"strategy": {"type": "Rolling"}}), "spec.strategy.type 'Rolling'"),
    (deployment({"progressDeadlineSeconds": 10, "minReadySeconds": 30}), "more than minReadySeconds (30)"),
    (deployment(env=[{"name": "A", "value": "x", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]),
     "has both value and valueFrom"),
    (deployment(volumeMounts=[{"name": "v", "mountPath": "/d", "subPath": "../etc"}]), "subPath '../etc'"),
    (deployment(pod={"volumes": [{"name": "v", "emptyDir": {}, "configMap": {"name": "c"}}]}),
     "has emptyDir and configMap"),
    (deployment(pod={"dnsPolicy": "None"}), "dnsConfig.nameservers is empty with dnsPolicy None"),
    (deployment(pod={"initContainers": [{"name": "init", "image": "i:1", "livenessProbe": {
        "exec": {"command": ["true"]}}}]}), "forbids it on an init container"),
    (deployment(pod={"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"topologyKey": "kubernetes.io/hostname", "labelSelector": {"matchExpressions": [
            {"key": "app", "operator": "In"}]}}]}}}), "operator In with no values"),
    (obj("DaemonSet", api="apps/v1", spec={"updateStrategy": {"rollingUpdate": {"maxSurge": 1}}}),
     "the API requires maxUnavailable 0 when maxSurge is set"),
    (obj("StatefulSet", "db", "apps/v1", spec={"updateStrategy": {"type": "OnDelete", "rollingUpdate": {}}}),
     "rollingUpdate is set with type OnDelete"),
    (service({"port": 80}, {"port": 80}), "port 80/TCP is defined twice"),
    (service({"port": 80, "nodePort": 8080}, type="NodePort"), "nodePort 8080 is outside 30000-32767"),
    (service({"port": 80}, type="NodePort", clusterIP="None"), "accepts None only for ClusterIP"),
    (service({"port": 80}, sessionAffinity="ClientIP", sessionAffinityConfig={"clientIP": {"timeoutSeconds": 0}}),
     "timeoutSeconds is 0"),
    (obj("Service", "db", spec={"type": "ExternalName"}), "an ExternalName Service requires one"),
    (obj("Secret", data={"k": "aGVsbG8"}), "data[k] is not valid base64"),
    (obj("Secret", type="kubernetes.io/tls", data={"tls.crt": "eA=="}), "requires the keys ['tls.key']"),
    (obj("ConfigMap", data={"a": "x"}, binaryData={"a": "eA=="}), "data[a] is also a key of binaryData"),
    (obj("PersistentVolumeClaim", spec={"accessModes": ["ReadWriteOnce"]}), "storage is missing"),
    (obj("PersistentVolumeClaim", spec={"accessModes": ["ReadWriteOncePod", "ReadWriteOnce"],
                                        "resources": {"requests": {"storage": "1Gi"}}}), "ReadWriteOncePod only alone"),
    (obj("NetworkPolicy", api="networking.k8s.io/v1", spec={"podSelector": {}, "ingress": [
        {"from": [{}], "ports": [{"port": 8080, "endPort": 80}]}]}), "endPort 80"),
    (obj("Job", api="batch/v1", spec={"completionMode": "Indexed", "template": {"spec": {
        "containers": [dict(CONTAINER)], "restartPolicy": "OnFailure"}}, "podFailurePolicy": {"rules": []}}),
     "podFailurePolicy is set with restartPolicy 'OnFailure'"),
    (cronjob("0 0 * * *", timeZone="CET/Berlin"), "spec.timeZone 'CET/Berlin' is not an IANA time zone"),
    (deployment(pod={"hostAliases": [{"ip": "10.0.0.256", "hostnames": ["plc"]}]}), "ip '10.0.0.256' is not an IP"),
    (deployment(pod={"nodeSelector": {"zone": "hall 3"}}), "nodeSelector[zone] 'hall 3' is not a valid label value"),
    (deployment(pod={"securityContext": {"runAsUser": -1}}), "securityContext.runAsUser is -1"),
    (deployment(image=" app:1.0"), "has leading or trailing whitespace"),
    (deployment(ports=[{"containerPort": 80, "hostPort": 8080}], pod={"containers": [
        {"name": "a", "image": "a:1", "ports": [{"containerPort": 80, "hostPort": 8080}]},
        {"name": "b", "image": "b:1", "ports": [{"containerPort": 81, "hostPort": 8080}]}]}), "is also used by"),
    (deployment(readinessProbe={"httpGet": {"port": 80, "httpHeaders": [{"name": "Host:", "value": "x"}]}}),
     "'Host:' is not an HTTP header name"),
    (service(), "spec.ports is empty"),
    (cronjob("0 0 * * *", concurrencyPolicy="forbid"), "spec.concurrencyPolicy 'forbid'"),
], ids=lambda v: v.kind if isinstance(v, Obj) else "")
def test_values_the_api_rejects_are_named_with_path_value_and_accepted(o, found):
    problems = check_field_values(o)
    assert any(found in p for p in problems), problems


@pytest.mark.parametrize(("schedule", "problem"), [
    ("0 0 2 * * *", "has 6 fields"), ("0 24 * * *", "hour '24' is outside 0-23"), ("*/0 * * * *", "step"),
    ("0 0 31-1 * *", "begins after it ends"), ("0 0 * 13 *", "month '13' is outside 1-12"),
    ("0 0 * * 7", "outside 0-6"), ("0 0 * * sunday", "not a number or name"), ("@fortnightly", "not a descriptor"),
    ("CRON_TZ=UTC 0 0 * * *", "TZ or CRON_TZ"), ("@every 1d", "not a descriptor"),
])
def test_cron_schedules_the_api_rejects(schedule, problem):
    assert problem in (schedule_problem(schedule) or "")


@pytest.mark.parametrize(("o", "found"), [
    (obj("Service", "1-db", spec={}), "metadata.name '1-db' is not a DNS-1035 label"),
    (obj("Namespace", "it.core"), "a Namespace name must be a single DNS label"),
    (obj("StatefulSet", "pg.primary", "apps/v1", spec={}), "a StatefulSet name must be a single DNS label"),
    (cronjob("@daily", name="c" * 53), "a CronJob name may have at most 52"),
    (obj("ConfigMap", "App_Config"), "metadata.name 'App_Config' is not a DNS-1123 subdomain"),
    (deployment(name="Web"), "containers[name=Web].name 'Web' is not a DNS-1123 label"),
    (deployment(env=[{"name": "A=B", "value": "x"}]), "env[0].name 'A=B' is not an env var name"),
    (deployment(pod={"volumes": [{"name": "data_dir", "emptyDir": {}}]}), "volumes[name=data_dir].name"),
    (service({"port": 80}, {"name": "https", "port": 443}), "spec.ports[0] (port 80) has no name"),
    (service({"name": "http", "port": 80}, {"name": "http", "port": 81}), "['http'] are used more than once"),
    (obj("Secret", data={"id_rsa pub": "eA=="}), "data key 'id_rsa pub' is not a data key"),
    (obj("ConfigMap", metadata={"name": "c", "annotations": {"bad key!": "x"}}), "annotations key 'bad key!'"),
], ids=lambda v: v.kind if isinstance(v, Obj) else "")
def test_names_the_api_rejects(o, found):
    problems = check_object_names(o)
    assert any(found in p for p in problems), problems


@pytest.mark.parametrize(("resources", "found"), [
    ({"requests": {"cpu": "-100m"}}, "requests.cpu '-100m' is negative"),
    ({"limits": {"memroy": "1Gi"}}, "limits.memroy is not a resource the API knows"),
])
def test_resource_quantities_and_names(resources, found):
    problems = check_requests_within_limits(deployment(resources=resources))
    assert any(found in p for p in problems), problems


def test_extended_and_hugepage_resources_are_known():
    ok = {"limits": {"nvidia.com/gpu": 1, "hugepages-2Mi": "64Mi", "ephemeral-storage": "1Gi"}}
    assert check_requests_within_limits(deployment(resources=ok)) == []


def test_a_secret_value_that_is_no_base64_is_not_printed():
    problems = check_field_values(obj("Secret", data={"password": "hunter2-plain"}))
    assert problems and not any("hunter2" in p for p in problems), problems
    assert "position 7" in problems[0]


def test_rbac_names_are_path_segments():
    assert check_object_names(Obj({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                                   "metadata": {"name": "system:aggregate-to-view"}}, "r.yaml")) == []


def test_a_service_with_one_unnamed_port_is_fine():
    assert check_object_names(service({"port": 80})) == []
