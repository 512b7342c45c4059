"""Whose disk writes were they: the writes of the device holding the broker's directory (/proc/diskstats) split into
our own trees' (/proc/<pid>/io) and everyone else's ("foreign"), the save probe's own set aside."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from indmlops.hostcheck.attribution import Snapshot

SECTOR = 512  # /proc/diskstats counts 512-byte sectors whatever the device's block size (iostats.rst)


@dataclass(frozen=True)
class Devices:
    """The block devices whose writes are counted, and a label saying which and why."""

    names: frozenset[str]
    label: str


def devices_for(path: Path, sys: Path = Path("/sys"), dev: int | None = None) -> Devices:
    """The disk holding `path`: st_dev → /sys/dev/block/MAJ:MIN, a partition's parent disk (vda1 → vda), a dm or md
    device as itself. A filesystem with no block device of its own (overlay, tmpfs, btrfs, NFS: major 0) falls back
    to every non-virtual disk in /sys/block (loop, zram and dm are virtual: a dm device's writes reach its disks, so
    counting both would count them twice)."""
    dev = os.stat(path).st_dev if dev is None else dev
    maj, mnr = os.major(dev), os.minor(dev)
    try:
        real = (sys / "dev" / "block" / f"{maj}:{mnr}").resolve(strict=True)
        name = real.parent.name if (real / "partition").exists() else real.name
        return Devices(frozenset({name}), f"{name} (holds {path})")
    except OSError:
        pass
    try:
        names = sorted(d.name for d in (sys / "block").iterdir() if "/devices/virtual/" not in str(d.resolve()))
    except OSError:
        names = []
    return Devices(frozenset(names), f"all non-virtual disks ({', '.join(names) or 'none'}): {path} is on "
                                     f"{maj}:{mnr}, which is no block device")


@dataclass(frozen=True)
class DiskCounters:
    """Cumulative writes of the counted devices: bytes, completed write requests, and flushes (None: kernel < 5.5)."""

    write_bytes: int
    write_ops: int
    flushes: int | None


def parse_diskstats(text: str, names: frozenset[str]) -> DiskCounters:
    """`maj min name` then reads (4 fields), writes completed, merged, sectors, ms, … and from 5.5 on flushes
    completed as field 18 of the line after the name (Documentation/admin-guide/iostats.rst)."""
    wb = ops = fl = seen = 0
    flushes = True
    for line in text.splitlines():
        f = line.split()
        if len(f) < 14 or f[2] not in names:
            continue
        try:
            ops += int(f[7])
            wb += int(f[9]) * SECTOR
            if len(f) >= 20:
                fl += int(f[18])
            else:
                flushes = False
        except ValueError as exc:
            raise ValueError(f"unexpected /proc/diskstats line {line[:80]!r}") from exc
        seen += 1
    if not seen:
        raise ValueError(f"none of {', '.join(sorted(names)) or 'no devices'} in /proc/diskstats")
    return DiskCounters(wb, ops, fl if flushes else None)


def parse_pid_io(text: str) -> int:
    """Bytes a process has caused to be written (`write_bytes` − `cancelled_write_bytes`, proc(5)): its own threads'
    and, like cutime, those of the children it has reaped (the kernel adds them at wait(); measured here)."""
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    try:
        return int(fields["write_bytes"]) - int(fields.get("cancelled_write_bytes", 0))
    except (KeyError, ValueError) as exc:
        raise ValueError(f"unexpected /proc/<pid>/io text {text[:80]!r}") from exc


def thread_written(proc: Path = Path("/proc")) -> int:
    """What the calling thread alone has written: the save probe's own bytes, to set aside (0 when unreadable)."""
    try:
        return parse_pid_io((proc / "thread-self" / "io").read_text())
    except (OSError, ValueError):
        return 0


@dataclass(frozen=True)
class IoSnapshot:
    """The devices' counters and every readable process's written bytes, beside the CPU snapshot's tree keys."""

    disk: DiskCounters
    written: dict[tuple[int, int], int]
    hidden: int  # processes whose io we may not read (another user's, without CAP_SYS_PTRACE)
    cpu: Snapshot
    probe: int = 0  # bytes the save probe had written by then (thread_written, cumulative)
    at: float = 0.0


def io_snapshot(cpu: Snapshot, devices: Devices, proc: Path = Path("/proc"), probe: int = 0) -> IoSnapshot:
    """One pass over /proc/<pid>/io for the processes of `cpu` (~1 ms per hundred); vanished ones are skipped."""
    disk = parse_diskstats((proc / "diskstats").read_text(), devices.names)
    written: dict[tuple[int, int], int] = {}
    hidden = 0
    for key in cpu.procs:
        try:
            written[key] = parse_pid_io((proc / str(key[0]) / "io").read_text())
        except PermissionError:
            hidden += 1
        except (OSError, ValueError):
            continue
    return IoSnapshot(disk, written, hidden, cpu, probe, time.monotonic())


@dataclass(frozen=True)
class IoShare:
    """Bytes written to the devices between two snapshots (the probe's set aside): own + foreign + unattributed =
    device. Unattributed: what no readable process was charged with while some process was hidden from us, or when
    nobody was charged at all; evidence for nobody, so never counted foreign."""

    seconds: float
    device: int
    own: int
    foreign: int
    ops: int
    flushes: int | None
    unattributed: int = 0

    @property
    def foreign_pct(self) -> float:
        return 100 * self.foreign / self.device if self.device else 0.0


def _grown(before: IoSnapshot, after: IoSnapshot, ours: bool) -> int:
    """Bytes written between the snapshots by our trees (`ours`) or by the readable strangers, as own_ticks counts
    CPU: growth per (pid, start), all of it for a process born since, less what a reaped child had written by
    `before` (its parent's counter grew by its whole life at wait()). A child reaped by init, or one that was born
    and reaped within one interval by a stranger's process, is counted where its reaper is: a child of ours orphaned
    to init leaves its last interval to "foreign", at most one interval of that one process."""
    side = after.cpu.own if ours else set(after.cpu.procs) - after.cpu.own
    grown = 0
    for k, w in after.written.items():
        if k in side:
            if k in before.written:
                grown += w - before.written[k]
            elif k not in before.cpu.procs:
                grown += w
    pid_side = {k[0] for k in side}
    grown -= sum(w for k, w in before.written.items() if (k in before.cpu.own) == ours and k not in after.cpu.procs
                 and before.cpu.procs[k].ppid in pid_side)
    return max(0, grown)


def attribute_io(before: IoSnapshot, after: IoSnapshot) -> IoShare | None:
    """Split the devices' write bytes between the snapshots into own and foreign; None when no time passed.

    A process is charged when it dirties a page (and for its O_DIRECT writes); the device is written at writeback,
    up to 30 s later (dirty_expire_centisecs) unless fsync'd, so a run's share is judged on its sums, not per second.
    What no process is charged with (the journal: measured on ext4, a 4 KB save+fsync puts ~15 KB on the device, 4 KB
    charged to the saver; metadata checkpoints; processes we may not read) is split in proportion to what our trees
    and the readable strangers were charged: the journal follows the writes it commits. Where some processes are
    hidden from us (another user's, read without privileges), or nobody was charged, it stays unattributed: a
    process we cannot read is no evidence that the host, rather than the stack, filled the disk."""
    seconds = after.at - before.at
    if seconds <= 0:
        return None
    probe = max(0, after.probe - before.probe)
    device = max(0, after.disk.write_bytes - before.disk.write_bytes - probe)
    own = min(device, max(0, _grown(before, after, True) - probe))
    strangers = min(device - own, _grown(before, after, False))
    rest = device - own - strangers
    unattributed = 0
    if after.hidden or own + strangers == 0:
        foreign, unattributed = strangers, rest
    else:
        foreign = strangers + round(rest * strangers / (own + strangers))
    flushes = (None if after.disk.flushes is None or before.disk.flushes is None
               else max(0, after.disk.flushes - before.disk.flushes))
    return IoShare(seconds, device, device - foreign - unattributed, foreign,
                   max(0, after.disk.write_ops - before.disk.write_ops), flushes, unattributed)
