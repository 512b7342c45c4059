"""Field values the API server rejects and the JSON schema lets through (it checks types, not values), by kind:
controller specs and strategies (apps, batch), CronJob schedules, Services, ConfigMap and Secret data, claims,
NetworkPolicies, label selectors; the pod spec in pod_values and pod_settings. Findings name the field path, the
value found and what the API accepts."""

from __future__ import annotations

import base64
import binascii
import zoneinfo
from decimal import Decimal
from typing import Any

from indmlops.checks.static.api_names import containers_with_paths, is_qualified, is_subdomain, pod_path
from indmlops.checks.static.cron import schedule_problem
from indmlops.checks.static.net_values import check_network_policy, check_service
from indmlops.checks.static.pod_settings import check_pod_settings
from indmlops.checks.static.pod_values import at_least, enum, num
from indmlops.checks.static.pod_values import check_pod_spec as _pod_spec
from indmlops.manifests import Obj

ACCESS_MODES = ("ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod")
SELECTOR_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")
NODE_SELECTOR_OPERATORS = (*SELECTOR_OPERATORS, "Gt", "Lt")
DATA_MAX = 1024 * 1024  # bytes a ConfigMap or Secret may hold (etcd's object size bounds it)
SECRET_TYPE_KEYS = {"kubernetes.io/tls": ("tls.crt", "tls.key"), "kubernetes.io/ssh-auth": ("ssh-privatekey",),
                    "kubernetes.io/dockerconfigjson": (".dockerconfigjson",),
                    "kubernetes.io/dockercfg": (".dockercfg",)}
CONTROLLERS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob")


def int_or_percent(path: str, value: Any, *, positive: bool = False) -> tuple[list[str], int | None]:
    """(problems, the number) of a maxSurge/maxUnavailable value: an integer ≥ 0 or a string like '25%'."""
    if num(value) is not None:
        return ([f"{path} is {value}; the API accepts an integer ≥ 0 or a percentage like '25%'"] if value < 0
                else []), value
    if isinstance(value, str) and value[:-1].isdigit() and value.endswith("%"):
        return [], int(value[:-1])
    if isinstance(value, str):
        return [f"{path} {value!r} is neither an integer nor a percentage like '25%'"
                + (" (a quoted number is a string: write it unquoted or add %)" if value.isdigit() else "")], None
    return [], None


def _over_100(path: str, value: Any) -> list[str]:
    if isinstance(value, str) and value.endswith("%") and value[:-1].isdigit() and int(value[:-1]) > 100:
        return [f"{path} {value!r} is more than 100%; the API accepts at most '100%'"]
    return []


def _counts(spec: dict[str, Any], base: str, *keys: str) -> list[str]:
    return [p for k in keys for p in at_least(f"{base}.{k}", spec.get(k), 0)]


def _deployment(spec: dict[str, Any]) -> list[str]:
    out = _counts(spec, "spec", "replicas", "minReadySeconds", "revisionHistoryLimit", "progressDeadlineSeconds")
    deadline, ready = num(spec.get("progressDeadlineSeconds")), num(spec.get("minReadySeconds")) or 0
    if deadline is not None and deadline <= ready:
        out.append(f"spec.progressDeadlineSeconds is {deadline}; the API requires more than minReadySeconds ({ready})")
    strategy = spec.get("strategy") or {}
    kind, ru = strategy.get("type") or "RollingUpdate", strategy.get("rollingUpdate")
    out += enum("spec.strategy.type", kind, ("Recreate", "RollingUpdate"))
    if kind == "Recreate" and ru is not None:
        out.append("spec.strategy.rollingUpdate is set with strategy type Recreate; the API forbids it")
    if kind == "RollingUpdate" and isinstance(ru, dict):
        p1, unavailable = int_or_percent("spec.strategy.rollingUpdate.maxUnavailable", ru.get("maxUnavailable", "25%"))
        p2, surge = int_or_percent("spec.strategy.rollingUpdate.maxSurge", ru.get("maxSurge", "25%"))
        out += p1 + p2 + _over_100("spec.strategy.rollingUpdate.maxUnavailable", ru.get("maxUnavailable"))
        if unavailable == 0 and surge == 0:
            out.append("spec.strategy.rollingUpdate: maxUnavailable and maxSurge are both 0; the API requires one of "
                       "them above 0 (else no rollout can make progress)")
    return out


def _daemonset(spec: dict[str, Any]) -> list[str]:
    out = _counts(spec, "spec", "minReadySeconds", "revisionHistoryLimit")
    strategy = spec.get("updateStrategy") or {}
    kind, ru = strategy.get("type") or "RollingUpdate", strategy.get("rollingUpdate") or {}
    out += enum("spec.updateStrategy.type", kind, ("RollingUpdate", "OnDelete"))
    if kind == "RollingUpdate" and isinstance(ru, dict):
        base = "spec.updateStrategy.rollingUpdate"
        p1, unavailable = int_or_percent(f"{base}.maxUnavailable", ru.get("maxUnavailable", 1))
        p2, surge = int_or_percent(f"{base}.maxSurge", ru.get("maxSurge", 0))
        out += p1 + p2 + _over_100(f"{base}.maxUnavailable", ru.get("maxUnavailable")) + \
            _over_100(f"{base}.maxSurge", ru.get("maxSurge"))
        if unavailable and surge:
            out.append(f"{base}: maxSurge {ru.get('maxSurge')!r} with maxUnavailable {ru.get('maxUnavailable', 1)!r} "
                       "(1 when unset); the API requires maxUnavailable 0 when maxSurge is set")
        elif unavailable == 0 and surge == 0:
            out.append(f"{base}: maxUnavailable and maxSurge are both 0; the API requires one of them above 0")
    return out


def _statefulset(spec: dict[str, Any]) -> list[str]:
    out = _counts(spec, "spec", "replicas", "minReadySeconds", "revisionHistoryLimit")
    out += at_least("spec.ordinals.start", (spec.get("ordinals") or {}).get("start"), 0)
    out += enum("spec.podManagementPolicy", spec.get("podManagementPolicy"), ("OrderedReady", "Parallel"))
    strategy = spec.get("updateStrategy") or {}
    kind, ru = strategy.get("type") or "RollingUpdate", strategy.get("rollingUpdate")
    out += enum("spec.updateStrategy.type", kind, ("RollingUpdate", "OnDelete"))
    if kind == "OnDelete" and ru is not None:
        out.append("spec.updateStrategy.rollingUpdate is set with type OnDelete; the API forbids it")
    if kind == "RollingUpdate" and isinstance(ru, dict):
        out += at_least("spec.updateStrategy.rollingUpdate.partition", ru.get("partition"), 0)
        if ru.get("maxUnavailable") is not None:
            path = "spec.updateStrategy.rollingUpdate.maxUnavailable"
            problems, value = int_or_percent(path, ru["maxUnavailable"])
            out += problems + _over_100(path, ru["maxUnavailable"])
            if value == 0:
                out.append(f"{path} is {ru['maxUnavailable']!r}; the API requires more than 0")
    retention = spec.get("persistentVolumeClaimRetentionPolicy") or {}
    for key in ("whenDeleted", "whenScaled"):
        out += enum(f"spec.persistentVolumeClaimRetentionPolicy.{key}", retention.get(key), ("Retain", "Delete"))
    for i, t in enumerate(spec.get("volumeClaimTemplates") or []):
        if isinstance(t, dict):
            out += claim_spec(f"spec.volumeClaimTemplates[{i}].spec", t.get("spec") or {})
    return out


def _job(spec: dict[str, Any], base: str, *, in_cronjob: bool) -> list[str]:
    out = _counts(spec, base, "parallelism", "completions", "activeDeadlineSeconds", "backoffLimit",
                  "ttlSecondsAfterFinished", "backoffLimitPerIndex", "maxFailedIndexes")
    mode = spec.get("completionMode")
    out += enum(f"{base}.completionMode", mode, ("NonIndexed", "Indexed"))
    if mode == "Indexed" and spec.get("completions") is None:
        out.append(f"{base}.completions is not set; the API requires it with completionMode Indexed")
    if spec.get("backoffLimitPerIndex") is not None and mode != "Indexed":
        out.append(f"{base}.backoffLimitPerIndex is set with completionMode {mode or 'NonIndexed'!r}; the API accepts "
                   "it only with Indexed")
    restart = ((spec.get("template") or {}).get("spec") or {}).get("restartPolicy")
    if spec.get("podFailurePolicy") is not None and restart != "Never":
        out.append(f"{base}.podFailurePolicy is set with restartPolicy {restart!r}; the API accepts it only with "
                   "restartPolicy Never")
    replacement = spec.get("podReplacementPolicy")
    out += enum(f"{base}.podReplacementPolicy", replacement, ("TerminatingOrFailed", "Failed"))
    if spec.get("podFailurePolicy") is not None and replacement not in (None, "Failed"):
        out.append(f"{base}.podReplacementPolicy {replacement!r} with a podFailurePolicy; the API accepts only Failed")
    if spec.get("selector") is not None and in_cronjob:
        out.append(f"{base}.selector is set; the API generates it for a CronJob's Jobs and rejects one given")
    elif spec.get("selector") is not None and spec.get("manualSelector") is not True:
        out.append(f"{base}.selector is set without manualSelector: true; the API generates a Job's selector "
                   "(controller-uid) and rejects a hand-written one")
    return out


def _cronjob(spec: dict[str, Any]) -> list[str]:
    out = _counts(spec, "spec", "startingDeadlineSeconds", "successfulJobsHistoryLimit", "failedJobsHistoryLimit")
    schedule = spec.get("schedule")
    if isinstance(schedule, str) and (problem := schedule_problem(schedule, spec.get("timeZone"))):
        out.append(f"spec.schedule {schedule!r} {problem}")
    tz = spec.get("timeZone")
    if isinstance(tz, str):
        try:
            zoneinfo.ZoneInfo(tz)
            known = tz != "" and tz.lower() != "local"
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            known = False
        if not known:
            out.append(f"spec.timeZone {tz!r} is not an IANA time zone name (e.g. 'Etc/UTC', 'Europe/Berlin')")
    out += enum("spec.concurrencyPolicy", spec.get("concurrencyPolicy"), ("Allow", "Forbid", "Replace"))
    return out + _job(((spec.get("jobTemplate") or {}).get("spec")) or {}, "spec.jobTemplate.spec", in_cronjob=True)


def quantity(value: Any) -> Decimal | None:
    from kubernetes.utils import parse_quantity

    try:
        return Decimal(parse_quantity(value))
    except (ValueError, TypeError, ArithmeticError):
        return None


def claim_spec(base: str, spec: dict[str, Any]) -> list[str]:
    """A PersistentVolumeClaim's spec (also a StatefulSet's claim template)."""
    out = []
    modes = spec.get("accessModes") or []
    if not isinstance(modes, list):
        modes = [modes]  # a bare string is the schema's finding; its value is still judged here
    if not modes:
        out.append(f"{base}.accessModes is empty; the API requires at least one access mode")
    out += [p for m in modes for p in enum(f"{base}.accessModes", m, ACCESS_MODES)]
    if "ReadWriteOncePod" in modes and len(set(modes)) > 1:
        out.append(f"{base}.accessModes {modes}: the API accepts ReadWriteOncePod only alone")
    storage = ((spec.get("resources") or {}).get("requests") or {}).get("storage")
    size = quantity(storage)
    if storage is None:
        out.append(f"{base}.resources.requests.storage is missing; the API requires the size to claim")
    elif size is None or size <= 0:
        out.append(f"{base}.resources.requests.storage {storage!r}; the API accepts a quantity above 0 (e.g. 1Gi)")
    out += enum(f"{base}.volumeMode", spec.get("volumeMode"), ("Filesystem", "Block"))
    cls = spec.get("storageClassName")
    if cls and not is_subdomain(cls):
        out.append(f"{base}.storageClassName {cls!r} is not a valid StorageClass name (a DNS-1123 subdomain)")
    return out


def _decoded(field: str, key: str, value: Any, out: list[str]) -> bytes:
    try:
        # Go's decoder skips line breaks; anything else outside the alphabet (or bad padding) is an error.
        return base64.b64decode(str(value).replace("\n", "").replace("\r", ""), validate=True)
    except (binascii.Error, ValueError):
        # The value may be a secret in plain text: the finding says where it breaks, never what it holds.
        text = str(value).replace("\n", "").replace("\r", "")
        bad = next((i for i, ch in enumerate(text) if not (ch.isascii() and (ch.isalnum() or ch in "+/="))), None)
        where = f"a character outside the alphabet at position {bad}" if bad is not None else "wrong padding"
        out.append(f"{field}[{key}] is not valid base64 ({len(text)} characters, {where}); the API requires base64 "
                   "(put plain text under stringData)")
        return b""


def _config_data(obj: Obj) -> list[str]:
    out: list[str] = []
    body = obj.body
    data, binary = body.get("data") or {}, body.get("binaryData") or {}
    string_data = body.get("stringData") or {} if obj.kind == "Secret" else {}
    if not all(isinstance(d, dict) for d in (data, binary, string_data)):
        return []  # the schema's finding
    size = 0
    if obj.kind == "ConfigMap":
        out += [f"data[{k}] is also a key of binaryData; the API requires each key in one of them"
                for k in sorted(set(data) & set(binary))]
        size += sum(len(str(v).encode()) for v in data.values())
        size += sum(len(_decoded("binaryData", k, v, out)) for k, v in binary.items())
    else:
        size += sum(len(_decoded("data", k, v, out)) for k, v in data.items() if k not in string_data)
        size += sum(len(str(v).encode()) for v in string_data.values())
        kind, keys = body.get("type") or "Opaque", set(data) | set(string_data)
        missing = [k for k in SECRET_TYPE_KEYS.get(kind, ()) if k not in keys]
        if missing:
            out.append(f"type {kind} requires the keys {missing}; the Secret has {sorted(keys)}")
        if kind == "kubernetes.io/basic-auth" and not keys & {"username", "password"}:
            out.append(f"type {kind} requires a username or password key; the Secret has {sorted(keys)}")
        if kind == "kubernetes.io/service-account-token" and \
                not (obj.meta.get("annotations") or {}).get("kubernetes.io/service-account.name"):
            out.append(f"type {kind} requires the annotation kubernetes.io/service-account.name")
    if size > DATA_MAX:
        out.append(f"holds {size} bytes; the API accepts at most {DATA_MAX} (1 MiB)")
    return out


def _selectors(node: Any, path: str, out: list[str]) -> None:
    """Every matchExpressions list in the object: an operator the API knows, with the values it requires."""
    if isinstance(node, list):
        for i, item in enumerate(node):
            _selectors(item, f"{path}[{i}]", out)
        return
    if not isinstance(node, dict):
        return
    for k, v in node.items():
        here = f"{path}.{k}" if path else str(k)
        if k not in ("matchExpressions", "matchFields") or not isinstance(v, list):
            _selectors(v, here, out)
            continue
        node_affinity = ".nodeAffinity." in here or ".nodeSelectorTerms" in here
        for i, req in enumerate(x for x in v if isinstance(x, dict)):
            where, op, values = f"{here}[{i}]", req.get("operator"), req.get("values") or []
            out += enum(f"{where}.operator", op, NODE_SELECTOR_OPERATORS if node_affinity else SELECTOR_OPERATORS)
            if not is_qualified(req.get("key")):
                out.append(f"{where}.key {req.get('key')!r} is not a valid label key")
            if op in ("In", "NotIn") and not values:
                out.append(f"{where}: operator {op} with no values; the API requires at least one")
            if op in ("Exists", "DoesNotExist") and values:
                out.append(f"{where}: operator {op} with values {values}; the API requires none")
            if op in ("Gt", "Lt") and (len(values) != 1 or not str(values[0]).lstrip("-").isdigit()):
                out.append(f"{where}: operator {op} with values {values}; the API requires one integer")


def check_field_values(obj: Obj) -> list[str]:
    """Every value of `obj` the API server validates beyond its type."""
    spec = obj.body.get("spec") or {}
    if not isinstance(spec, dict):
        return []  # the schema's finding
    out: list[str] = []
    by_kind = {"Deployment": _deployment, "ReplicaSet": lambda s: _counts(s, "spec", "replicas", "minReadySeconds"),
               "DaemonSet": _daemonset, "StatefulSet": _statefulset, "CronJob": _cronjob,
               "Job": lambda s: _job(s, "spec", in_cronjob=False), "Service": lambda s: check_service(obj),
               "PersistentVolumeClaim": lambda s: claim_spec("spec", s),
               "NetworkPolicy": lambda s: check_network_policy(s)}
    if obj.kind in by_kind:
        out += by_kind[obj.kind](spec)
    if obj.kind in ("ConfigMap", "Secret"):
        out += _config_data(obj)
    if obj.pod_spec() is not None:
        out += _pod_spec(obj, template_of_controller=obj.kind in CONTROLLERS)
        out += check_pod_settings(pod_path(obj), obj.pod_spec() or {}, containers_with_paths(obj))
    _selectors(obj.body, "", out)
    return out
