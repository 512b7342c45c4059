"""A small client for our own supervisord: start it, talk XML-RPC over its Unix socket, read its log."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import xmlrpc.client
from dataclasses import dataclass
from pathlib import Path

from indmlops.errors import IndMLOpsError
from indmlops.targets.local.layout import Layout


@dataclass(frozen=True)
class ProcInfo:
    name: str
    state: str
    pid: int
    start: float
    now: float
    spawnerr: str
    description: str

    @property
    def running(self) -> bool:
        return self.state == "RUNNING" and self.pid > 0

    @property
    def uptime(self) -> float:
        return max(0.0, self.now - self.start) if self.running else 0.0


def _proc_info(i: dict) -> ProcInfo:
    return ProcInfo(i["name"], i["statename"], i["pid"], i["start"], i["now"], i["spawnerr"], i["description"])


class Supervisor:
    def __init__(self, layout: Layout) -> None:
        self.layout = layout

    def _proxy(self):
        from supervisor.xmlrpc import SupervisorTransport  # here: reading a stack's stack.json needs no supervisor

        transport = SupervisorTransport(None, None, f"unix://{self.layout.supervisor_sock}")
        return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport).supervisor

    def pid(self) -> int | None:
        """Our supervisord's pid, if it runs: a stale pid file whose pid now belongs to another process is not."""
        try:
            pid = int(self.layout.supervisor_pid.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (FileNotFoundError, ProcessLookupError, ValueError):
            return None
        return pid if "supervisord" in cmdline and str(self.layout.supervisor_conf) in cmdline else None

    def alive(self) -> bool:
        if not self.layout.supervisor_sock.exists() or self.pid() is None:
            return False
        try:
            return self._proxy().getState()["statename"] == "RUNNING"
        except (OSError, xmlrpc.client.Error):
            return False

    def start_daemon(self, timeout: float = 15.0) -> None:
        self.layout.supervisor_sock.unlink(missing_ok=True)
        res = subprocess.run([sys.executable, "-m", "supervisor.supervisord", "-c", str(self.layout.supervisor_conf)],
                             capture_output=True, text=True)
        if res.returncode != 0:
            raise IndMLOpsError(f"supervisord failed to start (exit {res.returncode}): {res.stderr.strip()[-1500:]}")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.alive():
                return
            time.sleep(0.1)
        raise IndMLOpsError(
            f"supervisord did not answer on {self.layout.supervisor_sock} within {timeout:.0f} s; "
            f"see {self.layout.supervisor_log}"
        )

    def reload_config(self) -> None:
        """Make a running supervisord pick up re-rendered program definitions."""
        added, changed, removed = self._proxy().reloadConfig()[0]
        for name in removed:
            self._stop_if_running(name)
            self._proxy().removeProcessGroup(name)
        for name in changed:
            self._stop_if_running(name)
            self._proxy().removeProcessGroup(name)
            self._proxy().addProcessGroup(name)
        for name in added:
            self._proxy().addProcessGroup(name)

    def _stop_if_running(self, name: str) -> None:
        # A program stopped by hand (or by a test) whose definition changed: stopProcess answers NOT_RUNNING.
        try:
            self._proxy().stopProcess(name, True)
        except xmlrpc.client.Fault as exc:
            if "NOT_RUNNING" not in exc.faultString:
                raise

    def info(self, name: str) -> ProcInfo:
        try:
            return _proc_info(self._proxy().getProcessInfo(name))
        except xmlrpc.client.Fault as exc:
            raise IndMLOpsError(f"supervisord does not know program {name!r}: {exc.faultString}") from exc

    def all_info(self) -> dict[str, ProcInfo]:
        return {i["name"]: _proc_info(i) for i in self._proxy().getAllProcessInfo()}

    def start(self, name: str) -> None:
        try:
            self._proxy().startProcess(name, False)
        except xmlrpc.client.Fault as exc:
            if "ALREADY_STARTED" not in exc.faultString:
                raise

    def stop(self, name: str, wait: bool = True) -> None:
        try:
            self._proxy().stopProcess(name, wait)
        except xmlrpc.client.Fault as exc:
            if "NOT_RUNNING" not in exc.faultString:
                raise

    def stop_all_at_once(self, timeout: float = 60.0) -> None:
        """Send every running program its stop signal together, then wait for all of them.

        supervisord's own shutdown stops one program after another, each waiting up to its stopwaitsecs; at
        once, the slowest one decides (supervisord still SIGKILLs any that outlive their stopwaitsecs).
        """
        for name, proc in self.all_info().items():
            if proc.state in ("RUNNING", "STARTING", "BACKOFF"):
                self.stop(name, wait=False)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not any(p.state in ("RUNNING", "STARTING", "STOPPING", "BACKOFF") for p in self.all_info().values()):
                return
            time.sleep(0.1)

    def shutdown(self, timeout: float = 60.0) -> None:
        pid = self.pid()
        if pid is None:
            return
        try:
            self.stop_all_at_once(timeout)
            self._proxy().shutdown()
        except (OSError, xmlrpc.client.Error):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)
        raise IndMLOpsError(f"supervisord (pid {pid}) did not exit within {timeout:.0f} s; "
                            f"see {self.layout.supervisor_log}")

    _SPAWNED = re.compile(r"spawned: '([^']+)' with pid (\d+)")
    _STARTED = re.compile(r"supervisord started with pid (\d+)")

    def spawn_counts(self) -> dict[str, int]:
        """How many times each program was spawned since this supervisord started (from its own log)."""
        try:
            lines = Path(self.layout.supervisor_log).read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return {}
        start = max((i for i, line in enumerate(lines) if self._STARTED.search(line)), default=0)
        counts: dict[str, int] = {}
        for line in lines[start:]:
            m = self._SPAWNED.search(line)
            if m:
                counts[m.group(1)] = counts.get(m.group(1), 0) + 1
        return counts
