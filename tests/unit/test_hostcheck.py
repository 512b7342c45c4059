"""Host preflight, its assessment against a profile, the run monitor and the environment verdict (hostcheck)."""

from __future__ import annotations

import dataclasses
import math
import pickle
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indmlops import hostcheck as h

PSI_CPU = "some avg10=3.23 avg60=4.34 avg300=2.08 total=9256051\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"
PSI_IO = "some avg10=38.50 avg60=1.60 avg300=1.84 total=9445688\nfull avg10=0.03 avg60=1.50 avg300=1.78 total=9139530\n"
QUICK = h.Demand("quick", rate=100, peak_rate=100)


def figures(**over) -> h.HostFigures:
    """A host that carries the quick profile with room: 1,400 saves/s, 2 cores, calm."""
    base = dict(fsync_dir="/d", cores=2, cpu_quota_cores=None, loadavg=(0.5, 0.5, 0.5), psi_cpu_some_avg10=2.0,
                psi_io_some_avg10=1.0, tcp_rtt_p50_us=56.0, tcp_rtt_p99_us=75.0, generator_per_s=50_000.0,
                generator_per_cpu_s=60_000.0, fsync_per_s=1_400.0, fsync_p50_ms=0.7, fsync_p99_ms=2.0)
    return h.HostFigures(**(base | over))


def proc_with(tmp_path: Path, cpu: str | None = PSI_CPU, io: str | None = PSI_IO) -> Path:
    (tmp_path / "pressure").mkdir(parents=True)
    for name, text in (("cpu", cpu), ("io", io)):
        if text is not None:
            (tmp_path / "pressure" / name).write_text(text)
    return tmp_path


# --- PSI -----------------------------------------------------------------------------------------------------------

def test_psi_some_line_parsed_from_kernel_text():
    assert h.parse_psi(PSI_CPU) == h.Pressure(3.23, 9256051)
    assert h.parse_psi(PSI_IO).some_avg10 == 38.5


@pytest.mark.parametrize("text", ["", "full avg10=0.00 total=0\n", "some avg60=1.0 total=3\n", "some avg10=x total=1"])
def test_psi_text_without_a_usable_some_line_rejected(text):
    with pytest.raises(ValueError):
        h.parse_psi(text)


def test_psi_read_from_proc_or_none_when_absent(tmp_path):
    proc = proc_with(tmp_path, io=None)
    assert h.read_psi("cpu", proc) == h.Pressure(3.23, 9256051)
    assert h.read_psi("io", proc) is None
    assert h.read_psi("cpu", tmp_path / "nowhere") is None


def test_preflight_says_psi_absent_and_judges_load_instead(tmp_path):
    f = h.preflight(fsync_dir=tmp_path, proc=tmp_path / "no-proc", fsync_seconds=0.05, rtt_seconds=0.05,
                    generator_seconds=0.05)
    assert f.psi_cpu_some_avg10 is None and f.psi_io_some_avg10 is None
    assert any("PSI not available" in n and "load average judged instead" in n for n in f.notes)
    busy = dataclasses.replace(f, loadavg=(9.0, 9.0, 9.0), cores=2, cpu_quota_cores=None)
    assert [s.what for s in h.assess(busy, h.Demand("x", 0, 0))] == ["load"]
    assert "load" not in [s.what for s in h.assess(dataclasses.replace(busy, loadavg=(1.0, 1, 1)), h.Demand("x", 0, 0))]


# --- measurements against the real host ----------------------------------------------------------------------------

def test_fsync_measured_in_a_real_directory_and_probe_removed(tmp_path):
    got = h.measure_fsync(tmp_path, seconds=0.3, max_samples=50)
    assert 1 <= got["fsync_samples"] <= 50
    assert 0 < got["fsync_p50_ms"] <= got["fsync_p99_ms"]
    assert got["fsync_per_s"] > 0
    assert list(tmp_path.iterdir()) == []


def test_fsync_really_syncs(tmp_path, monkeypatch):
    """The probe must call fsync on what it wrote: a probe that skips it would time the page cache."""
    synced = []
    real = h.os.fsync
    monkeypatch.setattr(h.os, "fsync", lambda fd: (synced.append(fd), real(fd)))
    h.measure_fsync(tmp_path, seconds=0.05, max_samples=3)
    assert len(synced) == 3


def test_fsync_in_an_unwritable_directory_is_a_note_not_a_crash(tmp_path):
    missing = tmp_path / "absent"
    f = h.preflight(fsync_dir=missing, fsync_seconds=0.05, rtt_seconds=0.05, generator_seconds=0.05)
    assert f.fsync_per_s is None and any(f"cannot save in {missing}" in n for n in f.notes)
    assert "fsync" not in [s.what for s in h.assess(f, QUICK)]


def test_preflight_bounded_and_complete(tmp_path):
    t0 = time.monotonic()
    f = h.preflight(fsync_dir=tmp_path)
    took = time.monotonic() - t0
    assert took <= 3.0, f"preflight took {took:.1f} s (budget 3 s)"
    assert f.cores >= 1 and f.fsync_per_s and f.fsync_per_s > 0 and f.generator_per_s > 0
    assert 0 < f.tcp_rtt_p50_us <= f.tcp_rtt_p99_us
    assert math.isclose(f.seconds, took, abs_tol=0.5)


# --- assess: before the run ----------------------------------------------------------------------------------------

def test_calm_host_carries_quick_profile():
    assert h.assess(figures(), QUICK) == []


def test_slow_disk_named_with_the_arithmetic():
    [s] = h.assess(figures(fsync_per_s=240.0, fsync_p50_ms=4.1), QUICK)
    assert (s.what, s.when, s.needed) == ("fsync", "before", 700)
    assert s.text == ("the broker's disk did 240 fsync/s (p50 4.1 ms), the profile needs ≥ 700/s "
                      "(100 readings/s × 7 saves)")


@pytest.mark.parametrize(("over", "what"), [
    ({"generator_per_s": 150.0}, "generator"),
    ({"cores": 1}, "cores"),
    ({"cpu_quota_cores": 1.5}, "cores"),
    ({"psi_cpu_some_avg10": 40.0}, "cpu_pressure"),
    ({"psi_io_some_avg10": 38.0}, "io_pressure"),
])
def test_each_shortfall_found(over, what):
    assert [s.what for s in h.assess(figures(**over), QUICK)] == [what]


def test_load_average_not_judged_where_psi_answers():
    """PSI measures stalls; a load average of 9 on a host whose tasks do not wait (PSI calm) is no shortfall."""
    assert h.assess(figures(loadavg=(9.0, 9.0, 9.0)), QUICK) == []
    assert h.assess_run(summary(load_per_core_mean=4.5), QUICK) == []


def test_fsync_need_follows_the_brokers_save_interval():
    f = figures(fsync_per_s=240.0, fsync_p50_ms=4.1)
    assert h.Demand("quick", 100, 100, autosave_changes=1).fsync_per_s == 700
    assert h.Demand("quick", 100, 100, autosave_changes=100).fsync_per_s == 7
    assert h.assess(f, h.Demand("quick", 100, 100, autosave_changes=100)) == []
    [s] = h.assess(figures(fsync_per_s=20.0, fsync_p50_ms=50), h.Demand("quick", 100, 100, autosave_changes=10))
    assert s.text.endswith("the profile needs ≥ 70/s (100 readings/s × 7 changes ÷ a save every 10)")


@settings(max_examples=200)
@given(st.floats(0, 1_000), st.integers(1, 1_000), st.integers(0, 1_000), st.floats(1, 10_000))
def test_saving_less_often_never_needs_more_syncs(rate, autosave, more, disk):
    often, rarely = h.Demand("p", rate, 0, autosave), h.Demand("p", rate, 0, autosave + more)
    assert rarely.fsync_per_s <= often.fsync_per_s
    f = figures(fsync_per_s=disk)
    assert {s.what for s in h.assess(f, rarely)} <= {s.what for s in h.assess(f, often)}


def test_generator_judged_at_the_peak_rate():
    f = figures(generator_per_s=500.0)
    assert h.assess(f, h.Demand("full", rate=200, peak_rate=200)) == []
    assert [s.what for s in h.assess(f, h.Demand("full", rate=200, peak_rate=400))] == ["generator"]


host_figures = st.builds(
    figures, fsync_per_s=st.floats(1, 10_000), generator_per_s=st.floats(1, 1e6), cores=st.integers(1, 64),
    psi_cpu_some_avg10=st.floats(0, 100), psi_io_some_avg10=st.floats(0, 100))
demands = st.builds(h.Demand, profile=st.just("p"), rate=st.floats(0, 1_000), peak_rate=st.floats(0, 4_000))


@settings(max_examples=300)
@given(host_figures, demands, st.floats(0, 1), st.floats(0, 1), st.floats(0, 100), st.floats(0, 100))
def test_a_worse_host_never_turns_a_shortfall_into_a_fit(f, demand, disk, gen, cpu_up, io_up):
    """Monotonic: a slower disk, a slower core or more pressure never removes a shortfall."""
    worse = dataclasses.replace(f, fsync_per_s=f.fsync_per_s * disk, generator_per_s=f.generator_per_s * gen,
                                psi_cpu_some_avg10=min(100, f.psi_cpu_some_avg10 + cpu_up),
                                psi_io_some_avg10=min(100, f.psi_io_some_avg10 + io_up))
    assert {s.what for s in h.assess(f, demand)} <= {s.what for s in h.assess(worse, demand)}


@settings(max_examples=300)
@given(host_figures, demands, st.floats(1, 10))
def test_a_busier_profile_never_fits_where_a_lighter_one_fell_short(f, demand, factor):
    busier = h.Demand("p", demand.rate * factor, demand.peak_rate * factor)
    assert {s.what for s in h.assess(f, demand)} <= {s.what for s in h.assess(f, busier)}


@given(st.floats(0.01, 2_000))
def test_fsync_fits_exactly_at_rate_times_changes(rate):
    need = rate * h.CHANGES_PER_READING
    assert "fsync" not in [s.what for s in h.assess(figures(fsync_per_s=need), h.Demand("p", rate, 0))]
    below = figures(fsync_per_s=need * 0.999)
    assert "fsync" in [s.what for s in h.assess(below, h.Demand("p", rate, 0))]


# --- thresholds file -----------------------------------------------------------------------------------------------

def test_shipped_thresholds_load():
    t = h.Thresholds.load()
    assert t.min_cores >= 2 and t.fsync_margin >= 1 and t.generator_headroom >= 1
    assert 0 < t.max_io_pressure_pct < 100 and 0 < t.max_cpu_pressure_pct < 100


@pytest.mark.parametrize(("text", "message"), [
    ("thresholds:\n  fsync_margin: -1\n", "thresholds.fsync_margin = -1: expected a number >= 0"),
    ("thresholds:\n  fsync_rate: 1\n", "thresholds.fsync_rate: unknown"),
    ("other: 1\n", "expected a mapping 'thresholds:'"),
])
def test_malformed_thresholds_named(tmp_path, text, message):
    path = tmp_path / "host.yaml"
    path.write_text(text)
    with pytest.raises(h.HostFileError, match=message.replace("(", r"\(")):
        h.Thresholds.load(path)


# --- the monitor and assess_run ------------------------------------------------------------------------------------

def test_monitor_turns_psi_totals_into_per_second_shares(tmp_path):
    proc = proc_with(tmp_path / "proc")
    mon = h.HostMonitor(tmp_path, proc=proc)
    t0 = time.monotonic()
    last = (t0 - 1.0, 9256051 - 400_000, 9445688 - 100_000)  # 0.4 s of cpu stall, 0.1 s of io stall in ~1 s
    mon.sample(last)
    s = mon.summarise()
    assert s.samples == 1
    assert 30 < s.cpu_pressure_mean <= 40 and 5 < s.io_pressure_mean <= 10
    assert s.fsync_p50_ms is not None and s.fsync_p50_ms > 0


def test_monitor_samples_during_a_block_and_cleans_up(tmp_path):
    with h.HostMonitor(tmp_path, interval=0.05) as mon:
        time.sleep(0.3)
    s = mon.summary
    assert s is not None and s.samples >= 2 and s.seconds >= 0.3
    assert s.fsync_p50_ms is not None and s.load1_worst >= s.load1_mean >= 0
    assert list(tmp_path.iterdir()) == []


def summary(**over) -> h.MonitorSummary:
    base = dict(seconds=20.0, samples=20, cpu_pressure_mean=5.0, cpu_pressure_worst=9.0, io_pressure_mean=3.0,
                io_pressure_worst=8.0, load1_mean=1.0, load1_worst=1.5, load_per_core_mean=0.5, fsync_p50_ms=1.0,
                fsync_worst_ms=4.0)
    return h.MonitorSummary(**(base | over))


def test_calm_run_has_no_shortfall():
    assert h.assess_run(summary(), QUICK) == []
    assert h.assess_run(summary(samples=0, io_pressure_mean=99.0), QUICK) == []


def test_contended_run_named_with_mean_and_worst():
    [s] = h.assess_run(summary(io_pressure_mean=38.0, io_pressure_worst=61.0), QUICK)
    assert (s.what, s.when) == ("io_pressure", "during")
    assert s.text == "io pressure some mean 38%, worst 61% (bound ≤ 20%)"
    [d] = h.assess_run(summary(fsync_p50_ms=9.0, fsync_worst_ms=40.0), QUICK)
    assert d.what == "fsync" and "9.0 ms (p50) during the run, worst 40 ms" in d.text


@settings(max_examples=200)
@given(st.floats(0, 100), st.floats(0, 100), st.floats(0, 100), st.floats(0.1, 100), st.floats(0, 50))
def test_more_pressure_during_a_run_never_removes_a_shortfall(cpu, io, up, fsync_ms, slower):
    calm = summary(cpu_pressure_mean=cpu, io_pressure_mean=io, fsync_p50_ms=fsync_ms)
    worse = summary(cpu_pressure_mean=min(100, cpu + up), io_pressure_mean=min(100, io + up),
                    fsync_p50_ms=fsync_ms + slower)
    assert {s.what for s in h.assess_run(calm, QUICK)} <= {s.what for s in h.assess_run(worse, QUICK)}


# --- judge and the verdict -----------------------------------------------------------------------------------------

BREACH = "SLO breached under the 'quick' profile (fixtures/slo.yaml): delivery lost ratio 0.0300 (45/1500)"


def test_judge_blames_the_stack_on_a_host_that_carried_the_run():
    with pytest.raises(AssertionError) as info:
        h.judge(BREACH, figures(), summary(), demand=QUICK)
    assert type(info.value) is AssertionError and str(info.value) == BREACH


@pytest.mark.parametrize(("fig", "mon"), [
    (figures(fsync_per_s=240.0, fsync_p50_ms=4.1), summary()),  # short before the run
    (figures(), summary(io_pressure_mean=38.0)),                # short during it
    (figures(psi_cpu_some_avg10=50.0), None),                   # no monitor
    (None, summary(cpu_pressure_mean=60.0)),                     # no preflight
])
def test_judge_blames_the_environment_when_the_host_fell_short(fig, mon):
    with pytest.raises(h.EnvironmentVerdict) as info:
        h.judge(BREACH, fig, mon, demand=QUICK, figures_path="reports/environment.json")
    assert info.value.shortfalls and info.value.breach_text == BREACH


def test_verdict_message_says_environment_what_fell_short_and_where_the_figures_are():
    with pytest.raises(h.EnvironmentVerdict) as info:
        h.judge(BREACH, figures(fsync_per_s=240.0, fsync_p50_ms=4.1, psi_io_some_avg10=38.0),
                summary(cpu_pressure_mean=45.0, cpu_pressure_worst=80.0), demand=QUICK,
                figures_path="reports/environment.json")
    text = str(info.value)
    first = text.splitlines()[0]
    assert first == ("environment, not the stack: the host could not carry profile quick: the broker's disk did "
                     "240 fsync/s (p50 4.1 ms), the profile needs ≥ 700/s (100 readings/s × 7 saves); io pressure "
                     "some avg10 38% (bound ≤ 20%); during the run: cpu pressure some mean 45%, worst 80% "
                     "(bound ≤ 25%). Figures: reports/environment.json")
    assert text.endswith(f"What the suite saw (not held against the stack):\n{BREACH}")
    assert isinstance(info.value, AssertionError)


def test_verdict_survives_pickling_with_its_message():
    exc = h.EnvironmentVerdict(QUICK, h.assess(figures(cores=1), QUICK), breach_text=BREACH)
    back = pickle.loads(pickle.dumps(exc))
    assert isinstance(back, h.EnvironmentVerdict) and str(back) == str(exc)


# --- HostFit: the session's record ---------------------------------------------------------------------------------

def test_host_fit_writes_environment_json_and_records_runs(tmp_path):
    import json

    path = tmp_path / "reports" / "environment.json"
    fit = h.HostFit(figures(fsync_per_s=240.0, fsync_p50_ms=4.1), QUICK, h.Thresholds(), path)
    doc = json.loads(path.read_text())
    assert doc["profile"] == {"profile": "quick", "rate": 100, "peak_rate": 100, "autosave_changes": 1}
    assert doc["fsync_needed_per_s"] == 700 and doc["figures"]["fsync_per_s"] == 240
    assert [s["what"] for s in doc["shortfalls"]] == ["fsync"] and not fit.fits
    found = fit.record_run("latency", summary(io_pressure_mean=50.0))
    assert [s.what for s in found] == ["io_pressure"]
    doc = json.loads(path.read_text())
    assert doc["runs"]["latency"]["monitor"]["io_pressure_mean"] == 50
    with pytest.raises(h.EnvironmentVerdict, match="Figures: .*environment.json"):
        fit.judge(BREACH)
    assert "SHORT for profile quick" in fit.line()


def test_host_fit_monitor_records_the_block(tmp_path):
    fit = h.HostFit(figures(fsync_dir=str(tmp_path)), QUICK, h.Thresholds(), tmp_path / "environment.json")
    with fit.monitor("chaos/kill-broker", interval=0.05) as mon:
        time.sleep(0.15)
    assert mon.summary is not None and "chaos/kill-broker" in fit.runs
    assert fit.runs["chaos/kill-broker"]["monitor"]["samples"] == mon.summary.samples >= 1


def test_judging_keeps_the_stacks_assertion_and_converts_on_a_short_host(tmp_path):
    calm = h.HostFit(figures(), QUICK, h.Thresholds(), tmp_path / "calm.json")
    original = AssertionError(BREACH)
    with pytest.raises(AssertionError) as info:
        with calm.judging(summary()):
            raise original
    assert info.value is original
    with pytest.raises(h.EnvironmentVerdict) as info:
        with calm.judging(summary(io_pressure_mean=50.0)):
            raise original
    assert info.value.__cause__ is original and BREACH in str(info.value)
    short = h.HostFit(figures(cores=1), QUICK, h.Thresholds(), tmp_path / "short.json")
    with pytest.raises(h.EnvironmentVerdict, match="1 usable cores"):
        with short.judging():
            raise original
    with short.judging():
        pass  # no failure, no verdict
    with pytest.raises(KeyError):
        with short.judging():
            raise KeyError("not an assertion: the harness's own error passes through")
