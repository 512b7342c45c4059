"""Processes the cluster starts: detached, logged to a file, remembered by pid *and* start time (a pid the kernel
gave to another process since is never signalled), stopped with SIGTERM and, after a grace period, SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path


def start_time(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22: starttime, in clock ticks since boot


def start(name: str, argv: list[str], env: dict[str, str], run_dir: Path, log_dir: Path) -> int:
    run_dir.mkdir(parents=True, exist_ok=True)
    log_dir.mkdir(parents=True, exist_ok=True)
    with open(log_dir / f"{name}.log", "ab") as log:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                env={**os.environ, **env}, start_new_session=True)
    (run_dir / f"{name}.pid").write_text(f"{proc.pid} {start_time(proc.pid) or ''}\n")
    return proc.pid


def running(name: str, run_dir: Path) -> int | None:
    """The pid of `name` when the process started for it still runs, else None."""
    try:
        pid_s, _, started = (run_dir / f"{name}.pid").read_text().strip().partition(" ")
        pid = int(pid_s)
    except (OSError, ValueError):
        return None
    now = start_time(pid)
    if now is None or (started and now != started) or _zombie(pid):
        return None
    return pid


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def stop(name: str, run_dir: Path, grace: float = 15.0) -> bool:
    """True when a process was stopped; the pid file goes either way."""
    pid = running(name, run_dir)
    stopped = False
    if pid is not None:
        signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and running(name, run_dir) is not None:
            time.sleep(0.1)
        if running(name, run_dir) is not None:
            signal_group(pid, signal.SIGKILL)
            time.sleep(0.2)
        _reap(pid)
        stopped = True
    (run_dir / f"{name}.pid").unlink(missing_ok=True)
    return stopped


def signal_group(pid: int, sig: int) -> None:
    """The process and its session (it was started as a session leader; its helpers go with it)."""
    for fn, target in ((os.killpg, pid), (os.kill, pid)):
        try:
            fn(target, sig)
        except (ProcessLookupError, PermissionError):
            continue


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def descendants(roots: list[int]) -> list[int]:
    """Every process below `roots`, deepest first (read from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    out: list[int] = []

    def walk(pid: int) -> None:
        for child in children.get(pid, []):
            walk(child)
            out.append(child)
    for r in roots:
        walk(r)
    return out


def with_argument(text: str) -> list[int]:
    """Pids whose command line holds `text` (containerd's shims name the socket they serve)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(int(entry.name))
    return found


def kill_all(pids: list[int], wait: float = 10.0) -> list[int]:
    """SIGKILL each, then wait until they are gone (reaped by whoever inherited them). Returns any still there."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            continue
    deadline = time.monotonic() + wait
    left = pids
    while left and time.monotonic() < deadline:
        for pid in left:
            _reap(pid)
        left = [p for p in left if Path(f"/proc/{p}").exists()]
        if left:
            time.sleep(0.1)
    return left
