"""`indmlops up | down | status`: the local stack's lifecycle under our own supervisord."""

from __future__ import annotations

import errno
import os
import socket
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

from indmlops.broker import DEFAULT_BROKER_AUTOSAVE, canonical
from indmlops.errors import IndMLOpsError, NotReady, PortInUse, ServiceExited, StackNotRunning
from indmlops.targets.local import render, slowdisk
from indmlops.targets.local.launch import reap_previous
from indmlops.targets.local.layout import DEFAULT_PORTS, HOST, Layout, StackConfig
from indmlops.targets.local.services import SERVICES, endpoint, in_thread, with_requirements
from indmlops.targets.local.supervisor import Supervisor
from indmlops.wire import NoAnswer

Progress = Callable[[str], None]


def _quiet(_msg: str) -> None:
    pass


def tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return f"(no log at {path})"


def port_holder(port: int) -> str:
    """Who listens on `port`, from `ss`, when it can tell (best effort: the message is fine without it)."""
    try:
        out = subprocess.run(["ss", "-Htlnp", f"sport = :{port}"], capture_output=True, text=True, timeout=3).stdout
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.split("users:", 1)[1].strip() if "users:" in out else ""


def check_port_free(service: str, port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise PortInUse(service, port, port_holder(port)) from None
            raise


@dataclass
class ServiceStatus:
    name: str
    state: str
    pid: int
    ready: bool
    detail: str
    uptime: float
    restarts: int
    endpoint: str


class LocalStack:
    def __init__(self, state_dir: Path, ports: dict[str, int] | None = None,
                 no_autorestart: frozenset[str] = frozenset(), broker_autosave: str | None = None,
                 slow_fsync_ms: float | None = None) -> None:
        """`no_autorestart` names services supervisord must not restart (to prove recovery checks fail).
        `broker_autosave` None keeps a running stack's setting (a new stack gets the default)."""
        self.layout = Layout(state_dir)
        self._ports = ports
        self._broker_autosave = canonical(broker_autosave) if broker_autosave is not None else None
        self._no_autorestart = no_autorestart
        # A slow disk on purpose (slowdisk.py); None: INDMLOPS_SLOW_FSYNC_MS when `up` runs, else a running stack's
        # setting (a new stack: off).
        self._slow_fsync_ms = slow_fsync_ms
        self.supervisor = Supervisor(self.layout)

    # -- configuration --------------------------------------------------------------------------------------

    @property
    def ports(self) -> dict[str, int]:
        """The ports this stack was asked to use (the defaults unless given)."""
        return dict(self._ports or DEFAULT_PORTS)

    def config(self) -> StackConfig:
        return StackConfig.load(self.layout.state_dir)

    def running(self) -> bool:
        return self.supervisor.alive()

    # -- up -------------------------------------------------------------------------------------------------

    def up(self, services: list[str] | None = None, progress: Progress = _quiet,
           timeout: float | None = None) -> StackConfig:
        """Bring the named services (default: all) to protocol-level readiness; idempotent.

        On failure everything this call started is stopped again, and the error says why.
        """
        names = with_requirements(services or list(SERVICES))
        fresh = not self.layout.stack_file.exists()  # a new stack: its databases start empty
        self.layout.ensure()
        was_running = self.running()
        if was_running:
            cfg = self.config()
            if self._ports and self._ports != cfg.ports:
                raise IndMLOpsError(
                    f"the stack in {self.layout.state_dir} is running with other ports; `indmlops down` first"
                )
        else:
            cfg = StackConfig.create(self.layout.state_dir, self.ports,
                                     self._broker_autosave or DEFAULT_BROKER_AUTOSAVE)
        slow_ms = self._slow_fsync_ms if self._slow_fsync_ms is not None else slowdisk.ms_from_environment()
        if was_running and slow_ms is not None and slow_ms != cfg.slow_fsync_ms:
            # Every program carries the shim from its start: changing it means restarting them all.
            raise IndMLOpsError(
                f"the stack in {self.layout.state_dir} is running with slow_fsync_ms {cfg.slow_fsync_ms:g}, not "
                f"{slow_ms:g}; `indmlops down` first"
            )
        if not was_running:
            cfg.slow_fsync_ms = slow_ms or 0.0
        if not was_running:
            self.reap_orphans(progress)
        info = self.supervisor.all_info() if was_running else {}
        if was_running and self._broker_autosave and self._broker_autosave != cfg.broker_autosave:
            # Only the broker reads it: re-render its configuration and restart it alone. The stop is a SIGTERM,
            # on which Mosquitto writes its whole database, so the restart loses nothing.
            progress(f"mosquitto: broker_autosave {cfg.broker_autosave} -> {self._broker_autosave}: restarting it")
            cfg.broker_autosave = self._broker_autosave
            if "mosquitto" in info:
                self.supervisor.stop("mosquitto")
                info = self.supervisor.all_info()
            if "mosquitto" not in names:
                names.insert(0, "mosquitto")
        to_start = [n for n in names if not (n in info and info[n].running)]
        for n in to_start:
            for key in SERVICES[n].program_ports():
                check_port_free(n, cfg.ports[key])
        try:
            programs = {n: SERVICES[n].prepare(cfg) for n in SERVICES if n in names or n in info}
            for n in self._no_autorestart & programs.keys():
                programs[n]["autorestart"] = "false"
            cfg.save()
            render.write(self.layout.supervisor_conf, render.supervisord_conf(cfg, programs))
            if was_running:
                self.supervisor.reload_config()
            else:
                progress(f"supervisord: starting ({self.layout.supervisor_conf})")
                self.supervisor.start_daemon()
            jobs: dict[str, Callable[[], str]] = {}
            for n in to_start:
                beside = SERVICES[n].beside
                if beside:
                    jobs[n] = beside(cfg, fresh and not was_running)
            self._start_in_order(cfg, names, progress, timeout, jobs)
        except BaseException:
            if not was_running:
                progress("start failed: stopping everything this call started")
                self._teardown()
            else:
                for n in to_start:
                    self.supervisor.stop(n)
            raise
        return cfg

    def _start_in_order(self, cfg: StackConfig, names: list[str], progress: Progress, timeout: float | None,
                        jobs: dict[str, Callable[[], str]] | None = None) -> None:
        """Start each service as soon as those it waits for are ready, and wait until all are ready.

        A service's `beside` job (in `jobs`) runs in a thread from its start; the service is ready when its probe
        answers and the job has returned."""
        jobs = jobs or {}
        pending = list(names)
        started: dict[str, float] = {}
        running_jobs: dict[str, Future[str]] = {}
        ready: set[str] = set()
        last: dict[str, str] = {}
        while pending:
            changed = False
            for n in list(pending):
                svc = SERVICES[n]
                if n not in started and all(r in ready or r not in names for r in svc.waits_for()):
                    self.supervisor.start(n)
                    started[n] = time.monotonic()
                    if n in jobs:
                        running_jobs[n] = in_thread(jobs[n], f"indmlops-up-{n}")
                    progress(f"{n}: starting")
                    changed = True
                if n not in started:
                    continue
                job = running_jobs.get(n)
                if job is not None and job.done():
                    progress(f"{n}: {job.result()}")  # raises what the job raised
                    del running_jobs[n]
                    jobs.pop(n)
                proc = self.supervisor.info(n)
                if proc.state in ("FATAL", "BACKOFF"):
                    detail = proc.spawnerr or proc.description or proc.state
                    raise ServiceExited(n, f"state {proc.state}: {detail}", str(self.layout.log(n)),
                                        tail(self.layout.log(n)))
                if proc.state == "RUNNING":
                    try:
                        last[n] = svc.ready(cfg)
                    except NoAnswer as exc:
                        last[n] = str(exc)
                    else:
                        if n in jobs:
                            last[n] = f"{last[n]}, but the work beside its start has not finished"
                        else:
                            if svc.bootstrap:
                                progress(f"{n}: {svc.bootstrap(cfg)}")
                            progress(f"{n}: ready in {time.monotonic() - started[n]:.1f} s ({last[n]})")
                            ready.add(n)
                            pending.remove(n)
                            changed = True
                            continue
                else:
                    last[n] = f"supervisor state {proc.state}"
                limit = timeout or svc.start_timeout
                if time.monotonic() - started[n] > limit:
                    raise NotReady(n, limit, f"{last[n]}; log {self.layout.log(n)}:\n{tail(self.layout.log(n))}")
            if not changed:  # a service that became ready may let others start: look again at once
                time.sleep(0.2)

    # -- down -----------------------------------------------------------------------------------------------

    def down(self, progress: Progress = _quiet) -> bool:
        """Stop every service and supervisord; data stays. Returns False if nothing was running."""
        if self.supervisor.pid() is None:
            return bool(self.reap_orphans(progress))
        progress("stopping services and supervisord")
        self._teardown()
        return True

    def _teardown(self) -> None:
        self.supervisor.shutdown()
        self.layout.supervisor_sock.unlink(missing_ok=True)

    def reap_orphans(self, progress: Progress = _quiet) -> list[str]:
        """Kill services left running by a supervisord that died (SIGKILL, OOM): they would hold our ports.

        Only a process group whose leader still runs from this state directory (its working directory, set by
        supervisord) is ours; a recycled pgid of an unrelated process is left alone.
        """
        reaped = []
        for pgid_file in sorted(self.layout.run.glob("*.pgid")):
            try:
                pgid = int(pgid_file.read_text().strip())
                cwd = os.readlink(f"/proc/{pgid}/cwd")
            except (ValueError, OSError):
                pgid_file.unlink(missing_ok=True)
                continue
            if Path(cwd) != self.layout.state_dir and self.layout.state_dir not in Path(cwd).parents:
                continue
            progress(f"{pgid_file.stem}: killing process group {pgid} left by a supervisord that died")
            reap_previous(str(pgid_file))
            pgid_file.unlink(missing_ok=True)
            reaped.append(pgid_file.stem)
        return reaped

    # -- status ---------------------------------------------------------------------------------------------

    def status(self) -> list[ServiceStatus]:
        if not self.running():
            raise StackNotRunning(str(self.layout.state_dir))
        cfg = self.config()
        spawns = self.supervisor.spawn_counts()
        rows = []
        for name, proc in self.supervisor.all_info().items():
            ready, detail = False, proc.state
            if proc.running:
                try:
                    detail = SERVICES[name].ready(cfg)
                    ready = True
                except NoAnswer as exc:
                    detail = str(exc)
            rows.append(ServiceStatus(name, proc.state, proc.pid, ready, detail, proc.uptime,
                                      max(0, spawns.get(name, 0) - 1), str(endpoint(cfg, name))))
        order = list(SERVICES)
        return sorted(rows, key=lambda r: order.index(r.name) if r.name in order else len(order))


def format_status(rows: list[ServiceStatus]) -> str:
    header = ("SERVICE", "PID", "READY", "UPTIME", "RESTARTS", "ENDPOINT")
    table = [header] + [
        (r.name, str(r.pid or "-"), "yes" if r.ready else f"no ({r.state})", _human(r.uptime), str(r.restarts),
         r.endpoint)
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in table]
    notes = [f"  {r.name}: {r.detail}" for r in rows if not r.ready]
    return "\n".join(lines + notes)


def _human(seconds: float) -> str:
    if seconds <= 0:
        return "-"
    s = int(seconds)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"
