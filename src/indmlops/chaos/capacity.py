"""The durable-capacity ramp: the chaos traffic's publisher (QoS1, outbox, per-reading ledger) offered at rising
rates through the target's broker and edge, each step judged by `indmlops.capacity`."""

from __future__ import annotations

import time
from collections.abc import Callable

from indmlops.capacity import Capacity, Limits, Step
from indmlops.chaos.traffic import Traffic
from indmlops.targets.base import Target


def ramp(target: Target, limits: Limits, *, needed: float, needed_by: str, machines: int = 20,
         max_inflight: int = 200, drain_bound_s: float = 15.0, drain_quiet_s: float = 3.0,
         progress: Callable[[str], None] | None = None) -> Capacity:
    """Offer each of `limits.rates` for `limits.step_s` seconds, on a line of its own, until a step is not carried
    (or the publisher cannot offer it); the drain after each step waits for its predictions, so the next step
    starts on an empty queue."""
    steps: list[Step] = []
    cap = Capacity(steps, limits, needed, needed_by)
    for rate in limits.rates:
        tr = Traffic(target, rate, machines, max_inflight, prefix="capacity")
        try:
            time.sleep(limits.step_s)
            acc, _seconds = tr.finish(drain_bound_s, drain_quiet_s, late_after_s=drain_bound_s)
            with tr.lock:
                samples = [(arrival - delay, delay) for arrival, delay in tr.arrivals]
            # Acknowledged without a prediction = lost + undrained (the ledger's two kinds of missing).
            step = Step(rate, round(tr.publishing_s, 3), acc.published, acc.acknowledged,
                        acc.acknowledged - acc.lost - acc.undrained, round(tr.window_wait_s, 3), samples)
        finally:
            tr.close()
        steps.append(step)
        if progress:
            progress(f"step {step.line(limits)}")
        if step.not_offered(limits) or step.failures(limits):
            break
    return cap


def busiest_traffic() -> tuple[float, str]:
    """The highest rate any shipped profile offers (latency peaks, chaos traffic, robustness streams), and which."""
    from indmlops import intent, slo
    from indmlops.chaos.runner import traffic_rates
    from indmlops.checks.live.robustness.edge import budget

    offers: list[tuple[float, str]] = []
    for name in intent.load("slo").get("profiles") or {}:
        offers.append((slo.peak_rate(slo.profile(name)), f"latency profile {name}'s peak"))
        offers += [(r, f"chaos traffic ({name})") for r in traffic_rates(name)]
    for name in intent.load("robustness").get("profiles") or {}:
        offers.append((budget(name).stream_rate, f"robustness stream ({name})"))
    return max(offers)
