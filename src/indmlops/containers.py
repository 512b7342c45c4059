"""Container images without a registry: the engine (Docker or Podman), building with scripts/build-images.sh,
and running a container the way this machine allows."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from indmlops.errors import IndMLOpsError
from indmlops.paths import REPO_ROOT

BUILD_SCRIPT = REPO_ROOT / "scripts" / "build-images.sh"
IMAGES = ("simulator", "inference", "mlflow", "probe")
# The stand-ins of manifests/overlays/cluster for images no registry here offers (images/<name>/Dockerfile).
SERVICE_IMAGES = ("postgres", "mosquitto", "prometheus", "nodered", "s3", "jupyter")
DEFAULT_TAG = "dev"

# Debian's Podman 4.3 runs containers here only with runc and explicit limits: crun, and the default
# rlimits podman asks for, fail on setrlimit (FIELD-NOTES).
PODMAN_RUN_FLAGS = ("--runtime", "runc", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024")


class NoEngine(IndMLOpsError):
    """Neither a Docker engine nor Podman is available."""


def image_ref(name: str, tag: str = DEFAULT_TAG) -> str:
    return f"localhost/indmlops-{name}:{tag}"


def qualified(ref: str) -> str:
    """docker.io/library/indmlops-x:1 for indmlops-x:1: the name a kubelet looks up for a short reference (Podman
    would tag a short name localhost/, which that lookup does not match)."""
    first = ref.split("/")[0]
    if "/" in ref and ("." in first or ":" in first or first == "localhost"):
        return ref
    return f"docker.io/{ref}" if "/" in ref else f"docker.io/library/{ref}"


def detect_engine(preferred: str | None = None) -> str:
    """`docker` when a Docker engine answers, otherwise `podman` when installed; NoEngine says what to install."""
    if preferred:
        if preferred not in ("docker", "podman"):
            raise IndMLOpsError(f"engine {preferred!r}: expected docker or podman")
        if not shutil.which(preferred):
            raise NoEngine(f"engine {preferred}: not installed")
        return preferred
    if shutil.which("docker"):
        try:
            if subprocess.run(["docker", "info"], capture_output=True, timeout=10).returncode == 0:
                return "docker"
        except subprocess.TimeoutExpired:
            pass
    if shutil.which("podman"):
        return "podman"
    raise NoEngine("no container engine: no Docker engine answers and podman is not installed "
                   "(Debian: apt-get install podman runc mmdebstrap, or sudo scripts/install-system-packages.sh)")


@dataclass
class BuildResult:
    returncode: int
    output: str
    seconds: float
    base: str = ""
    images: list[str] = field(default_factory=list)

    @property
    def failing_step(self) -> str:
        """The script's own summary of a failed build ("failing step: STEP 2/9: RUN ..."), or ''."""
        lines = [ln.split("build-images: ", 1)[1].strip() for ln in self.output.splitlines()
                 if "build-images: " in ln and ("failing step:" in ln or "  error:" in ln or "FAILED" in ln)]
        return "\n".join(lines)


def build(names: list[str] | None = None, *, engine: str | None = None, base: str | None = None,
          rebuild_base: bool = False, tag: str = DEFAULT_TAG, context: Path | None = None,
          echo: bool = False, timeout: float = 1200.0) -> BuildResult:
    """Run scripts/build-images.sh; its output is kept (and echoed live to stderr when `echo`).

    A cold build of all images takes about 2.5 min here; after `timeout` seconds (default 20 min) the build is
    killed and the result says so, with the output up to then."""
    if not BUILD_SCRIPT.exists():
        raise IndMLOpsError(f"{BUILD_SCRIPT} is missing: images are built from a source checkout of the project")
    argv = ["bash", str(BUILD_SCRIPT), "--tag", tag]
    if engine:
        argv += ["--engine", engine]
    if base:
        argv += ["--base", base]
    if rebuild_base:
        argv.append("--rebuild-base")
    if context:
        argv += ["--context", str(context)]
    argv += list(names or [])
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO_ROOT,
                            start_new_session=True)
    timed_out = threading.Event()

    def kill() -> None:
        # The script and the engine's build under it. SIGTERM first: a build killed outright leaves its
        # working containers behind in the engine's storage.
        timed_out.set()
        for sig, grace in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 0.0)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            try:
                proc.wait(grace)
                return
            except subprocess.TimeoutExpired:
                pass

    timer = threading.Timer(timeout, kill)
    timer.start()
    out: list[str] = []
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            out.append(line)
            if echo:
                sys.stderr.write(line)
                sys.stderr.flush()
        rc = proc.wait()
    finally:
        timer.cancel()
    if timed_out.is_set():
        out.append(f"build-images: FAILED: killed after {timeout:.0f} s (timeout)\n")
        rc = rc if rc > 0 else 124
        _remove_build_leftovers()
    text = "".join(out)
    res = BuildResult(rc, text, time.monotonic() - t0)
    for line in text.splitlines():
        if line.startswith("base "):
            res.base = line.split(" ", 1)[1]
        elif line.startswith("image "):
            res.images.append(line.split(" ", 1)[1])
    return res


def _remove_build_leftovers() -> None:
    """Podman 4.3 leaves a killed build's working containers (storage only, never running) behind, whatever the
    signal. Remove them; this assumes no other build runs on the machine at that moment (CI builds serially)."""
    if not shutil.which("podman"):
        return
    listing = subprocess.run(["podman", "ps", "--all", "--external", "--format", "{{.ID}} {{.Names}}"],
                             capture_output=True, text=True, timeout=60).stdout.split("\n")
    ids = [line.split()[0] for line in listing if "-working-container" in line]
    if ids:
        subprocess.run(["podman", "rm", "--force", *ids], capture_output=True, timeout=120)


def run_argv(engine: str) -> list[str]:
    """`<engine> run` with the flags this machine needs."""
    return [engine, "run", *PODMAN_RUN_FLAGS] if engine == "podman" else [engine, "run"]


def image_size_mb(engine: str, ref: str) -> int:
    out = subprocess.run([engine, "image", "inspect", "--format", "{{.Size}}", ref], capture_output=True,
                         text=True, timeout=30)
    if out.returncode != 0:
        raise IndMLOpsError(f"{engine} image inspect {ref}: {out.stderr.strip()}")
    return int(out.stdout.strip()) // 1_000_000


def image_user(engine: str, ref: str) -> str:
    out = subprocess.run([engine, "image", "inspect", "--format", "{{.Config.User}}", ref], capture_output=True,
                         text=True, timeout=30)
    return out.stdout.strip()


class Container:
    """One detached container; `logs()` for evidence, `remove()` always (idempotent)."""

    def __init__(self, engine: str, ref: str, args: list[str], *, env: dict[str, str] | None = None,
                 name: str, entrypoint: str | None = None) -> None:
        self.engine, self.ref, self.name = engine, ref, name
        argv = [*run_argv(engine), "--detach", "--name", name, "--network", "host"]
        for key in sorted(env or {}):
            argv += ["--env", key]  # the value comes from our environment: no secret on a command line
        if entrypoint is not None:
            argv += ["--entrypoint", entrypoint]
        argv += [ref, *args]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=60,
                              env={**os.environ, **(env or {})})
        if proc.returncode != 0:
            self.remove()
            raise IndMLOpsError(f"{engine} run {ref} failed (exit {proc.returncode}): {proc.stderr.strip()}")
        self.id = proc.stdout.strip()

    def state(self) -> str:
        out = subprocess.run([self.engine, "inspect", "--format", "{{.State.Status}} exit={{.State.ExitCode}}",
                              self.name], capture_output=True, text=True, timeout=30)
        return out.stdout.strip() or out.stderr.strip()

    def running(self) -> bool:
        return self.state().startswith("running")

    def logs(self, tail: int = 60) -> str:
        out = subprocess.run([self.engine, "logs", "--tail", str(tail), self.name], capture_output=True, text=True,
                             timeout=30)
        return (out.stdout + out.stderr).strip()

    def exec(self, *cmd: str) -> subprocess.CompletedProcess:
        return subprocess.run([self.engine, "exec", self.name, *cmd], capture_output=True, text=True, timeout=60)

    def wait_exit(self, timeout: float) -> int:
        """The container's exit code once it stops; raises with its state and logs after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            st = self.state()
            m = re.match(r"(exited|stopped) exit=(-?\d+)", st)
            if m:
                return int(m.group(2))
            time.sleep(0.5)
        raise IndMLOpsError(f"container {self.name} ({self.ref}) still {self.state()} after {timeout:.0f} s; "
                            f"logs:\n{self.logs()}")

    def stop(self, timeout: int = 10) -> None:
        """SIGTERM, then SIGKILL after `timeout` s; the container and its logs stay until remove()."""
        subprocess.run([self.engine, "stop", "-t", str(timeout), self.name], capture_output=True,
                       timeout=timeout + 60)

    def remove(self) -> None:
        subprocess.run([self.engine, "rm", "--force", self.name], capture_output=True, timeout=60)
