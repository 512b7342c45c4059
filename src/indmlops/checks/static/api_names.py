"""The name formats the API server enforces and the JSON schema does not (it says only "string"): object names by
kind, and the names inside an object — containers, volumes, env vars, Service ports, data and annotation keys."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from indmlops.manifests import Obj

_LABEL = r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?"
_DNS_LABEL = re.compile(rf"^{_LABEL}$")
_DNS1035 = re.compile(r"^[a-z](?:[-a-z0-9]*[a-z0-9])?$")
_SUBDOMAIN = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*$")
_QUALIFIED = re.compile(r"^[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_DATA_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
_IANA = re.compile(r"^[a-z0-9](?:-?[a-z0-9])*$")

LABEL = "a DNS-1123 label (≤ 63 lowercase letters, digits and '-', beginning and ending alphanumeric)"
LABEL_1035 = "a DNS-1035 label (≤ 63 lowercase letters, digits and '-', beginning with a letter, ending alphanumeric)"
SUBDOMAIN = ("a DNS-1123 subdomain (≤ 253 lowercase letters, digits, '-' and '.', each dot-separated part beginning "
             "and ending alphanumeric)")
IANA = "an IANA service name (≤ 15 lowercase letters, digits and single inner '-', at least one letter)"
QUALIFIED = "a qualified name ([DNS-subdomain prefix/]name, name ≤ 63 of A-Z a-z 0-9 - _ . beginning and ending " \
            "alphanumeric)"
DATA_KEY = "a data key (≤ 253 of A-Z a-z 0-9 - _ ., not '.' or '..' and not beginning with '..')"
ENV_NAME = "an env var name (non-empty printable ASCII without '=')"
ANNOTATIONS_MAX = 256 * 1024  # bytes of all keys and values together (apimachinery TotalAnnotationSizeLimitB)
RBAC_KINDS = ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding")


def is_label(v: Any) -> bool:
    return isinstance(v, str) and len(v) <= 63 and bool(_DNS_LABEL.match(v))


def is_label_1035(v: Any) -> bool:
    return isinstance(v, str) and len(v) <= 63 and bool(_DNS1035.match(v))


def is_subdomain(v: Any) -> bool:
    return isinstance(v, str) and len(v) <= 253 and bool(_SUBDOMAIN.match(v))


def is_iana_name(v: Any) -> bool:
    return isinstance(v, str) and len(v) <= 15 and bool(_IANA.match(v)) and any(ch.isalpha() for ch in v)


def is_qualified(v: Any) -> bool:
    if not isinstance(v, str):
        return False
    prefix, slash, name = v.rpartition("/")
    return len(name) <= 63 and bool(_QUALIFIED.match(name)) and (not slash or is_subdomain(prefix))


def is_data_key(v: Any) -> bool:
    return isinstance(v, str) and len(v) <= 253 and bool(_DATA_KEY.match(v)) and v not in (".", "..") \
        and not v.startswith("..")


def is_env_name(v: Any) -> bool:
    # RelaxedEnvironmentVariableValidation is on by default from Kubernetes 1.32 (GA in 1.34): any printable ASCII.
    return isinstance(v, str) and v != "" and all(32 <= ord(ch) <= 126 and ch != "=" for ch in v)


def bad(path: str, value: Any, accepts: str) -> str:
    return f"{path} {value!r} is not {accepts}"


def pod_path(obj: Obj) -> str:
    """Where the pod spec sits in the object, as a field path."""
    return {"Pod": "spec", "CronJob": "spec.jobTemplate.spec.template.spec"}.get(obj.kind, "spec.template.spec")


def containers_with_paths(obj: Obj) -> list[tuple[str, dict[str, Any]]]:
    spec, base = obj.pod_spec() or {}, pod_path(obj)
    return [(f"{base}.{key}[name={c.get('name')}]", c) for key in ("initContainers", "containers")
            for c in spec.get(key) or [] if isinstance(c, dict)]


def _object_name(obj: Obj) -> list[str]:
    name, kind = obj.meta.get("name"), obj.kind
    if not name:
        return ["metadata.name is missing; the API requires a name"]
    if kind == "Service":
        return [] if is_label_1035(name) else [bad("metadata.name", name, LABEL_1035 + " — a Service name is a DNS "
                                                                               "name inside the cluster")]
    if kind in RBAC_KINDS:  # path-segment names: `system:aggregate-to-view` is fine
        return [] if name not in (".", "..") and not any(ch in str(name) for ch in "/%") else [
            f"metadata.name {name!r} is not a path segment name (not '.' or '..', no '/' or '%')"]
    if kind in ("Namespace", "StatefulSet"):
        if not is_label(name):
            return [bad("metadata.name", name, LABEL + f" — a {kind} name must be a single DNS label")]
    elif not is_subdomain(name):
        return [bad("metadata.name", name, SUBDOMAIN)]
    # Names that end up in a label value (≤ 63): a Job's in job-name, a CronJob's Jobs get an 11-character
    # suffix (-<timestamp>), a StatefulSet's pods get controller-revision-hash=<name>-<10-character hash>.
    limit = {"Job": 63, "CronJob": 52, "StatefulSet": 52}.get(kind)
    if limit and len(name) > limit:
        return [f"metadata.name {name!r} has {len(name)} characters; a {kind} name may have at most {limit} (it "
                "becomes part of a label value of its pods, which is at most 63 characters)"]
    return []


def _pod_names(obj: Obj) -> list[str]:
    spec, base, out = obj.pod_spec() or {}, pod_path(obj), []
    for path, c in containers_with_paths(obj):
        if not is_label(c.get("name")):
            out.append(bad(f"{path}.name", c.get("name"), LABEL))
        for i, e in enumerate(c.get("env") or []):
            if isinstance(e, dict) and not is_env_name(e.get("name")):
                out.append(bad(f"{path}.env[{i}].name", e.get("name"), ENV_NAME))
        for i, e in enumerate(c.get("envFrom") or []):
            if isinstance(e, dict) and e.get("prefix") and not is_env_name(e.get("prefix")):
                out.append(bad(f"{path}.envFrom[{i}].prefix", e.get("prefix"), ENV_NAME))
    for v in spec.get("volumes") or []:
        if isinstance(v, dict) and not is_label(v.get("name")):
            out.append(bad(f"{base}.volumes[name={v.get('name')}].name", v.get("name"), LABEL))
    for key in ("hostname", "subdomain"):
        if spec.get(key) and not is_label(spec[key]):
            out.append(bad(f"{base}.{key}", spec[key], LABEL))
    for key in ("serviceAccountName", "priorityClassName"):
        if spec.get(key) and not is_subdomain(spec[key]):
            out.append(bad(f"{base}.{key}", spec[key], SUBDOMAIN))
    if obj.kind == "StatefulSet":
        for i, t in enumerate((obj.body.get("spec") or {}).get("volumeClaimTemplates") or []):
            name = (t.get("metadata") or {}).get("name") if isinstance(t, dict) else None
            if not is_label(name):
                out.append(bad(f"spec.volumeClaimTemplates[{i}].metadata.name", name, LABEL + " (it names a volume)"))
    return out


def _service_port_names(svc: Obj) -> list[str]:
    ports = [p for p in (svc.body.get("spec") or {}).get("ports") or [] if isinstance(p, dict)]
    out = []
    for i, p in enumerate(ports):
        if "name" not in p or p["name"] == "":
            if len(ports) > 1:
                out.append(f"spec.ports[{i}] (port {p.get('port')}) has no name; the API requires a name on every "
                           "port of a Service with more than one")
        elif not is_label(p["name"]):
            out.append(bad(f"spec.ports[{i}].name", p["name"], LABEL))
    twice = sorted(str(n) for n, k in Counter(p.get("name") for p in ports if p.get("name")).items() if k > 1)
    if twice:
        out.append(f"spec.ports names {twice} are used more than once; the API requires unique port names")
    return out


def _data_keys(obj: Obj) -> list[str]:
    out = []
    for field in ("data", "binaryData", "stringData"):
        values = obj.body.get(field)
        for key in values if isinstance(values, dict) else ():
            if not is_data_key(key):
                out.append(bad(f"{field} key", key, DATA_KEY))
    return out


def check_object_names(obj: Obj) -> list[str]:
    """metadata.name (by kind), metadata.namespace and annotation keys, and the names inside the object."""
    out = _object_name(obj)
    ns = obj.meta.get("namespace")
    if ns is not None and not is_label(ns):
        out.append(bad("metadata.namespace", ns, LABEL))
    for where, meta in (("metadata", obj.meta), ("spec.template.metadata", _template_meta(obj))):
        annotations = meta.get("annotations") if isinstance(meta, dict) else None
        if not isinstance(annotations, dict):
            continue
        out += [bad(f"{where}.annotations key", k, QUALIFIED) for k in annotations if not is_qualified(str(k).lower())]
        size = sum(len(str(k)) + len(str(v)) for k, v in annotations.items())
        if size > ANNOTATIONS_MAX:
            out.append(f"{where}.annotations total {size} bytes; the API accepts at most {ANNOTATIONS_MAX}")
    if obj.pod_spec() is not None:
        out += _pod_names(obj)
    if obj.kind == "Service":
        out += _service_port_names(obj)
    if obj.kind in ("ConfigMap", "Secret"):
        out += _data_keys(obj)
    return out


def _template_meta(obj: Obj) -> dict[str, Any]:
    if obj.kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
        return ((obj.body.get("spec") or {}).get("template") or {}).get("metadata") or {}
    return {}
