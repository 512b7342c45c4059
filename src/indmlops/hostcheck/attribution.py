"""Whose CPU was it: busy time on this host's cores split into our own process trees (the stack under test, the
harness) and everyone else's ("foreign"), from /proc/stat and /proc/<pid>/stat."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

# /proc/stat columns, in order: user nice system idle iowait irq softirq steal guest guest_nice. guest and
# guest_nice are already inside user and nice, so neither is added again.
_BUSY = ("user", "nice", "system", "irq", "softirq", "steal")
_COLUMNS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")

OwnRoots = Callable[[], Iterable[int]]


@dataclass(frozen=True)
class ProcStat:
    """One /proc/<pid>/stat: `cpu` is utime + stime + cutime + cstime (ticks): the process's own CPU and that of
    the children it has reaped, so a child that exits moves its CPU into its parent's count instead of losing it."""

    pid: int
    ppid: int
    comm: str
    start: int  # starttime, ticks since boot: (pid, start) names one process even when the pid is reused
    cpu: int
    self_cpu: int = 0  # utime + stime alone: what naming the busiest strangers uses (a reaped child is not theirs)

    @property
    def key(self) -> tuple[int, int]:
        return self.pid, self.start


def parse_pid_stat(text: str) -> ProcStat:
    """`pid (comm) state ppid … utime stime cutime cstime … starttime …` (proc(5)); comm may hold ' ' and ')'."""
    head, _, rest = text.rpartition(")")
    pid, _, comm = head.partition(" (")
    f = rest.split()  # f[0] is field 3 (state): field n is f[n - 3]
    try:
        own = int(f[11]) + int(f[12])
        return ProcStat(int(pid), int(f[1]), comm, int(f[19]), own + int(f[13]) + int(f[14]), own)
    except (IndexError, ValueError) as exc:
        raise ValueError(f"unexpected /proc/<pid>/stat text {text[:80]!r}") from exc


@dataclass(frozen=True)
class CpuTicks:
    """Summed over the cores this process may run on: ticks busy (steal included), of which steal, and elapsed."""

    busy: int
    steal: int
    total: int
    cpus: int


def parse_cpu_stat(text: str, cpus: Iterable[int] | None = None) -> CpuTicks:
    """The `cpuN` lines of /proc/stat for `cpus` (all when None): a 64-core host's other cores are not ours."""
    wanted = None if cpus is None else {f"cpu{n}" for n in cpus}
    busy = steal = total = n = 0
    for line in text.splitlines():
        name, *values = line.split()
        if not name.startswith("cpu") or name == "cpu" or (wanted is not None and name not in wanted):
            continue
        row = dict(zip(_COLUMNS, map(int, values), strict=False))
        busy += sum(row.get(c, 0) for c in _BUSY)
        steal += row.get("steal", 0)
        total += sum(row.values())
        n += 1
    if not n:
        raise ValueError(f"no cpuN line in /proc/stat text {text[:80]!r}")
    return CpuTicks(busy, steal, total, n)


@dataclass(frozen=True)
class Snapshot:
    """The host's CPU counters and every process at one moment, with the keys of our own trees."""

    ticks: CpuTicks
    procs: dict[tuple[int, int], ProcStat]
    own: frozenset[tuple[int, int]]
    at: float = 0.0


def descendants(procs: Iterable[ProcStat], roots: Iterable[int]) -> set[tuple[int, int]]:
    """Keys of the roots and everything below them."""
    children: dict[int, list[ProcStat]] = {}
    by_pid = {}
    for p in procs:
        children.setdefault(p.ppid, []).append(p)
        by_pid[p.pid] = p
    out: set[tuple[int, int]] = set()
    todo = [by_pid[r] for r in set(roots) if r in by_pid]
    while todo:
        p = todo.pop()
        if p.key not in out:
            out.add(p.key)
            todo += children.get(p.pid, [])
    return out


def snapshot(roots: Iterable[int], proc: Path = Path("/proc"), cpus: Iterable[int] | None = None) -> Snapshot:
    """One pass over /proc (a few ms for a few hundred processes); a process that exits mid-pass is skipped."""
    ticks = parse_cpu_stat((proc / "stat").read_text(), cpus)
    procs: dict[tuple[int, int], ProcStat] = {}
    for entry in os.scandir(proc):
        if entry.name.isdigit():
            try:
                p = parse_pid_stat((Path(entry.path) / "stat").read_text())
            except (OSError, ValueError):
                continue
            procs[p.key] = p
    return Snapshot(ticks, procs, frozenset(descendants(procs.values(), roots)), time.monotonic())


@dataclass(frozen=True)
class CpuShare:
    """Cores' worth of CPU between two snapshots: busy = own + foreign; steal is foreign (the hypervisor's)."""

    cores: int
    busy: float
    own: float
    foreign: float
    steal: float
    top_foreign: tuple[tuple[str, float], ...] = ()

    @property
    def foreign_pct(self) -> float:
        return 100 * self.foreign / self.cores


def own_ticks(before: Snapshot, after: Snapshot) -> int:
    """CPU ticks our trees used between the snapshots. Per process (key = pid + start time, so a reused pid is a new
    process): the growth of utime+stime+cutime+cstime, all of it for one born since. A process of ours that exited
    was reaped by its parent (supervisord, Popen.wait), whose cutime grew by its whole life: what it had used by
    `before` is taken off again so only the interval counts. A child reaped by a stranger (re-parented to init) leaves
    its last interval uncounted, which errs toward "foreign" by at most one interval of that one process."""
    grown = sum(p.cpu - before.procs[k].cpu if k in before.procs else p.cpu
                for k, p in after.procs.items() if k in after.own)
    pid_key = {k[0]: k for k in after.own}
    reaped = sum(p.cpu for k, p in before.procs.items()
                 if k in before.own and k not in after.procs and pid_key.get(p.ppid) is not None)
    return max(0, grown - reaped)


def attribute(before: Snapshot, after: Snapshot, *, top: int = 3) -> CpuShare | None:
    """Split the busy time between the snapshots into own and foreign cores; None when no time passed. Ticks of
    elapsed time come from the same counters (total ÷ cores), so a late sample does not inflate the figures."""
    elapsed = (after.ticks.total - before.ticks.total) / after.ticks.cpus  # ticks per core
    if elapsed <= 0:
        return None
    busy = max(0, after.ticks.busy - before.ticks.busy)
    own = min(busy, own_ticks(before, after))
    by_name: dict[str, int] = {}
    for k, p in after.procs.items():
        if k not in after.own and k in before.procs:
            by_name[p.comm] = by_name.get(p.comm, 0) + p.self_cpu - before.procs[k].self_cpu
    ranked = sorted(((n, t / elapsed) for n, t in by_name.items() if t > 0), key=lambda x: -x[1])
    return CpuShare(after.ticks.cpus, busy / elapsed, own / elapsed, (busy - own) / elapsed,
                    max(0, after.ticks.steal - before.ticks.steal) / elapsed,
                    tuple((n, round(c, 2)) for n, c in ranked[:top] if c >= 0.05))
