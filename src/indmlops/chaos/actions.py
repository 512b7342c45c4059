"""Chaostoolkit actions: kill a component through the target, wait for its recovery and prove the fault happened.

A run can pass vacuously when its kill hits nothing. Here it cannot: `kill` interrupts the experiment when the
component is unknown or not running, and `wait_ready` interrupts it unless the component answers again with a
new identity (pid, pod uid) and a higher restart count, within the bound of fixtures/slo.yaml.
"""

from __future__ import annotations

import time
from dataclasses import asdict

from chaoslib.exceptions import InterruptExecution

from indmlops.chaos import context
from indmlops.errors import IndMLOpsError, NotReady


def kill(component: str, configuration: dict | None = None) -> dict:
    t = context.target(configuration)
    try:
        before = t.identity(component)
        if before in ("", "0"):
            raise InterruptExecution(f"kill {component}: it is not running (identity {before!r}): the fault would "
                                     "target nothing")
        context.state.restarts_before[component] = t.restarts(component)
        evidence = t.kill(component)
    except IndMLOpsError as exc:
        raise InterruptExecution(f"kill {component}: {exc}") from None
    context.state.kills.setdefault(component, []).append(evidence)
    return asdict(evidence)


def wait_ready(component: str, timeout: float | None = None, configuration: dict | None = None) -> dict:
    """Wait until the killed component answers its protocol again; return the new identity and the recovery time
    counted from the kill."""
    t = context.target(configuration)
    bound = timeout if timeout is not None else context.recovery_bound(component)
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
           "recovery_s": round(recovered_s, 3), "bound_s": bound, "restarts": restarts, "detail": ready.detail}
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
