"""Chaostoolkit control: a failed fault or recovery activity interrupts the experiment.

Chaostoolkit records a failed method activity and carries on, so a run whose kill hit nothing, or whose component
never came back, could still end "completed". Every experiment in fixtures/chaos declares this control: when one
of our method activities (indmlops.chaos.actions or .traffic) fails, the run is interrupted with its reason, and
`chaos run` exits 1.
"""

from __future__ import annotations

from chaoslib.exceptions import InterruptExecution

STRICT_MODULES = ("indmlops.chaos.actions", "indmlops.chaos.traffic")


def after_activity_control(context: dict, state: dict, **_kwargs) -> None:
    module = (context.get("provider") or {}).get("module", "")
    if module in STRICT_MODULES and state and state.get("status") == "failed":
        exc = state.get("exception") or ["unknown error"]
        reason = ("".join(exc) if isinstance(exc, list) else str(exc)).strip().splitlines()[-1]
        raise InterruptExecution(f"{context.get('name')}: {reason}")
