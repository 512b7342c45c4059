"""Values in a pod spec that the API server rejects (pkg/apis/core/validation) and the JSON schema lets through:
enums, port ranges, probe and handler settings, env sources, mounts, volume sources, tolerations, spread
constraints. Unset and empty values are left alone: the API defaults them before it validates."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from indmlops.checks.static.api_names import (
    IANA,
    containers_with_paths,
    is_data_key,
    is_iana_name,
    is_qualified,
    is_subdomain,
    pod_path,
)
from indmlops.manifests import Obj

PROTOCOLS = ("TCP", "UDP", "SCTP")
PULL_POLICIES = ("Always", "IfNotPresent", "Never")
TERMINATION_MESSAGE_POLICIES = ("File", "FallbackToLogsOnError")
DNS_POLICIES = ("ClusterFirstWithHostNet", "ClusterFirst", "Default", "None")
POD_RESTART_POLICIES = ("Always", "OnFailure", "Never")
PROBE_HANDLERS = ("exec", "httpGet", "tcpSocket", "grpc")
LIFECYCLE_HANDLERS = ("exec", "httpGet", "tcpSocket", "sleep")
VOLUME_SOURCES = ("hostPath", "emptyDir", "gcePersistentDisk", "awsElasticBlockStore", "gitRepo", "secret", "nfs",
                  "iscsi", "glusterfs", "persistentVolumeClaim", "rbd", "flexVolume", "cinder", "cephfs", "flocker",
                  "downwardAPI", "fc", "azureFile", "configMap", "vsphereVolume", "quobyte", "azureDisk",
                  "photonPersistentDisk", "projected", "portworxVolume", "scaleIO", "storageos", "csi", "ephemeral",
                  "image")
HOST_PATH_TYPES = ("", "DirectoryOrCreate", "Directory", "FileOrCreate", "File", "Socket", "CharDevice", "BlockDevice")
MOUNT_PROPAGATIONS = ("None", "HostToContainer", "Bidirectional")
ENV_FIELD_PATHS = ("metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName", "spec.serviceAccountName",
                   "status.hostIP", "status.hostIPs", "status.podIP", "status.podIPs")
ENV_RESOURCES = ("limits.cpu", "limits.memory", "limits.ephemeral-storage", "requests.cpu", "requests.memory",
                 "requests.ephemeral-storage")
_HEADER = re.compile(r"^[-!#$%&'*+.^_`|~0-9A-Za-z]+$")
_SUBSCRIPTED = re.compile(r"^metadata\.(labels|annotations)\['([^']*)'\]$")
MAX_INT32 = 2**31 - 1


def is_ip(value: Any) -> bool:
    """An IPv4 or IPv6 address as the API writes one (no prefix length)."""
    try:
        ipaddress.ip_address(str(value))
        return True
    except ValueError:
        return False


def num(v: Any) -> int | None:
    """An integer value (YAML booleans are not numbers; other types are the schema's to judge)."""
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def enum(path: str, value: Any, allowed: tuple[str, ...]) -> list[str]:
    if value is None or value == "" or value in allowed:
        return []
    return [f"{path} {value!r} is not one the API accepts: {', '.join(a for a in allowed if a)}"]


def at_least(path: str, value: Any, low: int) -> list[str]:
    n = num(value)
    return [f"{path} is {n}; the API accepts {low} or more"] if n is not None and n < low else []


def port(path: str, value: Any, *, named: bool = True) -> list[str]:
    """A port number 1-65535 or, where `named`, an IANA port name (a quoted number is a name, and not a valid one)."""
    if num(value) is not None:
        return [] if 1 <= value <= 65535 else [f"{path} is {value}; the API accepts a port number 1-65535"]
    if isinstance(value, str) and named and not is_iana_name(value):
        return [f"{path} {value!r} is neither a port number 1-65535 nor {IANA}"
                + (" (a quoted number is read as a name)" if value.isdigit() else "")]
    return []


def relative_path(path: str, value: Any) -> list[str]:
    if not isinstance(value, str) or value == "":
        return []
    if value.startswith("/") or ".." in value.split("/"):
        return [f"{path} {value!r} is not a relative path without '..'; the API accepts only paths inside the volume"]
    return []


def _handler(path: str, h: Any, kinds: tuple[str, ...], grace: int) -> list[str]:
    if not isinstance(h, dict):
        return []
    used = [k for k in kinds if h.get(k) is not None]
    if len(used) != 1:
        return [f"{path} has {' and '.join(used) or 'no handler'}; the API requires exactly one of {', '.join(kinds)}"]
    out, k, body = [], used[0], h[used[0]]
    body = body if isinstance(body, dict) else {}
    if k == "exec" and not body.get("command"):
        out.append(f"{path}.exec.command is empty; the API requires a command")
    if k in ("httpGet", "tcpSocket", "grpc"):
        out += port(f"{path}.{k}.port", body.get("port"), named=k != "grpc")
    if k == "httpGet":
        out += enum(f"{path}.httpGet.scheme", body.get("scheme"), ("HTTP", "HTTPS"))
        out += [f"{path}.httpGet.httpHeaders name {h.get('name')!r} is not an HTTP header name (a token: letters, "
                "digits and !#$%&'*+-.^_`|~)" for h in body.get("httpHeaders") or []
                if isinstance(h, dict) and not _HEADER.match(str(h.get("name")))]
    if k == "sleep" and num(body.get("seconds")) is not None and not 0 < body["seconds"] <= grace:
        out.append(f"{path}.sleep.seconds is {body['seconds']}; the API accepts 1 to terminationGracePeriodSeconds "
                   f"({grace})")
    return out


def _probe(path: str, p: Any, kind: str, grace: int) -> list[str]:
    if not isinstance(p, dict):
        return []
    out = _handler(path, p, PROBE_HANDLERS, grace)
    for key in ("initialDelaySeconds", "timeoutSeconds", "periodSeconds", "successThreshold", "failureThreshold"):
        out += at_least(f"{path}.{key}", p.get(key), 0)
    success = num(p.get("successThreshold"))
    if kind in ("livenessProbe", "startupProbe") and success not in (None, 0, 1):
        out.append(f"{path}.successThreshold is {success}; the API accepts only 1 for a {kind}")
    tgps = p.get("terminationGracePeriodSeconds")
    if tgps is not None and kind == "readinessProbe":
        out.append(f"{path}.terminationGracePeriodSeconds is set; the API forbids it on a readinessProbe")
    elif (n := num(tgps)) is not None and n <= 0:
        out.append(f"{path}.terminationGracePeriodSeconds is {tgps}; the API accepts 1 or more")
    return out


def _env(path: str, c: dict[str, Any]) -> list[str]:
    out = []
    for e in c.get("env") or []:
        vf = e.get("valueFrom") if isinstance(e, dict) else None
        if not isinstance(vf, dict):
            continue
        where = f"{path}.env[name={e.get('name')}].valueFrom"
        sources = [k for k in ("fieldRef", "resourceFieldRef", "configMapKeyRef", "secretKeyRef") if vf.get(k)]
        if len(sources) != 1:
            out.append(f"{where} has {' and '.join(sources) or 'no source'}; the API requires exactly one of fieldRef, "
                       "resourceFieldRef, configMapKeyRef, secretKeyRef")
        if e.get("value"):
            out.append(f"{path}.env[name={e.get('name')}] has both value and valueFrom; the API accepts one")
        for ref in ("configMapKeyRef", "secretKeyRef"):
            r = vf.get(ref)
            if isinstance(r, dict) and not is_data_key(r.get("key")):
                out.append(f"{where}.{ref}.key {r.get('key')!r} is not a valid data key")
            if isinstance(r, dict) and not is_subdomain(r.get("name")):
                out.append(f"{where}.{ref}.name {r.get('name')!r} is not a valid object name")
        fp = (vf.get("fieldRef") or {}).get("fieldPath") if isinstance(vf.get("fieldRef"), dict) else None
        m = _SUBSCRIPTED.match(str(fp))
        if fp is not None and not (fp in ENV_FIELD_PATHS or (m and is_qualified(m.group(2).lower()))):
            out.append(f"{where}.fieldRef.fieldPath {fp!r} is not one the API accepts: {', '.join(ENV_FIELD_PATHS)}, "
                       "metadata.labels['<key>'], metadata.annotations['<key>']")
        rf = vf.get("resourceFieldRef")
        if isinstance(rf, dict) and rf.get("resource") not in ENV_RESOURCES \
                and not str(rf.get("resource")).startswith(("requests.hugepages-", "limits.hugepages-")):
            out.append(f"{where}.resourceFieldRef.resource {rf.get('resource')!r} is not one the API accepts: "
                       f"{', '.join(ENV_RESOURCES)}")
    for i, e in enumerate(c.get("envFrom") or []):
        sources = [k for k in ("configMapRef", "secretRef") if isinstance(e, dict) and e.get(k)]
        if len(sources) != 1:
            out.append(f"{path}.envFrom[{i}] has {' and '.join(sources) or 'no source'}; the API requires exactly one "
                       "of configMapRef, secretRef")
    return out


def _container(path: str, c: dict[str, Any], *, init: bool, grace: int) -> list[str]:
    out = []
    image = c.get("image")
    if not str(image or "").strip():
        out.append(f"{path}.image is empty; the API requires an image")
    elif isinstance(image, str) and image != image.strip():
        out.append(f"{path}.image {image!r} has leading or trailing whitespace; the API rejects the pods")
    out += enum(f"{path}.imagePullPolicy", c.get("imagePullPolicy"), PULL_POLICIES)
    out += enum(f"{path}.terminationMessagePolicy", c.get("terminationMessagePolicy"), TERMINATION_MESSAGE_POLICIES)
    for i, p in enumerate(c.get("ports") or []):
        if not isinstance(p, dict):
            continue
        where = f"{path}.ports[{i}]"
        if p.get("containerPort") in (None, 0):
            out.append(f"{where}.containerPort is missing; the API requires a port number 1-65535")
        out += port(f"{where}.containerPort", p.get("containerPort"), named=False)
        if p.get("hostPort") not in (None, 0):
            out += port(f"{where}.hostPort", p.get("hostPort"), named=False)
        out += enum(f"{where}.protocol", p.get("protocol"), PROTOCOLS)
    out += _env(path, c)
    for m in c.get("volumeMounts") or []:
        if not isinstance(m, dict):
            continue
        where = f"{path}.volumeMounts[name={m.get('name')}]"
        if not m.get("mountPath"):
            out.append(f"{where}.mountPath is empty; the API requires a path")
        out += relative_path(f"{where}.subPath", m.get("subPath")) + \
            relative_path(f"{where}.subPathExpr", m.get("subPathExpr"))
        if m.get("subPath") and m.get("subPathExpr"):
            out.append(f"{where} has subPath and subPathExpr; the API accepts one")
        out += enum(f"{where}.mountPropagation", m.get("mountPropagation"), MOUNT_PROPAGATIONS)
    restart = c.get("restartPolicy")
    if restart is not None and (not init or restart != "Always"):
        out.append(f"{path}.restartPolicy {restart!r}: the API accepts only 'Always', and only on an init container "
                   "(a sidecar)")
    sidecar = init and restart == "Always"
    for kind in ("livenessProbe", "readinessProbe", "startupProbe", "lifecycle"):
        if init and not sidecar and c.get(kind) is not None:
            out.append(f"{path}.{kind} is set; the API forbids it on an init container without restartPolicy Always")
    for kind in ("livenessProbe", "readinessProbe", "startupProbe"):
        out += _probe(f"{path}.{kind}", c.get(kind), kind, grace)
    for hook in ("postStart", "preStop"):
        out += _handler(f"{path}.lifecycle.{hook}", (c.get("lifecycle") or {}).get(hook), LIFECYCLE_HANDLERS, grace)
    return out


def _volume(path: str, v: dict[str, Any]) -> list[str]:
    # No source at all is an emptyDir (the API defaults it); an unknown key is the schema's finding.
    sources = [k for k in VOLUME_SOURCES if v.get(k) is not None]
    if len(sources) > 1:
        return [f"{path} has {' and '.join(sources)}; the API accepts exactly one volume source"]
    if not sources:
        return []
    out, kind, src = [], sources[0], v[sources[0]]
    src = src if isinstance(src, dict) else {}
    mode_paths = [(f"{path}.{kind}.defaultMode", src.get("defaultMode"))]
    items = [(f"{path}.{kind}.items[{i}]", it) for i, it in enumerate(src.get("items") or []) if isinstance(it, dict)]
    for i, s in enumerate(src.get("sources") or [] if kind == "projected" else []):
        for sk, sv in (s or {}).items():
            items += [(f"{path}.projected.sources[{i}].{sk}.items[{j}]", it)
                      for j, it in enumerate((sv or {}).get("items") or []) if isinstance(it, dict)]
    for where, it in items:
        mode_paths.append((f"{where}.mode", it.get("mode")))
        out += relative_path(f"{where}.path", it.get("path"))
        if "key" in it and not is_data_key(it["key"]):
            out.append(f"{where}.key {it['key']!r} is not a valid data key")
    for where, mode in mode_paths:
        if (n := num(mode)) is not None and not 0 <= n <= 0o777:
            out.append(f"{where} is {mode}; the API accepts 0-511 (octal 0-0777; YAML reads 0644 as octal, '644' "
                       "as decimal)")
    if kind == "hostPath":
        out += enum(f"{path}.hostPath.type", src.get("type"), HOST_PATH_TYPES)
    if kind == "persistentVolumeClaim" and not src.get("claimName"):
        out.append(f"{path}.persistentVolumeClaim.claimName is empty; the API requires a claim name")
    return out


def check_pod_spec(obj: Obj, *, template_of_controller: bool) -> list[str]:
    """Every value of the pod spec (containers, volumes, pod-level settings) the API accepts."""
    spec, base = obj.pod_spec() or {}, pod_path(obj)
    out: list[str] = []
    if not spec.get("containers"):
        out.append(f"{base}.containers is empty; the API requires at least one container")
    grace = num(spec.get("terminationGracePeriodSeconds"))
    if grace is not None and grace < 0:
        out.append(f"{base}.terminationGracePeriodSeconds is {grace}; the API accepts 0 or more (a negative value is "
                   "replaced by 1 with a warning: no graceful shutdown)")
    for path, c in containers_with_paths(obj):
        out += _container(path, c, init=".initContainers[" in path, grace=30 if grace is None else grace)
    for v in spec.get("volumes") or []:
        if isinstance(v, dict):
            out += _volume(f"{base}.volumes[name={v.get('name')}]", v)
    if not template_of_controller:
        out += enum(f"{base}.restartPolicy", spec.get("restartPolicy"), POD_RESTART_POLICIES)
    out += enum(f"{base}.dnsPolicy", spec.get("dnsPolicy"), DNS_POLICIES)
    nameservers = (spec.get("dnsConfig") or {}).get("nameservers") or []
    if spec.get("dnsPolicy") == "None" and not nameservers:
        out.append(f"{base}.dnsConfig.nameservers is empty with dnsPolicy None; the API requires at least one")
    if len(nameservers) > 3:
        out.append(f"{base}.dnsConfig.nameservers has {len(nameservers)}; the API accepts at most 3")
    out += enum(f"{base}.preemptionPolicy", spec.get("preemptionPolicy"), ("PreemptLowerPriority", "Never"))
    out += enum(f"{base}.securityContext.fsGroupChangePolicy",
                (spec.get("securityContext") or {}).get("fsGroupChangePolicy"), ("OnRootMismatch", "Always"))
    deadline = spec.get("activeDeadlineSeconds")
    if deadline is not None and obj.kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"):
        out.append(f"{base}.activeDeadlineSeconds is set; the API forbids it in a {obj.kind}'s pod template")
    elif (n := num(deadline)) is not None and not 1 <= n <= MAX_INT32:
        out.append(f"{base}.activeDeadlineSeconds is {deadline}; the API accepts 1 to {MAX_INT32}")
    return out
