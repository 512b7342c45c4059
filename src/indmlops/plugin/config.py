"""The session's options as the plugin and the suites read them: resolved once (marker > CLI > INDMLOPS_* env >
ini > default), the manifests directory, and the target they ask for."""

from __future__ import annotations

from pathlib import Path

import pytest

from indmlops.plugin.options import OPTIONS, OptionError, Resolved, resolve
from indmlops.targets.factory import TargetSpec, TargetSpecError

_RESOLVED = pytest.StashKey[dict[str, Resolved]]()


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


def manifests_dir(config: pytest.Config) -> Path:
    """The --manifests directory: as given when it exists from the working directory, else under the rootdir
    (so `pytest suites/static` finds the project's manifests from anywhere)."""
    raw = Path(option(config, "manifests"))
    if raw.is_absolute() or raw.exists():
        return raw.resolve()
    return (config.rootpath / raw).resolve()


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
            probe_image=opts["probe_image"].value or None, cni_manifest=opts["cni_manifest"].value)
    except TargetSpecError as exc:
        raise pytest.UsageError(str(exc)) from None
