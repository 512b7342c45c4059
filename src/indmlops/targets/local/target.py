"""LocalTarget: the stack's real services as supervised processes on 127.0.0.1."""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from indmlops.errors import IndMLOpsError, NotReady, NotSupportedByTarget, UnknownComponent
from indmlops.targets.base import (
    Credentials,
    DryRunVerdict,
    EnforcementEvidence,
    KillEvidence,
    ProbeRequest,
    ProbeResult,
    ReadyEvidence,
)
from indmlops.targets.local import services as svc
from indmlops.targets.local import slowdisk
from indmlops.targets.local.layout import StackConfig, state_dir_note
from indmlops.targets.local.stack import LocalStack, format_status, tail
from indmlops.wire import Endpoint, NoAnswer

if TYPE_CHECKING:
    from indmlops.hostcheck.measure import SlowFsync

# Why the live isolation suite skips here, in its skip message.
LOCAL_ISOLATION = ("every local service is a process on 127.0.0.1 in one network namespace, so there is no "
                   "NetworkPolicy to observe; run suites/isolation with --target kind (a cluster whose CNI enforces "
                   "NetworkPolicy). The static isolation matrix (suites/static) still judges the policies here")


def _wait_gone(pid: int, timeout: float) -> None:
    """Until `pid` has exited (gone, or a zombie its supervisor has yet to reap)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError, IndexError):
            return
        if state in ("Z", "X"):
            return
        time.sleep(0.01)
    raise IndMLOpsError(f"pid {pid} still alive {timeout:.0f} s after SIGKILL")


class LocalTarget:
    name = "local"

    def __init__(self, state_dir: Path) -> None:
        self.stack = LocalStack(state_dir)
        self._cfg: StackConfig | None = None

    @property
    def state_dir(self) -> Path:
        return self.stack.layout.state_dir

    @property
    def cfg(self) -> StackConfig:
        if self._cfg is None:
            self._cfg = self.stack.config()
        return self._cfg

    def _require(self, service: str) -> None:
        if service not in svc.SERVICES:
            raise NotSupportedByTarget(
                self.name, f"service {service!r}",
                f"the local stack runs {', '.join(svc.SERVICES)}; {service} runs on the Kubernetes targets only "
                "(--target kind|kubeconfig)",
            )

    def endpoint(self, service: str) -> Endpoint:
        self._require(service)
        return svc.endpoint(self.cfg, service)

    def credentials(self, service: str, role: str | None = None) -> Credentials:
        self._require(service)
        c = self.cfg.credentials
        if service == "mosquitto":
            role = role or "monitor"
            key = f"{role}_password"
            if key not in c["mosquitto"]:
                raise IndMLOpsError(f"no MQTT role {role!r}: expected one of "
                                    f"{', '.join(k.removesuffix('_password') for k in c['mosquitto'])}")
            return Credentials(service, role, c["mosquitto"][key])
        if service == "postgres":
            pg = c["postgres"]
            if role in (None, "mlflow"):
                return Credentials(service, pg["user"], pg["password"], {"database": pg["database"]})
            if role == "superuser":
                return Credentials(service, pg["superuser"], pg["superuser_password"], {"database": "postgres"})
            raise IndMLOpsError(f"no PostgreSQL role {role!r}: expected mlflow or superuser")
        if service == "s3":
            s3 = c["s3"]
            return Credentials(service, s3["access_key"], s3["secret_key"],
                               {"region": s3["region"], "bucket": s3["bucket"]})
        # MLflow, Prometheus and Node-RED listen on loopback without authentication on this target.
        return Credentials(service, "", "")

    def components(self) -> list[str]:
        return list(svc.SERVICES)

    def _component(self, component: str) -> None:
        if component not in svc.SERVICES:
            raise UnknownComponent(component, list(svc.SERVICES))

    def identity(self, component: str) -> str:
        self._component(component)
        return str(self.stack.supervisor.info(component).pid)

    def kill(self, component: str) -> KillEvidence:
        """SIGKILL the component's whole process group, as a node or the OOM killer would."""
        self._component(component)
        proc = self.stack.supervisor.info(component)
        if not proc.running:
            raise IndMLOpsError(f"cannot kill {component}: it is not running (supervisor state {proc.state})")
        at = time.time()
        os.killpg(proc.pid, signal.SIGKILL)
        _wait_gone(proc.pid, 5.0)  # a probe right after the signal could still reach the dying process
        return KillEvidence(component, str(proc.pid), "SIGKILL", at)

    def wait_ready(self, component: str, timeout: float) -> ReadyEvidence:
        self._component(component)
        t0 = time.monotonic()
        last = "not polled yet"
        while time.monotonic() - t0 < timeout:
            proc = self.stack.supervisor.info(component)
            if proc.running:
                try:
                    detail = svc.SERVICES[component].ready(self.cfg)
                    return ReadyEvidence(component, str(proc.pid), time.monotonic() - t0, detail)
                except NoAnswer as exc:
                    last = f"pid {proc.pid} {proc.state}: {exc}"
            else:
                last = f"supervisor state {proc.state} {proc.spawnerr}".strip()
            time.sleep(0.1)
        log = self.stack.layout.log(component)
        raise NotReady(component, timeout, f"{last}; log {log}:\n{tail(log, 10)}")

    def restarts(self, component: str) -> int:
        self._component(component)
        return max(0, self.stack.supervisor.spawn_counts().get(component, 0) - 1)

    def volume_identity(self, component: str) -> str:
        self._component(component)
        raise NotSupportedByTarget(
            self.name, "volume identity",
            "a restarted local process reopens the same path under the state directory by construction; whether "
            "a replacement pod mounts the same PersistentVolumeClaim is checked by the Kubernetes target",
        )

    def probe(self, requests: list[ProbeRequest], timeout: float) -> list[ProbeResult]:
        raise NotSupportedByTarget(self.name, "live isolation probing", LOCAL_ISOLATION)

    def enforcement_canary(self, timeout: float) -> EnforcementEvidence:
        raise NotSupportedByTarget(self.name, "the NetworkPolicy enforcement canary", LOCAL_ISOLATION)

    def server_dry_run(self, body: dict, declared_namespaces: frozenset[str]) -> DryRunVerdict:
        raise NotSupportedByTarget(self.name, "server-side validation of manifests",
                                   "the local target runs no Kubernetes API server; run the static suite with "
                                   "--target kubeconfig (or kind) to have a cluster judge each object")

    def versions(self) -> dict[str, str]:
        """Versions of the services under test, as each binary reports itself."""
        out: dict[str, str] = {}
        commands = {
            "mosquitto": (svc.which("mosquitto", "/usr/sbin/mosquitto"), "-h"),
            "postgres": (svc.postgres_bin("postgres"), "--version"),
            "s3": (svc.venv_bin("weed"), "version"),
            "prometheus": (svc.which("prometheus", "/usr/bin/prometheus"), "--version"),
        }
        for name, (binary, flag) in commands.items():
            if not binary:
                out[name] = "not installed"
                continue
            try:
                res = subprocess.run([binary, flag], capture_output=True, text=True, timeout=20)
                text = (res.stdout or res.stderr).strip().splitlines()
                out[name] = text[0][:80] if text else "unknown"
            except (OSError, subprocess.SubprocessError) as exc:
                out[name] = f"unknown ({exc})"
        from importlib.metadata import PackageNotFoundError, version

        try:
            out["mlflow"] = f"mlflow {version('mlflow')}"
        except PackageNotFoundError:
            out["mlflow"] = "not installed"
        pkg = svc.NODERED_JS.parent / "package.json"
        if pkg.exists():
            import json

            out["nodered"] = "node-red " + json.loads(pkg.read_text())["version"]
        return out

    def hold(self, component: str) -> str:
        self._component(component)
        pid = self.identity(component)
        self.stack.supervisor.stop(component)
        return f"supervisorctl stop {component} (pid {pid})"

    def release(self, component: str) -> None:
        self._component(component)
        self.stack.supervisor.start(component)

    @contextlib.contextmanager
    def outage(self, component: str, ready_timeout: float = 60.0) -> Iterator[None]:
        """`component` stopped (not killed: supervisord does not restart it) for the block, then started again and
        ready: how the project's own tests show a check fails when its service is down."""
        self._component(component)
        self.stack.supervisor.stop(component)
        try:
            yield
        finally:
            self.stack.supervisor.start(component)
            self.wait_ready(component, ready_timeout)

    # --- what the harness needs around a test -------------------------------------------------------------------

    def describe(self) -> str:
        note = state_dir_note(self.stack.layout.state_dir)
        if not self.stack.running():
            wanted = slowdisk.ms_from_environment()
            shim = f"; it will start under the slow-fsync shim: {wanted:g} ms per fsync ({slowdisk.ENV_MS})" \
                if wanted else ""
            return (f"local stack not running yet in {self.stack.layout.state_dir} (the `target` fixture starts it "
                    f"when a test needs it){'; ' + note if note else ''}{shim}")
        shim = f"; slow-fsync shim: {self.cfg.slow_fsync_ms:g} ms per fsync" if self.cfg.slow_fsync_ms else ""
        return "local stack " + ", ".join(f"{c}={self.endpoint(c)}" for c in self.components()) + \
            (f"; {note}" if note else "") + shim

    def evidence(self, directory: Path) -> str:
        for name in svc.SERVICES:
            (directory / f"{name}.log.tail").write_text(tail(self.stack.layout.log(name), 200) + "\n")
        try:
            status = format_status(self.stack.status())
        except IndMLOpsError as exc:
            status = str(exc)
        (directory / "status.txt").write_text(status + "\n")
        return f"--target local --state-dir {shlex.quote(str(self.stack.layout.state_dir))}"

    def broker_autosave(self) -> str | None:
        """Read from the configuration file the running broker was started with, not from what `up` was asked: a
        file edited by hand (or by a fault) is what the broker does."""
        from indmlops import broker

        conf = self.stack.layout.conf / "mosquitto" / "mosquitto.conf"
        try:
            return str(broker.from_conf(conf.read_text()))
        except OSError:
            return str(self.cfg.broker_autosave)
        except ValueError as exc:
            raise IndMLOpsError(f"{conf}: {exc}") from None

    def broker_data_dir(self) -> Path | None:
        path = self.stack.layout.data / "mosquitto"
        return path if path.is_dir() else None

    def slow_fsync(self) -> SlowFsync | None:
        """stack.json's slow_fsync_ms, with the shim its services preload (built once per source: the same path)."""
        from indmlops.hostcheck.measure import SlowFsync

        ms = self.cfg.slow_fsync_ms
        return SlowFsync(ms, str(slowdisk.build())) if ms > 0 else None

    def process_roots(self) -> list[int] | None:
        pid = self.stack.supervisor.pid()
        return [] if pid is None else [pid]

    def close(self) -> None:
        """Nothing held: the stack's lifecycle is the factory's (it stops a stack it started)."""
