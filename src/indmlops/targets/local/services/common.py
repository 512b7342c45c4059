"""What every local service shares: finding binaries, service users and their access to the state directory,
endpoints, and the `Service` record the stack starts."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from indmlops.errors import MissingDependency, StateDirError
from indmlops.targets.local.layout import HOST, StackConfig
from indmlops.wire import Endpoint

SYSTEM_INSTALL = "run `sudo scripts/install-system-packages.sh` (Debian: apt-get install {pkg})"
PROJECT_INSTALL = "run `scripts/setup.sh` ({what})"


def running_as_root() -> bool:
    return os.geteuid() == 0


def which(name: str, *extra: str) -> str | None:
    for cand in (shutil.which(name), *extra):
        if cand and os.access(cand, os.X_OK):
            return cand
    return None


def venv_bin(name: str) -> str | None:
    return which(name, str(Path(sys.executable).parent / name))


def postgres_bin(name: str) -> str | None:
    # Debian keeps server binaries out of PATH, under /usr/lib/postgresql/<major>/bin; prefer 15.
    versions = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                      key=lambda p: (Path(p).parts[-3] != "15", p))
    return which(name, *versions)


def service_user(name: str, pkg: str) -> str | None:
    """The unprivileged account a service runs as when we are root (None when we are not root)."""
    if not running_as_root():
        return None
    try:
        pwd.getpwnam(name)
    except KeyError:
        raise MissingDependency(f"system user {name!r}", SYSTEM_INSTALL.format(pkg=pkg)) from None
    return name


def own_for(user: str | None, *paths: Path, mode: int | None = None) -> None:
    for p in paths:
        if user:
            entry = pwd.getpwnam(user)
            os.chown(p, entry.pw_uid, entry.pw_gid)
        if mode is not None:
            p.chmod(mode)


def assert_reachable(user: str | None, path: Path, service: str) -> None:
    """A service running as `user` must traverse every parent of its data dir (a 0700 home blocks it)."""
    if not user:
        return
    ok = subprocess.run(["test", "-w", str(path)], user=user, cwd="/", capture_output=True).returncode == 0
    if ok:
        return
    blocker = next((str(p) for p in reversed(path.parents) if not _traversable_by(user, p)), str(path))
    raise StateDirError(
        f"{service} runs as user {user!r}, which cannot reach {path} (blocked at {blocker}, mode "
        f"{oct(os.stat(blocker).st_mode & 0o777)}): put the state directory somewhere every user can traverse, "
        f"e.g. INDMLOPS_STATE_DIR=/var/tmp/indmlops, or `chmod o+x {blocker}`"
    )


def _traversable_by(user: str, path: Path) -> bool:
    return subprocess.run(["test", "-x", str(path)], user=user, cwd="/", capture_output=True).returncode == 0


def endpoint(cfg: StackConfig, service: str) -> Endpoint:
    if service == "simulator":  # listens nowhere; where it publishes is what a user wants to know
        return Endpoint(service, HOST, cfg.ports["mosquitto"], "mqtt")
    scheme = {"mosquitto": "mqtt", "postgres": "postgresql", "s3": "http", "mlflow": "http",
              "prometheus": "http", "nodered": "http", "inference": "http"}[service]
    return Endpoint(service, HOST, cfg.ports[service], scheme)


def indmlops_command(cfg: StackConfig, *args: str) -> list[str]:
    """argv running this project's CLI on the stack in `cfg` (the inference service, the simulator, training)."""
    return [sys.executable, "-m", "indmlops.cli", "--state-dir", str(cfg.layout.state_dir), *args]


T = TypeVar("T")


def in_thread(fn: Callable[[], T], name: str) -> Future[T]:
    """Run `fn` in a daemon thread (a failed `up` must not wait for it to end); its outcome comes in the Future."""
    fut: Future[T] = Future()

    def run() -> None:
        try:
            fut.set_result(fn())
        except BaseException as exc:
            fut.set_exception(exc)

    threading.Thread(target=run, name=name, daemon=True).start()
    return fut


@dataclass
class Service:
    name: str
    requires: tuple[str, ...]
    prepare: Callable[[StackConfig], dict[str, str]]  # renders config, returns the supervisord program
    ready: Callable[[StackConfig], str]  # answers its protocol, or raises NoAnswer with what it saw
    bootstrap: Callable[[StackConfig], str] | None = None
    start_timeout: float = 60.0
    ports: tuple[str, ...] | None = None  # port names it listens on; None: the one named like the service
    start_after: tuple[str, ...] | None = None  # default: all of `requires`
    # Work beside the service's start: `beside(cfg, fresh)` is called before anything starts (`fresh`: this `up`
    # creates the stack's state, so its databases start empty) and returns a job that runs in a thread from the
    # moment the service starts. The service is ready once its probe answers and the job has returned (the job's
    # message is reported; if it raises, `up` fails with its error).
    beside: Callable[[StackConfig, bool], Callable[[], str]] | None = None

    def waits_for(self) -> tuple[str, ...]:
        return self.requires if self.start_after is None else self.start_after

    def program_ports(self) -> tuple[str, ...]:
        return (self.name,) if self.ports is None else self.ports


