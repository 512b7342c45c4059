"""Process launcher used by supervisord: reap the previous incarnation's process group, drop privileges, exec.

supervisord makes each program the leader of its own process group. When a leader is SIGKILLed from outside,
its children (MLflow's uvicorn workers, PostgreSQL backends) survive as orphans in the old group and keep the
port. Before exec-ing the new incarnation we kill whatever is left of the group recorded last time.
"""

from __future__ import annotations

import argparse
import os
import pwd
import signal
import sys
import time
from collections.abc import MutableMapping
from pathlib import Path


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def reap_previous(pgid_file: str) -> None:
    try:
        with open(pgid_file) as f:
            old = int(f.read().strip())
    except (FileNotFoundError, ValueError):
        return
    if old == os.getpgid(0) or not _group_alive(old):
        return
    try:
        os.killpg(old, signal.SIGKILL)
    except ProcessLookupError:
        return
    # SIGKILL is delivered at once, but the kernel releases sockets only when the processes are reaped
    # (by init, as orphans): 5 s in 50 ms steps is ample on a loaded 2-core machine.
    for _ in range(100):
        if not _group_alive(old):
            break
        time.sleep(0.05)
    print(f"indmlops-launch: killed leftover process group {old} of the previous incarnation", flush=True)


def drop_privileges(user: str) -> None:
    entry = pwd.getpwnam(user)
    os.setgroups([])
    os.setgid(entry.pw_gid)
    os.setuid(entry.pw_uid)
    os.environ["HOME"] = entry.pw_dir
    os.environ["USER"] = os.environ["LOGNAME"] = user


def slow_fsync_env(env: MutableMapping[str, str], us: int, preload: str | None) -> None:
    """Put the slow-fsync shim under the program (slowfsync.c): it reads INDMLOPS_SLOW_FSYNC_US once at load, and
    LD_PRELOAD is inherited by everything the program starts (PostgreSQL's backends, MLflow's workers). 0: off, and
    a shim inherited from the launcher's own environment is taken out, so "off" is off."""
    listed = env.get("LD_PRELOAD", "").replace(":", " ").split()
    kept = [p for p in listed if not Path(p).name.startswith("slowfsync-")]
    if us > 0:
        if not preload or not os.access(preload, os.R_OK):
            # The loader would skip an unreadable library with a warning and the program would run unslowed.
            raise SystemExit(f"indmlops-launch: --slow-fsync-us needs --preload PATH, a readable shim (got "
                             f"{preload!r})")
        kept = [preload, *(p for p in kept if p != preload)]
        env["INDMLOPS_SLOW_FSYNC_US"] = str(us)
    else:
        env.pop("INDMLOPS_SLOW_FSYNC_US", None)
    if kept:
        env["LD_PRELOAD"] = " ".join(kept)
    else:
        env.pop("LD_PRELOAD", None)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="indmlops-launch")
    parser.add_argument("--pgid-file", required=True)
    parser.add_argument("--user")
    parser.add_argument("--slow-fsync-us", type=int, default=0, help="sleep this long before each fsync (the shim)")
    parser.add_argument("--preload", help="the slow-fsync shim (.so) to put in LD_PRELOAD")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given after --")
    reap_previous(args.pgid_file)
    if os.getpgid(0) != os.getpid():
        os.setpgid(0, 0)
    with open(args.pgid_file, "w") as fh:
        fh.write(str(os.getpgid(0)))
    if args.user and os.geteuid() == 0:
        drop_privileges(args.user)
    slow_fsync_env(os.environ, args.slow_fsync_us, args.preload)
    sys.stdout.flush()
    os.execvp(command[0], command)


if __name__ == "__main__":
    main()
