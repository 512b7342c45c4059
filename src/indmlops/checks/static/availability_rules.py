"""Availability: what the API accepts but the cluster cannot run or keeps broken — an image pulled from where it
does not exist, a claim no storage class can bind, a single-writer service scaled past one."""

from __future__ import annotations

from typing import Any

from indmlops.checks.static.workload_rules import image_name, image_tag, replica_count
from indmlops.manifests import Obj


def _pull_policy(c: dict[str, Any]) -> str:
    """The policy the API defaults to when none is given: Always for :latest or no tag, else IfNotPresent."""
    policy = c.get("imagePullPolicy")
    if policy:
        return str(policy)
    _repo, tag, digest = image_tag(str(c.get("image", "")))
    return "Always" if tag in (None, "", "latest") and digest is None else "IfNotPresent"


def check_pull_policy(w: Obj, local_prefix: str) -> list[str]:
    """An image that exists only on the nodes (the project's, loaded into kind: no registry has it) is never pulled
    (IfNotPresent or Never); a registry image is not Never (nothing would load it)."""
    out = []
    for c in w.containers():
        image = str(c.get("image", ""))
        repo = image_name(image)
        policy = _pull_policy(c)
        local = repo.startswith(local_prefix)
        if local and policy == "Always":
            given = "" if c.get("imagePullPolicy") else " (the default for this tag)"
            out.append(f"container {c.get('name')}: image {image!r} exists only where it was loaded, but "
                       f"imagePullPolicy is Always{given}; expected IfNotPresent or Never")
        if not local and policy == "Never":
            out.append(f"container {c.get('name')}: image {image!r} comes from a registry, but imagePullPolicy is "
                       "Never: nothing loads it onto the nodes; expected IfNotPresent")
    return out


def check_pvc_access_modes(obj: Obj, classes: dict[str, tuple[str, ...]], default_class: str) -> list[str]:
    """A claim (or each claim template of a StatefulSet) asks only for access modes its storage class can bind
    (fixtures/static.yaml, storage_classes)."""
    if obj.kind == "PersistentVolumeClaim":
        return _access_problems("", obj.body.get("spec") or {}, classes, default_class)
    templates = (obj.body.get("spec") or {}).get("volumeClaimTemplates") or []
    return [p for t in templates if isinstance(t, dict) for p in _access_problems(
        f"volumeClaimTemplate {(t.get('metadata') or {}).get('name')}: ", t.get("spec") or {}, classes, default_class)]


def _access_problems(head: str, spec: dict[str, Any], classes: dict[str, tuple[str, ...]],
                     default_class: str) -> list[str]:
    cls = str(spec.get("storageClassName") or default_class)
    if cls not in classes:
        return [f"{head}storageClassName {cls!r} is not a class of the target cluster (known: {', '.join(classes)})"]
    wanted = [str(m) for m in spec.get("accessModes") or []]
    unsupported = [m for m in wanted if m not in classes[cls]]
    if not wanted:
        return [f"{head}has no accessModes; expected at least one"]
    return [f"{head}accessModes {unsupported} cannot be bound by storage class {cls!r} (it binds "
            f"{list(classes[cls])}): the claim stays Pending"] if unsupported else []


def check_singleton(w: Obj, stateful_images: dict[str, str]) -> list[str]:
    """A workload running a single-writer stateful image (fixtures/static.yaml, stateful_images) runs one replica:
    two brokers or databases on one claim corrupt it, and on claims of their own they split the data."""
    count = replica_count(w)  # null or absent: the API's default, 1
    if count is None:
        return [f"replicas {(w.body.get('spec') or {}).get('replicas')!r} is not a whole number"]
    if (w.body.get("spec") or {}).get("paused") is True:
        return ["spec.paused is true: the controller never rolls out its pod template; expected it unset"]
    if count == 0 and w.kind in ("Deployment", "StatefulSet", "ReplicaSet"):
        return [f"replicas 0: {w.ref} runs no pod, so the stack lacks it; expected at least 1"]
    if count <= 1:
        return []
    names = [image_name(str(c.get("image", ""))) for c in w.containers(init=False)]
    stateful = [n for n in names if n in stateful_images]
    if not stateful:
        return []
    return [f"replicas {count} of a single-writer stateful image ({', '.join(stateful)}); expected 1"]
