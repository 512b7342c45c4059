"""What the host offers: PSI, saves in the broker's directory, loopback, the generator's core, before a run
(`preflight`) and while one goes on (`HostMonitor`), with the CPU split into our own trees' and foreign work."""

from __future__ import annotations

import json
import math
import os
import socket
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from indmlops.hostcheck.attribution import CpuShare, OwnRoots, Snapshot, attribute, snapshot
from indmlops.simulator import Plant

FSYNC_PAYLOAD = 4096  # bytes per probe save: the order of the broker's database with a short queue

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
    # Cores' worth of CPU during the preflight (~1.5 s), split by attribution.attribute; None when not attributed.
    busy_cores: float | None = None
    own_cores: float | None = None
    foreign_cores: float | None = None
    steal_cores: float | None = None
    top_foreign: list[str] = field(default_factory=list)

    @property
    def cpu_attributed(self) -> bool:
        return self.foreign_cores is not None

    @property
    def usable_cores(self) -> float:
        return min(self.cores, self.cpu_quota_cores or math.inf)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _snap(own_roots: OwnRoots | None, proc: Path, notes: list[str]) -> Snapshot | None:
    if own_roots is None:
        return None
    try:
        return snapshot(own_roots(), proc, os.sched_getaffinity(0))
    except (OSError, ValueError) as exc:
        note = f"CPU not attributed: cannot read {proc}/stat ({exc})"
        if note not in notes:
            notes.append(note)
        return None


def _top(share: CpuShare) -> list[str]:
    return [f"{name} {cores:.2f}" for name, cores in share.top_foreign]


def preflight(*, fsync_dir: Path, proc: Path = Path("/proc"), fsync_seconds: float = 0.8, rtt_seconds: float = 0.3,
              generator_seconds: float = 0.4, own_roots: OwnRoots | None = None) -> HostFigures:
    """Measure what the host can carry now, in about 1.5 s (the three budgets plus reads of /proc). With `own_roots`
    (the pids heading the stack's and the harness's process trees) the CPU used meanwhile is split into ours and
    foreign; without, it is not attributed (a note says so). `assess` holds the figures against a demand."""
    t0 = time.monotonic()
    notes: list[str] = []
    if own_roots is None:
        notes.append("CPU not attributed (the stack's processes are not known on this target): PSI judged")
    first = _snap(own_roots, proc, notes)
    cpu, io = read_psi("cpu", proc), read_psi("io", proc)
    if cpu is None or io is None:
        notes.append(f"PSI not available ({proc / 'pressure'} absent or unreadable): load average judged instead")
    fsync = measure_fsync(fsync_dir, seconds=fsync_seconds)
    if "fsync_error" in fsync:
        notes.append(fsync.pop("fsync_error") + ": the broker's disk was not judged")
    rtt50, rtt99 = measure_loopback_rtt(seconds=rtt_seconds)
    gen_wall, gen_cpu = measure_generator(seconds=generator_seconds)
    last = _snap(own_roots, proc, notes) if first else None
    share = attribute(first, last) if first and last else None
    cpu_split: dict[str, Any] = {} if share is None else {
        "busy_cores": share.busy, "own_cores": share.own, "foreign_cores": share.foreign, "steal_cores": share.steal,
        "top_foreign": _top(share)}
    return HostFigures(
        fsync_dir=str(fsync_dir), cores=len(os.sched_getaffinity(0)), cpu_quota_cores=_cpu_quota(),
        loadavg=os.getloadavg(), psi_cpu_some_avg10=cpu.some_avg10 if cpu else None,
        psi_io_some_avg10=io.some_avg10 if io else None, tcp_rtt_p50_us=rtt50, tcp_rtt_p99_us=rtt99,
        generator_per_s=gen_wall, generator_per_cpu_s=gen_cpu, **fsync, seconds=time.monotonic() - t0,
        taken_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"), notes=notes, **cpu_split)


@dataclass
class MonitorSummary:
    """The host while a run went on: per-second PSI shares (from the `total` counters), load, a save probe, and
    (when attributed) the cores busy with our own trees' work and with foreign work, steal included."""

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
    cpu_attributed: bool = False
    cores: int = 0
    busy_cores_mean: float | None = None
    own_cores_mean: float | None = None
    foreign_cores_mean: float | None = None
    foreign_cores_worst: float | None = None
    steal_cores_mean: float | None = None
    top_foreign: list[str] = field(default_factory=list)  # "name cores", mean over the run, busiest first

    @property
    def foreign_pct_mean(self) -> float | None:
        return None if self.foreign_cores_mean is None else 100 * self.foreign_cores_mean / max(1, self.cores)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class HostMonitor:
    """`with HostMonitor(dir) as mon: <load or chaos>` then `mon.summary`: samples every `interval` s in a thread.
    With `own_roots` (called at each sample: a restarted supervisord has a new pid) each sample also splits the CPU
    used since the last into our trees' and foreign work."""

    def __init__(self, fsync_dir: Path | None, *, interval: float = 1.0, proc: Path = Path("/proc"),
                 own_roots: OwnRoots | None = None) -> None:
        self.fsync_dir, self.interval, self.proc, self.own_roots = fsync_dir, interval, proc, own_roots
        self._shares: list[CpuShare] = []
        self._snap: Snapshot | None = None
        self._notes: list[str] = []
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
        if self._snap is not None:
            now_snap = _snap(self.own_roots, self.proc, self._notes)
            if now_snap is not None and (share := attribute(self._snap, now_snap)) is not None:
                self._shares.append(share)
            self._snap = now_snap
        if self.fsync_dir is not None:
            try:
                self._fsync.append(fsync_once(self.fsync_dir) * 1e3)
            except OSError:
                self.fsync_dir = None

    def __enter__(self) -> HostMonitor:
        self._t0 = time.monotonic()
        self._snap = _snap(self.own_roots, self.proc, self._notes)
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
        shares, names = self._shares, {}
        for share in shares:
            for name, cores in share.top_foreign:
                names[name] = names.get(name, 0.0) + cores / len(shares)
        cpu_split: dict[str, Any] = {} if not shares else {
            "cpu_attributed": True, "cores": shares[-1].cores,
            "busy_cores_mean": mean([s.busy for s in shares]), "own_cores_mean": mean([s.own for s in shares]),
            "foreign_cores_mean": mean([s.foreign for s in shares]),
            "foreign_cores_worst": max(s.foreign for s in shares), "steal_cores_mean": mean([s.steal for s in shares]),
            "top_foreign": [f"{n} {c:.2f}" for n, c in sorted(names.items(), key=lambda x: -x[1])[:3] if c >= 0.05]}
        return MonitorSummary(
            seconds=time.monotonic() - self._t0, samples=len(self._load),
            cpu_pressure_mean=mean(self._cpu), cpu_pressure_worst=max(self._cpu, default=None),
            io_pressure_mean=mean(self._io), io_pressure_worst=max(self._io, default=None),
            load1_mean=load_mean, load1_worst=max(self._load, default=0.0), load_per_core_mean=load_mean / self.cores,
            fsync_p50_ms=_pct(self._fsync, 50) if self._fsync else None, fsync_worst_ms=max(self._fsync, default=None),
            **cpu_split)


