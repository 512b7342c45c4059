"""The one way to open a target: what a spec accepts, what opening and closing do, and the errors a user gets."""

from __future__ import annotations

from pathlib import Path

import pytest

from indmlops.errors import IndMLOpsError
from indmlops.targets import factory
from indmlops.targets.base import Target
from indmlops.targets.factory import TargetSpec, TargetSpecError, open_target, preview


def test_an_unknown_target_is_a_spec_error_naming_the_kinds():
    with pytest.raises(TargetSpecError, match=r"target 'kid': expected one of local, kind, kubeconfig, cluster") as err:
        TargetSpec("kid")
    assert err.value.reason == "expected one of local, kind, kubeconfig, cluster"


def test_kind_refuses_another_context_and_defaults_to_its_own():
    with pytest.raises(TargetSpecError, match=r"--context 'prod' with --target kind: kind's cluster has context "
                                              r"'kind-indmlops'; use --target kubeconfig"):
        TargetSpec("kind", context="prod")
    assert TargetSpec("kind").kube_context == "kind-indmlops"
    assert TargetSpec("kubeconfig").kube_context is None
    assert TargetSpec("kubeconfig", context="prod").kube_context == "prod"


def test_a_local_stack_not_running_is_opened_as_it_is_without_start(tmp_path: Path):
    spec = TargetSpec("local", state_dir=tmp_path / "state", ports={}, start=False)
    with open_target(spec) as target:
        assert isinstance(target, Target)
        assert target.describe().startswith(f"local stack not running yet in {tmp_path / 'state'}")
        assert target.process_roots() == []  # no supervisord: nothing of the stack's on this host to attribute
        assert target.broker_data_dir() is None
    assert not (tmp_path / "state" / "supervisord.pid").exists()  # nothing was started


def test_preview_of_a_local_stack_not_running_says_so_and_starts_nothing(tmp_path: Path, monkeypatch):
    monkeypatch.delenv("INDMLOPS_SLOW_FSYNC_MS", raising=False)  # a CI run under the shim says so: tested below
    lines = preview(TargetSpec("local", state_dir=tmp_path / "s", ports={}))
    assert lines == [f"indmlops endpoints: local stack not running yet in {tmp_path / 's'} (the `target` fixture "
                     "starts it when a test needs it)"]


def test_preview_of_a_stack_to_start_under_the_slow_fsync_shim_says_so(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("INDMLOPS_SLOW_FSYNC_MS", "3")
    [line] = preview(TargetSpec("local", state_dir=tmp_path / "s", ports={}))
    assert line.endswith("it will start under the slow-fsync shim: 3 ms per fsync (INDMLOPS_SLOW_FSYNC_MS)")


def test_a_kubeconfig_without_the_context_fails_to_open_with_what_to_do(tmp_path: Path):
    spec = TargetSpec("kubeconfig", kubeconfig=str(tmp_path / "none"), context="kind-indmlops")
    with pytest.raises(IndMLOpsError, match=r"no cluster at context 'kind-indmlops'"), open_target(spec):
        pass


def test_every_kind_has_an_opener_and_a_preview():
    assert set(factory._OPENERS) == set(factory._PREVIEWS) == set(factory.KINDS)


def test_local_stack_started_here_is_stopped_at_close_unless_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The lifecycle without real services: a stack whose up/down are recorded."""
    calls: list[str] = []

    class FakeStack:
        def __init__(self, state_dir, ports, broker_autosave=None):
            self.layout = type("L", (), {"state_dir": state_dir})()
            self.up_ = False

        def running(self) -> bool:
            return self.up_

        def up(self, progress) -> None:
            calls.append("up")
            self.up_ = True

        def down(self) -> None:
            calls.append("down")

    monkeypatch.setattr(factory, "_local_stack", lambda spec, wanted=None: FakeStack(spec.state_dir, {}))
    with open_target(TargetSpec("local", state_dir=tmp_path)):
        assert calls == ["up"]
    assert calls == ["up", "down"]
    calls.clear()
    with open_target(TargetSpec("local", state_dir=tmp_path, keep_stack=True)):
        pass
    assert calls == ["up"]
