"""The durable-capacity judgement (indmlops.capacity): growth fit, what a step fails on, where the ramp ends."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from indmlops.capacity import Capacity, Limits, Step, growth

LIMITS = Limits(rates=(200, 400, 800), step_s=4, margin=2, max_growth=0.05, p99_ms=400, min_offered=0.95,
                window_busy=0.2)


def samples(n: int = 400, rate: float = 100.0, delay_s: float = 0.005, slope: float = 0.0):
    return [(i / rate, delay_s + slope * i / rate) for i in range(n)]


def step(rate: float = 200, *, published: int | None = None, predicted: int | None = None, wait_s: float = 0.0,
         **kw) -> Step:
    pub = int(rate * 4) if published is None else published
    return Step(rate, 4.0, pub, pub, pub if predicted is None else predicted, wait_s, samples(**kw))


@given(st.floats(-0.5, 2.0), st.floats(0.0, 1.0))
def test_growth_recovers_a_linear_slope(slope, base):
    assert growth(samples(slope=slope, delay_s=base)) == pytest.approx(slope, abs=1e-6)


def test_growth_is_zero_without_enough_samples_or_spread():
    assert growth(samples(n=9, slope=1.0)) == 0.0
    assert growth([(1.0, 0.1)] * 50) == 0.0


def test_a_step_keeping_up_is_carried():
    assert step().failures(LIMITS) == [] and not step().not_offered(LIMITS)


def test_a_step_fails_on_each_sign_of_falling_behind():
    assert "delay grew 200 ms per second (at most 50)" in step(slope=0.2).failures(LIMITS)
    assert "delay p99 500 ms (at most 400)" in step(delay_s=0.5).failures(LIMITS)
    assert step(predicted=700).failures(LIMITS) == ["100 of 800 acknowledged readings not predicted after the drain"]


def test_a_short_step_is_the_broker_when_the_publisher_waited_for_acks_else_the_publisher():
    acks = step(published=400, wait_s=2.0)  # half of the time waiting for PUBACKs
    assert any("the broker acknowledged only 100 readings/s" in f for f in acks.failures(LIMITS))
    assert not acks.not_offered(LIMITS)
    cpu = step(published=400, wait_s=0.1)
    assert cpu.failures(LIMITS) == [] and cpu.not_offered(LIMITS)


def test_capacity_is_the_last_step_carried_with_all_below_carried():
    cap = Capacity([step(200), step(400), step(800, slope=0.3)], LIMITS, needed=400, needed_by="x")
    assert cap.carried == 400 and not cap.met and not cap.limited_by_publisher
    assert cap.text().startswith("durable capacity 400 readings/s end to end; needed 2 × 400/s (x) = 800/s")
    assert "step 800/s asked" in cap.text() and "delay grew 300 ms per second" in cap.text()
    assert Capacity([step(200, slope=0.3), step(400)], LIMITS, 100, "x").carried == 0


def test_capacity_is_at_least_when_the_publisher_ran_out_or_the_ramp_did():
    cap = Capacity([step(200), step(400), step(800, published=1000)], LIMITS, 100, "x")
    assert cap.carried == 400 and cap.limited_by_publisher and cap.met
    assert "durable capacity at least 400" in cap.text() and "not offered" in cap.text()
    top = Capacity([step(200), step(400), step(800)], LIMITS, 100, "x")
    assert top.carried == 800 and "at least 800" in top.text() and top.as_dict()["met"]


def test_limits_name_the_file_when_malformed():
    with pytest.raises(ValueError, match="fixtures/slo.yaml: capacity: KeyError"):
        Limits.load({"capacity": {"rates": [1]}})
    good = {k: v for k, v in dataclasses.asdict(LIMITS).items()}
    with pytest.raises(ValueError, match="expected rising positive rates"):
        Limits.load({"capacity": {**good, "rates": [400, 200]}})
    assert Limits.load({"capacity": good}) == dataclasses.replace(LIMITS, rates=(200.0, 400.0, 800.0))


def test_the_shipped_limits_ask_twice_the_busiest_shipped_traffic():
    from indmlops.chaos.capacity import busiest_traffic

    needed, by = busiest_traffic()
    assert (needed, by) == (400.0, "latency profile full's peak")
    assert Limits.load().rates[-1] >= 2 * Limits.load().margin * needed  # the ramp goes past what is required
