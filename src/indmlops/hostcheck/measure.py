"""What the host offers: PSI, saves in the broker's directory, loopback, the generator's core, before a run
(`preflight`) and while one goes on (`HostMonitor`), with the CPU split into our own trees' and foreign work."""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from indmlops.hostcheck.attribution import CpuShare, OwnRoots, Snapshot, attribute, snapshot
from indmlops.hostcheck.diskio import (
    Devices,
    IoShare,
    IoSnapshot,
    attribute_io,
    devices_for,
    io_snapshot,
    thread_written,
)
from indmlops.simulator import Plant

FSYNC_PAYLOAD = 4096  # bytes per probe save: the order of the broker's database with a short queue


@dataclass(frozen=True)
class SlowFsync:
    """A slow disk on purpose: the stack's services run under an LD_PRELOAD shim (`preload`) that sleeps `ms` before
    each fsync. The preflight's saves then run under the same shim, and the monitor's add the same delay."""

    ms: float
    preload: str

    @property
    def label(self) -> str:
        return f"slow-fsync shim: {self.ms:g} ms per fsync"

    def env(self) -> dict[str, str]:
        """This process's environment with the shim preloaded (slowfsync.c reads INDMLOPS_SLOW_FSYNC_US)."""
        env = dict(os.environ)
        env["LD_PRELOAD"] = " ".join([self.preload, *env.get("LD_PRELOAD", "").split()])
        env["INDMLOPS_SLOW_FSYNC_US"] = str(round(self.ms * 1000))
        return env

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


def fsync_once(directory: Path, payload: bytes = b"\0" * FSYNC_PAYLOAD, delay_s: float = 0.0) -> float:
    """Seconds for one save the way Mosquitto saves its database: write a new file, fsync it, rename it over.
    `delay_s` is slept before the fsync, as the slow-fsync shim does in the services (SlowFsync)."""
    new, final = directory / ".indmlops-fsync-probe.new", directory / ".indmlops-fsync-probe"
    t0 = time.perf_counter()
    fd = os.open(new, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, payload)
        if delay_s > 0:
            time.sleep(delay_s)
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


# The preflight's save loop in a child process under the slow-fsync shim: the shim is preloaded at exec, so the
# loop must run in a process started with it. It prints its figures and its own written bytes (set aside as the
# probe's, as the in-process probe's are) as one JSON line.
_SHIM_PROBE = """import json, sys
from pathlib import Path
from indmlops.hostcheck.diskio import thread_written
from indmlops.hostcheck.measure import measure_fsync
out = measure_fsync(Path(sys.argv[1]), seconds=float(sys.argv[2]), max_samples=int(sys.argv[3]))
out["probe_written"] = thread_written()
print(json.dumps(out))
"""


def measure_fsync_under(shim: SlowFsync, directory: Path, *, seconds: float = 0.8,
                        max_samples: int = 400) -> dict[str, Any]:
    """`measure_fsync` in a child process that runs under `shim`, as the services do; `probe_written` in the result
    is the bytes the child wrote. A child that fails says so as `fsync_error`, and so does a shim the dynamic loader
    could not preload (it says so on stderr and runs on unslowed, which would time the plain disk)."""
    if not os.access(shim.preload, os.R_OK):
        return {"fsync_error": f"the {shim.label} {shim.preload} is not readable"}
    try:
        res = subprocess.run([sys.executable, "-c", _SHIM_PROBE, str(directory), str(seconds), str(max_samples)],
                             env=shim.env(), capture_output=True, text=True, timeout=seconds + 30)
        out: dict[str, Any] = json.loads(res.stdout.strip().splitlines()[-1])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError) as exc:
        return {"fsync_error": f"the save probe under the {shim.label} ({shim.preload}) failed: {exc}"}
    if res.returncode != 0 or "cannot be preloaded" in res.stderr:
        return {"fsync_error": f"the save probe under the {shim.label} exited {res.returncode}: {res.stderr[-300:]}"}
    return out


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
    # A slow disk on purpose (SlowFsync): the services' and the preflight's saves sleep this long first; 0: none.
    slow_fsync_ms: float = 0.0
    seconds: float = 0.0
    taken_at: str = ""
    notes: list[str] = field(default_factory=list)
    # Cores' worth of CPU during the preflight (~1.5 s), split by attribution.attribute; None when not attributed.
    busy_cores: float | None = None
    own_cores: float | None = None
    foreign_cores: float | None = None
    steal_cores: float | None = None
    top_foreign: list[str] = field(default_factory=list)
    # The disk's writes during the preflight (MB/s, the probe's own set aside), split by diskio.attribute_io on
    # `io_device`; None when not attributed.
    io_device: str | None = None
    device_write_mb_s: float | None = None
    own_write_mb_s: float | None = None
    foreign_write_mb_s: float | None = None
    foreign_write_pct: float | None = None
    unattributed_write_mb_s: float | None = None  # written while some writer was hidden from us: nobody's evidence
    write_ops_per_s: float | None = None
    flushes_per_s: float | None = None

    @property
    def cpu_attributed(self) -> bool:
        return self.foreign_cores is not None

    @property
    def io_attributed(self) -> bool:
        return self.foreign_write_pct is not None

    @property
    def usable_cores(self) -> float:
        return min(self.cores, self.cpu_quota_cores or math.inf)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def disk_label(self) -> str:
        """The broker's disk as measured, naming a deliberate slow fsync: said wherever a verdict blames the disk."""
        if not self.slow_fsync_ms:
            return "the broker's disk"
        return f"the broker's disk (slow-fsync shim: {self.slow_fsync_ms:g} ms per fsync)"


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


def _devices(fsync_dir: Path | None, own_roots: OwnRoots | None, sys: Path, notes: list[str]) -> Devices | None:
    if fsync_dir is None or own_roots is None:
        return None
    try:
        return devices_for(fsync_dir, sys)
    except OSError as exc:
        notes.append(f"I/O not attributed: cannot map {fsync_dir} to a block device ({exc})")
        return None


def _io_snap(cpu: Snapshot | None, devices: Devices | None, proc: Path, notes: list[str],
             probe: int = 0) -> IoSnapshot | None:
    if cpu is None or devices is None:
        return None
    try:
        return io_snapshot(cpu, devices, proc, probe)
    except (OSError, ValueError) as exc:
        note = f"I/O not attributed: cannot read {proc}/diskstats ({exc})"
        if note not in notes:
            notes.append(note)
        return None


def io_figures(shares: list[IoShare], devices: Devices) -> dict[str, Any]:
    """The write rates of a preflight or a run from its intervals' sums (one share per interval)."""
    secs = sum(s.seconds for s in shares) or 1.0
    device, own, foreign, unknown = (sum(getattr(s, f) for s in shares)
                                     for f in ("device", "own", "foreign", "unattributed"))
    flushes = None if any(s.flushes is None for s in shares) else sum(s.flushes or 0 for s in shares) / secs
    return {"io_device": devices.label, "device_write_mb_s": device / secs / 1e6, "own_write_mb_s": own / secs / 1e6,
            "foreign_write_mb_s": foreign / secs / 1e6, "foreign_write_pct": 100 * foreign / device if device else 0.0,
            "unattributed_write_mb_s": unknown / secs / 1e6,
            "write_ops_per_s": sum(s.ops for s in shares) / secs, "flushes_per_s": flushes}


def _top(share: CpuShare) -> list[str]:
    return [f"{name} {cores:.2f}" for name, cores in share.top_foreign]


def preflight(*, fsync_dir: Path, proc: Path = Path("/proc"), sys: Path = Path("/sys"),
              fsync_seconds: float = 0.8, rtt_seconds: float = 0.3, generator_seconds: float = 0.4,
              own_roots: OwnRoots | None = None, slow_fsync: SlowFsync | None = None) -> HostFigures:
    """Measure what the host can carry now, in about 1.5 s (the three budgets plus reads of /proc). With `own_roots`
    (the pids heading the stack's and the harness's process trees) the CPU used meanwhile is split into ours and
    foreign, and so are the writes of the disk holding `fsync_dir`, the probe's own saves set aside; without, neither
    is attributed (a note says so). With `slow_fsync` the saves are timed in a child under the same shim as the
    services. `assess` holds the figures against a demand."""
    t0 = time.monotonic()
    notes: list[str] = []
    if own_roots is None:
        notes.append("CPU not attributed (the stack's processes are not known on this target): PSI judged")
    first = _snap(own_roots, proc, notes)
    devices = _devices(fsync_dir, own_roots, sys, notes)
    io_first = _io_snap(first, devices, proc, notes)
    probe0 = thread_written(proc)
    cpu, io = read_psi("cpu", proc), read_psi("io", proc)
    if cpu is None or io is None:
        notes.append(f"PSI not available ({proc / 'pressure'} absent or unreadable): load average judged instead")
    if slow_fsync is None:
        fsync = measure_fsync(fsync_dir, seconds=fsync_seconds)
    else:
        fsync = measure_fsync_under(slow_fsync, fsync_dir, seconds=fsync_seconds)
        notes.append(f"{slow_fsync.label}: the stack's services and this save probe run under the LD_PRELOAD shim "
                     f"{slow_fsync.preload}")
    probe = thread_written(proc) - probe0 + fsync.pop("probe_written", 0)
    if "fsync_error" in fsync:
        notes.append(fsync.pop("fsync_error") + ": the broker's disk was not judged")
    rtt50, rtt99 = measure_loopback_rtt(seconds=rtt_seconds)
    gen_wall, gen_cpu = measure_generator(seconds=generator_seconds)
    last = _snap(own_roots, proc, notes) if first else None
    share = attribute(first, last) if first and last else None
    cpu_split: dict[str, Any] = {} if share is None else {
        "busy_cores": share.busy, "own_cores": share.own, "foreign_cores": share.foreign, "steal_cores": share.steal,
        "top_foreign": _top(share)}
    io_last = _io_snap(last, devices, proc, notes, probe) if io_first else None
    io_share = attribute_io(io_first, io_last) if io_first and io_last else None
    if io_share is not None and devices is not None:
        cpu_split |= io_figures([io_share], devices)
    return HostFigures(
        fsync_dir=str(fsync_dir), cores=len(os.sched_getaffinity(0)), cpu_quota_cores=_cpu_quota(),
        loadavg=os.getloadavg(), psi_cpu_some_avg10=cpu.some_avg10 if cpu else None,
        psi_io_some_avg10=io.some_avg10 if io else None, tcp_rtt_p50_us=rtt50, tcp_rtt_p99_us=rtt99,
        generator_per_s=gen_wall, generator_per_cpu_s=gen_cpu, **fsync, seconds=time.monotonic() - t0,
        slow_fsync_ms=slow_fsync.ms if slow_fsync else 0.0,
        taken_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"), notes=notes, **cpu_split)
