"""The session's options as the plugin and the suites read them: resolved once (marker > CLI > INDMLOPS_* env >
ini > default), the manifests directory, the isolation intent, and the target they ask for."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from indmlops.paths import REPO_ROOT
from indmlops.plugin.options import OPTIONS, OptionError, Resolved, resolve
from indmlops.targets.factory import TargetSpec, TargetSpecError

if TYPE_CHECKING:  # imported when first used: indmlops.checks is imported after its assert rewriting is registered
    from indmlops.checks.static.isolation import Intent, IntentError

_RESOLVED = pytest.StashKey[dict[str, Resolved]]()
_INTENT = pytest.StashKey[tuple["Intent | None", "IntentError | None"]]()
PROJECT_MANIFESTS = REPO_ROOT / "manifests"
PROJECT_INTENT = REPO_ROOT / "fixtures" / "isolation" / "intent.yaml"
OWN_INTENT = "isolation-intent.yaml"  # next to a kustomization: that deployment's intent, used unless --intent


def resolved_options(config: pytest.Config) -> dict[str, Resolved]:
    if _RESOLVED not in config.stash:
        out = {}
        for name in OPTIONS:
            try:
                out[name] = resolve(name, cli=config.getoption(f"indmlops_{name}"),
                                    ini=config.getini(OPTIONS[name].ini))
            except OptionError as exc:
                raise pytest.UsageError(str(exc)) from None
        config.stash[_RESOLVED] = out
    return config.stash[_RESOLVED]


def option(config: pytest.Config, name: str, node: pytest.Item | None = None):
    """An option's value for `node`: a `@pytest.mark.indmlops(name=value)` marker beats the session value."""
    if node is not None:
        marker = node.get_closest_marker("indmlops")
        if marker and name in marker.kwargs:
            try:
                return resolve(name, marker=marker.kwargs).value
            except OptionError as exc:
                raise pytest.UsageError(f"{node.nodeid}: {exc}") from None
    return resolved_options(config)[name].value


CLUSTER_OVERLAY = REPO_ROOT / "manifests" / "overlays" / "cluster"


def manifests_dir(config: pytest.Config) -> Path:
    """The --manifests directory: as given when it exists from the working directory, else under the rootdir
    (so `pytest suites/static` finds the project's manifests from anywhere). Not given, with --target cluster: the
    air-gapped overlay that target deploys (what is judged is what runs)."""
    given = resolved_options(config)["manifests"]
    if given.source == "default" and option(config, "target") == "cluster":
        return CLUSTER_OVERLAY
    raw = Path(option(config, "manifests"))
    if raw.is_absolute() or raw.exists():
        return raw.resolve()
    return (config.rootpath / raw).resolve()


def intent_applies(path: Path) -> bool:
    """The project's isolation intent describes the project's own manifests; foreign ones are judged without it."""
    return path == PROJECT_MANIFESTS or PROJECT_MANIFESTS in path.parents


def intent_file(config: pytest.Config) -> tuple[Path | None, str]:
    """The isolation intent file (None: judge without intent) and where that choice came from. An explicit
    --intent wins (`none` for no intent); by default the project's intent for the project's own manifests."""
    given = resolved_options(config)["intent"]
    if given.source == "default":
        own = manifests_dir(config) / OWN_INTENT
        if own.is_file():  # a deployment that carries its own intent (manifests/overlays/cluster does)
            return own, f"default: {OWN_INTENT} of the manifests"
        if intent_applies(manifests_dir(config)):
            return PROJECT_INTENT, "default: the project's manifests"
        return None, "default: manifests outside the project"
    raw = str(given.value).strip()
    where = f"--intent {given.value!r} from {given.source}"
    if raw.lower() == "none":
        return None, where
    path = Path(raw).expanduser()
    if not path.is_absolute() and not path.exists() and (config.rootpath / path).exists():
        return (config.rootpath / path).resolve(), where  # like --manifests: from anywhere under the rootdir
    return path.resolve(), where


def isolation_intent(config: pytest.Config) -> Intent | None:
    """The session's isolation intent, read once. A missing or malformed file raises IntentError naming the file
    and where the option came from."""
    from indmlops.checks.static.isolation import IntentError, load_intent

    if _INTENT not in config.stash:
        path, where = intent_file(config)
        try:
            config.stash[_INTENT] = (load_intent(path) if path else None, None)
        except IntentError as exc:
            config.stash[_INTENT] = (None, IntentError(f"{where}: {exc}"))
    intent, error = config.stash[_INTENT]
    if error is not None:
        raise error
    return intent


def target_spec(config: pytest.Config) -> TargetSpec:
    """The target the options ask for, as the factory opens it."""
    opts = resolved_options(config)
    autosave = opts["broker_autosave"]
    name = opts["target"].value
    state_dir = opts["state_dir"].value
    try:
        return TargetSpec(
            name=name, state_dir=Path(state_dir) if state_dir else None,
            broker_autosave=None if autosave.source == "default" else autosave.value,
            keep_stack=bool(opts["keep_stack"].value), keep_cluster=bool(opts["keep_cluster"].value),
            kubeconfig=opts["kubeconfig"].value, context=opts["context"].value,
            probe_image=opts["probe_image"].value or None, cni_manifest=opts["cni_manifest"].value,
            # A --manifests the user gave is what --target kind deploys: their deployment, not ours. --target
            # cluster deploys its air-gapped overlay unless given one.
            overlay=manifests_dir(config) if opts["manifests"].source != "default" or name == "cluster" else None,
            cluster_dir=Path(opts["cluster_dir"].value) if opts["cluster_dir"].value else None)
    except TargetSpecError as exc:
        raise pytest.UsageError(str(exc)) from None
