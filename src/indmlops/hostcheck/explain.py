"""Whether a host's shortfalls explain a breach: an environment verdict only for a timing claim, and only when the
slowdown the measured figures imply, applied to the bound, covers what was measured.

A check states its timing claims as `Breach`es on the AssertionError it raises (`timing_failure`); an assertion
without them is not about time (a loss, a duplicate, a fault that hit nothing) and no host excuses it. The slowdown
(`Envelope`), per shortfall, with its arithmetic:
- contention (foreign CPU share s, CPU or I/O pressure p of the time, steal): a task that gets the resource only
  (1 - x) of the time is slower by 1 / (1 - x), x capped at 0.95 (20x);
- too slow a disk before the run (fsync/s below the need) or during it (a save's p50 over its bound): slower by
  the ratio needed / measured (or measured / bound);
- too few cores, a generator short of its headroom, a load average over its bound: slower by that ratio;
- a disk stall of S ms: every reading in flight waits S, then the backlog drains at the edge's spare rate, which at
  half load takes as long again: + 2 S ms on a latency, + 2 S / 1000 s on a recovery or catch-up.
Factors multiply (independent causes), capped at 20x: a breach beyond bound x 20 is never the host's. A claim that
never came true within its wait (the edge never current again) is explained only by a slowdown of 3x or more.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

from indmlops.hostcheck.measure import HostFigures
from indmlops.hostcheck.monitor import MonitorSummary
from indmlops.hostcheck.verdict import (
    Demand,
    EnvironmentVerdict,
    Shortfall,
    Thresholds,
    assess,
    assess_run,
    context,
    with_context,
)

MAX_FACTOR = 20.0
UNKNOWN_FACTOR = 3.0  # a claim that never came true within its wait: the slowdown that still explains it


@dataclass(frozen=True)
class Breach:
    """One failed timing claim in numbers. unit: "ms" or "s" (larger is worse), "per_s" (a rate: smaller is worse),
    or "" (timing without a number, such as a drain that did not finish: any shortfall explains it)."""

    what: str
    measured: float | None  # None: it never happened within the wait (never current again)
    bound: float
    unit: str


@dataclass
class Envelope:
    factor: float = 1.0
    added_ms: float = 0.0
    reasons: list[str] = field(default_factory=list)

    def allows(self, b: Breach) -> bool:
        if b.unit == "":
            return bool(self.reasons)
        if b.measured is None:  # past its bound by an unknown amount (the wait ended there): only a host that was
            return self.factor >= UNKNOWN_FACTOR  # at least UNKNOWN_FACTOR times slower explains it
        if b.unit == "per_s":
            return b.measured * self.factor >= b.bound
        scale = 1000.0 if b.unit == "s" else 1.0
        return b.measured * scale <= b.bound * scale * self.factor + self.added_ms

    def limit(self, b: Breach) -> str:
        """The worst the host explains for this claim, in its unit."""
        if b.unit == "per_s":
            return f"≥ {b.bound / self.factor:.0f}/s"
        if b.unit == "":
            return "any"
        scale = 1000.0 if b.unit == "s" else 1.0
        worst = (b.bound * scale * self.factor + self.added_ms) / scale
        return f"≤ {worst:.3g} {b.unit}"

    def text(self) -> str:
        added = f" + {self.added_ms:.0f} ms" if self.added_ms else ""
        return f"× {self.factor:.2f}{added} ({'; '.join(self.reasons) or 'no shortfall'})"


def _contended(x: float) -> float:
    return 1.0 / (1.0 - min(max(x, 0.0), 0.95))


def envelope(shortfalls: list[Shortfall]) -> Envelope:
    env = Envelope()
    for s in shortfalls:
        factor, added = 1.0, 0.0
        if s.what in ("foreign_cpu", "steal", "cpu_pressure", "io_pressure"):
            factor = _contended(s.measured / 100)
        elif s.what == "fsync" and s.when == "before":  # saves/s measured against saves/s needed
            factor = s.needed / s.measured if s.measured > 0 else MAX_FACTOR
        elif s.what in ("fsync", "load"):  # p50 ms (or load per core) measured against its bound
            factor = s.measured / s.needed if s.needed > 0 else MAX_FACTOR
        elif s.what in ("cores", "generator"):
            factor = s.needed / s.measured if s.measured > 0 else MAX_FACTOR
        elif s.what == "stall":
            added = 2 * s.measured
        env.factor = min(MAX_FACTOR, env.factor * max(1.0, factor))
        env.added_ms += added
        env.reasons.append(f"{s.what} {s.when}: " + (f"+ {added:.0f} ms" if added else f"× {max(1.0, factor):.2f}"))
    return env


def timing_failure(text: str, breaches: list[Breach]) -> AssertionError:
    """The AssertionError of a timing claim, carrying its breaches for `explained`."""
    exc = AssertionError(text)
    exc.breaches = list(breaches)  # type: ignore[attr-defined]
    return exc


def explained(exc: BaseException, shortfalls: list[Shortfall]) -> tuple[bool, str]:
    """Whether the shortfalls explain every breach `exc` carries, and the words for the verdict either way."""
    breaches: list[Breach] | None = getattr(exc, "breaches", None)
    if not shortfalls:
        return False, ""
    if not breaches:
        return False, ("the host fell short, but this failure is not a timing claim (loss, duplicate, a fault or a "
                       "state of the stack): no host explains it")
    env = envelope(shortfalls)
    beyond = [b for b in breaches if not env.allows(b)]
    if beyond:
        return False, ("the host fell short, but not enough to explain " + "; ".join(
            f"{b.what} {'never' if b.measured is None else f'{b.measured:g} {b.unit}'} (bound {b.bound:g} {b.unit}; "
            f"the host explains {env.limit(b)})" for b in beyond) + f": slowdown {env.text()}")
    return True, f"the host's slowdown {env.text()} covers every breach"


def verdict_for(exc: AssertionError, shortfalls: list[Shortfall], said: list[str], *, demand: Demand,
                figures: HostFigures | None, monitor: MonitorSummary | None,
                figures_path: Path | str | None) -> AssertionError:
    """What to raise for a failed claim: an EnvironmentVerdict (noting the slowdown that covers it) when the
    shortfalls explain it, else `exc` itself with what was slow but ours, and the shortfalls, as notes."""
    host, why = explained(exc, shortfalls)
    if not host:
        return with_context(exc, said + ([f"{why}: {'; '.join(s.text for s in shortfalls)}"] if shortfalls else []))
    verdict = EnvironmentVerdict(demand, shortfalls, breach_text=str(exc), figures=figures, monitor=monitor,
                                 figures_path=figures_path, context=said)
    verdict.add_note(f"host: {why}")
    return verdict


def judge(breach_text: str, figures: HostFigures | None, monitor_summary: MonitorSummary | None, *, demand: Demand,
          breaches: Sequence[Breach] = (), thresholds: Thresholds | None = None,
          figures_path: Path | str | None = None) -> NoReturn:
    """Raise EnvironmentVerdict when the host fell short before (`figures`) or during (`monitor_summary`) the run and
    that explains every one of `breaches`; else the stack's AssertionError with `breach_text`, the shortfalls and
    what was slow but ours as notes. Without breaches the claim is not about time: always the stack's."""
    t = thresholds or Thresholds()
    shortfalls = (assess(figures, demand, t) if figures else []) + \
        (assess_run(monitor_summary, demand, t) if monitor_summary else [])
    exc = timing_failure(breach_text, list(breaches)) if breaches else AssertionError(breach_text)
    raise verdict_for(exc, shortfalls, context(figures, monitor_summary, demand, t), demand=demand, figures=figures,
                      monitor=monitor_summary, figures_path=figures_path)
