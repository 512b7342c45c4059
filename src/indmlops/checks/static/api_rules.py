"""API invariants the JSON schema cannot express, mirroring what the API server's validation rejects (or, for a
few, silently mishandles) for the kinds in use: selectors against template labels, requests within limits, the
restart policy a controller accepts, names that must resolve or be unique inside a pod spec, objects defined twice.
They let `--manifests DIR` find these without a cluster."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from typing import Any

from indmlops.checks.static.netpol import selector_matches
from indmlops.checks.static.workload_rules import pod_volumes
from indmlops.manifests import Manifests, Obj

# What each controller's pod template may say (apps/v1 and batch/v1 validation).
RESTART_POLICIES = {"Deployment": ("Always",), "StatefulSet": ("Always",), "DaemonSet": ("Always",),
                    "ReplicaSet": ("Always",), "Job": ("OnFailure", "Never"), "CronJob": ("OnFailure", "Never")}
SELECTED_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet")


def check_selector(w: Obj) -> list[str]:
    """spec.selector exists and matches the pod template's labels (else the API rejects the object)."""
    if w.kind not in SELECTED_KINDS:
        return []
    selector = (w.body.get("spec") or {}).get("selector")
    if not isinstance(selector, dict) or not (selector.get("matchLabels") or selector.get("matchExpressions")):
        return [f"spec.selector is {selector!r}; expected matchLabels or matchExpressions (required for {w.kind})"]
    try:
        matches = selector_matches(selector, w.pod_labels())
    except (TypeError, ValueError, AttributeError) as exc:
        return [f"spec.selector {selector!r} cannot be evaluated: {exc}"]
    if not matches:
        return [f"spec.selector {selector} does not match the pod template's labels {w.pod_labels()}: the API "
                "rejects it (`selector` does not match template `labels`)"]
    return []


def _quantity(value: Any) -> Decimal | None:
    from kubernetes.utils import parse_quantity

    try:
        return Decimal(parse_quantity(value))
    except (ValueError, TypeError, ArithmeticError):
        return None


def check_requests_within_limits(w: Obj) -> list[str]:
    """Every request is a valid quantity no larger than its limit (the API rejects a request above the limit)."""
    out = []
    for c in w.containers():
        res = c.get("resources") or {}
        requests, limits = res.get("requests") or {}, res.get("limits") or {}
        for kind, values in (("requests", requests), ("limits", limits)):
            for r, v in values.items() if isinstance(values, dict) else ():
                q = _quantity(v)
                if q is None:
                    out.append(f"container {c.get('name')}: {kind}.{r} {v!r} is not a quantity")
                elif q < 0:
                    out.append(f"container {c.get('name')}: {kind}.{r} {v!r} is negative; expected 0 or more")
                # An unprefixed resource must be a standard one (a typo like `memroy` is rejected); others are
                # extended resources with a domain prefix (nvidia.com/gpu).
                if "/" not in str(r) and r not in ("cpu", "memory", "ephemeral-storage") \
                        and not str(r).startswith("hugepages-"):
                    out.append(f"container {c.get('name')}: {kind}.{r} is not a resource the API knows; expected cpu, "
                               "memory, ephemeral-storage, hugepages-<size> or a prefixed name like nvidia.com/gpu")
        for r, limit in limits.items() if isinstance(limits, dict) else ():
            req, lim = _quantity(requests.get(r)) if isinstance(requests, dict) else None, _quantity(limit)
            if req is not None and lim is not None and req > lim:
                out.append(f"container {c.get('name')}: requests.{r} {requests[r]!r} is more than limits.{r} "
                           f"{limit!r}; expected requests ≤ limits")
    return out


def check_restart_policy(w: Obj) -> list[str]:
    """The pod template's restartPolicy is one its controller accepts (unset, the API defaults it to Always)."""
    allowed = RESTART_POLICIES.get(w.kind)
    if not allowed:
        return []
    policy = (w.pod_spec() or {}).get("restartPolicy")
    if policy is None:
        return [] if "Always" in allowed else [
            f"restartPolicy is not set, so the API defaults it to Always; {w.kind} accepts only {', '.join(allowed)}"]
    return [] if policy in allowed else [f"restartPolicy {policy!r}; {w.kind} accepts only {', '.join(allowed)}"]


def _dupes(names: list[str]) -> list[str]:
    return sorted(n for n, k in Counter(names).items() if k > 1)


def check_pod_names(w: Obj) -> list[str]:
    """Inside the pod spec: container, volume and (per container) port names are unique, port names are valid
    IANA service names, every volumeMount and volumeDevice names a volume, and no path is mounted twice."""
    spec = w.pod_spec() or {}
    out = []
    containers = [c for c in w.containers() if isinstance(c, dict)]
    volumes = pod_volumes(w)
    if d := _dupes([str(c.get("name")) for c in containers]):
        out.append(f"container names {d} used twice; expected unique names")
    if d := _dupes([str(v.get("name")) for v in spec.get("volumes") or [] if isinstance(v, dict)]):
        out.append(f"volume names {d} used twice; expected unique names")
    for c in containers:
        where = f"container {c.get('name')}"
        ports = [p for p in c.get("ports") or [] if isinstance(p, dict)]
        named = [str(p["name"]) for p in ports if p.get("name")]
        if d := _dupes(named):
            out.append(f"{where}: port names {d} used twice")
        for n in named:
            if len(n) > 15 or not n.replace("-", "").isalnum() or n != n.lower() or n.startswith("-") \
                    or n.endswith("-") or "--" in n or n.isdigit():
                out.append(f"{where}: port name {n!r} is not a valid name (≤ 15 lowercase letters, digits and "
                           "single inner dashes, at least one letter)")
        mounts = [m for m in c.get("volumeMounts") or [] if isinstance(m, dict)]
        for m in mounts + [d for d in c.get("volumeDevices") or [] if isinstance(d, dict)]:
            if str(m.get("name")) not in volumes:
                out.append(f"{where}: mounts volume {m.get('name')!r}, which the pod does not define (volumes: "
                           f"{sorted(volumes) or 'none'})")
        if d := _dupes([str(m.get("mountPath")) for m in mounts]):
            out.append(f"{where}: mountPath {d} mounted twice")
    return out


def check_unique_objects(m: Manifests) -> list[str]:
    """No object (kind, namespace, name) is defined twice: the second silently replaces the first on apply."""
    seen: dict[tuple[str, str | None, str], list[str]] = {}
    for o in m.objects:
        seen.setdefault((o.kind, o.namespace, o.name), []).append(o.source)
    return [f"{kind}/{ns + '/' if ns else ''}{name} is defined {len(src)} times ({', '.join(src)}); expected once"
            for (kind, ns, name), src in sorted(seen.items(), key=str) if len(src) > 1]
