"""Catch-up after a recovery: how long from "ready" until the edge's predictions are about the present again.

A component that answers again is not yet a recovered edge: the readings queued while it was away still have to
be predicted, and until they are, every prediction is about the past. The edge is *current* again once
`in_a_row` predictions in a row (in arrival order) arrive within `current_s` of their reading's publication.
Pure: the chaos traffic feeds it (arrival, delay) pairs and the recovery marks.
"""

from __future__ import annotations

import bisect
from dataclasses import asdict, dataclass


@dataclass
class CatchUp:
    ready_at: float  # wall clock of the recovery mark
    current_at: float | None  # arrival of the first of `in_a_row` current predictions; None: never current again
    catch_up_s: float | None  # current_at - ready_at
    behind_s: float  # the largest delay of a prediction that arrived after the mark, before it was current
    drained: int  # predictions that arrived between the mark and current_at (or the end)
    drain_rate: float  # those per second
    bound_s: float | None = None

    @property
    def met(self) -> bool:
        return self.catch_up_s is not None and (self.bound_s is None or self.catch_up_s <= self.bound_s)

    def as_dict(self) -> dict:
        return {**asdict(self), "met": self.met}

    def text(self) -> str:
        if self.catch_up_s is None:
            return (f"never current again after ready (behind by up to {self.behind_s:.1f} s; {self.drained} "
                    f"predictions at {self.drain_rate:.0f}/s{self._bound()})")
        return (f"current {self.catch_up_s:.1f} s after ready{self._bound()} (behind by up to {self.behind_s:.1f} s, "
                f"{self.drained} predictions drained at {self.drain_rate:.0f}/s)")

    def _bound(self) -> str:
        return f", bound {self.bound_s:g} s" if self.bound_s is not None else ""


def catch_up(arrivals: list[tuple[float, float]], ready_at: float, *, current_s: float, in_a_row: int,
             bound_s: float | None = None) -> CatchUp:
    """`arrivals`: (arrival time, delay) of each reading's first prediction, in arrival order."""
    times = [a for a, _d in arrivals]
    start = bisect.bisect_left(times, ready_at)
    run = 0
    behind = 0.0
    for i in range(start, len(arrivals)):
        delay = arrivals[i][1]
        if delay <= current_s:
            run += 1
            if run == in_a_row:
                first = i - in_a_row + 1
                at = arrivals[first][0]
                drained = first - start
                seconds = at - ready_at
                return CatchUp(ready_at, at, round(max(0.0, seconds), 3), round(behind, 3), drained,
                               round(drained / seconds, 1) if seconds > 0 else 0.0, bound_s)
        else:
            run = 0
            behind = max(behind, delay)
    drained = len(arrivals) - start
    span = (arrivals[-1][0] - ready_at) if drained else 0.0
    return CatchUp(ready_at, None, None, round(behind, 3), drained, round(drained / span, 1) if span > 0 else 0.0,
                   bound_s)
