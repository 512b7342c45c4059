"""Late is not broken: a bounded, progress-aware wait beyond a bound, and the valid stream's drain and accounts."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from indmlops.delivery import Accounting, Ledger

if TYPE_CHECKING:
    from indmlops.checks.live.robustness.edge import Edge


@dataclass
class LateWait:
    """How a wait beyond a bound ended: `stopped` is "arrived", "unhealthy", "no progress" or "bound"."""

    arrived: bool
    seconds: float
    stopped: str
    detail: str


def wait_late(done: Callable[[], bool], *, health: Callable[[], list[str]], activity: Callable[[], int],
              bound_s: float, quiet_s: float, what: str, progress: Callable[[str], None] | None = None,
              sleep: Callable[[float], None] = time.sleep, monotonic: Callable[[], float] = time.monotonic,
              every_s: float = 2.0, health_every_s: float = 1.0) -> LateWait:
    """Wait for `done` while the edge shows it is working: /healthz and /readyz 200 (looked at every
    `health_every_s`) and some prediction or error report arriving at least every `quiet_s`; at most `bound_s`."""
    t0 = last_change = last_report = last_health = monotonic()
    seen = activity()
    while True:
        now = monotonic()
        if done():
            return LateWait(True, round(now - t0, 2), "arrived", f"{what} arrived {now - t0:.1f} s later")
        if now - last_health >= health_every_s:
            last_health = now
            if problems := health():
                return LateWait(False, round(now - t0, 2), "unhealthy",
                                f"after {now - t0:.1f} s more: {'; '.join(problems)}")
        if (count := activity()) != seen:
            seen, last_change = count, now
        if now - last_change >= quiet_s:
            return LateWait(False, round(now - t0, 2), "no progress",
                            f"no prediction or error report of any reading for {quiet_s:g} s although /healthz and "
                            f"/readyz answered 200: the edge stopped handling readings (after {now - t0:.1f} s more)")
        if now - t0 >= bound_s:
            return LateWait(False, round(now - t0, 2), "bound",
                            f"the edge healthy and still predicting, but {what} did not come within the {bound_s:g} s "
                            f"bound")
        if progress and now - last_report >= every_s:
            progress(f"waiting for {what}: edge healthy, {count} messages seen, {now - t0:.0f} s of at most "
                     f"{bound_s:g} s")
            last_report = now
        sleep(0.05)




class ValidStream:
    """Valid QoS1 readings at `rate`/s on factory/<tag>/stream, numbered, in the edge's ledger, while hostile traffic
    flows; `stop` drains and accounts them (with the canaries) as on time, late, lost or undrained."""

    def __init__(self, edge: Edge, rate: float) -> None:
        self.edge, self.rate = edge, rate
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="robust-stream", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        t0, n = time.monotonic(), 0
        while not self.stopping.is_set():
            n += 1
            if (delay := t0 + n / self.rate - time.monotonic()) > 0:
                time.sleep(delay)
            self.edge.publish_valid("stream")

    def stop(self, *, progress: Callable[[str], None] | None = print) -> Accounting:
        self.stopping.set()
        self.thread.join(10)
        b = self.edge.budget
        return settle(self.edge.ledger, bound_s=b.drain_bound_s, quiet_s=b.drain_quiet_s, late_after_s=b.canary_s,
                      progress=progress)


def settle(ledger: Ledger, *, bound_s: float, quiet_s: float, late_after_s: float,
           progress: Callable[[str], None] | None = print, sleep: Callable[[float], None] = time.sleep,
           monotonic: Callable[[], float] = time.monotonic) -> Accounting:
    """Drain (wait while predictions keep coming, at most bound_s, ending after quiet_s without one), then account."""
    drain = ledger.drain(bound_s=bound_s, quiet_s=quiet_s, progress=progress, sleep=sleep, monotonic=monotonic)
    return ledger.account(late_after_s, drain)


def no_valid_reading_lost(acc: Accounting, where: str) -> None:
    """No acknowledged valid reading lost: never predicted although a later one of its stream was."""
    assert acc.acknowledged, f"no valid reading on {where} was acknowledged by the broker ({acc.summary()})"
    assert not acc.lost, f"{acc.lost} acknowledged valid readings on {where} lost (a later reading of their stream " \
                         f"was predicted, theirs never will be): {acc.summary()}"


def every_valid_reading_drained(acc: Accounting, where: str) -> None:
    """Every acknowledged valid reading predicted before the drain ended; the ones that were not are not shown lost."""
    assert not acc.undrained, f"not drained (late or stalled, not shown lost): {acc.undrained} acknowledged valid " \
                              f"readings on {where} had no prediction when the drain ended: " \
                              f"{acc.drain.detail if acc.drain else 'no drain'}; {acc.summary()}"


def every_valid_reading_acknowledged(acc: Accounting, where: str) -> None:
    """Every valid reading got the broker's PUBACK: hostile traffic on other topics must not make the broker drop or
    stall the valid stream's publishes (QoS1 promises nothing for an unacknowledged one, so it is judged here)."""
    assert not acc.unacknowledged, f"{acc.unacknowledged} of {acc.published} valid QoS1 readings on {where} never " \
                                   f"got a PUBACK from the broker (bound 0): {acc.summary()}"
