"""The publishers' outbox: what it re-sends, when, and that a gap is never seen where nothing was lost."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from indmlops.outbox import Outbox


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def make(**kw) -> tuple[Outbox, Clock]:
    clock = Clock()
    return Outbox(clock=clock, **kw), clock


def test_readings_confirmed_in_order_are_never_sent_again():
    box, clock = make()
    for i in range(100):
        box.sent(i, f"body{i}")
        clock.now += 0.01
        box.confirmed(i)
        assert box.due() == []
    assert (box.stats.resent_gap, box.stats.resent_probe, len(box)) == (0, 0, 0)


def test_a_reading_passed_by_a_later_confirmation_is_resent_once_after_the_grace():
    box, clock = make(gap_grace_s=2.0)
    for i in range(3):
        box.sent(i, f"body{i}")
    box.confirmed(2)  # 0 and 1 were sent before 2: the broker lost them (or their predictions)
    assert box.due() == []  # a prediction may still be on its way
    clock.now = 2.0
    assert box.due() == [(0, "body0", "gap"), (1, "body1", "gap")]
    clock.now = 9.0  # (at 10 s without a confirmation a probe would go)
    assert box.due() == []  # re-sent: only a confirmation of something sent after the re-send shows it missing again
    box.sent(3, "body3")
    box.confirmed(0)
    box.confirmed(3)
    assert box.due() == []
    clock.now = 11.0
    assert box.due() == [(1, "body1", "gap")]
    assert box.stats.resent_gap == 3


def test_a_backlog_behind_a_slow_edge_is_not_resent_while_it_drains_in_order():
    box, clock = make(gap_grace_s=0.5)
    for i in range(5000):  # the edge was away: 5000 readings wait in the broker
        box.sent(i, i)
    for i in range(5000):  # it drains them in order, slower than the grace
        clock.now += 0.01
        box.confirmed(i)
        assert not [d for d in box.due() if d[2] == "gap"]
    assert box.stats.resent_gap == 0


def test_probe_resends_the_oldest_when_nothing_is_confirmed_and_backs_off():
    box, clock = make(probe_after_s=10, probe_max_s=40)
    for i in range(3):
        box.sent(i, i)
    probes = []
    for t in range(0, 200):
        clock.now = float(t)
        probes += [(t, k) for k, _p, r in box.due() if r == "probe"]
    assert [t for t, _k in probes] == [10, 30, 70, 110, 150, 190]  # waits 10, 20, 40, 40, …
    assert box.stats.resent_probe == len(probes) and box.stats.given_up == 0  # probes are no resends
    assert len(box) == 3


def test_a_reading_that_never_gets_a_prediction_is_given_up_after_max_resends():
    box, clock = make(gap_grace_s=1.0, max_resends=2)
    box.sent("dead", "x")
    for n in range(1, 11):
        step = n - 1
        box.sent(n, n)
        box.confirmed(n)
        clock.now = step * 2.0
        box.due()
    assert box.stats.given_up == 1 and box.stats.given_up_examples == ["dead"]
    assert box.stats.resent_gap == 2 and len(box) == 0


@settings(max_examples=200, deadline=None)
@given(st.lists(st.booleans(), min_size=1, max_size=300), st.integers(0, 2**32 - 1))
def test_in_order_delivery_with_losses_ends_with_everything_confirmed_and_resends_only_what_was_lost(lost, seed):
    """A broker that delivers in publication order and drops the readings marked lost (once each): the outbox brings
    every reading through, and re-sends (gap) no more readings than were lost."""
    import random

    rng = random.Random(seed)
    box, clock = make(gap_grace_s=1.0, probe_after_s=5.0)
    queue: list[int] = []
    drop_once = {i for i, x in enumerate(lost) if x}
    for i in range(len(lost)):
        box.sent(i, i)
        queue.append(i)
    delivered: set[int] = set()
    for _ in range(10_000):
        clock.now += 0.25
        # The edge answers a few in order; a dropped one vanishes (first copy only).
        for _ in range(rng.randint(0, 5)):
            if not queue:
                break
            r = queue.pop(0)
            if r in drop_once:
                drop_once.discard(r)
                continue
            delivered.add(r)
            box.confirmed(r)
        queue += [k for k, _p, _r in box.due()]
        if not len(box):
            break
    assert len(box) == 0 and delivered == set(range(len(lost)))
    assert box.stats.resent_gap <= sum(lost)
