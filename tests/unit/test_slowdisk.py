"""A slow disk on purpose: the fsync-delaying LD_PRELOAD shim, its build, the launcher and stack wiring, and the host
check that measures and names it (slowdisk.py, slowfsync.c)."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from indmlops import cli
from indmlops import hostcheck as h
from indmlops.errors import IndMLOpsError, MissingDependency
from indmlops.targets.local import launch, render, slowdisk
from indmlops.targets.local.layout import DEFAULT_PORTS, StackConfig, new_credentials
from indmlops.targets.local.stack import LocalStack

DELAY_MS = 3.0

# 20 saves like the broker's (write 4 KB, fsync), each timed; then fdatasync, sync and msync(MS_SYNC) (mmap.flush)
# five times each. Prints the per-call milliseconds as JSON.
FSYNC_LOOP = """
import json, mmap, os, sys, time
path = os.path.join(sys.argv[1], "probe")
fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
out = {"fsync": [], "fdatasync": [], "sync": [], "msync": []}
def timed(key, fn):
    t0 = time.perf_counter(); fn(); out[key].append((time.perf_counter() - t0) * 1e3)
for _ in range(20):
    os.write(fd, b"x" * 4096)
    timed("fsync", lambda: os.fsync(fd))
for _ in range(5):
    os.write(fd, b"y" * 4096)
    timed("fdatasync", lambda: os.fdatasync(fd))
    timed("sync", os.sync)
m = mmap.mmap(fd, 4096)
for i in range(5):
    m[0:1] = bytes([i])
    timed("msync", m.flush)
m.close(); os.close(fd)
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def shim(tmp_path_factory) -> Path:
    return slowdisk.build(directory=tmp_path_factory.mktemp("shim-cache"))


def run_loop(directory: Path, env: dict[str, str]) -> dict[str, list[float]]:
    res = subprocess.run([sys.executable, "-c", FSYNC_LOOP, str(directory)], env=env, capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0, f"fsync loop exited {res.returncode}: {res.stderr[-500:]}"
    return json.loads(res.stdout)


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", slowdisk.ENV_US)}


# --- the shim, measured --------------------------------------------------------------------------------------------

def test_fsync_takes_at_least_the_configured_delay_under_the_shim_and_not_without(shim, tmp_path):
    slowed = run_loop(tmp_path, slowdisk.preload_env(shim, slowdisk.microseconds(DELAY_MS), clean_env()))
    plain = run_loop(tmp_path, clean_env())
    fastest = min(slowed["fsync"])
    assert fastest >= DELAY_MS, (f"under the shim ({DELAY_MS} ms) expected every fsync ≥ {DELAY_MS} ms, the fastest "
                                 f"of 20 took {fastest:.2f} ms")
    # The shim adds its delay to whatever the disk takes: the medians must differ by about DELAY_MS. Half of it is
    # the margin for a noisy shared disk.
    with_p50, without_p50 = statistics.median(slowed["fsync"]), statistics.median(plain["fsync"])
    assert with_p50 - without_p50 >= DELAY_MS / 2, (
        f"expected fsync p50 under the shim ≥ {DELAY_MS / 2} ms slower than without; measured {with_p50:.2f} ms "
        f"with, {without_p50:.2f} ms without")


def test_fdatasync_sync_and_msync_are_slowed_too(shim, tmp_path):
    got = run_loop(tmp_path, slowdisk.preload_env(shim, slowdisk.microseconds(DELAY_MS), clean_env()))
    for call in ("fdatasync", "sync", "msync"):
        assert min(got[call]) >= DELAY_MS, f"{call} under the shim: expected ≥ {DELAY_MS} ms, got {got[call]}"


def test_shim_with_zero_delay_does_not_slow(shim, tmp_path):
    got = run_loop(tmp_path, slowdisk.preload_env(shim, 0, clean_env()))
    plain = run_loop(tmp_path, clean_env())
    assert statistics.median(got["fsync"]) < statistics.median(plain["fsync"]) + DELAY_MS / 2


# --- the build -----------------------------------------------------------------------------------------------------

def test_shim_is_world_readable_in_a_traversable_directory_and_cached_by_source(shim, monkeypatch):
    assert shim.stat().st_mode & 0o755 == 0o755 and shim.parent.stat().st_mode & 0o755 == 0o755
    assert shim.name.startswith("slowfsync-") and shim.suffix == ".so"
    monkeypatch.setattr(slowdisk.subprocess, "run", lambda *a, **k: pytest.fail("rebuilt a cached shim"))
    assert slowdisk.build(directory=shim.parent) == shim


def test_another_source_builds_another_shim(shim, tmp_path):
    edited = tmp_path / "slowfsync.c"
    edited.write_text(slowdisk.SOURCE.read_text() + "\n/* edited */\n")
    assert slowdisk.shim_path(edited, shim.parent) != shim


def test_missing_gcc_is_named_with_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setattr(slowdisk.shutil, "which", lambda name: None)
    with pytest.raises(MissingDependency) as err:
        slowdisk.build(directory=tmp_path)
    text = str(err.value)
    assert "gcc" in text and "slow-fsync shim" in text and "apt-get install gcc" in text, text
    assert list(tmp_path.iterdir()) == []


def test_a_failed_compile_says_so_and_leaves_nothing(tmp_path):
    bad = tmp_path / "src" / "slowfsync.c"
    bad.parent.mkdir()
    bad.write_text("this is not C\n")
    with pytest.raises(IndMLOpsError, match="could not build the slow-fsync shim"):
        slowdisk.build(bad, tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir()) == []


def test_cache_outside_the_clone_and_shared_when_root(tmp_path):
    assert slowdisk.cache_dir({}, as_root=True) == Path("/var/cache/indmlops")
    assert slowdisk.cache_dir({"XDG_CACHE_HOME": str(tmp_path)}, as_root=False) == tmp_path / "indmlops"


@pytest.mark.parametrize("text", ["fast", "-1", "nan", "inf", "60001"])
def test_a_bad_delay_is_refused_naming_its_origin(text):
    with pytest.raises(IndMLOpsError, match=f"INDMLOPS_SLOW_FSYNC_MS from environment '{text}'"):
        slowdisk.ms_from_environment({"INDMLOPS_SLOW_FSYNC_MS": text})


def test_delay_from_environment_unset_is_none_and_zero_is_off():
    assert slowdisk.ms_from_environment({}) is None
    assert slowdisk.ms_from_environment({"INDMLOPS_SLOW_FSYNC_MS": "0"}) == 0.0
    assert slowdisk.ms_from_environment({"INDMLOPS_SLOW_FSYNC_MS": "2.5"}) == 2.5
    assert slowdisk.microseconds(2.5) == 2500


# --- the launcher and the stack ------------------------------------------------------------------------------------

def test_launcher_sets_ld_preload_only_when_configured():
    env = {"PATH": "/bin"}
    launch.slow_fsync_env(env, 0, None)
    assert "LD_PRELOAD" not in env and slowdisk.ENV_US not in env
    with pytest.raises(SystemExit, match="a readable shim"):
        launch.slow_fsync_env(env, 3000, "/absent/slowfsync-ab.so")
    launch.slow_fsync_env(env, 3000, "/dev/null")
    assert env["LD_PRELOAD"] == "/dev/null" and env[slowdisk.ENV_US] == "3000"


def test_launcher_keeps_other_preloads_and_takes_an_inherited_shim_out_when_off():
    env = {"LD_PRELOAD": "/usr/lib/libfaketime.so /c/slowfsync-ab.so", slowdisk.ENV_US: "3000"}
    launch.slow_fsync_env(env, 0, None)
    assert env == {"LD_PRELOAD": "/usr/lib/libfaketime.so"}
    launch.slow_fsync_env(env, 500, "/dev/null")
    assert env["LD_PRELOAD"] == "/dev/null /usr/lib/libfaketime.so"


@pytest.mark.parametrize("flags,expected", [
    ([], [None, None]),
    (["--slow-fsync-us", "3000", "--preload", "SHIM"], ["SHIM", "3000"]),
], ids=["off", "on"])
def test_launched_program_sees_the_shim_only_when_configured(shim, tmp_path, flags, expected):
    flags = [str(shim) if f == "SHIM" else f for f in flags]
    show = ("import json, os; "
            "print(json.dumps([os.environ.get('LD_PRELOAD'), os.environ.get('INDMLOPS_SLOW_FSYNC_US')]))")
    res = subprocess.run([sys.executable, "-m", "indmlops.targets.local.launch", "--pgid-file",
                          str(tmp_path / "p.pgid"), *flags, "--", sys.executable, "-c", show],
                         env=clean_env(), capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout.splitlines()[-1]) == [str(shim) if e == "SHIM" else e for e in expected]


def stack_config(tmp_path: Path, ms: float) -> StackConfig:
    return StackConfig(state_dir=tmp_path, ports=dict(DEFAULT_PORTS), credentials=new_credentials(),
                       slow_fsync_ms=ms)


def test_rendered_command_carries_the_shim_only_when_set(tmp_path, monkeypatch):
    monkeypatch.setattr(slowdisk, "build", lambda: Path("/c/slowfsync-ab.so"))
    off = render.launch(stack_config(tmp_path, 0), "mosquitto", ["/usr/sbin/mosquitto"], "mosquitto")
    assert "--preload" not in off and "--slow-fsync-us" not in off
    on = render.launch(stack_config(tmp_path, 2.5), "mosquitto", ["/usr/sbin/mosquitto"], "mosquitto")
    assert "--slow-fsync-us 2500 --preload /c/slowfsync-ab.so -- /usr/sbin/mosquitto" in on


def test_stack_json_keeps_the_delay_and_an_older_file_means_none(tmp_path):
    stack_config(tmp_path, 3.0).save()
    assert StackConfig.load(tmp_path).slow_fsync_ms == 3.0
    raw = json.loads((tmp_path / "stack.json").read_text())
    del raw["slow_fsync_ms"]
    (tmp_path / "stack.json").write_text(json.dumps(raw))
    assert StackConfig.load(tmp_path).slow_fsync_ms == 0.0


def test_a_running_stack_refuses_another_delay_before_touching_anything(tmp_path, monkeypatch):
    stack_config(tmp_path, 0).save()
    monkeypatch.setattr(LocalStack, "running", lambda self: True)
    with pytest.raises(IndMLOpsError, match="running with slow_fsync_ms 0, not 3; `indmlops down` first"):
        LocalStack(tmp_path, slow_fsync_ms=3.0).up(["mosquitto"])


def test_indmlops_up_refuses_a_bad_delay_before_starting_anything(tmp_path, capsys):
    assert cli.main(["--state-dir", str(tmp_path / "state"), "up", "mosquitto", "--slow-fsync-ms", "slow"]) == 2
    assert "indmlops up: error: --slow-fsync-ms 'slow': expected milliseconds" in capsys.readouterr().err
    assert not (tmp_path / "state").exists()


# --- the host check sees what the services see ---------------------------------------------------------------------

def test_preflight_times_saves_under_the_services_shim_and_says_so(shim, tmp_path):
    slow = h.SlowFsync(DELAY_MS, str(shim))
    f = h.preflight(fsync_dir=tmp_path, fsync_seconds=0.3, rtt_seconds=0.05, generator_seconds=0.05, slow_fsync=slow)
    assert f.slow_fsync_ms == DELAY_MS
    assert f.fsync_p50_ms is not None and f.fsync_p50_ms >= DELAY_MS, (
        f"preflight under the shim: expected fsync p50 ≥ {DELAY_MS} ms, got {f.fsync_p50_ms}")
    assert f.fsync_per_s is not None and f.fsync_per_s <= 1000 / DELAY_MS
    assert any(n.startswith("slow-fsync shim: 3 ms per fsync") and str(shim) in n for n in f.notes), f.notes
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kind", ["absent", "not a library"])
def test_a_shim_that_cannot_be_preloaded_is_a_note_never_an_unslowed_figure(tmp_path, kind):
    so = tmp_path / "slowfsync-x.so"
    if kind != "absent":
        so.write_text("not an ELF file\n")
    f = h.preflight(fsync_dir=tmp_path, fsync_seconds=0.05, rtt_seconds=0.05, generator_seconds=0.05,
                    slow_fsync=h.SlowFsync(DELAY_MS, str(so)))
    assert f.fsync_per_s is None, f"timed {f.fsync_per_s:.0f} fsync/s without the shim it claims"
    assert any("slow-fsync shim: 3 ms per fsync" in n and "the broker's disk was not judged" in n for n in f.notes)


def test_monitor_adds_the_same_delay_to_its_saves(tmp_path):
    mon = h.HostMonitor(tmp_path, interval=60, slow_fsync_ms=DELAY_MS)
    mon.sample(mon._totals())
    summary = mon.summarise()
    assert summary.slow_fsync_ms == DELAY_MS
    assert summary.fsync_p50_ms is not None and summary.fsync_p50_ms >= DELAY_MS


def figures(**over) -> h.HostFigures:
    base = dict(fsync_dir="/d", cores=2, cpu_quota_cores=None, loadavg=(0.5, 0.5, 0.5), psi_cpu_some_avg10=2.0,
                psi_io_some_avg10=1.0, tcp_rtt_p50_us=56.0, tcp_rtt_p99_us=75.0, generator_per_s=50_000.0,
                generator_per_cpu_s=60_000.0, fsync_per_s=300.0, fsync_p50_ms=3.2, fsync_p99_ms=3.9,
                slow_fsync_ms=DELAY_MS)
    return h.HostFigures(**(base | over))


def test_an_environment_verdict_names_the_slow_disk_with_its_figures():
    demand = h.Demand("quick", rate=100, peak_rate=100)
    f = figures()
    shortfalls = h.assess(f, demand)
    fsync = [s for s in shortfalls if s.what == "fsync"]
    assert fsync and "the broker's disk (slow-fsync shim: 3 ms per fsync) did 300 fsync/s" in fsync[0].text
    verdict = h.EnvironmentVerdict(demand, shortfalls, figures=f)
    assert "Disk: slow-fsync shim: 3 ms per fsync (before the run 300 fsync/s, p50 3.20 ms)." in str(verdict)
    # A CPU shortfall on the slowed disk names it as well: it is part of the environment judged.
    cpu = h.EnvironmentVerdict(demand, h.assess(figures(cores=1, fsync_per_s=5000.0), demand), figures=f)
    assert "slow-fsync shim: 3 ms per fsync" in str(cpu)


def test_without_the_shim_the_verdict_reads_as_before():
    demand = h.Demand("quick", rate=100, peak_rate=100)
    f = figures(slow_fsync_ms=0.0)
    assert "shim" not in str(h.EnvironmentVerdict(demand, h.assess(f, demand), figures=f))


def test_host_line_names_the_shim(tmp_path):
    demand = h.Demand("quick", rate=100, peak_rate=100)
    fit = h.HostFit(figures(), demand, h.Thresholds(), tmp_path / "environment.json")
    assert "fsync 300/s (p50 3.20 ms) under the slow-fsync shim: 3 ms per fsync" in fit.line()
    assert json.loads((tmp_path / "environment.json").read_text())["figures"]["slow_fsync_ms"] == DELAY_MS
