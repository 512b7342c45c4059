"""Host preflight, its assessment against a profile, the run monitor and the environment verdict (hostcheck)."""

from __future__ import annotations

import dataclasses
import math
import os
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
    real = h.measure.os.fsync
    monkeypatch.setattr(h.measure.os, "fsync", lambda fd: (synced.append(fd), real(fd)))
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
    assert h.Demand("quick", 100, 100, autosave="1").fsync_per_s == 700
    assert h.Demand("quick", 100, 100, autosave="100").fsync_per_s == 7
    assert h.Demand("quick", 100, 100, autosave="1s").fsync_per_s == 1  # timed: whatever the rate
    assert h.Demand("quick", 2000, 2000, autosave="1s").fsync_per_s == 1
    assert h.assess(f, h.Demand("quick", 100, 100, autosave="100")) == []
    [s] = h.assess(figures(fsync_per_s=20.0, fsync_p50_ms=50), h.Demand("quick", 100, 100, autosave="10"))
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
    assert s.text == "io pressure some mean 38%, worst 61% (bound ≤ 20%; not attributed)"
    [d] = h.assess_run(summary(fsync_p50_ms=9.0, fsync_worst_ms=40.0), QUICK)
    assert d.what == "fsync" and "9.0 ms (p50) during the run, worst 40 ms" in d.text


def test_one_stalled_save_among_quick_ones_is_the_hosts():
    [s] = h.assess_run(summary(fsync_p50_ms=0.63, fsync_worst_ms=447.9), QUICK)
    assert (s.what, s.when, s.measured, s.needed) == ("stall", "during", 447.9, 250.0)
    assert s.text.startswith("the broker's disk stalled: one save in its directory took 448 ms during the run "
                             "(bound ≤ 250 ms) while the median save took 0.6 ms")
    assert h.assess_run(summary(fsync_p50_ms=0.63, fsync_worst_ms=240.0), QUICK) == []  # under the bound


def test_a_stall_under_the_stacks_own_writes_is_the_stacks_said_as_context():
    """A broker rewriting a grown database (or PostgreSQL recovering) fills the disk itself: not the host's stall."""
    own = summary(fsync_p50_ms=0.63, fsync_worst_ms=447.9, io_device="vda", device_write_mb_s=80.0,
                  own_write_mb_s=79.0, foreign_write_mb_s=1.0, foreign_write_pct=1.25)
    assert h.assess_run(own, QUICK) == []
    [said] = h.context(None, own, QUICK)
    assert said.startswith("the broker's disk stalled: one save in its directory took 448 ms during the run")
    assert said.endswith("but the stack's and harness's own writes were 79.0 of 80.0 MB/s on vda: not the host")
    foreign = summary(fsync_p50_ms=0.63, fsync_worst_ms=447.9, io_device="vda", device_write_mb_s=80.0,
                      own_write_mb_s=10.0, foreign_write_mb_s=70.0, foreign_write_pct=87.5)
    [s] = h.assess_run(foreign, QUICK)
    assert s.what == "stall" and "other writers 70.0 of 80.0 MB/s on vda (88%" in s.text


def test_slow_saves_throughout_are_judged_by_their_median_not_as_a_stall():
    """Every save slow (the stack loading the disk, or the host): the median rule and its attribution decide."""
    found = h.assess_run(summary(fsync_p50_ms=9.0, fsync_worst_ms=600.0), QUICK)
    assert [s.what for s in found] == ["fsync"]


@settings(max_examples=200)
@given(st.floats(0, 100), st.floats(0, 100), st.floats(0, 100), st.floats(0.1, 100), st.floats(0, 50))
def test_more_pressure_during_a_run_never_removes_a_shortfall(cpu, io, up, fsync_ms, slower):
    calm = summary(cpu_pressure_mean=cpu, io_pressure_mean=io, fsync_p50_ms=fsync_ms)
    worse = summary(cpu_pressure_mean=min(100, cpu + up), io_pressure_mean=min(100, io + up),
                    fsync_p50_ms=fsync_ms + slower)
    assert {s.what for s in h.assess_run(calm, QUICK)} <= {s.what for s in h.assess_run(worse, QUICK)}


# --- judge and the verdict -----------------------------------------------------------------------------------------

BREACH = "SLO breached under the 'quick' profile (fixtures/slo.yaml): mqtt:e2e p99 600.00 ms (bound ≤ 400 ms)"
E2E = [h.Breach("mqtt:e2e p99", 600.0, 400.0, "ms")]  # within what any shortfall here explains (1.5x)
LOSS = "SLO breached under the 'quick' profile (fixtures/slo.yaml): delivery lost ratio 0.0300 (45/1500)"


def timed() -> AssertionError:
    return h.timing_failure(BREACH, E2E)


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
        h.judge(BREACH, fig, mon, demand=QUICK, breaches=E2E, figures_path="reports/environment.json")
    assert info.value.shortfalls and info.value.breach_text == BREACH


def test_verdict_message_says_environment_what_fell_short_and_where_the_figures_are():
    with pytest.raises(h.EnvironmentVerdict) as info:
        h.judge(BREACH, figures(fsync_per_s=240.0, fsync_p50_ms=4.1, psi_io_some_avg10=38.0),
                summary(cpu_pressure_mean=45.0, cpu_pressure_worst=80.0), demand=QUICK, breaches=E2E,
                figures_path="reports/environment.json")
    text = str(info.value)
    first = text.splitlines()[0]
    assert first == ("environment, not the stack: the host could not carry profile quick: the broker's disk did "
                     "240 fsync/s (p50 4.1 ms), the profile needs ≥ 700/s (100 readings/s × 7 saves); io pressure "
                     "some avg10 38% (bound ≤ 20%; not attributed); during the run: cpu pressure some mean 45%, "
                     "worst 80% (bound ≤ 25%; not attributed). Figures: reports/environment.json")
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
    assert doc["profile"] == {"profile": "quick", "rate": 100, "peak_rate": 100, "autosave": "1"}
    assert doc["fsync_needed_per_s"] == 700 and doc["figures"]["fsync_per_s"] == 240
    assert [s["what"] for s in doc["shortfalls"]] == ["fsync"] and not fit.fits
    found = fit.record_run("latency", summary(io_pressure_mean=50.0))
    assert [s.what for s in found] == ["io_pressure"]
    doc = json.loads(path.read_text())
    assert doc["runs"]["latency"]["monitor"]["io_pressure_mean"] == 50
    with pytest.raises(h.EnvironmentVerdict, match="Figures: .*environment.json"):
        fit.judge(BREACH, E2E)
    assert "SHORT for profile quick" in fit.line()


def test_host_fit_monitor_records_the_block(tmp_path):
    fit = h.HostFit(figures(fsync_dir=str(tmp_path)), QUICK, h.Thresholds(), tmp_path / "environment.json")
    with fit.monitor("chaos/kill-broker", interval=0.05) as mon:
        time.sleep(0.15)
    assert mon.summary is not None and "chaos/kill-broker" in fit.runs
    assert fit.runs["chaos/kill-broker"]["monitor"]["samples"] == mon.summary.samples >= 1


def test_judging_keeps_the_stacks_assertion_and_converts_on_a_short_host(tmp_path):
    calm = h.HostFit(figures(), QUICK, h.Thresholds(), tmp_path / "calm.json")
    original = timed()
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


# --- attribution: whose CPU it was ---------------------------------------------------------------------------------

from indmlops.hostcheck import attribution as a  # noqa: E402


def pid_stat(pid, ppid, comm, utime, stime=0, cutime=0, cstime=0, start=1000) -> str:
    """A /proc/<pid>/stat line as the kernel writes it (fields 14–17 CPU, 22 starttime)."""
    return (f"{pid} ({comm}) S {ppid} {pid} {pid} 0 -1 4194304 98 0 0 0 {utime} {stime} {cutime} {cstime} 20 0 1 0 "
            f"{start} 3133440 406 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0")


def cpu_stat(*rows: tuple[int, ...]) -> str:
    """/proc/stat with one `cpuN user nice system idle iowait irq softirq steal guest guest_nice` line per row."""
    total = [sum(col) for col in zip(*rows, strict=True)]
    lines = ["cpu  " + " ".join(map(str, total))] + [f"cpu{i} " + " ".join(map(str, r)) for i, r in enumerate(rows)]
    return "\n".join(lines + ["intr 1 0", "ctxt 5"]) + "\n"


def test_pid_stat_parsed_with_a_comm_holding_spaces_and_parens():
    p = a.parse_pid_stat(pid_stat(4242, 1, "python (a) b", utime=30, stime=5, cutime=7, cstime=1, start=157752))
    assert p == a.ProcStat(4242, 1, "python (a) b", 157752, cpu=43, self_cpu=35)
    assert a.parse_pid_stat(Path("/proc/self/stat").read_text()).pid > 0
    with pytest.raises(ValueError):
        a.parse_pid_stat("12 (x) S 1 2")


def test_cpu_stat_sums_our_cores_busy_with_steal_and_not_guest_twice():
    text = cpu_stat((100, 0, 50, 800, 20, 5, 5, 20, 40, 0), (300, 10, 100, 500, 0, 0, 0, 0, 0, 0),
                    (999, 0, 0, 0, 0, 0, 0, 0, 0, 0))
    both = a.parse_cpu_stat(text, cpus={0, 1})
    # cpu0: 100 + 0 + 50 + 5 + 5 + 20 = 180 busy (guest 40 is already in user); cpu1: 410. cpu2 is not ours.
    assert both == a.CpuTicks(busy=590, steal=20, total=1000 + 910, cpus=2)
    assert a.parse_cpu_stat(text).cpus == 3
    with pytest.raises(ValueError):
        a.parse_cpu_stat("intr 1\n")


def write_proc(root: Path, stat: str, procs: list[str]) -> Path:
    if root.exists():
        import shutil
        shutil.rmtree(root)
    root.mkdir(parents=True)
    (root / "stat").write_text(stat)
    for line in procs:
        d = root / line.split()[0]
        d.mkdir()
        (d / "stat").write_text(line)
    return root


# Two cores, 100 ticks each between the snapshots (total grows by 200). Our trees: supervisord 10 → inference 11, and
# pytest 20 → locust 21. Not ours: postgres 30 (another session's database), and the kernel's irq/softirq.
BEFORE = [pid_stat(10, 1, "supervisord", 50), pid_stat(11, 10, "inference", 500), pid_stat(20, 1, "pytest", 300),
          pid_stat(21, 20, "locust", 100), pid_stat(30, 1, "postgres", 1000)]


def snaps(tmp_path, after_procs, *, busy_after=(60, 90), steal_after=(0, 0), roots=(10, 20)):
    before = a.snapshot(roots, write_proc(tmp_path / "p0", cpu_stat((0,) * 10, (0,) * 10), BEFORE), cpus={0, 1})
    rows = [(busy - steal, 0, 0, 100 - busy, 0, 0, 0, steal, 0, 0) for busy, steal in zip(busy_after, steal_after)]
    after = a.snapshot(roots, write_proc(tmp_path / "p1", cpu_stat(*rows), after_procs), cpus={0, 1})
    return before, after


def test_own_and_foreign_cores_split_by_process_tree(tmp_path):
    after = [pid_stat(10, 1, "supervisord", 52), pid_stat(11, 10, "inference", 560), pid_stat(20, 1, "pytest", 310),
             pid_stat(21, 20, "locust", 118), pid_stat(30, 1, "postgres", 1050)]
    share = a.attribute(*snaps(tmp_path, after))
    # busy 60 + 90 = 150 ticks = 1.5 cores; ours 2 + 60 + 10 + 18 = 90 = 0.9; foreign 60 = postgres 50 + 10 kernel.
    assert (share.cores, share.busy, share.own, share.foreign) == (2, 1.5, 0.9, pytest.approx(0.6))
    assert share.foreign_pct == pytest.approx(30) and share.top_foreign == (("postgres", 0.5),)


def test_the_stacks_hog_is_own_and_the_same_hog_elsewhere_is_foreign(tmp_path):
    hog_in_stack = BEFORE + [pid_stat(12, 10, "spin", 0, start=2000)]
    after = [pid_stat(10, 1, "supervisord", 50), pid_stat(11, 10, "inference", 500), pid_stat(20, 1, "pytest", 300),
             pid_stat(21, 20, "locust", 100), pid_stat(30, 1, "postgres", 1000)]
    before = a.snapshot((10, 20), write_proc(tmp_path / "p0", cpu_stat((0,) * 10, (0,) * 10), hog_in_stack))
    busy = cpu_stat((95, 0, 0, 5, 0, 0, 0, 0, 0, 0), (5, 0, 0, 95, 0, 0, 0, 0, 0, 0))
    ours = a.attribute(before, a.snapshot((10, 20), write_proc(tmp_path / "p1", busy,
                                                                after + [pid_stat(12, 10, "spin", 95, start=2000)])))
    theirs = a.attribute(before, a.snapshot((10, 20), write_proc(tmp_path / "p1", busy,
                                                                  after + [pid_stat(12, 1, "spin", 95, start=2000)])))
    assert (ours.own, ours.foreign) == (0.95, pytest.approx(0.05))
    assert (theirs.own, theirs.foreign) == (0, 1.0) and theirs.top_foreign == (("spin", 0.95),)


def test_a_killed_service_counts_only_its_last_interval_through_its_reaper(tmp_path):
    """inference (11) had used 500 ticks, used 40 more, was killed and reaped: supervisord's cutime grew by 540.
    Its replacement (12, born since) used 15. Ours: 40 + 15 + supervisord's own 2, not 540."""
    after = [pid_stat(10, 1, "supervisord", 52, cutime=540), pid_stat(12, 10, "inference", 15, start=5000),
             pid_stat(20, 1, "pytest", 300), pid_stat(21, 20, "locust", 100), pid_stat(30, 1, "postgres", 1000)]
    share = a.attribute(*snaps(tmp_path, after, busy_after=(57, 50)))
    assert share.own == pytest.approx(0.57) and share.foreign == pytest.approx(0.5)


def test_a_reused_pid_is_a_new_process_and_a_vanished_stranger_costs_nothing(tmp_path):
    # locust (21) exited idle and pytest reaped it (cutime += its 100); pid 21 is now another program, started since
    # (start 9000): its 30 ticks are all of this interval, not 30 - 100. postgres (30) exited, reaped by init (not
    # ours): nothing is taken off our count for it.
    after = [pid_stat(10, 1, "supervisord", 50), pid_stat(11, 10, "inference", 500),
             pid_stat(20, 1, "pytest", 300, cutime=100), pid_stat(21, 20, "sh", 30, start=9000)]
    share = a.attribute(*snaps(tmp_path, after, busy_after=(30, 10)))
    assert share.own == pytest.approx(0.3) and share.foreign == pytest.approx(0.1)


def test_steal_is_always_foreign(tmp_path):
    after = [pid_stat(10, 1, "supervisord", 50), pid_stat(11, 10, "inference", 560), pid_stat(20, 1, "pytest", 300),
             pid_stat(21, 20, "locust", 100), pid_stat(30, 1, "postgres", 1000)]
    share = a.attribute(*snaps(tmp_path, after, busy_after=(90, 30), steal_after=(30, 30)))
    assert (share.own, share.steal, share.foreign) == (0.6, 0.6, pytest.approx(0.6))


def test_own_never_exceeds_busy_and_no_time_is_no_share(tmp_path):
    after = [pid_stat(10, 1, "supervisord", 50), pid_stat(11, 10, "inference", 900), pid_stat(20, 1, "pytest", 300),
             pid_stat(21, 20, "locust", 100), pid_stat(30, 1, "postgres", 1000)]
    share = a.attribute(*snaps(tmp_path, after, busy_after=(50, 50)))
    assert (share.own, share.foreign) == (1.0, 0.0)
    before, _ = snaps(tmp_path, after)
    assert a.attribute(before, before) is None


def test_descendants_follow_the_whole_tree_and_ignore_absent_roots():
    procs = [a.ProcStat(10, 1, "supervisord", 0, 0), a.ProcStat(11, 10, "sh", 0, 0),
             a.ProcStat(12, 11, "gunicorn", 0, 0), a.ProcStat(13, 12, "worker", 0, 0),
             a.ProcStat(30, 1, "postgres", 0, 0)]
    assert a.descendants(procs, [10, 99]) == {(10, 0), (11, 0), (12, 0), (13, 0)}
    assert a.descendants(procs, []) == set()


# --- the verdict on attributed figures -----------------------------------------------------------------------------

def attributed(**over) -> h.MonitorSummary:
    """A run on a busy host (PSI cpu 85 %) whose busy cores were all the stack's and the harness's."""
    base = dict(cpu_pressure_mean=85.0, cpu_pressure_worst=97.0, io_pressure_mean=45.0, io_pressure_worst=70.0,
                cpu_attributed=True, cores=2, busy_cores_mean=1.9, own_cores_mean=1.8, foreign_cores_mean=0.1,
                foreign_cores_worst=0.3, steal_cores_mean=0.0)
    return summary(**(base | over))


def test_own_load_is_not_the_hosts_whatever_the_pressure():
    """A stack spinning a core, or saving a huge database, raises PSI; with our trees known that is no shortfall."""
    assert h.assess_run(attributed(), QUICK) == []
    assert h.assess(figures(psi_cpu_some_avg10=90.0, psi_io_some_avg10=60.0, own_cores=1.8, foreign_cores=0.1,
                            busy_cores=1.9, steal_cores=0.0), QUICK) == []


def test_foreign_load_is_the_hosts_named_with_cores_and_who():
    [s] = h.assess_run(attributed(foreign_cores_mean=1.3, foreign_cores_worst=1.9, own_cores_mean=0.6,
                                  top_foreign=["stress-ng 1.10", "postgres 0.15"]), QUICK)
    assert (s.what, s.when, s.measured, s.needed) == ("foreign_cpu", "during", 65, 25)
    assert s.text == ("other work took 1.3 of 2 cores, worst 1.9 (65%, bound ≤ 25%: stress-ng 1.10, postgres 0.15; "
                      "the stack and harness 0.6, cpu pressure some 85%)")
    [b] = h.assess(figures(foreign_cores=0.8, own_cores=1.0, busy_cores=1.8, steal_cores=0.0,
                           psi_cpu_some_avg10=40.0), QUICK)
    assert (b.what, b.when) == ("foreign_cpu", "before")


def test_foreign_load_where_nothing_waited_is_not_the_hosts():
    """Another session's pytest on one core while ours wanted less than the other: busy, not contended (measured
    here: foreign 1.0 of 2 cores, cpu pressure 6 %)."""
    assert h.assess_run(attributed(foreign_cores_mean=1.0, cpu_pressure_mean=6.0), QUICK) == []
    assert [s.what for s in h.assess_run(attributed(foreign_cores_mean=1.0, cpu_pressure_mean=None), QUICK)] == \
        ["foreign_cpu"]  # no PSI to say nobody waited: foreign alone judges


def test_steal_over_its_bound_is_the_hosts():
    found = h.assess_run(attributed(foreign_cores_mean=0.3, steal_cores_mean=0.3), QUICK)
    assert [s.what for s in found] == ["steal"]
    assert found[0].text == "the hypervisor stole 0.30 of 2 cores (15%, bound ≤ 10%)"


def test_unattributed_run_still_judged_on_pressure_and_says_so():
    [s] = h.assess_run(summary(cpu_pressure_mean=40.0), QUICK)
    assert s.what == "cpu_pressure" and s.text.endswith("(bound ≤ 25%; not attributed)")
    f = h.preflight(fsync_dir=Path("/nonexistent"), fsync_seconds=0.01, rtt_seconds=0.01, generator_seconds=0.01)
    assert any("CPU not attributed" in n for n in f.notes) and not f.cpu_attributed


@settings(max_examples=200)
@given(st.floats(0, 2), st.floats(0, 2), st.floats(0, 2), st.floats(0, 100))
def test_moving_cpu_from_foreign_to_own_never_adds_a_shortfall(own, foreign, moved, psi):
    moved = min(moved, foreign)
    before = attributed(own_cores_mean=own, foreign_cores_mean=foreign, cpu_pressure_mean=psi)
    after = attributed(own_cores_mean=own + moved, foreign_cores_mean=foreign - moved, cpu_pressure_mean=psi)
    assert {s.what for s in h.assess_run(after, QUICK)} <= {s.what for s in h.assess_run(before, QUICK)}


def test_a_breach_under_own_load_is_the_stacks_and_under_foreign_load_the_hosts(tmp_path):
    fit = h.HostFit(figures(foreign_cores=0.1, own_cores=1.0, busy_cores=1.1, steal_cores=0.0,
                            psi_cpu_some_avg10=90.0), QUICK,
                    h.Thresholds(), tmp_path / "environment.json")
    original = timed()
    with pytest.raises(AssertionError) as info:
        with fit.judging(attributed()):
            raise original
    assert info.value is original and type(info.value) is AssertionError
    with pytest.raises(h.EnvironmentVerdict, match="other work took 1.2 of 2 cores") as env:
        with fit.judging(attributed(foreign_cores_mean=1.2, own_cores_mean=0.7)):
            raise original
    assert env.value.__cause__ is original


# --- attribution on this host, with real processes -----------------------------------------------------------------

# A stand-in for supervisord: it leaves pytest's tree (fork, parent exits, setsid) so it is ours only when named as
# a root, and spins a child for `seconds` (the stack's hog); prints "its pid, the hog's pid".
FAKE_SUPERVISOR = """
import os, sys, time
if os.fork():
    os._exit(0)
os.setsid()
end = time.monotonic() + float(sys.argv[1])
hog = os.fork()
if hog == 0:
    os.close(1)
    while time.monotonic() < end:
        pass
    os._exit(0)
print(os.getpid(), hog, flush=True)
os.close(1)
os.waitpid(hog, 0)
"""


def _fake_supervisor(script: str, *args: str):
    """Start `script` (it prints "<supervisor pid> <hog pid>" and detaches), yield the pids, kill both after."""
    import signal
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", script, *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         text=True, timeout=10, check=True).stdout
    supervisor, hog = map(int, out.split())
    yield supervisor, hog
    for pid in (hog, supervisor):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.fixture
def stack_hog_running():
    yield from _fake_supervisor(FAKE_SUPERVISOR, "20")


def test_a_hog_below_the_stack_is_ours_and_the_same_hog_unclaimed_is_foreign(stack_hog_running, tmp_path):
    """The same window watched twice: once with the fake supervisord named as the stack's root, once without. The
    host is shared (others keep it near saturation), so the bound is placed between the two by the hog's own CPU."""
    supervisor, hog = stack_hog_running
    me = os.getpid()
    cpus = os.sched_getaffinity(0)
    first = a.snapshot([me], cpus=cpus)
    with h.HostMonitor(None, interval=0.5, own_roots=lambda: [me, supervisor]) as ours, \
            h.HostMonitor(None, interval=0.5, own_roots=lambda: [me]) as unclaimed:
        time.sleep(2.2)
    last = a.snapshot([me], cpus=cpus)
    hog_key = next(k for k in last.procs if k[0] == hog)
    per_core = (last.ticks.total - first.ticks.total) / len(cpus)
    hog_cores = (last.procs[hog_key].cpu - first.procs[hog_key].cpu) / per_core
    s_ours, s_unclaimed = ours.summary, unclaimed.summary
    assert s_ours.cpu_attributed and s_unclaimed.cpu_attributed and s_ours.samples >= 3
    assert hog_cores > 0.2, f"the hog got {hog_cores:.2f} cores: too little to tell anything apart"
    assert s_ours.own_cores_mean >= 0.7 * hog_cores, (s_ours, hog_cores)
    moved = s_unclaimed.foreign_cores_mean - s_ours.foreign_cores_mean
    assert moved >= 0.7 * hog_cores, (s_ours, s_unclaimed, hog_cores)
    # max_cpu_pressure_pct -1 holds the contention gate open: this test is about whose the hog's CPU is.
    bound = h.Thresholds(max_foreign_cpu_pct=100 * (s_ours.foreign_cores_mean + hog_cores / 2) / len(cpus),
                         max_cpu_pressure_pct=-1)
    assert "foreign_cpu" not in [s.what for s in h.assess_run(s_ours, QUICK, bound)]
    assert "foreign_cpu" in [s.what for s in h.assess_run(s_unclaimed, QUICK, bound)]


# --- I/O attribution: whose disk writes they were ------------------------------------------------------------------

from indmlops.hostcheck import diskio as d  # noqa: E402

# /proc/diskstats as 6.x writes it (20 fields: flushes completed is the 18th after the name), a partition, a loop
# device, and a 4.x line (14 fields: no discard or flush columns).
DISKSTATS = """\
   7       0 loop0 12 0 96 1 0 0 0 0 0 4 1 0 0 0 0 0 0
 254       0 vda 209079 13265 8640866 458655 {ops} 361925 {sectors} 456021 6 281740 1050337 593497 102 \
173869616 87795 {flushes} 47865
 254       1 vda1 100 0 800 10 {ops} 0 {sectors} 400 0 300 410 0 0 0 0 0 0
   8       0 sdb 5 0 40 1 7 0 56 2 0 3 3
"""


def diskstats(sectors: int, ops: int = 0, flushes: int = 0) -> str:
    return DISKSTATS.format(sectors=sectors, ops=ops, flushes=flushes)


def pid_io(write_bytes: int, cancelled: int = 0) -> str:
    return (f"rchar: 6976\nwchar: {write_bytes}\nsyscr: 10\nsyscw: 3\nread_bytes: 0\nwrite_bytes: {write_bytes}\n"
            f"cancelled_write_bytes: {cancelled}\n")


def test_diskstats_sums_the_named_devices_writes_ops_and_flushes():
    got = d.parse_diskstats(diskstats(sectors=2048, ops=70, flushes=9), frozenset({"vda"}))
    assert got == d.DiskCounters(write_bytes=2048 * 512, write_ops=70, flushes=9)
    old = d.parse_diskstats(diskstats(0), frozenset({"sdb"}))
    assert old == d.DiskCounters(56 * 512, 7, None)  # a 4.x kernel: flushes not counted, said as None
    assert d.parse_diskstats(diskstats(0), frozenset({"vda", "sdb"})).flushes is None
    with pytest.raises(ValueError, match="none of nvme0n1"):
        d.parse_diskstats(diskstats(0), frozenset({"nvme0n1"}))
    assert d.parse_diskstats(Path("/proc/diskstats").read_text(), frozenset(
        line.split()[2] for line in Path("/proc/diskstats").read_text().splitlines())).write_bytes >= 0


def test_pid_io_is_written_less_cancelled():
    assert d.parse_pid_io(pid_io(4_009_984, cancelled=8192)) == 4_001_792
    assert d.parse_pid_io(Path("/proc/self/io").read_text()) >= 0
    with pytest.raises(ValueError):
        d.parse_pid_io("rchar: 1\n")


def fake_sys(root: Path) -> Path:
    """/sys/dev/block links as the kernel lays them out: vda a virtio disk with partition vda1, loop0 virtual."""
    disk = root / "devices/pci0000:00/virtio1/block/vda"
    (disk / "vda1").mkdir(parents=True)
    (disk / "vda1" / "partition").write_text("1\n")
    (root / "devices/virtual/block/loop0").mkdir(parents=True)
    (root / "dev/block").mkdir(parents=True)
    (root / "block").mkdir()
    for link, target in (("dev/block/254:0", disk), ("dev/block/254:1", disk / "vda1"),
                         ("dev/block/7:0", root / "devices/virtual/block/loop0"), ("block/vda", disk),
                         ("block/loop0", root / "devices/virtual/block/loop0")):
        (root / link).symlink_to(target)
    return root


def test_device_of_a_directory_is_its_disk_a_partitions_parent_or_every_real_disk(tmp_path):
    sys = fake_sys(tmp_path / "sys")
    assert d.devices_for(Path("/b"), sys, dev=os.makedev(254, 1)) == d.Devices(frozenset({"vda"}), "vda (holds /b)")
    assert d.devices_for(Path("/b"), sys, dev=os.makedev(254, 0)).names == {"vda"}
    assert d.devices_for(Path("/b"), sys, dev=os.makedev(7, 0)).names == {"loop0"}  # a loop mount is its own disk
    overlay = d.devices_for(Path("/b"), sys, dev=os.makedev(0, 45))
    assert overlay.names == {"vda"}  # loop0 is virtual: left out of the fallback
    assert overlay.label == "all non-virtual disks (vda): /b is on 0:45, which is no block device"


def io_proc(root: Path, sectors: int, procs: list[tuple[str, int | None]], flushes: int = 0) -> Path:
    """A /proc with two idle cores, diskstats, and per process its stat line and io (None: unreadable io)."""
    write_proc(root, cpu_stat((0,) * 10, (0,) * 10), [stat for stat, _ in procs])
    (root / "diskstats").write_text(diskstats(sectors, ops=sectors // 8, flushes=flushes))
    for stat, written in procs:
        io = root / stat.split()[0] / "io"
        if written is None:
            io.mkdir()  # reading a directory fails like EACCES would, with an OSError other than PermissionError
        else:
            io.write_text(pid_io(written))
    return root


VDA = d.Devices(frozenset({"vda"}), "vda (holds /b)")
MB = 1 << 20  # a whole number of 512-byte sectors


def io_snaps(tmp_path, before, after, *, sectors=(0, 80 * MB // 512), probe=(0, 0)):
    """Snapshots 1 s apart (the `at` stamps set): `before`/`after` are [(pid stat line, write_bytes)]."""
    snaps_ = []
    for i, (procs, sect, pr) in enumerate(((before, sectors[0], probe[0]), (after, sectors[1], probe[1]))):
        proc = io_proc(tmp_path / f"p{i}", sect, procs)
        s = d.io_snapshot(a.snapshot((10, 20), proc, cpus={0, 1}), VDA, proc, pr)
        snaps_.append(dataclasses.replace(s, at=float(i)))
    return snaps_


SUPERVISORD, BROKER, PYTEST = (pid_stat(10, 1, "supervisord", 0), pid_stat(11, 10, "mosquitto", 0),
                               pid_stat(20, 1, "pytest", 0))
HOG = pid_stat(30, 1, "stress-ng-hdd", 0)


def test_own_and_foreign_writes_split_by_tree_and_the_journal_by_who_was_charged(tmp_path):
    # 80 MB reached vda in 1 s. The broker was charged 30 MB, a stranger 30 MB: the 20 MB nobody was charged with
    # (journal, metadata) is split 1:1, so ours 40, foreign 40.
    before = [(SUPERVISORD, 0), (BROKER, 5 * MB), (PYTEST, 0), (HOG, 7 * MB)]
    after = [(SUPERVISORD, 0), (BROKER, 35 * MB), (PYTEST, 0), (HOG, 37 * MB)]
    share = d.attribute_io(*io_snaps(tmp_path, before, after))
    assert (share.device, share.own, share.foreign) == (80 * MB, 40 * MB, 40 * MB)
    assert share.foreign_pct == 50 and share.seconds == 1 and share.ops == 80 * MB // 512 // 8


def test_the_stacks_saves_and_their_journal_are_own(tmp_path):
    """The broker rewriting its database: charged 10 MB, the device wrote 36 MB (the journal of small saves; measured
    on ext4: 15 KB per 4 KB save). Nobody else was charged, so the journal is ours: 0 foreign."""
    share = d.attribute_io(*io_snaps(tmp_path, [(SUPERVISORD, 0), (BROKER, 0), (PYTEST, 0)],
                                     [(SUPERVISORD, 0), (BROKER, 10 * MB), (PYTEST, 0)], sectors=(0, 36 * MB // 512)))
    assert (share.own, share.foreign) == (36 * MB, 0)


def test_uncharged_writes_are_nobodys_when_nobody_or_someone_hidden_was_charged(tmp_path):
    idle = [(SUPERVISORD, 0), (BROKER, 0), (PYTEST, 0)]
    share = d.attribute_io(*io_snaps(tmp_path, idle, idle))
    assert (share.own, share.foreign, share.unattributed) == (0, 0, 80 * MB)  # nobody charged: no evidence
    hidden = [(SUPERVISORD, 0), (BROKER, 10 * MB), (PYTEST, 0)]
    before, after = io_snaps(tmp_path, idle, hidden)
    share = d.attribute_io(before, dataclasses.replace(after, hidden=1))
    # a process we may not read: the rest is nobody's, neither the host's nor the stack's
    assert (share.own, share.foreign, share.unattributed) == (10 * MB, 0, 70 * MB)
    readable = [(SUPERVISORD, 0), (BROKER, 10 * MB), (PYTEST, 0), (pid_stat(31, 1, "cp", 0), 10 * MB)]
    before, after = io_snaps(tmp_path, [*idle, (pid_stat(31, 1, "cp", 0), 0)], readable)
    share = d.attribute_io(before, dataclasses.replace(after, hidden=1))
    assert (share.own, share.foreign, share.unattributed) == (10 * MB, 10 * MB, 60 * MB)  # only the readable one


def test_a_stall_under_hidden_writers_is_not_the_hosts_by_their_bytes():
    """As non-root the broker's rewrite journal is uncharged and some processes unreadable: those bytes no longer
    count as other writers, so a stall while the stack wrote is the stack's, said with the unattributed share."""
    hidden = writes(40.0, 12.0, foreign_write_mb_s=0.0, foreign_write_pct=0.0, unattributed_write_mb_s=28.0)
    assert h.assess_run(summary(fsync_p50_ms=9.0, fsync_worst_ms=40.0, **hidden), QUICK) == []
    [said] = h.context(None, summary(fsync_p50_ms=9.0, fsync_worst_ms=40.0, **hidden), QUICK)
    assert said.endswith("own writes were 12.0 of 40.0 MB/s on vda, 28.0 by nobody we may read (not counted "
                         "against the host): not the host")


def test_the_probes_own_saves_are_set_aside_from_ours_and_the_devices(tmp_path):
    idle = [(SUPERVISORD, 0), (BROKER, 0), (PYTEST, 0)]
    share = d.attribute_io(*io_snaps(tmp_path, idle, [(SUPERVISORD, 0), (BROKER, 0), (PYTEST, 2 * MB)],
                                     sectors=(0, 3 * MB // 512), probe=(0, 2 * MB)))
    assert (share.device, share.own, share.foreign, share.unattributed) == (MB, 0, 0, MB)


def test_a_reaped_childs_writes_count_once_and_a_reused_pid_is_a_new_process(tmp_path):
    """A chaos client (21) had written 4 MB, wrote 1 MB more and was reaped by pytest, whose io grew by its whole
    5 MB at wait() (the kernel folds a reaped child's io into its parent, like cutime). Pid 31 is now a stranger born
    since: all its 3 MB are of this interval. Ours 1 MB, not 5."""
    client = pid_stat(21, 20, "chaos", 0)
    before = [(SUPERVISORD, 0), (BROKER, 0), (PYTEST, 0), (client, 4 * MB), (pid_stat(31, 1, "old", 0), 50 * MB)]
    after = [(SUPERVISORD, 0), (BROKER, 0), (PYTEST, 5 * MB), (pid_stat(31, 1, "cp", 0, start=9000), 3 * MB)]
    share = d.attribute_io(*io_snaps(tmp_path, before, after, sectors=(0, 4 * MB // 512)))
    assert (share.own, share.foreign) == (MB, 3 * MB)


def test_no_time_is_no_share_and_counters_never_go_negative(tmp_path):
    procs = [(SUPERVISORD, 0), (BROKER, 9 * MB), (PYTEST, 0)]
    before, after = io_snaps(tmp_path, procs, [(SUPERVISORD, 0), (BROKER, 0), (PYTEST, 0)], sectors=(512, 0))
    assert d.attribute_io(before, before) is None
    share = d.attribute_io(before, after)
    assert (share.device, share.own, share.foreign) == (0, 0, 0)


# --- the verdict on a slow disk, attributed ------------------------------------------------------------------------

def writes(device: float, own: float, **over) -> dict:
    """The write figures of a preflight or a run on vda: MB/s; foreign is the rest."""
    return dict(io_device="vda (holds /b)", device_write_mb_s=device, own_write_mb_s=own,
                foreign_write_mb_s=device - own, foreign_write_pct=100 * (device - own) / device if device else 0.0,
                write_ops_per_s=900.0, flushes_per_s=300.0) | over


def test_a_slow_save_under_the_stacks_own_writes_is_not_the_hosts_and_says_so():
    slow = summary(fsync_p50_ms=9.0, fsync_worst_ms=40.0, **writes(40.0, 38.0))
    assert h.assess_run(slow, QUICK) == []
    assert h.context(None, slow, QUICK) == [
        "a save in the broker's directory took 9.0 ms (p50) during the run, worst 40 ms (bound ≤ 5 ms), but the "
        "stack's and harness's own writes were 38.0 of 40.0 MB/s on vda: not the host"]


def test_a_slow_save_under_foreign_writes_is_the_hosts_named_with_whose():
    [s] = h.assess_run(summary(fsync_p50_ms=9.0, fsync_worst_ms=40.0, **writes(40.0, 12.0)), QUICK)
    assert (s.what, s.when, s.measured) == ("fsync", "during", 9.0)
    assert s.text == ("a save in the broker's directory took 9.0 ms (p50) during the run, worst 40 ms (bound ≤ 5 ms; "
                      "other writers 28.0 of 40.0 MB/s on vda (70%, held against the host from 50%; the stack and "
                      "harness 12.0))")
    [few] = h.assess_run(summary(fsync_p50_ms=9.0, **writes(0.4, 0.3)), QUICK)  # the disk itself is slow
    assert few.text.endswith("the stack and harness 0.3, under 0.5 MB/s: too little to slow a save))")
    [unattributed] = h.assess_run(summary(fsync_p50_ms=9.0, fsync_worst_ms=40.0), QUICK)
    assert unattributed.text.endswith("(bound ≤ 5 ms; I/O not attributed: the broker's own saves queue ahead of it)")


def test_a_slow_preflight_disk_is_the_hosts_only_by_the_preflights_foreign_writes():
    slow = dict(fsync_per_s=240.0, fsync_p50_ms=4.1)
    [s] = h.assess(figures(**slow, **writes(20.0, 2.0)), QUICK)
    assert s.text.endswith("(100 readings/s × 7 saves); other writers 18.0 of 20.0 MB/s on vda (90%, held against "
                           "the host from 50%; the stack and harness 2.0)")
    ours = figures(**slow, **writes(20.0, 15.0))  # a runaway broker already rewriting its database before the run
    assert h.assess(ours, QUICK) == []
    assert h.context(ours, None, QUICK)[0].startswith("before the run the broker's disk did 240 fsync/s")


@settings(max_examples=300)
@given(st.floats(0.01, 500), st.floats(0, 1), st.floats(0, 1), st.floats(0, 50), st.floats(0, 20))
def test_moving_writes_from_foreign_to_own_never_adds_a_disk_shortfall(device, own, moved, p50, floor):
    t = h.Thresholds(min_own_write_mb_s=floor)
    own, more = device * own, min(device * (1 - own), device * moved)
    before = summary(fsync_p50_ms=p50, **writes(device, own))
    after = summary(fsync_p50_ms=p50, **writes(device, own + more))
    assert {s.what for s in h.assess_run(after, QUICK, t)} <= {s.what for s in h.assess_run(before, QUICK, t)}


def test_a_breach_under_own_io_stays_the_stacks_with_a_note_and_under_foreign_io_is_the_hosts(tmp_path):
    fit = h.HostFit(figures(**writes(1.0, 0.9)), QUICK, h.Thresholds(), tmp_path / "environment.json")
    original = timed()
    with pytest.raises(AssertionError) as info:
        with fit.judging(summary(fsync_p50_ms=9.0, **writes(40.0, 38.0))):
            raise original
    assert info.value is original and type(info.value) is AssertionError
    assert info.value.__notes__ == [
        "host: a save in the broker's directory took 9.0 ms (p50) during the run, worst 4 ms (bound ≤ 5 ms), but the "
        "stack's and harness's own writes were 38.0 of 40.0 MB/s on vda: not the host"]
    with pytest.raises(h.EnvironmentVerdict, match="other writers 28.0 of 40.0 MB/s on vda"):
        with fit.judging(summary(fsync_p50_ms=9.0, **writes(40.0, 12.0))):
            raise timed()
    with pytest.raises(AssertionError) as plain:
        h.judge(BREACH, figures(), summary(fsync_p50_ms=9.0, **writes(40.0, 38.0)), demand=QUICK)
    assert type(plain.value) is AssertionError and str(plain.value) == BREACH and plain.value.__notes__
    run = fit.record_run("latency", summary(fsync_p50_ms=9.0, **writes(40.0, 38.0)))
    assert run == [] and fit.runs["latency"]["context"][0].endswith("38.0 of 40.0 MB/s on vda: not the host")


# --- I/O attribution on this host, with a real disk hog ------------------------------------------------------------

# A stand-in for supervisord, as FAKE_SUPERVISOR, whose child writes and fsyncs 4 MB files back to back in argv[2]
# (a broker rewriting a grown database with autosave_interval 1) for argv[1] seconds, pausing 50 ms between saves:
# ≤ 4 MB ÷ 0.05 s = 80 MB/s, enough to tell apart without starving the others sharing the disk (unpaced: ~500 MB/s).
FAKE_SUPERVISOR_DISK = FAKE_SUPERVISOR.replace("""    while time.monotonic() < end:
        pass
""", """    block = b"\\1" * 4_000_000
    while time.monotonic() < end:
        fd = os.open(sys.argv[2] + "/db.new", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.write(fd, block)
        os.fsync(fd)
        os.close(fd)
        os.replace(sys.argv[2] + "/db.new", sys.argv[2] + "/db")
        time.sleep(0.05)
""")


@pytest.fixture
def stack_disk_hog_running(tmp_path):
    (tmp_path / "hog").mkdir()
    yield from _fake_supervisor(FAKE_SUPERVISOR_DISK, "20", str(tmp_path / "hog"))


def test_a_disk_hog_below_the_stack_is_ours_and_the_same_hog_unclaimed_is_foreign(stack_disk_hog_running, tmp_path):
    """The same window watched twice, the probe beside the hog on one filesystem: with the fake supervisord named as
    the stack's root its saves are ours and a slow probe is no shortfall; unclaimed, they are foreign and it is. The
    disk is shared (another session's stress-ng writes here), so the share bound is placed from the hog's own bytes
    (its /proc/<pid>/io over the window)."""
    supervisor, hog = stack_disk_hog_running
    me = os.getpid()
    # A probe directory each: two probes sharing one file would replace and unlink it under each other.
    probe, probe2 = tmp_path / "probe", tmp_path / "probe2"
    probe.mkdir()
    probe2.mkdir()
    hog_io = Path(f"/proc/{hog}/io")
    first, t0 = d.parse_pid_io(hog_io.read_text()), time.monotonic()
    with h.HostMonitor(probe, interval=0.5, own_roots=lambda: [me, supervisor]) as ours, \
            h.HostMonitor(probe2, interval=0.5, own_roots=lambda: [me]) as unclaimed:
        time.sleep(2.7)
    hog_mb_s = (d.parse_pid_io(hog_io.read_text()) - first) / (time.monotonic() - t0) / 1e6
    s_ours, s_unclaimed = ours.summary, unclaimed.summary
    assert s_ours.io_attributed and s_unclaimed.io_attributed and s_ours.samples >= 4, (s_ours, ours._notes)
    assert s_ours.fsync_p50_ms is not None and s_unclaimed.fsync_p50_ms is not None
    assert hog_mb_s > 2, f"the hog wrote {hog_mb_s:.1f} MB/s: too little to tell anything apart"
    assert s_ours.own_write_mb_s >= 0.7 * hog_mb_s, (s_ours, hog_mb_s)
    moved = s_unclaimed.foreign_write_mb_s - s_ours.foreign_write_mb_s
    assert moved >= 0.7 * hog_mb_s, (s_ours, s_unclaimed, hog_mb_s)
    # max_fsync_p50_ms_during 0 makes every probe slow and min_own_write_mb_s 0 keeps the floor out of it: this test
    # is about whose the hog's writes are. The bound sits half the hog's rate above what was foreign with it ours.
    device = s_ours.device_write_mb_s
    bound = h.Thresholds(max_fsync_p50_ms_during=0, min_own_write_mb_s=0,
                         min_foreign_write_pct=min(100.0, 100 * (s_ours.foreign_write_mb_s + hog_mb_s / 2) / device))
    assert "fsync" not in [s.what for s in h.assess_run(s_ours, QUICK, bound)]
    assert "fsync" in [s.what for s in h.assess_run(s_unclaimed, QUICK, bound)]
    # A breach with only our own disk load stays the stack's: a plain AssertionError, the writes noted as context
    # (the CPU bounds opened: the shared host's stress-ng is not what this test is about).
    disk_only = dataclasses.replace(bound, max_foreign_cpu_pct=100, max_steal_pct=100)
    with pytest.raises(AssertionError) as info:
        h.judge(BREACH, None, s_ours, demand=QUICK, thresholds=disk_only)
    assert type(info.value) is AssertionError and "not the host" in info.value.__notes__[0]
    with pytest.raises(h.EnvironmentVerdict, match="other writers"):
        h.judge(BREACH, None, s_unclaimed, demand=QUICK, breaches=E2E, thresholds=disk_only)
    print(f"hog {hog_mb_s:.1f} MB/s; ours: {s_ours.own_write_mb_s:.1f} of {device:.1f} MB/s, foreign "
          f"{s_ours.foreign_write_pct:.0f}%; unclaimed: foreign {s_unclaimed.foreign_write_mb_s:.1f} MB/s "
          f"({s_unclaimed.foreign_write_pct:.0f}%), probe p50 {s_ours.fsync_p50_ms:.1f} ms, {s_ours.io_device}")
