"""Rules across objects: Services, Prometheus scrape targets, the bucket bootstrap, namespaces, project images."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from indmlops.checks.static.images import check_image
from indmlops.checks.static.netpol import selector_matches
from indmlops.checks.static.workload_rules import image_name
from indmlops.manifests import Manifests, Obj

# baseline still admits containers running as root, privilege escalation and no seccomp profile.
POD_SECURITY_LEVELS = ("restricted",)


NAME_LABELS = ("app.kubernetes.io/name", "app")


def selected_templates(svc: Obj, m: Manifests) -> list[Obj]:
    selector = (svc.body.get("spec") or {}).get("selector") or {}
    if not selector:
        return []
    return [w for w in m.workloads()
            if w.namespace == svc.namespace and selector_matches({"matchLabels": selector}, w.pod_labels())]


def check_service_type(svc: Obj, allowed: tuple[str, ...]) -> list[str]:
    kind = (svc.body.get("spec") or {}).get("type") or "ClusterIP"  # null is absent: the API's default
    return [] if kind in allowed else [f"type {kind}; expected one of {', '.join(allowed)} (allowed by the overlay)"]


def check_service_selects(svc: Obj, m: Manifests) -> list[str]:
    spec = svc.body.get("spec") or {}
    if spec.get("type") == "ExternalName":
        return []
    if not spec.get("selector"):
        return ["has no selector; expected one that matches a pod template"]
    if not selected_templates(svc, m):
        templates = [f"{w.ref} {w.pod_labels()}" for w in m.workloads() if w.namespace == svc.namespace]
        return [(f"selector {spec['selector']} matches no pod template in namespace {svc.namespace} "
                 f"(templates: {'; '.join(templates) or 'none'})")]
    selected = selected_templates(svc, m)
    # The Service says what it fronts with the same recommended label its pods carry; a selector copied from
    # another Service picks that Service's pods, whose label then disagrees.
    for key in NAME_LABELS:
        want = (svc.meta.get("labels") or {}).get(key)
        other = [f"{w.ref} ({key}={w.pod_labels().get(key)})" for w in selected
                 if want is not None and w.pod_labels().get(key) not in (None, want)]
        if other:
            return [f"is labelled {key}={want} but its selector {spec['selector']} picks {', '.join(other)}; "
                    "expected the pods of the workload it is named for"]
    if len(selected) > 1:
        return [f"selector {spec['selector']} matches the pods of {len(selected)} workloads "
                f"({', '.join(w.ref for w in selected)}); expected exactly one: connections would be spread over "
                "different applications"]
    return []


def check_service_ports(svc: Obj, m: Manifests, apps: Any = None) -> list[str]:
    """Every Service port targets a port the selected pod templates declare, over the same transport protocol
    (TCP, UDP or SCTP: a Service port of another protocol than its container port forwards nothing), and a port of
    a known application (`apps`, fixtures/applications.yaml: all of them speak TCP) is TCP."""
    out = []
    for w in selected_templates(svc, m):
        containers = w.containers(init=False)
        declared = [(c, p) for c in containers for p in c.get("ports") or [] if isinstance(p, dict)]
        numbers = {int(p["containerPort"]) for _c, p in declared if "containerPort" in p}
        names = {str(p["name"]) for _c, p in declared if p.get("name")}
        for sp in (svc.body.get("spec") or {}).get("ports") or []:
            target = target_port(sp)
            label = sp.get("name") or sp.get("port")
            hits = [(c, p) for c, p in declared
                    if (str(p.get("name")) == target if isinstance(target, str) else p.get("containerPort") == target)]
            if not hits:
                quoted = " (a quoted number is a port name to the API; write it unquoted)" \
                    if isinstance(target, str) and target.isdigit() else ""
                out.append(f"port {label}: targetPort {target!r} is not declared by "
                           f"{w.ref} (declared: {sorted(numbers)} named {sorted(names)}){quoted}")
                continue
            proto = str(sp.get("protocol") or "TCP")
            for c, p in hits:
                theirs = str(p.get("protocol") or "TCP")
                if theirs != proto:
                    out.append(f"port {label}: the Service forwards {proto}, {w.ref} container {c.get('name')} port "
                               f"{p.get('name') or p.get('containerPort')} is {theirs}: no connection gets through")
                app = apps.of(c) if apps is not None else None
                if app is not None and proto == theirs != "TCP":
                    out.append(f"port {label}: {proto} to {w.ref} container {c.get('name')}, which runs {app.name} "
                               "(it speaks a TCP protocol): its clients cannot connect")
    return out


def target_port(port: dict[str, Any]) -> Any:
    """The pod port a Service port forwards to: targetPort, or (absent or null) the port number itself. A string is
    a port name to the API (IntOrString), even one of digits only."""
    target = port.get("targetPort")
    return port.get("port") if target is None else target


def prometheus_configs(m: Manifests) -> list[tuple[Obj, str, dict[str, Any]]]:
    """(ConfigMap, key, parsed config) for every ConfigMap value that is a Prometheus config."""
    out = []
    for cm in m.of_kind("ConfigMap"):
        data = cm.body.get("data")
        for key, text in data.items() if isinstance(data, dict) else ():
            if not isinstance(text, str) or not str(key).endswith((".yml", ".yaml")) or "scrape_configs" not in text:
                continue
            try:
                doc = yaml.safe_load(text)
            except yaml.YAMLError:
                continue
            if isinstance(doc, dict) and isinstance(doc.get("scrape_configs"), list):
                out.append((cm, str(key), doc))
    return out


def check_scrape_job(cm: Obj, job: dict[str, Any], m: Manifests) -> list[str]:
    out = []
    static = [t for sc in job.get("static_configs") or [] for t in sc.get("targets") or []]
    if not static and not any(k.endswith("_sd_configs") for k in job):
        out.append("has no static_configs targets and no service discovery; expected at least one target")
    for target in static:
        host, _, port = str(target).rpartition(":")
        parts = host.split(".")
        if not port.isdigit() or len(parts) not in (1, 2, 3, 5) or (len(parts) >= 3 and parts[2] != "svc"):
            out.append(f"target {target!r}: expected <service>[.<namespace>[.svc[.cluster.local]]]:<port>")
            continue
        ns = parts[1] if len(parts) > 1 else cm.namespace
        svc = m.get("Service", ns, parts[0])
        if not svc:
            out.append(f"target {target!r}: Service {ns}/{parts[0]} does not exist in the manifests")
            continue
        ports = [int(p.get("port")) for p in (svc.body.get("spec") or {}).get("ports") or []]
        if int(port) not in ports:
            out.append(f"target {target!r}: Service {ns}/{parts[0]} has no port {port} (ports: {ports})")
    return out


_ARTIFACTS = re.compile(r"--(?:artifacts-destination|default-artifact-root)[= ]s3://([^/\s\"']+)")


def artifact_buckets(obj: Obj) -> list[str]:
    words = " ".join(str(w) for c in obj.containers(init=False) for f in ("command", "args")
                     for w in (c[f] if isinstance(c.get(f), list) else []))
    return _ARTIFACTS.findall(words)


# How a script creates a bucket: `mc mb [flags] alias/NAME`, `aws s3 mb s3://NAME`, `s3api create-bucket --bucket
# NAME`, boto3's `create_bucket(Bucket="NAME")`; the name is taken whole, never matched as a part of another.
_CREATES = re.compile(r"\bmb\b(?:\s+-{1,2}[\w-]+)*\s+(?:s3://|[\w.-]+/)(?P<mc>[\w.-]+)"
                      r"|create-bucket\b.*?--bucket[= ](?P<cli>[\w.-]+)"
                      r"|create_bucket\(\s*Bucket\s*=\s*[\"'](?P<py>[\w.-]+)")


def created_buckets(script: str) -> set[str]:
    return {next(g for g in hit.groups() if g) for hit in _CREATES.finditer(script)}


def check_bucket_bootstrap(obj: Obj, m: Manifests) -> list[str]:
    out = []
    for bucket in artifact_buckets(obj):
        creators = []
        for job in m.of_kind("Job", "CronJob"):
            text = " ".join(str(w) for c in job.containers() for w in (c.get("command") or []) + (c.get("args") or []))
            if bucket in created_buckets(text):
                creators.append(job.ref)
        if not creators:
            out.append(f"artifacts go to s3://{bucket}, but no Job creates bucket {bucket!r}; expected a bootstrap "
                       "Job (e.g. `mc mb --ignore-existing`) that retries until the S3 store answers")
    return out


def check_pod_security_labels(ns: Obj) -> list[str]:
    level = (ns.meta.get("labels") or {}).get("pod-security.kubernetes.io/enforce")
    if level in POD_SECURITY_LEVELS:
        return []
    return [f"label pod-security.kubernetes.io/enforce is {level!r}; expected {' or '.join(POD_SECURITY_LEVELS)}"]


def check_default_deny(namespace: str, m: Manifests) -> list[str]:
    covered: set[str] = set()
    for pol in m.of_kind("NetworkPolicy"):
        spec = pol.body.get("spec") or {}
        if pol.namespace != namespace or (spec.get("podSelector") or {}) != {}:
            continue
        types = spec.get("policyTypes") or (["Ingress"] + (["Egress"] if "egress" in spec else []))
        if "Ingress" in types and not spec.get("ingress"):
            covered.add("Ingress")
        if "Egress" in types and not spec.get("egress"):
            covered.add("Egress")
    missing = sorted({"Ingress", "Egress"} - covered)
    if missing:
        return [(f"no default-deny NetworkPolicy for {' and '.join(missing)} (podSelector {{}} with policyTypes "
                 f"{missing} and no rules); every flow must be allowed explicitly")]
    return []


def project_images(m: Manifests, prefix: str) -> dict[str, Obj]:
    """Images of the project (repository name starting with `prefix`) -> first workload using them."""
    out: dict[str, Obj] = {}
    for w in m.workloads():
        for c in w.containers():
            image = str(c.get("image", ""))
            if image_name(image).startswith(prefix):
                out.setdefault(image, w)
    return out


def check_project_image(image: str, prefix: str, images_dir: Path) -> list[str]:
    name = image_name(image)[len(prefix):]
    dockerfile = images_dir / name / "Dockerfile"
    if not dockerfile.is_file():
        return [f"no {dockerfile} builds it; expected every project image to have its Dockerfile in images/"]
    return check_image(name, dockerfile.read_text())


# Label syntax (k8s.io/apimachinery validation): a value is ≤ 63 characters of [A-Za-z0-9._-] that begins and ends
# alphanumeric (or empty); a key is an optional DNS-subdomain prefix and '/', then a name like a value, non-empty.
_LABEL_NAME = re.compile(r"^[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*$")


def _label_problems(where: str, labels: Any) -> list[str]:
    out = []
    for key, value in (labels or {}).items() if isinstance(labels, dict) else []:
        prefix, _, name = str(key).rpartition("/")
        if not (len(name) <= 63 and _LABEL_NAME.match(name)) or (prefix and not (
                len(prefix) <= 253 and _DNS_SUBDOMAIN.match(prefix))):
            out.append(f"{where}: label key {key!r} is not a valid label key")
        text = str(value)
        if not isinstance(value, str):
            out.append(f"{where}: label {key} has the non-string value {value!r} (quote it in the YAML)")
        elif text and not (len(text) <= 63 and _LABEL_NAME.match(text)):
            out.append(f"{where}: label {key}={text!r} is not a valid label value (≤ 63 characters of A-Z a-z 0-9 "
                       "- _ . beginning and ending alphanumeric; an unquoted YAML date renders as "
                       "'2025-10-20T00:00:00Z': quote it)")
    return out


def check_labels(obj: Obj) -> list[str]:
    """Every label map of the object (metadata, pod template, selectors) has keys and values the API accepts: the
    schemas only say 'string', so an invalid one passes them and fails only at `kubectl apply`."""
    out: list[str] = []

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                here = f"{path}.{k}" if path else str(k)
                if k in ("labels", "matchLabels") or (k == "selector"
                                                      and obj.kind in ("Service", "ReplicationController")
                                                      and path == "spec" and isinstance(v, dict)):
                    out.extend(_label_problems(here, v))
                else:
                    walk(v, here)
        elif isinstance(node, list):
            for i, item in enumerate(node):
                walk(item, f"{path}[{i}]")

    walk(obj.body, "")
    return out
