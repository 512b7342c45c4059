"""The static rule catalogue: which (subject, rule) cases a manifest set has, and running one of them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from indmlops.checks.static import (
    address_rules,
    api_rules,
    app_rules,
    availability_rules,
    cluster_rules,
    schema,
    security_rules,
    wiring_rules,
)
from indmlops.checks.static import object_rules as orules
from indmlops.checks.static import workload_rules as wrules
from indmlops.checks.static.api_names import check_object_names
from indmlops.checks.static.api_values import check_field_values
from indmlops.checks.static.apps import Apps, running
from indmlops.checks.static.ipblocks import ClusterNetworks, check_ip_blocks
from indmlops.checks.static.isolation import Intent, check_isolation
from indmlops.manifests import WORKLOAD_KINDS, Manifests, Obj

# Rule ids, as they appear in test ids (`Deployment/it-core/mlflow:probes`) and findings.
RULES = {
    "schema": "valid against the Kubernetes JSON schema of each version (strict: no unknown fields)",
    "labels": "every label key and value (metadata, pod template, selectors) is one the API accepts",
    "pinned-images": "every image has an exact tag or digest (no :latest, no floating tag)",
    "probes": "every long-running container has a readiness and a liveness probe on a declared port",
    "resources": "every container requests and limits cpu and memory",
    "security-context": "non-root, no privilege escalation, ALL capabilities dropped, RuntimeDefault seccomp, "
                        "not privileged, no host namespaces or paths",
    "no-secret-literals": "no secret-looking literal in env values, command/args or ConfigMap data",
    "stateful-pvc": "a stateful application writes where it is told (its data setting, else the image's data path) "
                    "onto a writable PersistentVolumeClaim mount",
    "addresses": "every address an application is told resolves to a Service port forwarding to a declared container "
                 "port where the application listens, speaks the expected protocol and accepts the host name",
    "binds": "every port a container declares is one its application listens on, on an address the Service reaches",
    "persistence": "the application's durability settings hold (persistence on, fsync not off)",
    "shutdown-grace": "terminationGracePeriodSeconds leaves the application the time its clean shutdown needs",
    "app-auth": "no setting switches the application's authentication off (empty notebook token, anonymous Grafana)",
    "credentials": "a credential or name a client is told (password, user, database) equals what its server is given",
    "memory-floor": "a memory limit leaves the application at least what it takes idle",
    "one-instance": "an application that holds a session under a fixed identity runs one pod, never two at once "
                    "(one replica; a Deployment rolls out with strategy Recreate)",
    "probe-paths": "every httpGet probe asks a path the application serves",
    "setting-refs": "names a container is told resolve inside it: $(VAR) references, the env vars and files its "
                    "application is told to read",
    "startup-probe": "a slow starter with a liveness probe has a startup probe that waits as long as its worst start",
    "rwo-recreate": "a Deployment mounting a ReadWriteOnce PVC uses strategy Recreate and one replica",
    "references": "every referenced ConfigMap, Secret (and key) and PVC exists, no `optional: true` hides a misspelt "
                  "name or key, and no Secret value a container takes is empty",
    "service-type": "Services are of a type the overlay allows",
    "service-selects": "every Service selects at least one pod template",
    "service-ports": "every Service port targets a port the selected pod templates declare, over its transport "
                     "protocol; a known application's port is TCP, and its appProtocol (if set) names what it speaks",
    "scrape-target": "every Prometheus scrape target names an existing Service and one of its ports",
    "prometheus-rules": "every rule_files pattern matches a rule file mounted into Prometheus, and the loaded files "
                        "define every rule of the shared rule files",
    "statefulset-service": "a StatefulSet's serviceName is a headless Service of its namespace selecting its pods",
    "selector": "a controller's selector matches its pod template's labels",
    "requests-limits": "every resource quantity is valid and no request exceeds its limit",
    "restart-policy": "the pod template's restartPolicy is one its controller accepts",
    "pod-names": "names inside the pod spec resolve and are unique: containers, volumes, ports, mounts",
    "unique-objects": "no object is defined twice in the set",
    "object-names": "every name has the form the API requires: the object's (by kind: DNS subdomain, DNS label for "
                    "Namespaces and StatefulSets, DNS-1035 label for Services, length limits of Jobs, CronJobs and "
                    "StatefulSets), its namespace and annotation keys, and the names inside it (containers, volumes, "
                    "env vars, Service ports, ConfigMap/Secret keys)",
    "field-values": "every field value is one the API server accepts where the schema checks only its type: enums, "
                    "port numbers and names, probe and handler settings, counts, strategies, schedules, Service, "
                    "claim, NetworkPolicy and selector settings, ConfigMap/Secret data",
    "pull-policy": "an image only loaded onto the nodes is never pulled; a registry image is not Never",
    "pvc-access-mode": "a claim asks only for access modes its storage class can bind",
    "singleton-replicas": "a workload runs at least one replica and rolls out (not paused); one running a "
                          "single-writer stateful image runs exactly one",
    "scheduling": "every pod fits a node of the target cluster (nodeSelector, required node affinity, taints)",
    "rbac": "a RoleBinding grants API access only to workloads that need it, never to everyone or a broad role",
    "sa-token": "a pod that needs no Kubernetes API access mounts no service-account token",
    "url-credentials": "no URL-valued setting (env, args, ConfigMap value) carries a password",
    "default-credentials": "no Secret holds a well-known default credential",
    "broker-auth": "an MQTT broker admits no anonymous client and checks passwords (password_file or auth plugin)",
    "bucket-bootstrap": "a bucket MLflow stores artifacts in is created by a Job",
    "pod-security": "every Namespace enforces the restricted Pod Security level",
    "default-deny": "every namespace with workloads has default-deny NetworkPolicies for ingress and egress",
    "project-image": "every project image is built from images/<name>/Dockerfile, which passes the image rules",
    "ipblock-scope": "every NetworkPolicy ipBlock is valid as written (a CIDR, except strictly inside it) and covers "
                     "no part of the cluster's pod or service network that its except does not remove",
    "isolation": "NetworkPolicies give exactly the reachability of the intent (or, without intent, not "
                 "everything to everything)",
}

WORKLOAD_RULES = ("pinned-images", "probes", "resources", "security-context", "no-secret-literals", "references",
                  "selector", "requests-limits", "restart-policy", "pod-names", "pull-policy", "singleton-replicas",
                  "setting-refs", "scheduling")


@dataclass(frozen=True)
class StaticPolicy:
    kubernetes_versions: tuple[str, ...]
    allowed_service_types: tuple[str, ...]
    stateful_images: dict[str, str]
    project_image_prefix: str
    images_dir: Path
    required_rules: dict[str, str]  # rule name -> shared rule file that defines it: Prometheus must load them all
    api_access: tuple[str, ...] = ()  # workloads (Kind/namespace/name) that use the Kubernetes API
    storage_classes: dict[str, tuple[str, ...]] = field(default_factory=dict)  # class -> access modes it binds
    default_storage_class: str = "standard"
    default_credentials: tuple[str, ...] = ()
    cluster_networks: ClusterNetworks | None = None  # None: unknown, every ipBlock may match pods
    nodes: tuple[dict[str, Any], ...] = ()  # the target cluster's nodes: labels and taints
    apps: Apps = field(default_factory=lambda: Apps({}, {}))  # fixtures/applications.yaml

    @classmethod
    def from_fixture(cls, doc: dict[str, Any], images_dir: Path) -> StaticPolicy:
        root = images_dir.parent
        pattern = doc.get("prometheus_required_rules")
        apps = root / "fixtures" / "applications.yaml"
        return cls(tuple(schema.newest_versions(int(doc["kubernetes_versions_newest"]))),
                   tuple(doc["allowed_service_types"]), dict(doc["stateful_images"]),
                   str(doc["project_image_prefix"]), images_dir,
                   wiring_rules.required_rules(str(pattern), root) if pattern else {},
                   tuple(str(r) for r in doc.get("api_access") or ()),
                   {str(k): tuple(v) for k, v in (doc.get("storage_classes") or {}).items()},
                   str(doc.get("default_storage_class") or "standard"),
                   tuple(str(c) for c in doc.get("default_credentials") or ()),
                   ClusterNetworks.parse(doc["cluster_networks"], "fixtures/static.yaml")
                   if "cluster_networks" in doc else None,
                   tuple(n for n in doc.get("nodes") or () if isinstance(n, dict)),
                   Apps.from_fixture(yaml.safe_load(apps.read_text()) or {}) if apps.is_file() else Apps({}, {}))


@dataclass(frozen=True)
class Case:
    """One test: one rule applied to one subject (an object ref, a namespace, an image, the whole set)."""

    rule: str
    subject: str
    source: str
    arg: str = ""  # the Kubernetes version of a schema case, the config key and job of a scrape-target case

    @property
    def id(self) -> str:
        return f"{self.subject}:{self.rule}" + (f"/{self.arg}" if self.arg else "")


def cases(m: Manifests, policy: StaticPolicy) -> list[Case]:
    out: list[Case] = []
    for o in m.objects:
        for v in policy.kubernetes_versions:
            out.append(Case("schema", o.ref, o.source, v))
        out.append(Case("labels", o.ref, o.source))
        out += [Case("object-names", o.ref, o.source), Case("field-values", o.ref, o.source)]
    for w in m.workloads():
        out += [Case(r, w.ref, w.source) for r in WORKLOAD_RULES]
        if wrules.stateful_path(w, policy.stateful_images):
            out.append(Case("stateful-pvc", w.ref, w.source))
        if w.kind == "Deployment" and any("persistentVolumeClaim" in v for v in wrules.pod_volumes(w).values()):
            out.append(Case("rwo-recreate", w.ref, w.source))
        if orules.artifact_buckets(w):
            out.append(Case("bucket-bootstrap", w.ref, w.source))
    for s in m.of_kind("Service"):
        out += [Case(r, s.ref, s.source) for r in ("service-type", "service-selects", "service-ports")]
    for cm, key, doc in orules.prometheus_configs(m):
        for job in doc["scrape_configs"]:
            name = job.get("job_name") if isinstance(job, dict) else None  # a job that is no mapping: judged junk
            out.append(Case("scrape-target", cm.ref, cm.source, f"{key}/{name}"))
        out.append(Case("prometheus-rules", cm.ref, cm.source, key))
    for sts in m.of_kind("StatefulSet"):
        out.append(Case("statefulset-service", sts.ref, sts.source))
    for w in m.workloads():
        out.append(Case("sa-token", w.ref, w.source))
        out += [Case(r, w.ref, w.source) for r in _app_rules(w, m, policy.apps)]
    for obj in m.objects:
        if obj.kind in (*WORKLOAD_KINDS, "ConfigMap", "Secret") and _has_addresses(obj, m, policy.apps):
            out.append(Case("addresses", obj.ref, obj.source))
    if policy.storage_classes:
        for pvc in m.of_kind("PersistentVolumeClaim", "StatefulSet"):
            if pvc.kind == "PersistentVolumeClaim" or (pvc.body.get("spec") or {}).get("volumeClaimTemplates"):
                out.append(Case("pvc-access-mode", pvc.ref, pvc.source))
    for obj in m.objects:
        if obj.kind == "ConfigMap" or obj.kind in WORKLOAD_KINDS:
            out.append(Case("url-credentials", obj.ref, obj.source))
    for cm in m.of_kind("ConfigMap"):
        out.append(Case("no-secret-literals", cm.ref, cm.source))
    for binding in m.of_kind("RoleBinding", "ClusterRoleBinding"):
        out.append(Case("rbac", binding.ref, binding.source))
    for secret in m.of_kind("Secret"):
        out.append(Case("default-credentials", secret.ref, secret.source))
    for obj, key, _text in security_rules.broker_configs(m):
        out.append(Case("broker-auth", obj.ref, obj.source, key))
    for ns in m.of_kind("Namespace"):
        out.append(Case("pod-security", ns.ref, ns.source))
    for ns_name in sorted({str(w.namespace) for w in m.workloads()}):
        out.append(Case("default-deny", f"Namespace/{ns_name}", _policy_files(m, ns_name)))
    for image, w in orules.project_images(m, policy.project_image_prefix).items():
        out.append(Case("project-image", f"Image/{image}", w.source))
    for netpol in m.of_kind("NetworkPolicy"):
        out.append(Case("ipblock-scope", netpol.ref, netpol.source))
    out.append(Case("isolation", "NetworkPolicies", _policy_files(m)))
    out.append(Case("unique-objects", "Objects", f"{len(m.objects)} objects from {m.root}"))
    return out


def _app_rules(w: Obj, m: Manifests, apps: Apps) -> list[str]:
    """The application rules that can judge `w`: those whose semantics its applications have."""
    found = set()
    for r in running(w, m, apps):
        if r.app.entries("listen") and r.c.get("ports"):
            found.add("binds")
        if r.app.spec.get("http_paths"):
            found.add("probe-paths")
        if r.app.entries("credentials"):
            found.add("credentials")
        if r.app.spec.get("min_memory"):
            found.add("memory-floor")
        if isinstance(r.app.spec.get("exclusive"), str):
            found.add("one-instance")
        found |= {rule for rule, key in (("persistence", "durable"), ("app-auth", "auth")) if r.app.entries(key)}
        found |= {rule for rule, key in (("shutdown-grace", "shutdown_seconds"), ("startup-probe", "start_seconds"))
                  if r.app.number(key) is not None}
    return sorted(found)


def _has_addresses(obj: Obj, m: Manifests, apps: Apps) -> bool:
    try:
        return bool(address_rules.addresses(obj, m, apps) or address_rules.unset_clients(obj, m, apps))
    except (TypeError, AttributeError, KeyError, ValueError, IndexError):
        return True  # junk where an address would be: the case runs and reports it


def _policy_files(m: Manifests, namespace: str | None = None) -> str:
    files = sorted({p.source for p in m.of_kind("NetworkPolicy") if namespace in (None, p.namespace)})
    return ", ".join(files) if files else f"no NetworkPolicy{' in namespace ' + namespace if namespace else ''}"


def run(case: Case, m: Manifests, policy: StaticPolicy, intent: Intent | None) -> list[str]:
    """The problems `case` finds in `m` ([] when it holds). Raises schema.NoSchema for a custom resource.

    A rule that meets a value of an unexpected type or shape where it looks (a list where the API wants a map, a
    number for a name) reports that as its finding: fails closed, never a crashed test and never a pass."""
    try:
        return _run(case, m, policy, intent)
    except schema.NoSchema:
        raise
    except (TypeError, AttributeError, KeyError, ValueError, IndexError, ArithmeticError) as exc:
        return [f"cannot be judged: a value this rule reads has an unexpected type or shape ({type(exc).__name__}: "
                f"{str(exc)[:160]}); the object's schema cases name the field"]


def _run(case: Case, m: Manifests, policy: StaticPolicy, intent: Intent | None) -> list[str]:
    r = case.rule
    if r == "isolation":
        return check_isolation(m, intent, policy.cluster_networks)[1]
    if r == "unique-objects":
        return api_rules.check_unique_objects(m)
    if r == "default-deny":
        return orules.check_default_deny(case.subject.split("/", 1)[1], m)
    if r == "project-image":
        return orules.check_project_image(case.subject.split("/", 1)[1], policy.project_image_prefix,
                                          policy.images_dir)
    obj = m.find(case.subject)
    if r == "schema":
        return schema.validate(obj.body, case.arg)
    if shape := obj.shape_problems():  # the accessors read these as absent: judging would be a silent pass
        return [f"cannot be judged: {p}" for p in shape]
    if r == "scrape-target":
        key, _, job_name = case.arg.partition("/")
        docs = [doc for cm, k, doc in orules.prometheus_configs(m) if cm is obj and k == key]
        jobs = [j for d in docs for j in d["scrape_configs"] if str(j.get("job_name")) == job_name]
        return orules.check_scrape_job(obj, jobs[0], m) if jobs else [f"job {job_name!r} not found in {key}"]
    if r == "broker-auth":
        texts = [t for o, k, t in security_rules.broker_configs(m) if o is obj and k == case.arg]
        return security_rules.check_broker_auth(case.arg, texts[0]) if texts else [f"{case.arg}: not a broker config"]
    if r == "prometheus-rules":
        found = [doc for cm, k, doc in orules.prometheus_configs(m) if cm is obj and k == case.arg]
        return wiring_rules.check_prometheus_rules(obj, case.arg, found[0], m, policy.required_rules) if found \
            else [f"{case.arg}: no Prometheus config under that key"]
    checks = {
        "labels": lambda: orules.check_labels(obj),
        "pinned-images": lambda: wrules.check_pinned_images(obj),
        "probes": lambda: wrules.check_probes(obj),
        "resources": lambda: wrules.check_resources(obj),
        "security-context": lambda: wrules.check_security_context(obj),
        "no-secret-literals": lambda: wrules.check_no_secret_literals(obj),
        "references": lambda: wrules.check_references(obj, m),
        "stateful-pvc": lambda: app_rules.check_data_placement(obj, m, policy.apps, policy.stateful_images),
        "addresses": lambda: address_rules.check_addresses(obj, m, policy.apps),
        "binds": lambda: address_rules.check_binds(obj, m, policy.apps),
        "persistence": lambda: app_rules.check_persistence(obj, m, policy.apps),
        "shutdown-grace": lambda: app_rules.check_shutdown_grace(obj, m, policy.apps),
        "app-auth": lambda: app_rules.check_app_auth(obj, m, policy.apps),
        "startup-probe": lambda: app_rules.check_startup_probe(obj, m, policy.apps),
        "credentials": lambda: app_rules.check_credentials(obj, m, policy.apps),
        "memory-floor": lambda: app_rules.check_memory_floor(obj, m, policy.apps),
        "one-instance": lambda: app_rules.check_one_instance(obj, m, policy.apps),
        "probe-paths": lambda: app_rules.check_probe_paths(obj, m, policy.apps),
        "setting-refs": lambda: app_rules.check_setting_refs(obj, m, policy.apps),
        "rwo-recreate": lambda: wrules.check_rwo_recreate(obj, m),
        "bucket-bootstrap": lambda: orules.check_bucket_bootstrap(obj, m),
        "service-type": lambda: orules.check_service_type(obj, policy.allowed_service_types),
        "service-selects": lambda: orules.check_service_selects(obj, m),
        "service-ports": lambda: orules.check_service_ports(obj, m, policy.apps)
        + address_rules.check_app_protocols(obj, m, policy.apps),
        "pod-security": lambda: orules.check_pod_security_labels(obj),
        "statefulset-service": lambda: wiring_rules.check_statefulset_service(obj, m),
        "sa-token": lambda: security_rules.check_sa_token(obj, m, policy.api_access),
        "url-credentials": lambda: security_rules.check_url_credentials(obj),
        "default-credentials": lambda: security_rules.check_default_credentials(obj, policy.default_credentials),
        "ipblock-scope": lambda: check_ip_blocks(obj.body, policy.cluster_networks),
        "selector": lambda: api_rules.check_selector(obj),
        "requests-limits": lambda: api_rules.check_requests_within_limits(obj),
        "restart-policy": lambda: api_rules.check_restart_policy(obj),
        "pod-names": lambda: api_rules.check_pod_names(obj),
        "object-names": lambda: check_object_names(obj),
        "field-values": lambda: check_field_values(obj),
        "pull-policy": lambda: availability_rules.check_pull_policy(obj, policy.project_image_prefix),
        "singleton-replicas": lambda: availability_rules.check_singleton(obj, policy.stateful_images),
        "scheduling": lambda: cluster_rules.check_scheduling(obj, policy.nodes),
        "rbac": lambda: cluster_rules.check_rbac(obj, m, policy.api_access),
        "pvc-access-mode": lambda: availability_rules.check_pvc_access_modes(obj, policy.storage_classes,
                                                                             policy.default_storage_class),
    }
    return checks[r]()


def message(case: Case, problems: list[str]) -> str:
    """A finding: object, file, rule and what was expected vs found, one problem per line."""
    head = f"{case.subject} ({case.source}) [{case.rule}{'/' + case.arg if case.arg else ''}]"
    return head + " " + RULES[case.rule] + ":\n" + "\n".join(f"  - {p}" for p in problems)


def failing(m: Manifests, policy: StaticPolicy, intent: Intent | None) -> dict[str, list[str]]:
    """Every case of `m` that finds a problem, by case id (custom resources without a schema are left out)."""
    out = {}
    for case in cases(m, policy):
        try:
            problems = run(case, m, policy, intent)
        except schema.NoSchema:
            continue
        if problems:
            out[case.id] = problems
    return out
