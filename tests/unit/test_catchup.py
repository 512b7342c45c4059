"""Catch-up after a recovery: when the edge is current again, and that a backlog or one lucky prediction is not."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from indmlops.catchup import catch_up


def test_backlog_then_fresh_predictions_is_current_at_the_first_of_the_run():
    # Ready at t=10; 100 queued readings drain at 1,000/s with delays 5 s … 0.5 s, then fresh ones arrive on time.
    backlog = [(10.0 + i / 1000, 5.0 - i * 0.048) for i in range(100)]
    fresh = [(10.1 + i / 100, 0.01) for i in range(60)]
    c = catch_up(backlog + fresh, 10.0, current_s=0.4, in_a_row=50, bound_s=15)
    # the last backlog predictions already have delays ≤ 0.4 s: they start the run
    first_current = next(i for i, (_a, d) in enumerate(backlog) if d <= 0.4)
    assert c.current_at == backlog[first_current][0]
    assert c.catch_up_s == round(backlog[first_current][0] - 10.0, 3)
    assert c.behind_s == 5.0 and c.drained == first_current and c.met


def test_never_current_again_says_how_far_behind_and_how_fast_it_drained():
    arrivals = [(10.0 + i * 0.1, 30.0 + i * 0.05) for i in range(200)]  # falls further behind
    c = catch_up(arrivals, 10.0, current_s=0.4, in_a_row=50, bound_s=15)
    assert c.current_at is None and c.catch_up_s is None and not c.met
    assert c.behind_s == round(30.0 + 199 * 0.05, 3) and c.drained == 200
    assert "never current again" in c.text() and "bound 15 s" in c.text()


def test_one_lucky_prediction_in_a_backlog_is_not_a_recovery():
    arrivals = [(10.0 + i * 0.01, 0.1 if i % 40 == 0 else 8.0) for i in range(400)]
    assert catch_up(arrivals, 10.0, current_s=0.4, in_a_row=50).current_at is None


def test_predictions_before_the_mark_do_not_count():
    before = [(5.0 + i * 0.01, 0.01) for i in range(100)]  # current, but before the recovery
    after = [(10.0 + i * 0.01, 9.0) for i in range(10)]
    assert catch_up(before + after, 10.0, current_s=0.4, in_a_row=50).current_at is None


def test_current_beyond_the_bound_is_not_met():
    arrivals = [(10.0 + i * 0.01, 20.0) for i in range(2000)] + [(40.0 + i * 0.01, 0.01) for i in range(60)]
    c = catch_up(arrivals, 10.0, current_s=0.4, in_a_row=50, bound_s=15)
    assert c.catch_up_s == 30.0 and not c.met


@given(st.lists(st.floats(0, 30), min_size=0, max_size=300), st.integers(1, 60))
def test_catch_up_point_starts_a_run_of_current_predictions_and_no_earlier_run_exists(delays, in_a_row):
    arrivals = [(float(i), d) for i, d in enumerate(delays)]
    c = catch_up(arrivals, 0.0, current_s=0.4, in_a_row=in_a_row)
    runs = [i for i in range(len(delays) - in_a_row + 1) if all(d <= 0.4 for d in delays[i:i + in_a_row])]
    if not runs:
        assert c.current_at is None
    else:
        assert c.current_at == float(runs[0])
