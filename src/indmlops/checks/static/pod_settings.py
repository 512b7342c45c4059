"""Pod-level settings the API server validates and the JSON schema does not: scheduling (tolerations, spread
constraints, nodeSelector), DNS and host aliases, user and group ids, hostPort clashes, the OS name."""

from __future__ import annotations

import re
from typing import Any

from indmlops.checks.static.api_names import is_qualified, is_subdomain
from indmlops.checks.static.pod_values import at_least, enum, is_ip, num

TOLERATION_OPERATORS = ("Exists", "Equal")
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
MAX_ID = 2**31 - 1  # user and group ids: 0 to int32 max
_LABEL_VALUE = re.compile(r"^(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")


def _scheduling(base: str, spec: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for i, t in enumerate(spec.get("tolerations") or []):
        if not isinstance(t, dict):
            continue
        where = f"{base}.tolerations[{i}]"
        out += enum(f"{where}.operator", t.get("operator"), TOLERATION_OPERATORS)
        out += enum(f"{where}.effect", t.get("effect"), TAINT_EFFECTS)
        if t.get("operator") == "Exists" and t.get("value"):
            out.append(f"{where}.value {t['value']!r} is set with operator Exists; the API requires it empty")
        if not t.get("key") and t.get("operator") != "Exists":
            out.append(f"{where} has no key, so the API requires operator Exists (found {t.get('operator')!r})")
        if t.get("tolerationSeconds") is not None and t.get("effect") != "NoExecute":
            out.append(f"{where}.tolerationSeconds is set with effect {t.get('effect')!r}; the API accepts it only "
                       "with NoExecute")
    for i, c in enumerate(spec.get("topologySpreadConstraints") or []):
        if not isinstance(c, dict):
            continue
        where = f"{base}.topologySpreadConstraints[{i}]"
        out += at_least(f"{where}.maxSkew", c.get("maxSkew"), 1)
        out += at_least(f"{where}.minDomains", c.get("minDomains"), 1)
        out += enum(f"{where}.whenUnsatisfiable", c.get("whenUnsatisfiable"), ("DoNotSchedule", "ScheduleAnyway"))
        for key in ("nodeAffinityPolicy", "nodeTaintsPolicy"):
            out += enum(f"{where}.{key}", c.get(key), ("Honor", "Ignore"))
        if not c.get("topologyKey"):
            out.append(f"{where}.topologyKey is empty; the API requires a node label key")
    return out


def _ids(path: str, ctx: Any) -> list[str]:
    out = []
    for key in ("runAsUser", "runAsGroup", "fsGroup"):
        n = num((ctx or {}).get(key)) if isinstance(ctx, dict) else None
        if n is not None and not 0 <= n <= MAX_ID:
            out.append(f"{path}.{key} is {n}; the API accepts 0 to {MAX_ID}")
    return out


def check_pod_settings(base: str, spec: dict[str, Any], containers: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """Pod-level values of the pod spec at `base` with its `containers` (field path, container)."""
    out = _scheduling(base, spec) + _ids(f"{base}.securityContext", spec.get("securityContext"))
    selector = spec.get("nodeSelector")
    for k, v in selector.items() if isinstance(selector, dict) else ():
        if not is_qualified(k):
            out.append(f"{base}.nodeSelector key {k!r} is not a valid label key")
        if isinstance(v, str) and not (len(v) <= 63 and _LABEL_VALUE.match(v)):
            out.append(f"{base}.nodeSelector[{k}] {v!r} is not a valid label value (≤ 63 of A-Z a-z 0-9 - _ . "
                       "beginning and ending alphanumeric)")
    dns = spec.get("dnsConfig") or {}
    out += [f"{base}.dnsConfig.nameservers {ip!r} is not an IP address" for ip in dns.get("nameservers") or []
            if not is_ip(ip)]
    if len(dns.get("searches") or []) > 32:
        out.append(f"{base}.dnsConfig.searches has {len(dns['searches'])} domains; the API accepts at most 32")
    for i, alias in enumerate(spec.get("hostAliases") or []):
        if isinstance(alias, dict) and not is_ip(alias.get("ip")):
            out.append(f"{base}.hostAliases[{i}].ip {alias.get('ip')!r} is not an IP address")
        out += [f"{base}.hostAliases[{i}].hostnames {h!r} is not a DNS-1123 subdomain"
                for h in (alias or {}).get("hostnames") or [] if not is_subdomain(h)]
    out += enum(f"{base}.os.name", (spec.get("os") or {}).get("name"), ("linux", "windows"))
    if spec.get("runtimeClassName") and not is_subdomain(spec["runtimeClassName"]):
        out.append(f"{base}.runtimeClassName {spec['runtimeClassName']!r} is not a DNS-1123 subdomain")
    seen: dict[tuple[Any, Any, Any], str] = {}
    for path, c in containers:
        out += _ids(f"{path}.securityContext", c.get("securityContext"))
        if ".initContainers[" in path:
            continue  # init containers run one by one: their host ports clash with nobody
        for i, p in enumerate(c.get("ports") or []):
            host = num(p.get("hostPort")) if isinstance(p, dict) else None
            if not host:
                continue
            key = (p.get("protocol") or "TCP", p.get("hostIP") or "", host)
            if key in seen:
                out.append(f"{path}.ports[{i}].hostPort {host}/{key[0]} is also used by {seen[key]}; the API requires "
                           "unique host ports in a pod")
            seen[key] = f"{path}.ports[{i}]"
    return out
