"""The simulator: deterministic for a seed, a well-formed fault schedule, plausible signals, well-formed readings."""

import itertools
import math
import statistics
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indmlops.simulator import FAULT_MODES, LABELS, SCHEMA_VERSION, SIGNALS, Plant, fault_schedule
from indmlops.simulator.model import DURATION_S


def take(plant: Plant, n: int, **kw) -> list[dict]:
    return list(itertools.islice(plant.readings(**kw), n))


def test_same_seed_gives_identical_readings():
    assert take(Plant(seed=7, lines=2, machines=3), 3000) == take(Plant(seed=7, lines=2, machines=3), 3000)


def test_different_seed_gives_different_readings():
    a, b = take(Plant(seed=1), 100), take(Plant(seed=2), 100)
    assert [r["features"] for r in a] != [r["features"] for r in b]
    assert {r["id"] for r in a}.isdisjoint(r["id"] for r in b)


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**32), horizon=st.floats(60, 30 * 86400), gap=st.floats(10, 7200))
def test_fault_schedule_is_ordered_disjoint_and_within_horizon(seed, horizon, gap):
    eps = fault_schedule(seed, "line-1", "m-01", horizon, mean_gap_s=gap)
    assert eps == fault_schedule(seed, "line-1", "m-01", horizon, mean_gap_s=gap)
    for ep in eps:
        lo, hi = DURATION_S[ep.mode]
        assert ep.mode in FAULT_MODES and 0 <= ep.start < horizon
        assert lo <= ep.end - ep.start <= hi
        assert (ep.signal in SIGNALS) == (ep.mode in ("stuck_sensor", "spike"))
    for a, b in itertools.pairwise(eps):
        assert a.end <= b.start


def test_fault_schedule_differs_between_machines_of_one_seed():
    assert fault_schedule(3, "line-1", "m-01", 86400) != fault_schedule(3, "line-1", "m-02", 86400)


def test_every_fault_mode_appears_over_a_simulated_week():
    modes = set()
    for m in range(8):
        modes |= {e.mode for e in fault_schedule(0, "line-1", f"m-{m:02d}", 7 * 86400)}
    assert modes == set(FAULT_MODES)


def readings_by_machine(plant: Plant, n: int) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for r in take(plant, n, include_dropouts=True):
        out.setdefault(f"{r['line']}/{r['machine']}", []).append(r)
    return out


@pytest.fixture(scope="module")
def day():
    """One simulated day of 4 machines, one reading per second each, with faults every ~30 min."""
    plant = Plant(seed=11, lines=1, machines=4)
    return plant, readings_by_machine(plant, 4 * 86400)


def episodes_with_rows(plant, by_machine):
    """(episode, readings sampled while it was active) for every episode that starts within the sampled span."""
    for machine in plant.machines:
        rows = by_machine[f"{machine.line}/{machine.machine}"]
        times = [(r["ts_ns"] - plant.start_ns) / 1e9 for r in rows]
        for ep in machine.episodes:
            if ep.start < times[-1]:
                yield ep, [r for r, t in zip(rows, times) if ep.active(t, 1.0)]


def test_labels_follow_the_schedule(day):
    plant, by_machine = day
    seen = 0
    for ep, inside in episodes_with_rows(plant, by_machine):
        assert inside, f"{ep} has no sample"
        assert {r["label"] for r in inside} == {ep.mode}, ep
        seen += 1
    assert seen >= 20, f"only {seen} episodes in a simulated day of 4 machines"
    labelled = sum(r["label"] != "normal" for rs in by_machine.values() for r in rs)
    assert labelled == sum(len(inside) for _, inside in episodes_with_rows(plant, by_machine))


def test_dropout_suppresses_readings_but_sequence_numbers_advance():
    plant = Plant(seed=11, lines=1, machines=4)
    published = take(plant, 4 * 86400)
    assert all(r["features"] is not None and r["label"] != "dropout" for r in published)
    seqs: dict[str, list[int]] = {}
    for r in published:
        seqs.setdefault(r["machine"], []).append(r["seq"])
    gaps = [b - a for s in seqs.values() for a, b in itertools.pairwise(s) if b - a > 1]
    assert gaps, "a simulated day with dropouts must leave sequence gaps"
    assert all(b > a for s in seqs.values() for a, b in itertools.pairwise(s))


def test_stuck_sensor_repeats_one_value_and_spike_lasts_one_sample(day):
    plant, by_machine = day
    checked = set()
    for ep, inside in episodes_with_rows(plant, by_machine):
        if ep.mode == "stuck_sensor":
            assert len({r["features"][ep.signal] for r in inside}) == 1
            checked.add(ep.mode)
        elif ep.mode == "spike":
            assert len(inside) == 1
            checked.add(ep.mode)
    assert checked == {"stuck_sensor", "spike"}, "the seeded day must contain both modes"


def test_faults_shift_the_signals_they_model(day):
    _, by_machine = day
    rows = [r for rs in by_machine.values() for r in rs if r["features"]]

    def mean(label, signal):
        return statistics.fmean(r["features"][signal] for r in rows if r["label"] == label)

    assert mean("bearing_wear", "vibration_rms_mm_s") > mean("normal", "vibration_rms_mm_s") + 1.0
    assert mean("overheating", "temperature_c") > mean("normal", "temperature_c") + 10.0


def test_normal_readings_are_physically_plausible(day):
    _, by_machine = day
    bounds = {"temperature_c": (10, 80), "vibration_rms_mm_s": (0, 6), "spindle_current_a": (5, 20),
              "pressure_bar": (5, 7)}
    for rs in by_machine.values():
        for r in rs:
            if r["label"] == "normal":
                for s, (lo, hi) in bounds.items():
                    assert lo <= r["features"][s] <= hi, (s, r)


def test_every_reading_is_well_formed():
    rows = take(Plant(seed=5, lines=2, machines=3), 5000)
    ids = set()
    for r in rows:
        assert r["schema"] == SCHEMA_VERSION
        assert uuid.UUID(r["id"]).version == 4
        ids.add(r["id"])
        assert isinstance(r["ts_ns"], int) and isinstance(r["seq"], int) and r["seq"] >= 1
        assert set(r["features"]) == set(SIGNALS) and all(math.isfinite(v) for v in r["features"].values())
        assert r["label"] in LABELS
    assert len(ids) == len(rows)
    assert {r["line"] for r in rows} == {"line-1", "line-2"}
    assert {r["machine"] for r in rows} == {"m-01", "m-02", "m-03"}


@pytest.mark.parametrize("kwargs,fragment", [
    ({"lines": 0}, "at least one line"), ({"machines": 0}, "at least one line and one machine"),
    ({"period_s": 0}, "period_s must be positive"), ({"mean_gap_s": 0}, "mean_gap_s must be positive"),
])
def test_invalid_plant_parameters_are_refused(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        Plant(**kwargs)
