"""The stack's durable capacity: the highest rate of QoS1 readings it predicts without falling behind.

A ramp offers rising rates, a few seconds each, through the real broker and edge (zero-loss guarantees on: the
deployed save policy, publishers with an outbox). A step is *carried* when every acknowledged reading was predicted,
the delay from publication to prediction did not grow while it ran (least-squares slope of delay against
publication time; an edge slower than the arrivals builds a queue, and the delay then grows by (R - D) / D seconds
per second), and the slowest predictions stayed current. The capacity is the highest step carried with every step
below carried too. A step the publisher could not offer (it sent less than asked while its in-flight window was
rarely full) ends the ramp without a verdict on the stack: the capacity is then at least the last step carried.

Pure: `indmlops.checks.live.capacity` runs the ramp; this module judges its steps. Limits in fixtures/slo.yaml
`capacity`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from indmlops import intent
from indmlops.slo import percentile


@dataclass(frozen=True)
class Limits:
    rates: tuple[float, ...]  # the ramp's steps, readings/s, rising
    step_s: float  # publishing time per step
    margin: float  # capacity must be at least margin × the busiest traffic the product ships
    max_growth: float  # delay growth, seconds per second of publishing, still called "keeping up"
    p99_ms: float  # the slowest predictions of a carried step (chaos.catch_up.current_ms: current)
    min_offered: float  # published / asked below which the step was not offered
    window_busy: float  # share of publishing time waiting for the in-flight window: the broker's acks, not the
    #                     publisher, held the rate back

    @classmethod
    def load(cls, doc: dict | None = None) -> Limits:
        doc = intent.load("slo") if doc is None else doc
        c = doc.get("capacity") or {}
        try:
            rates = tuple(float(r) for r in c["rates"])
            limits = cls(rates, float(c["step_s"]), float(c["margin"]), float(c["max_growth"]), float(c["p99_ms"]),
                         float(c["min_offered"]), float(c["window_busy"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"fixtures/slo.yaml: capacity: {type(exc).__name__}: {exc}") from None
        if not rates or list(rates) != sorted(set(rates)) or rates[0] <= 0:
            raise ValueError(f"fixtures/slo.yaml: capacity.rates: expected rising positive rates, got {list(rates)}")
        return limits


@dataclass
class Step:
    """One step of the ramp, as measured."""

    rate: float  # asked, readings/s
    seconds: float  # publishing time
    published: int
    acknowledged: int
    predicted: int  # acknowledged readings with a prediction when the drain ended
    window_wait_s: float  # publishing time spent waiting for an in-flight slot (unacknowledged readings)
    samples: list[tuple[float, float]] = field(default_factory=list, repr=False)  # (published_at, delay_s)

    @property
    def offered(self) -> float:
        return self.published / self.seconds if self.seconds > 0 else 0.0

    @property
    def growth(self) -> float:
        return growth(self.samples)

    @property
    def p50_ms(self) -> float:
        return percentile([d for _t, d in self.samples], 50) * 1000 if self.samples else 0.0

    @property
    def p99_ms(self) -> float:
        return percentile([d for _t, d in self.samples], 99) * 1000 if self.samples else 0.0

    def failures(self, limits: Limits) -> list[str]:
        """Why the stack did not carry this step; empty: carried."""
        out = []
        if self.acknowledged - self.predicted:
            out.append(f"{self.acknowledged - self.predicted} of {self.acknowledged} acknowledged readings not "
                       "predicted after the drain")
        if self.growth > limits.max_growth:
            out.append(f"delay grew {self.growth * 1000:.0f} ms per second (at most {limits.max_growth * 1000:g})")
        if self.p99_ms > limits.p99_ms:
            out.append(f"delay p99 {self.p99_ms:.0f} ms (at most {limits.p99_ms:g})")
        if self.offered < limits.min_offered * self.rate and self.window_busy >= limits.window_busy:
            out.append(f"the broker acknowledged only {self.offered:.0f} readings/s (the publisher waited for "
                       f"acknowledgements {self.window_busy:.0%} of the time)")
        return out

    @property
    def window_busy(self) -> float:
        return self.window_wait_s / self.seconds if self.seconds > 0 else 0.0

    def not_offered(self, limits: Limits) -> bool:
        """The publisher fell short on its own (CPU), not held back by the broker: no verdict on the stack."""
        return self.offered < limits.min_offered * self.rate and self.window_busy < limits.window_busy

    def line(self, limits: Limits) -> str:
        head = (f"{self.rate:g}/s asked, {self.offered:.0f}/s offered, delay p50 {self.p50_ms:.1f} ms p99 "
                f"{self.p99_ms:.1f} ms, growth {self.growth * 1000:+.1f} ms/s, {self.predicted}/{self.acknowledged} "
                "predicted")
        if self.not_offered(limits):
            return f"{head}: not offered (the publisher's own ceiling)"
        fails = self.failures(limits)
        return f"{head}: " + ("; ".join(fails) if fails else "carried")

    def as_dict(self, limits: Limits) -> dict:
        d = {k: v for k, v in asdict(self).items() if k != "samples"}
        return {**d, "offered": round(self.offered, 1), "growth_ms_per_s": round(self.growth * 1000, 2),
                "p50_ms": round(self.p50_ms, 2), "p99_ms": round(self.p99_ms, 2),
                "window_busy": round(self.window_busy, 3), "failures": self.failures(limits),
                "not_offered": self.not_offered(limits)}


def growth(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope of delay against publication time (s/s); 0 with fewer than 10 samples or no spread."""
    n = len(samples)
    if n < 10:
        return 0.0
    mt = sum(t for t, _d in samples) / n
    md = sum(d for _t, d in samples) / n
    var = sum((t - mt) ** 2 for t, _d in samples)
    if var <= 0:
        return 0.0
    return sum((t - mt) * (d - md) for t, d in samples) / var


@dataclass
class Capacity:
    steps: list[Step]
    limits: Limits
    needed: float  # the busiest traffic the product ships, readings/s
    needed_by: str  # which one

    @property
    def carried(self) -> float:
        """The highest rate carried with every step below carried too (0: not even the first)."""
        best = 0.0
        for s in self.steps:
            if s.not_offered(self.limits) or s.failures(self.limits):
                break
            best = s.rate
        return best

    @property
    def limited_by_publisher(self) -> bool:
        """The ramp ended on a step the publisher could not offer: the capacity is at least `carried`."""
        for s in self.steps:
            if s.not_offered(self.limits):
                return True
            if s.failures(self.limits):
                return False
        return False

    @property
    def required(self) -> float:
        return self.needed * self.limits.margin

    @property
    def met(self) -> bool:
        return self.carried >= self.required

    def text(self) -> str:
        at_least = "at least " if self.limited_by_publisher or self.carried == self.steps[-1].rate else ""
        head = (f"durable capacity {at_least}{self.carried:g} readings/s end to end; needed {self.limits.margin:g} × "
                f"{self.needed:g}/s ({self.needed_by}) = {self.required:g}/s")
        return head + "".join(f"\n  step {s.line(self.limits)}" for s in self.steps)

    def as_dict(self) -> dict:
        return {"carried": self.carried, "at_least": self.limited_by_publisher, "needed": self.needed,
                "needed_by": self.needed_by, "required": self.required, "met": self.met,
                "limits": asdict(self.limits), "steps": [s.as_dict(self.limits) for s in self.steps]}
