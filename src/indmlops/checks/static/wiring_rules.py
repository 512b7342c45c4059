"""Wiring across objects that the schema cannot see: a StatefulSet's governing Service, and the rule files a
Prometheus config tells the server to load (mounted, and defining every rule the shared rule files define)."""

from __future__ import annotations

from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import yaml

from indmlops.checks.static.apps import decoded, mounted_files
from indmlops.checks.static.netpol import selector_matches
from indmlops.manifests import Manifests, Obj


def check_statefulset_service(sts: Obj, m: Manifests) -> list[str]:
    """spec.serviceName names a headless Service of the StatefulSet's namespace that selects its pods: the pods'
    stable names (<pod>.<service>) exist only under such a Service (the API accepts any name, and none is made)."""
    name = (sts.body.get("spec") or {}).get("serviceName")
    if not name:
        return ["has no spec.serviceName; expected the headless Service that gives its pods their stable names"]
    svc = m.get("Service", sts.namespace, str(name))
    if svc is None:
        return [f"serviceName {name!r}: no Service {sts.namespace}/{name} in the manifests; expected a headless "
                "Service (clusterIP: None) selecting its pods"]
    spec = svc.body.get("spec") or {}
    out = []
    if spec.get("clusterIP") != "None":
        found = spec.get("clusterIP", "allocated (no clusterIP field)")
        out.append(f"serviceName {name!r}: {svc.ref} ({svc.source}) has clusterIP {found}; expected None "
                   "(headless): a Service with a cluster IP gives the pods no per-pod DNS names")
    selector = spec.get("selector") or {}
    if not selector or not selector_matches({"matchLabels": selector}, sts.pod_labels()):
        out.append(f"serviceName {name!r}: {svc.ref} selector {selector or '(none)'} does not select the pods of "
                   f"{sts.ref} (labels {sts.pod_labels()})")
    return out


def rule_names(text: str) -> set[str]:
    """The alert and record names a Prometheus rule file defines (none when it does not parse as one)."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError:
        return set()
    groups = doc.get("groups") if isinstance(doc, dict) else None
    if not isinstance(groups, list):
        return set()
    return {str(r.get("alert") or r.get("record")) for g in groups if isinstance(g, dict)
            and isinstance(g.get("rules"), list) for r in g["rules"]
            if isinstance(r, dict) and (r.get("alert") or r.get("record"))}


def required_rules(pattern: str, root: Path) -> dict[str, str]:
    """Rule name -> file, of the shared rule files `pattern` (relative to `root`) names: what must be loaded."""
    return {name: str(p.relative_to(root)) for p in sorted(root.glob(pattern)) for name in rule_names(p.read_text())}


def check_prometheus_rules(cm: Obj, key: str, doc: dict[str, Any], m: Manifests,
                           required: dict[str, str]) -> list[str]:
    """Every rule_files pattern of the config matches a file mounted into the Prometheus containers that read the
    config, and the files it matches define every required rule (the shared rule files' alerts and records)."""
    raw = doc.get("rule_files") or []
    if not isinstance(raw, list):
        return [f"{key}: rule_files is {type(raw).__name__} {raw!r}; expected a list of file patterns"]
    patterns = [str(p) for p in raw]
    servers = [(w, c) for w in m.workloads() if w.namespace == cm.namespace for c in w.containers(init=False)
               if any(ref is cm for ref, _ in mounted_files(w, c, m).values())]
    if not servers:
        return [] if not patterns and not required else [
            f"{key}: no container in namespace {cm.namespace} mounts ConfigMap {cm.name}, so no rule file is loaded"]
    out = []
    for w, c in servers:
        files = mounted_files(w, c, m)
        loaded: dict[str, str] = {}
        for pattern in patterns:
            matched = sorted(p for p in files if fnmatchcase(p, pattern))
            if not matched:
                out.append(f"{w.ref} container {c.get('name')}: rule_files {pattern!r} of {key} matches no mounted "
                           f"file (ConfigMap files mounted: {sorted(files) or 'none'})")
            for path in matched:
                rcm, rkey = files[path]
                loaded.update(dict.fromkeys(rule_names(decoded(rcm, rkey) or ""), path))
        missing = sorted(set(required) - set(loaded))
        if missing:
            shown = ", ".join(f"{n} (from {required[n]})" for n in missing[:8])
            out.append(f"{w.ref} container {c.get('name')}: {len(missing)} of {len(required)} shared rules not "
                       f"loaded: {shown}{' …' if len(missing) > 8 else ''}; loaded: {len(loaded)} from "
                       f"{sorted(set(loaded.values())) or 'no file'}")
    return out
