"""The host while a run goes on (`HostMonitor`): PSI, load and a save probe each second, with the CPU and the disk's
writes split into our own trees' and foreign work."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from indmlops.hostcheck.attribution import CpuShare, OwnRoots, Snapshot, attribute
from indmlops.hostcheck.diskio import IoShare, IoSnapshot, attribute_io, thread_written
from indmlops.hostcheck.measure import _devices, _io_snap, _pct, _snap, fsync_once, io_figures, read_psi


@dataclass
class MonitorSummary:
    """The host while a run went on: per-second PSI shares (from the `total` counters), load, a save probe, and
    (when attributed) the cores busy with our own trees' work and with foreign work, steal included, and the write
    rates of the disk holding the probe's directory, ours and foreign, from the run's sums."""

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
    io_device: str | None = None
    device_write_mb_s: float | None = None
    own_write_mb_s: float | None = None
    foreign_write_mb_s: float | None = None
    foreign_write_pct: float | None = None  # of the device's write bytes over the run
    unattributed_write_mb_s: float | None = None  # written while some writer was hidden from us: nobody's evidence
    write_ops_per_s: float | None = None
    flushes_per_s: float | None = None
    slow_fsync_ms: float = 0.0  # a slow disk on purpose: each probe save slept this long first, as the services' do

    @property
    def io_attributed(self) -> bool:
        return self.foreign_write_pct is not None

    @property
    def foreign_pct_mean(self) -> float | None:
        return None if self.foreign_cores_mean is None else 100 * self.foreign_cores_mean / max(1, self.cores)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class HostMonitor:
    """`with HostMonitor(dir) as mon: <load or chaos>` then `mon.summary`: samples every `interval` s in a thread.
    With `own_roots` (called at each sample: a restarted supervisord has a new pid) each sample also splits the CPU
    used since the last into our trees' and foreign work, and the writes of the disk holding `fsync_dir` likewise
    (the probe's own set aside: one save a second). A child of ours reaped between samples reaches us through its
    reaper's counters (cutime, and /proc/<pid>/io, which the kernel accumulates alike at wait())."""

    def __init__(self, fsync_dir: Path | None, *, interval: float = 1.0, proc: Path = Path("/proc"),
                 sys: Path = Path("/sys"), own_roots: OwnRoots | None = None, slow_fsync_ms: float = 0.0) -> None:
        self.fsync_dir, self.interval, self.proc, self.own_roots = fsync_dir, interval, proc, own_roots
        # Under the slow-fsync shim the probe sleeps the same delay before its fsync, explicitly (a shim preloads at
        # exec, and this probe runs in a thread of the harness): its saves then take what the broker's take.
        self.slow_fsync_ms = slow_fsync_ms
        self._shares: list[CpuShare] = []
        self._snap: Snapshot | None = None
        self._notes: list[str] = []
        self._devices = _devices(fsync_dir, own_roots, sys, self._notes)
        self._io_shares: list[IoShare] = []
        self._io_snap: IoSnapshot | None = None
        self._probe = 0  # bytes the probe has written, cumulative (set aside from ours and the device's)
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
            now_io = _io_snap(now_snap, self._devices, self.proc, self._notes, self._probe)
            if self._io_snap is not None and now_io is not None and (io := attribute_io(self._io_snap, now_io)):
                self._io_shares.append(io)
            self._io_snap = now_io
        if self.fsync_dir is not None:
            try:
                before = thread_written(self.proc)
                self._fsync.append(fsync_once(self.fsync_dir, delay_s=self.slow_fsync_ms / 1e3) * 1e3)
                self._probe += thread_written(self.proc) - before
            except OSError:
                self.fsync_dir = None

    def __enter__(self) -> HostMonitor:
        self._t0 = time.monotonic()
        self._snap = _snap(self.own_roots, self.proc, self._notes)
        self._io_snap = _io_snap(self._snap, self._devices, self.proc, self._notes, self._probe)
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
        shares = self._shares
        names: dict[str, float] = {}
        for share in shares:
            for name, cores in share.top_foreign:
                names[name] = names.get(name, 0.0) + cores / len(shares)
        cpu_split: dict[str, Any] = {} if not shares else {
            "cpu_attributed": True, "cores": shares[-1].cores,
            "busy_cores_mean": mean([s.busy for s in shares]), "own_cores_mean": mean([s.own for s in shares]),
            "foreign_cores_mean": mean([s.foreign for s in shares]),
            "foreign_cores_worst": max(s.foreign for s in shares), "steal_cores_mean": mean([s.steal for s in shares]),
            "top_foreign": [f"{n} {c:.2f}" for n, c in sorted(names.items(), key=lambda x: -x[1])[:3] if c >= 0.05]}
        if self._io_shares and self._devices is not None:
            cpu_split |= io_figures(self._io_shares, self._devices)
        return MonitorSummary(
            seconds=time.monotonic() - self._t0, samples=len(self._load),
            cpu_pressure_mean=mean(self._cpu), cpu_pressure_worst=max(self._cpu, default=None),
            io_pressure_mean=mean(self._io), io_pressure_worst=max(self._io, default=None),
            load1_mean=load_mean, load1_worst=max(self._load, default=0.0), load_per_core_mean=load_mean / self.cores,
            fsync_p50_ms=_pct(self._fsync, 50) if self._fsync else None, fsync_worst_ms=max(self._fsync, default=None),
            slow_fsync_ms=self.slow_fsync_ms, **cpu_split)


