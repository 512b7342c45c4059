"""Can this host carry a load profile right now, and did it while a run went on: measured figures, the shortfalls
they imply (thresholds in fixtures/host.yaml), and the verdict that blames the environment, not the stack."""

from __future__ import annotations

import json
import math
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import yaml

from indmlops.simulator import Plant

HOST_FILE = Path(__file__).resolve().parents[2] / "fixtures" / "host.yaml"

# Database saves the shipped broker makes per reading (fixtures/slo.yaml): with `autosave_interval 1` and
# `autosave_on_changes true` every change is a save (rewrite + fsync), and one QoS1 reading makes ~7 changes: it is
# stored, queued for inference's persistent session and delivered to each QoS1 subscriber, and its prediction the
# same. Quick profile: 100 readings/s × 7 = 700 fsync/s; at 0.73 ms each (FIELD-NOTES, strace) that is 0.51 s of
# every second spent in fsync, so a disk that does fewer than 700 syncs/s cannot keep up at all.
CHANGES_PER_READING = 7
FSYNC_PAYLOAD = 4096  # bytes per probe save: the order of the broker's database with a short queue


class HostFileError(ValueError):
    pass


@dataclass(frozen=True)
class Thresholds:
    """What a host must offer (fixtures/host.yaml explains each number)."""

    min_cores: float = 2
    fsync_margin: float = 1.0
    generator_headroom: float = 2.0
    max_cpu_pressure_pct: float = 25.0
    max_io_pressure_pct: float = 20.0
    max_load_per_core: float = 2.0
    max_fsync_p50_ms_during: float = 5.0

    @classmethod
    def load(cls, path: Path = HOST_FILE) -> Thresholds:
        try:
            doc = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise HostFileError(f"{path}: cannot read host thresholds ({exc})") from exc
        raw = (doc or {}).get("thresholds")
        if not isinstance(raw, dict):
            raise HostFileError(f"{path}: expected a mapping 'thresholds:'")
        known = set(cls.__dataclass_fields__)
        if unknown := set(raw) - known:
            raise HostFileError(f"{path}: thresholds.{sorted(unknown)[0]}: unknown (known: {', '.join(sorted(known))})")
        for key, value in raw.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                raise HostFileError(f"{path}: thresholds.{key} = {value!r}: expected a number >= 0")
        return cls(**{k: float(v) for k, v in raw.items()})


@dataclass(frozen=True)
class Demand:
    """What a profile asks of the host: readings/s at its base level (what the broker's disk must sustain) and at
    its peak (what the generator must build), on a broker that saves every `autosave_changes` changes."""

    profile: str
    rate: float
    peak_rate: float
    autosave_changes: int = 1

    @property
    def fsync_per_s(self) -> float:
        return self.rate * CHANGES_PER_READING / max(1, self.autosave_changes)

    @property
    def fsync_arithmetic(self) -> str:
        if self.autosave_changes <= 1:
            return f"{self.rate:g} readings/s × {CHANGES_PER_READING} saves"
        return f"{self.rate:g} readings/s × {CHANGES_PER_READING} changes ÷ a save every {self.autosave_changes}"


@dataclass(frozen=True)
class Pressure:
    """One line of /proc/pressure/<resource>: the share of time (%) some task stalled on it."""

    some_avg10: float
    some_total_us: int


def parse_psi(text: str) -> Pressure:
    """The `some` line of a PSI file (`some avg10=3.23 avg60=… total=9256051`)."""
    for line in text.splitlines():
        kind, _, rest = line.partition(" ")
        if kind == "some":
            fields = dict(item.split("=", 1) for item in rest.split())
            try:
                return Pressure(float(fields["avg10"]), int(fields["total"]))
            except (KeyError, ValueError) as exc:
                raise ValueError(f"unexpected PSI line {line!r}") from exc
    raise ValueError(f"no 'some' line in PSI text {text[:80]!r}")


def read_psi(resource: str, proc: Path = Path("/proc")) -> Pressure | None:
    """None when the kernel offers no PSI (older than 4.20, `psi=0`, or a container that hides it)."""
    try:
        return parse_psi((proc / "pressure" / resource).read_text())
    except (OSError, ValueError):
        return None


def fsync_once(directory: Path, payload: bytes = b"\0" * FSYNC_PAYLOAD) -> float:
    """Seconds for one save the way Mosquitto saves its database: write a new file, fsync it, rename it over."""
    new, final = directory / ".indmlops-fsync-probe.new", directory / ".indmlops-fsync-probe"
    t0 = time.perf_counter()
    fd = os.open(new, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, payload)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(new, final)
    return time.perf_counter() - t0


def _pct(values: list[float], q: float) -> float:
    """Nearest rank, as indmlops.slo.percentile (not imported: this module stays a leaf)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q / 100 * len(ordered))) - 1]


def measure_fsync(directory: Path, *, seconds: float = 0.8, max_samples: int = 400) -> dict[str, Any]:
    """Saves back to back in `directory` for up to `seconds`: p50/p99 and how many saves a second that makes."""
    times: list[float] = []
    deadline = time.perf_counter() + seconds
    try:
        while len(times) < max_samples and time.perf_counter() < deadline:
            times.append(fsync_once(directory))
    except OSError as exc:
        return {"fsync_error": f"cannot save in {directory}: {exc}"}
    finally:
        (directory / ".indmlops-fsync-probe").unlink(missing_ok=True)
    return {"fsync_per_s": len(times) / sum(times), "fsync_p50_ms": _pct(times, 50) * 1e3,
            "fsync_p99_ms": _pct(times, 99) * 1e3, "fsync_samples": len(times)}


def measure_loopback_rtt(*, seconds: float = 0.3, max_samples: int = 2000) -> tuple[float, float]:
    """TCP round trip (µs, p50 and p99) of one byte to an echo on 127.0.0.1, Nagle off both ways."""
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def echo() -> None:
        conn, _ = server.accept()
        with conn:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            while data := conn.recv(64):
                conn.sendall(data)

    thread = threading.Thread(target=echo, name="indmlops-rtt-echo", daemon=True)
    thread.start()
    times: list[float] = []
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as client:
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            deadline = time.perf_counter() + seconds
            while len(times) < max_samples and time.perf_counter() < deadline:
                t0 = time.perf_counter()
                client.sendall(b"x")
                client.recv(64)
                times.append(time.perf_counter() - t0)
    finally:
        server.close()
        thread.join(2)
    return _pct(times, 50) * 1e6, _pct(times, 99) * 1e6


def measure_generator(*, seconds: float = 0.4) -> tuple[float, float]:
    """Simulator readings built and JSON-serialised per wall second on one thread (what one core gives now), and per
    CPU second (what it would give uncontended)."""
    readings = Plant(seed=0, machines=10).readings()
    n, w0, c0 = 0, time.perf_counter(), time.thread_time()
    while time.perf_counter() - w0 < seconds:
        for _ in range(50):
            json.dumps(next(readings)).encode()
        n += 50
    wall, cpu = time.perf_counter() - w0, time.thread_time() - c0
    return n / wall, n / cpu if cpu > 0 else math.inf


def _cpu_quota(cgroup: Path = Path("/sys/fs/cgroup/cpu.max")) -> float | None:
    """Cores the cgroup (v2) may use, or None without a quota."""
    try:
        quota, period = cgroup.read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        return None


@dataclass
class HostFigures:
    """What the host offered at one moment; None where the host could not say (and `notes` says why)."""

    fsync_dir: str
    cores: int
    cpu_quota_cores: float | None
    loadavg: tuple[float, float, float]
    psi_cpu_some_avg10: float | None
    psi_io_some_avg10: float | None
    tcp_rtt_p50_us: float
    tcp_rtt_p99_us: float
    generator_per_s: float
    generator_per_cpu_s: float
    fsync_per_s: float | None = None
    fsync_p50_ms: float | None = None
    fsync_p99_ms: float | None = None
    fsync_samples: int = 0
    seconds: float = 0.0
    taken_at: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def usable_cores(self) -> float:
        return min(self.cores, self.cpu_quota_cores or math.inf)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def preflight(*, fsync_dir: Path, proc: Path = Path("/proc"), fsync_seconds: float = 0.8, rtt_seconds: float = 0.3,
              generator_seconds: float = 0.4) -> HostFigures:
    """Measure what the host can carry now, in about 1.5 s (the three budgets plus reads of /proc). The figures
    are the host's alone; `assess` holds them against a profile's demand."""
    t0 = time.monotonic()
    notes: list[str] = []
    cpu, io = read_psi("cpu", proc), read_psi("io", proc)
    if cpu is None or io is None:
        notes.append(f"PSI not available ({proc / 'pressure'} absent or unreadable): load average judged instead")
    fsync = measure_fsync(fsync_dir, seconds=fsync_seconds)
    if "fsync_error" in fsync:
        notes.append(fsync.pop("fsync_error") + ": the broker's disk was not judged")
    rtt50, rtt99 = measure_loopback_rtt(seconds=rtt_seconds)
    gen_wall, gen_cpu = measure_generator(seconds=generator_seconds)
    return HostFigures(
        fsync_dir=str(fsync_dir), cores=len(os.sched_getaffinity(0)), cpu_quota_cores=_cpu_quota(),
        loadavg=os.getloadavg(), psi_cpu_some_avg10=cpu.some_avg10 if cpu else None,
        psi_io_some_avg10=io.some_avg10 if io else None, tcp_rtt_p50_us=rtt50, tcp_rtt_p99_us=rtt99,
        generator_per_s=gen_wall, generator_per_cpu_s=gen_cpu, **fsync, seconds=time.monotonic() - t0,
        taken_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"), notes=notes)


@dataclass(frozen=True)
class Shortfall:
    """One way the host fell short: `text` reads as a clause of the verdict."""

    what: str  # fsync | generator | cores | cpu_pressure | io_pressure | load
    when: str  # before (the preflight) | during (the run)
    measured: float
    needed: float
    text: str


def _pressure_or_load(when: str, cpu: float | None, io: float | None, load_per_core: float, t: Thresholds,
                      how: str, worst: dict[str, float | None] | None = None) -> list[Shortfall]:
    worst = worst or {}
    out = []
    for what, value, bound in (("cpu", cpu, t.max_cpu_pressure_pct), ("io", io, t.max_io_pressure_pct)):
        if value is not None and value > bound:
            peak = f", worst {worst[what]:.0f}%" if worst.get(what) is not None else ""
            out.append(Shortfall(f"{what}_pressure", when, value, bound,
                                 f"{what} pressure some {how} {value:.0f}%{peak} (bound ≤ {bound:g}%)"))
    if cpu is None and io is None and load_per_core > t.max_load_per_core:
        out.append(Shortfall("load", when, load_per_core, t.max_load_per_core,
                             f"load average {load_per_core:.2f} per core (bound ≤ {t.max_load_per_core:g}; no PSI)"))
    return out


def assess(figures: HostFigures, demand: Demand, thresholds: Thresholds | None = None) -> list[Shortfall]:
    """Every way the host, as measured before a run, cannot carry `demand`; empty when it can."""
    t = thresholds or Thresholds()
    out: list[Shortfall] = []
    need = demand.fsync_per_s * t.fsync_margin
    if figures.fsync_per_s is not None and figures.fsync_per_s < need:
        out.append(Shortfall("fsync", "before", figures.fsync_per_s, need,
                             f"the broker's disk did {figures.fsync_per_s:.0f} fsync/s (p50 {figures.fsync_p50_ms:.1f} "
                             f"ms), the profile needs ≥ {need:.0f}/s ({demand.fsync_arithmetic})"))
    gen_need = demand.peak_rate * t.generator_headroom
    if figures.generator_per_s < gen_need:
        out.append(Shortfall("generator", "before", figures.generator_per_s, gen_need,
                             f"one core built {figures.generator_per_s:.0f} readings/s, the generator needs ≥ "
                             f"{gen_need:.0f}/s ({t.generator_headroom:g} × the peak {demand.peak_rate:g}/s)"))
    if figures.usable_cores < t.min_cores:
        out.append(Shortfall("cores", "before", figures.usable_cores, t.min_cores,
                             f"{figures.usable_cores:g} usable cores (needs ≥ {t.min_cores:g})"))
    out += _pressure_or_load("before", figures.psi_cpu_some_avg10, figures.psi_io_some_avg10,
                             figures.loadavg[0] / max(figures.usable_cores, 1), t, "avg10")
    return out


@dataclass
class MonitorSummary:
    """The host while a run went on: per-second PSI shares (from the `total` counters), load and a save probe."""

    seconds: float
    samples: int
    cpu_pressure_mean: float | None = None
    cpu_pressure_worst: float | None = None
    io_pressure_mean: float | None = None
    io_pressure_worst: float | None = None
    load1_mean: float = 0.0
    load1_worst: float = 0.0
    load_per_core_mean: float = 0.0
    fsync_p50_ms: float | None = None
    fsync_worst_ms: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def assess_run(summary: MonitorSummary, demand: Demand, thresholds: Thresholds | None = None) -> list[Shortfall]:
    """Every way the host fell short during a run. Means are judged (a one-second spike is reported, not blamed);
    the save probe competes with the broker's own saves, hence its own, looser bound."""
    t = thresholds or Thresholds()
    if not summary.samples:
        return []
    out = _pressure_or_load("during", summary.cpu_pressure_mean, summary.io_pressure_mean,
                            summary.load_per_core_mean, t, "mean",
                            {"cpu": summary.cpu_pressure_worst, "io": summary.io_pressure_worst})
    if summary.fsync_p50_ms is not None and summary.fsync_p50_ms > t.max_fsync_p50_ms_during:
        out.append(Shortfall("fsync", "during", summary.fsync_p50_ms, t.max_fsync_p50_ms_during,
                             f"a save in the broker's directory took {summary.fsync_p50_ms:.1f} ms (p50) during the "
                             f"run, worst {summary.fsync_worst_ms:.0f} ms (bound ≤ {t.max_fsync_p50_ms_during:g} ms)"))
    return out


class HostMonitor:
    """`with HostMonitor(dir) as mon: <load or chaos>` then `mon.summary`: samples every `interval` s in a thread."""

    def __init__(self, fsync_dir: Path | None, *, interval: float = 1.0, proc: Path = Path("/proc")) -> None:
        self.fsync_dir, self.interval, self.proc = fsync_dir, interval, proc
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._cpu: list[float] = []
        self._io: list[float] = []
        self._load: list[float] = []
        self._fsync: list[float] = []
        self._t0 = 0.0
        self.summary: MonitorSummary | None = None
        self.cores = max(1, len(os.sched_getaffinity(0)))

    def _totals(self) -> tuple[float, int | None, int | None]:
        cpu, io = read_psi("cpu", self.proc), read_psi("io", self.proc)
        return time.monotonic(), cpu.some_total_us if cpu else None, io.some_total_us if io else None

    def _run(self) -> None:
        last = self._totals()
        while not self._stop.wait(self.interval):
            self.sample(last)
            last = self._totals()

    def sample(self, last: tuple[float, int | None, int | None]) -> None:
        """One sample: PSI shares since `last`, the 1-min load, one save (its own failures are not the host's)."""
        now = self._totals()
        dt = (now[0] - last[0]) * 1e6
        for series, i in ((self._cpu, 1), (self._io, 2)):
            if now[i] is not None and last[i] is not None and dt > 0:
                series.append(min(100.0, 100 * (now[i] - last[i]) / dt))  # type: ignore[operator]
        self._load.append(os.getloadavg()[0])
        if self.fsync_dir is not None:
            try:
                self._fsync.append(fsync_once(self.fsync_dir) * 1e3)
            except OSError:
                self.fsync_dir = None

    def __enter__(self) -> HostMonitor:
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="indmlops-host-monitor", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(self.interval + 5)
        if self.fsync_dir is not None:
            (self.fsync_dir / ".indmlops-fsync-probe").unlink(missing_ok=True)
        self.summary = self.summarise()

    def summarise(self) -> MonitorSummary:
        def mean(xs: list[float]) -> float | None:
            return sum(xs) / len(xs) if xs else None

        load_mean = mean(self._load) or 0.0
        return MonitorSummary(
            seconds=time.monotonic() - self._t0, samples=len(self._load),
            cpu_pressure_mean=mean(self._cpu), cpu_pressure_worst=max(self._cpu, default=None),
            io_pressure_mean=mean(self._io), io_pressure_worst=max(self._io, default=None),
            load1_mean=load_mean, load1_worst=max(self._load, default=0.0), load_per_core_mean=load_mean / self.cores,
            fsync_p50_ms=_pct(self._fsync, 50) if self._fsync else None, fsync_worst_ms=max(self._fsync, default=None))


class EnvironmentVerdict(AssertionError):
    """A failed claim the host, not the stack, is to blame for: the figures and shortfalls travel with it.

    An AssertionError, not an IndMLOpsError: it is still a test that did not show its claim (pytest counts it
    failed, `pytest.raises(AssertionError)` in the sensitivity tests still catches it), while IndMLOpsError means
    "the harness could not do its work" and is printed by the CLI as an error."""

    def __init__(self, demand: Demand, shortfalls: list[Shortfall], *, breach_text: str = "",
                 figures: HostFigures | None = None, monitor: MonitorSummary | None = None,
                 figures_path: Path | str | None = None) -> None:
        self.demand, self.shortfalls, self.breach_text = demand, shortfalls, breach_text
        self.figures, self.monitor, self.figures_path = figures, monitor, figures_path
        where = f" Figures: {figures_path}" if figures_path else ""
        before = [s.text for s in shortfalls if s.when == "before"]
        during = [s.text for s in shortfalls if s.when == "during"]
        parts = "; ".join(before + (["during the run: " + "; ".join(during)] if during else []))
        text = f"environment, not the stack: the host could not carry profile {demand.profile}: {parts}.{where}"
        if breach_text:
            text += f"\n\nWhat the suite saw (not held against the stack):\n{breach_text}"
        super().__init__(text)

    def __reduce__(self):  # picklable (xdist, multiprocessing) despite the keyword-only constructor
        return (_rebuild_verdict, (self.args[0],))


def _rebuild_verdict(text: str) -> AssertionError:
    exc = EnvironmentVerdict.__new__(EnvironmentVerdict)
    AssertionError.__init__(exc, text)
    return exc


def judge(breach_text: str, figures: HostFigures | None, monitor_summary: MonitorSummary | None, *, demand: Demand,
          thresholds: Thresholds | None = None, figures_path: Path | str | None = None) -> NoReturn:
    """Raise EnvironmentVerdict when the host fell short before (`figures`) or during (`monitor_summary`) the run,
    else a plain AssertionError with `breach_text`: the stack's failure."""
    t = thresholds or Thresholds()
    shortfalls = (assess(figures, demand, t) if figures else []) + \
        (assess_run(monitor_summary, demand, t) if monitor_summary else [])
    if shortfalls:
        raise EnvironmentVerdict(demand, shortfalls, breach_text=breach_text, figures=figures,
                                 monitor=monitor_summary, figures_path=figures_path)
    raise AssertionError(breach_text)


class HostFit:
    """One session's preflight, the runs monitored since, and `reports/environment.json` kept up to date."""

    def __init__(self, figures: HostFigures, demand: Demand, thresholds: Thresholds, path: Path) -> None:
        self.figures, self.demand, self.thresholds, self.path = figures, demand, thresholds, path
        self.shortfalls = assess(figures, demand, thresholds)
        self.runs: dict[str, dict[str, Any]] = {}
        self.verdicts: dict[str, str] = {}
        self.write()

    @property
    def fits(self) -> bool:
        return not self.shortfalls

    def write(self) -> None:
        doc = {"profile": asdict(self.demand), "fsync_needed_per_s": self.demand.fsync_per_s,
               "changes_per_reading": CHANGES_PER_READING, "thresholds": asdict(self.thresholds),
               "figures": self.figures.to_dict(), "shortfalls": [asdict(s) for s in self.shortfalls],
               "runs": self.runs, "verdicts": self.verdicts}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(doc, indent=2, default=str) + "\n")
        tmp.replace(self.path)

    def record_run(self, name: str, summary: MonitorSummary) -> list[Shortfall]:
        """Keep a run's monitor summary and what it implies; returns the run's shortfalls."""
        found = assess_run(summary, self.demand, self.thresholds)
        self.runs[name] = {"monitor": summary.to_dict(), "shortfalls": [asdict(s) for s in found]}
        self.write()
        return found

    @contextmanager
    def monitor(self, name: str, *, interval: float = 1.0) -> Iterator[HostMonitor]:
        """Monitor the block and record it under `name`; `.summary` is set on exit."""
        mon = HostMonitor(Path(self.figures.fsync_dir) if self.figures.fsync_per_s is not None else None,
                          interval=interval)
        try:
            with mon:
                yield mon
        finally:
            assert mon.summary is not None
            self.record_run(name, mon.summary)

    def judge(self, breach_text: str, monitor_summary: MonitorSummary | None = None) -> NoReturn:
        judge(breach_text, self.figures, monitor_summary, demand=self.demand, thresholds=self.thresholds,
              figures_path=self.path)

    @contextmanager
    def judging(self, monitor_summary: MonitorSummary | None = None) -> Iterator[None]:
        """Around a test's asserts: an AssertionError is re-raised as it is (pytest's diff intact) when the host
        carried the run, and becomes an EnvironmentVerdict when it fell short before or during it."""
        try:
            yield
        except EnvironmentVerdict:
            raise
        except AssertionError as exc:
            found = self.shortfalls + (assess_run(monitor_summary, self.demand, self.thresholds)
                                       if monitor_summary else [])
            if not found:
                raise
            raise EnvironmentVerdict(self.demand, found, breach_text=str(exc), figures=self.figures,
                                     monitor=monitor_summary, figures_path=self.path) from exc

    def line(self) -> str:
        """One line for the terminal: the figures that matter and the verdict."""
        f = self.figures
        fs = f"fsync {f.fsync_per_s:.0f}/s (p50 {f.fsync_p50_ms:.2f} ms)" if f.fsync_per_s else "fsync not measured"
        psi = (f"psi cpu {f.psi_cpu_some_avg10:.0f}% io {f.psi_io_some_avg10:.0f}%"
               if f.psi_cpu_some_avg10 is not None and f.psi_io_some_avg10 is not None else "no PSI")
        head = (f"{fs}, {f.usable_cores:g} cores, load {f.loadavg[0]:.2f}, {psi}, loopback p50 {f.tcp_rtt_p50_us:.0f} "
                f"µs, generator {f.generator_per_s:.0f} readings/s ({f.seconds:.1f} s)")
        if self.fits:
            return f"{head} → fits profile {self.demand.profile} ({self.demand.fsync_per_s:.0f} fsync/s needed)"
        return f"{head} → SHORT for profile {self.demand.profile}: " + "; ".join(s.text for s in self.shortfalls)
