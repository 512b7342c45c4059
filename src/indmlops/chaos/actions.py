"""Chaostoolkit actions: kill a component through the target, wait for its recovery and prove the fault happened.

A run can pass vacuously when its kill hits nothing. Here it cannot: `kill` interrupts the experiment when the
component is unknown or not running, and `wait_ready` interrupts it unless the component answers again with a
new identity (pid, pod uid) and a higher restart count, within the bound of fixtures/slo.yaml.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict

from chaoslib.exceptions import InterruptExecution

from indmlops.chaos import context
from indmlops.errors import IndMLOpsError, NotReady
from indmlops.targets.base import KillEvidence, Target


def _inject(verb: str, component: str, configuration: dict | None,
            fault: Callable[[Target, str], KillEvidence]) -> KillEvidence:
    """Inject a fault into a running component and record it; interrupts the run when it would hit nothing."""
    t = context.target(configuration)
    try:
        before = t.identity(component)
        if before in ("", "0"):
            raise InterruptExecution(f"{verb} {component}: it is not running (identity {before!r}): the fault would "
                                     "target nothing")
        context.state.restarts_before[component] = t.restarts(component)
        evidence = fault(t, before)
    except IndMLOpsError as exc:
        raise InterruptExecution(f"{verb} {component}: {exc}") from None
    context.state.kills.setdefault(component, []).append(evidence)
    return evidence


def kill(component: str, configuration: dict | None = None) -> dict:
    return asdict(_inject("kill", component, configuration, lambda t, _before: t.kill(component)))


def wait_ready(component: str, timeout: float | None = None, configuration: dict | None = None) -> dict:
    """Wait until the killed component answers its protocol again; return the new identity and the recovery time
    counted from the kill."""
    t = context.target(configuration)
    bound = timeout if timeout is not None else context.recovery_bound(t, component)
    kills = context.state.kills.get(component)
    if not kills:
        raise InterruptExecution(f"wait_ready {component}: no kill of {component} in this run to recover from")
    kill_ev = kills[-1]
    remaining = max(0.1, bound - (time.time() - kill_ev.at))
    try:
        ready = t.wait_ready(component, remaining)
    except NotReady as exc:
        raise InterruptExecution(f"{component} did not recover within {bound:.0f} s of the kill: "
                                 f"{exc.last_state}") from None
    recovered_s = time.time() - kill_ev.at
    if ready.identity == kill_ev.identity:
        raise InterruptExecution(f"{component} still runs as {ready.identity} after the kill: the fault was not "
                                 "injected")
    restarts = t.restarts(component)
    before = context.state.restarts_before.get(component, 0)
    if restarts <= before:
        raise InterruptExecution(f"{component}: restart count {restarts} did not increase (was {before}): the "
                                 "kill was not seen by the supervisor")
    out = {"component": component, "old_identity": kill_ev.identity, "new_identity": ready.identity,
           "recovery_s": round(recovered_s, 3), "bound_s": bound, "restarts": restarts, "detail": ready.detail,
           "ready_at": time.time(), "during_outage_of": sorted(context.state.held)}
    context.state.recoveries.setdefault(component, []).append(out)
    return out


def hold(component: str, configuration: dict | None = None) -> dict:
    """Stop `component` so that its supervisor does not bring it back: an outage, not a restart. Recorded as a kill
    (the fault happened); `release` ends it. Recoveries of other components while it is held are not catch-up
    marks: the edge cannot be current while part of it is held."""
    def stop(t: Target, before: str) -> KillEvidence:
        at = time.time()
        return KillEvidence(component, before, t.hold(component), at)

    evidence = _inject("hold", component, configuration, stop)
    context.state.held[component] = evidence.at
    return asdict(evidence)


def release(component: str, configuration: dict | None = None) -> dict:
    """End the outage `hold` began: let the component run again and wait until it answers (fixtures/slo.yaml
    recovery_s, counted from the release); the recovery is recorded with the outage's length."""
    t = context.target(configuration)
    held_at = context.state.held.get(component)
    kills = context.state.kills.get(component)
    if held_at is None or not kills:
        raise InterruptExecution(f"release {component}: it was not held in this run")
    bound = context.recovery_bound(t, component)
    try:
        t.release(component)
        released = time.time()
        ready = t.wait_ready(component, bound)
    except NotReady as exc:
        raise InterruptExecution(f"{component} did not answer within {bound:.0f} s of the end of its outage: "
                                 f"{exc.last_state}") from None
    except IndMLOpsError as exc:
        raise InterruptExecution(f"release {component}: {exc}") from None
    finally:
        context.state.held.pop(component, None)
    if ready.identity == kills[-1].identity:
        raise InterruptExecution(f"{component} still runs as {ready.identity} after its outage: the hold did not "
                                 "stop it")
    out = {"component": component, "old_identity": kills[-1].identity, "new_identity": ready.identity,
           "outage_s": round(released - held_at, 3), "recovery_s": round(time.time() - released, 3), "bound_s": bound,
           "restarts": t.restarts(component), "detail": f"{kills[-1].signal}; {ready.detail}",
           "ready_at": time.time()}
    context.state.recoveries.setdefault(component, []).append(out)
    return out


def ensure_running(component: str, timeout: float = 60.0, configuration: dict | None = None) -> str:
    """Rollback: whatever happened, leave the component running and ready."""
    t = context.target(configuration)
    try:
        start = getattr(t, "start", None)
        if start is not None:
            start(component)
        return t.wait_ready(component, timeout).detail
    except IndMLOpsError as exc:
        raise InterruptExecution(f"rollback: {component} is not running: {exc}") from None
