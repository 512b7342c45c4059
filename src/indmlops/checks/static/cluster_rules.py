"""Rules against the target cluster as data (fixtures/static.yaml): whether a pod fits any of its nodes (class 5),
and whether RBAC grants a workload more API access than it needs (class 4)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from indmlops.manifests import Manifests, Obj

BROAD_ROLES = ("cluster-admin", "admin", "edit")
EVERYONE = ("system:authenticated", "system:unauthenticated", "system:serviceaccounts")


def _label_fits(labels: dict[str, Any], key: str, op: str, values: list[str]) -> bool:
    """A node label requirement; a label listed with several values (the arch of the user's machine) may have any
    of them, so a requirement on it fits when one of them does."""
    if key not in labels:
        return op in ("NotIn", "DoesNotExist")
    have = labels[key] if isinstance(labels[key], list) else [labels[key]]
    have = [str(v) for v in have]
    return {"In": any(v in values for v in have), "NotIn": any(v not in values for v in have), "Exists": True,
            "DoesNotExist": False, "Gt": any(v.isdigit() and values and int(v) > int(values[0]) for v in have),
            "Lt": any(v.isdigit() and values and int(v) < int(values[0]) for v in have)}.get(op, False)


def _misfit(pod: dict[str, Any], node: dict[str, Any]) -> str | None:
    """Why the pod cannot run on the node, or None when it can."""
    labels = node.get("labels") or {}
    for key, value in (pod.get("nodeSelector") or {}).items():
        if not _label_fits(labels, str(key), "In", [str(value)]):
            return f"nodeSelector {key}={value} (the node's {key}: {labels.get(key, 'absent')})"
    required = (((pod.get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution") or {})
    terms = [t for t in required.get("nodeSelectorTerms") or [] if isinstance(t, dict)]
    if terms and not any(all(_label_fits(labels, str(e.get("key")), str(e.get("operator")),
                                         [str(v) for v in e.get("values") or []])
                             for e in t.get("matchExpressions") or [] if isinstance(e, dict)) for t in terms):
        return "no required nodeAffinity term matches its labels"
    tolerations = [t for t in pod.get("tolerations") or [] if isinstance(t, dict)]
    for taint in node.get("taints") or []:
        if taint.get("effect") not in ("NoSchedule", "NoExecute"):
            continue
        if not any((t.get("operator") == "Exists" and t.get("key") in (None, taint.get("key")))
                   or (t.get("key") == taint.get("key") and str(t.get("value", "")) == str(taint.get("value", "")))
                   for t in tolerations if t.get("effect") in (None, "", taint.get("effect"))):
            return f"taint {taint.get('key')}:{taint.get('effect')} not tolerated"
    return None


def check_scheduling(w: Obj, nodes: Sequence[dict[str, Any]]) -> list[str]:
    """The pod fits at least one node of the target cluster (fixtures/static.yaml, nodes): else it stays Pending."""
    pod = w.pod_spec() or {}
    if pod.get("nodeName"):
        names = [str(n.get("name")) for n in nodes]
        return [] if pod["nodeName"] in names else [
            f"nodeName {pod['nodeName']!r} is not a node of the target cluster ({', '.join(names)}): it never runs"]
    why = {str(n.get("name")): _misfit(pod, n) for n in nodes}
    if not nodes or any(reason is None for reason in why.values()):
        return []
    return ["fits no node of the target cluster, so its pods stay Pending: " +
            "; ".join(f"{name}: {reason}" for name, reason in why.items())]


def _accounts_in_use(m: Manifests) -> dict[tuple[str, str], list[Obj]]:
    out: dict[tuple[str, str], list[Obj]] = {}
    for w in m.workloads():
        spec = w.pod_spec() or {}
        account = str(spec.get("serviceAccountName") or spec.get("serviceAccount") or "default")
        out.setdefault((str(w.namespace), account), []).append(w)
    return out


def check_rbac(binding: Obj, m: Manifests, api_access: tuple[str, ...]) -> list[str]:
    """A (Cluster)RoleBinding grants API access only to workloads that need it (fixtures/static.yaml, api_access),
    never to everyone, and never a broad role (cluster-admin, admin, edit, or `*` verbs or resources)."""
    out = []
    ref = binding.body.get("roleRef") or {}
    role_name, role_kind = str(ref.get("name")), str(ref.get("kind"))
    role = m.get(role_kind, binding.namespace if role_kind == "Role" else None, role_name)
    wild = [r for r in (role.body.get("rules") or [] if role else []) if isinstance(r, dict)
            and ("*" in (r.get("verbs") or []) or "*" in (r.get("resources") or []))]
    if role_name in BROAD_ROLES or wild:
        why = "a built-in role" if role_name in BROAD_ROLES else "a rule with * verbs or resources"
        out.append(f"roleRef {role_kind}/{role_name} is broad ({why}); expected a role listing the verbs and resources "
                   "needed")
    in_use = _accounts_in_use(m)
    for s in binding.body.get("subjects") or []:
        if not isinstance(s, dict):
            continue
        if s.get("kind") == "Group" and s.get("name") in EVERYONE:
            out.append(f"subject Group {s.get('name')} grants the role to every account")
        if s.get("kind") == "ServiceAccount":
            ns = str(s.get("namespace") or binding.namespace)
            users = [w.ref for w in in_use.get((ns, str(s.get("name"))), []) if w.ref not in api_access]
            if users:
                out.append(f"subject ServiceAccount {ns}/{s.get('name')} is the account of {', '.join(users)}, which "
                           "need no API access (fixtures/static.yaml, api_access, lists those that do)")
    return out
