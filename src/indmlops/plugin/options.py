"""The suite's options and their fixed resolution order: marker → CLI → INDMLOPS_* env → ini → default."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from indmlops.broker import DEFAULT_BROKER_AUTOSAVE, canonical
from indmlops.targets.kubernetes import CALICO_MANIFEST


class OptionError(ValueError):
    pass


@dataclass(frozen=True)
class Option:
    name: str
    help: str
    default: Any = None
    choices: tuple[str, ...] | None = None
    kind: str = "str"  # str | bool | path | autosave (a broker save policy)

    @property
    def cli(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        return "INDMLOPS_" + self.name.upper()

    @property
    def ini(self) -> str:
        return "indmlops_" + self.name


OPTIONS: dict[str, Option] = {o.name: o for o in (
    Option("target", "where the system under test runs", "local", ("local", "kind", "kubeconfig", "cluster")),
    Option("kubeconfig", "kubeconfig file for --target kubeconfig/kind (default: the client's default)"),
    Option("context", "kubeconfig context to use"),
    Option("manifests", "manifests the static suite judges and, when given, --target kind deploys: a kustomization "
           "directory (rendered with kubectl kustomize) or any directory of YAML (with --target cluster the default "
           "is manifests/overlays/cluster, which it deploys)", "manifests/overlays/kind", kind="path"),
    Option("intent", "isolation intent the static and live isolation checks compare the NetworkPolicies with: a "
           "file, or `none` to judge without intent (default: fixtures/isolation/intent.yaml for the project's own "
           "manifests, none for any other --manifests)", kind="path"),
    Option("profile", "quick (default, minutes) or full (nightly)", "quick", ("quick", "full")),
    Option("keep_stack", "leave a local stack this session started running at the end", False, kind="bool"),
    Option("keep_cluster", "--target kind: leave what this session created (the kind cluster, or the namespaces "
           "it deployed into a reused one) at the end", False, kind="bool"),
    Option("cni_manifest", "--target kind: CNI manifest (path or URL) applied when the nodes have none",
           CALICO_MANIFEST),
    Option("reports_dir", "where JUnit XML, the HTML report and failure evidence go", "reports", kind="path"),
    Option("state_dir", "local target state directory (default: .indmlops/ in the repo, or /var/tmp/indmlops-<hash> "
           "when the services' users cannot traverse the repo's path)", None, kind="path"),
    Option("cluster_dir", "--target cluster: the state directory of `indmlops cluster` (default: "
           "/var/lib/indmlops-cluster)", None, kind="path"),
    Option("allow_unenforced", "skip the live isolation suite, instead of failing it, when the cluster's network "
           "does not enforce NetworkPolicy (the enforcement canary)", False, kind="bool"),
    Option("broker_autosave", "the broker's save policy: Ns saves its database every N seconds (the default, 1s: "
           "the cost per reading does not grow with a backlog; the publishers' outbox re-sends what a SIGKILL "
           "loses), N after every N changes (1: nothing acknowledged lost, but every save rewrites the whole "
           "database) (docs/suites.md, \"broker durability\"); the local stack applies it, on Kubernetes use "
           "manifests/components/",
           DEFAULT_BROKER_AUTOSAVE, kind="autosave"),
    Option("probe_image", "image of the isolation probe pods on a Kubernetes target (default: "
           "indmlops-probe:<project version>, built by scripts/build-images.sh)"),
)}

_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


@dataclass(frozen=True)
class Resolved:
    name: str
    value: Any
    source: str  # "marker", "CLI", "environment", "ini", "default"


def _convert(opt: Option, raw: Any, where: str) -> Any:
    if opt.kind == "bool":
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise OptionError(f"{opt.cli} {raw!r} from {where}: expected one of true, false (or 1, 0, yes, no)")
    if opt.kind == "autosave":
        try:
            return canonical(raw)
        except ValueError:
            raise OptionError(f"{opt.cli} {raw!r} from {where}: expected N (save after N changes) or Ns (save every "
                              f"N seconds), a whole number N ≥ 1") from None
    text = str(raw)
    if opt.choices and text not in opt.choices:
        raise OptionError(f"{opt.cli} {text!r} from {where}: expected one of {', '.join(opt.choices)}")
    return text


def resolve(name: str, *, marker: Mapping[str, Any] | None = None, cli: Any = None,
            env: Mapping[str, str] | None = None, ini: Any = None) -> Resolved:
    """Resolve one option; the first source that sets it wins, and its error names that source."""
    opt = OPTIONS[name]
    env = os.environ if env is None else env
    candidates = [
        ("marker", (marker or {}).get(name)),
        ("CLI", cli),
        (f"environment {opt.env}", env.get(opt.env) or None),
        (f"ini {opt.ini}", ini if ini not in ("", None, []) else None),
    ]
    for source, raw in candidates:
        if raw is not None:
            return Resolved(name, _convert(opt, raw, source), source)
    return Resolved(name, opt.default, "default")
