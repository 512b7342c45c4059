"""A slow disk on purpose: build the fsync-delaying LD_PRELOAD shim (slowfsync.c) once per source, and the setting
`INDMLOPS_SLOW_FSYNC_MS` that puts it under every service of the local stack."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

from indmlops.errors import IndMLOpsError, MissingDependency

SOURCE = Path(__file__).with_name("slowfsync.c")
ENV_MS = "INDMLOPS_SLOW_FSYNC_MS"  # the stack-wide setting, milliseconds (float); 0 or unset: off
ENV_US = "INDMLOPS_SLOW_FSYNC_US"  # what the shim reads, whole microseconds
# Where root keeps the shim: services drop to their own users (postgres, mosquitto), who cannot traverse root's
# 0700 home, so the .so must sit in a directory every user can reach.
ROOT_CACHE = Path("/var/cache/indmlops")


def parse_ms(text: str, origin: str) -> float:
    """A delay in milliseconds from `origin`, ≥ 0 and finite; errors name the origin."""
    try:
        value = float(text)
    except ValueError:
        raise IndMLOpsError(f"{origin} {text!r}: expected milliseconds, e.g. 3 or 0.5 (0: off)") from None
    if not 0 <= value <= 60_000:  # also refuses nan and inf
        raise IndMLOpsError(f"{origin} {text!r}: expected 0 to 60000 ms")
    return value


def ms_from_environment(env: Mapping[str, str] | None = None) -> float | None:
    """INDMLOPS_SLOW_FSYNC_MS, or None when unset (a running stack keeps its setting, a new one has none)."""
    env = os.environ if env is None else env
    text = env.get(ENV_MS, "").strip()
    return parse_ms(text, f"{ENV_MS} from environment") if text else None


def microseconds(ms: float) -> int:
    return round(ms * 1000)


def cache_dir(env: Mapping[str, str] | None = None, as_root: bool | None = None) -> Path:
    """/var/cache/indmlops as root; else $XDG_CACHE_HOME/indmlops, else ~/.cache/indmlops (outside the clone: a
    build survives a fresh checkout, and `git status` stays clean)."""
    env = os.environ if env is None else env
    if os.geteuid() == 0 if as_root is None else as_root:
        return ROOT_CACHE
    base = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "indmlops"


def shim_path(source: Path = SOURCE, directory: Path | None = None) -> Path:
    """Where the shim built from `source` lives: keyed by the source's sha256, so an edit builds anew."""
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:16]
    return (directory or cache_dir()) / f"slowfsync-{digest}.so"


def build(source: Path = SOURCE, directory: Path | None = None, compiler: str = "gcc") -> Path:
    """The shim's path, compiled first when not cached (~0.2 s). World-readable in a world-traversable directory,
    for services that drop privileges. Raises MissingDependency when gcc is absent, IndMLOpsError when it fails."""
    target = shim_path(source, directory)
    if target.exists():
        return target
    cc = shutil.which(compiler)
    if cc is None:
        raise MissingDependency(
            f"{compiler} (the C compiler that builds the slow-fsync shim {source.name})",
            f"apt-get install gcc libc6-dev, or run without a slow disk ({ENV_MS}=0, no --slow-fsync-ms)")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.parent.chmod(0o755)
    # Build beside the target and rename over it: two `up`s racing never see a half-written library.
    fd, tmp = tempfile.mkstemp(prefix=".slowfsync-", suffix=".so", dir=target.parent)
    os.close(fd)
    try:
        res = subprocess.run([cc, "-shared", "-fPIC", "-O2", "-Wall", "-o", tmp, str(source), "-ldl"],
                             capture_output=True, text=True, timeout=120)
        if res.returncode != 0:
            raise IndMLOpsError(f"{compiler} could not build the slow-fsync shim from {source} (exit "
                                f"{res.returncode}):\n{res.stderr[-2000:]}")
        os.chmod(tmp, 0o755)
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return target


def preload_env(preload: Path | str, us: int, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """`env` (default: this process's) with the shim first in LD_PRELOAD and its delay set."""
    out = dict(os.environ if env is None else env)
    others = [p for p in out.get("LD_PRELOAD", "").replace(":", " ").split() if p and p != str(preload)]
    out["LD_PRELOAD"] = " ".join([str(preload), *others])
    out[ENV_US] = str(us)
    return out
