"""Which target the activities act on, and what one experiment run remembers between its activities.

From pytest, the suite hands over its `target` fixture (`use_target`). From `chaos run`, the experiment's
configuration names it: `indmlops_target` (local, kind or kubeconfig), `indmlops_state_dir` (the local stack's
state directory; default as for `indmlops`), `indmlops_kubeconfig` and `indmlops_context` (Kubernetes; kind's
context defaults to kind-indmlops).
"""

from __future__ import annotations

import atexit
import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from chaoslib.exceptions import InterruptExecution

from indmlops.catchup import CatchUp
from indmlops.errors import IndMLOpsError
from indmlops.targets.base import KillEvidence, Target
from indmlops.targets.factory import TargetSpec, TargetSpecError, open_target


@dataclass
class RunState:
    kills: dict[str, list[KillEvidence]] = field(default_factory=dict)
    restarts_before: dict[str, int] = field(default_factory=dict)
    recoveries: dict[str, list[dict]] = field(default_factory=dict)
    catch_ups: list[CatchUp] = field(default_factory=list)  # per recovery, from the traffic that saw it
    held: dict[str, float] = field(default_factory=dict)  # component → when `hold` stopped it (until `release`)
    # The steady state's own content, made on first check.
    known: dict[str, dict[str, str]] = field(default_factory=dict)


_target: Target | None = None
_held = contextlib.ExitStack()  # a target this process opened from the configuration, closed at exit
atexit.register(_held.close)
state = RunState()


def use_target(target: Target | None) -> None:
    """Act on `target` (None: resolve from the experiment's configuration again); forget the previous run."""
    global _target, state
    _target = target
    state = RunState()


def target(configuration: dict | None) -> Target:
    """The target the experiment acts on: the suite's, or the one its configuration names, opened once per process
    by the factory (`chaos run` starts no local stack: it acts on the one running) and closed at exit."""
    global _target
    if _target is not None:
        return _target
    cfg = configuration or {}
    state_dir = cfg.get("indmlops_state_dir") or None
    name = cfg.get("indmlops_target") or "local"
    try:
        spec = TargetSpec(name=name, start=False, state_dir=Path(state_dir) if state_dir else None,
                          kubeconfig=cfg.get("indmlops_kubeconfig") or None,
                          context=cfg.get("indmlops_context") or None)
    except TargetSpecError as exc:
        raise InterruptExecution(f"indmlops_target {name!r}: {exc.reason}") from None
    try:
        _target = _held.enter_context(open_target(spec))
    except IndMLOpsError as exc:
        raise InterruptExecution(f"indmlops_target {name!r}: {exc}") from None
    return _target


def recovery_bound(t: Target, component: str) -> float:
    """Seconds a killed component may take to answer again on `t`: fixtures/slo.yaml, recovery_s."""
    from indmlops import slo

    try:
        return slo.recovery_bound(slo.recovery_kind(t.name), component)
    except KeyError as exc:
        raise InterruptExecution(str(exc.args[0])) from None


def loss_bound(component: str) -> int:
    """Acknowledged QoS1 readings a kill of `component` may lose end to end: fixtures/slo.yaml,
    chaos.max_lost_acknowledged (0 for every component: what the broker loses, the publishers' outbox re-sends)."""
    from indmlops import intent

    bounds = intent.load("slo")["chaos"]["max_lost_acknowledged"]
    if component not in bounds:
        raise InterruptExecution(f"fixtures/slo.yaml: chaos.max_lost_acknowledged has no bound for {component!r}")
    return int(bounds[component])


def resend_bound(component: str, rate: float, broker_autosave: str | None = None) -> int:
    """Readings the outbox may have had to re-send (shown missing) after a kill of `component` at `rate`: none for
    anything but the broker (its queue survives every other kill); for the broker, what its save policy leaves
    unsaved (indmlops.broker.max_resent), the policy read from the deployed broker where the target can."""
    from indmlops import broker

    if component != "mosquitto":
        return 0
    if broker_autosave is None:
        deployed = _target.broker_autosave() if _target is not None else None
        broker_autosave = deployed if deployed is not None else (
            os.environ.get("INDMLOPS_BROKER_AUTOSAVE") or broker.DEFAULT_BROKER_AUTOSAVE)
    try:
        return broker.max_resent(broker_autosave, rate)
    except ValueError as exc:
        raise InterruptExecution(str(exc)) from None


def catch_up_plan() -> dict:
    """fixtures/slo.yaml chaos.catch_up: when a prediction is current, and how many in a row make the edge current."""
    from indmlops import intent

    plan = intent.load("slo")["chaos"]["catch_up"]
    return {"current_s": float(plan["current_ms"]) / 1000.0, "in_a_row": int(plan["in_a_row"])}


def catch_up_bound(key: str) -> float:
    """Seconds from ready until current again after a fault of `key`: fixtures/slo.yaml chaos.catch_up.max_s."""
    from indmlops import intent

    bounds = intent.load("slo")["chaos"]["catch_up"]["max_s"]
    if key not in bounds:
        raise InterruptExecution(f"fixtures/slo.yaml: chaos.catch_up.max_s has no bound for {key!r} "
                                 f"(have: {', '.join(bounds)})")
    return float(bounds[key])
