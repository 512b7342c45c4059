"""Benchmark: cold and warm start of the local stack, against a baseline measured in the same run.

Baseline: PostgreSQL started alone on a warm state dir through the same machinery (supervisord, launcher,
protocol probe): what one simple service costs, so the ratios show what the whole stack adds. Prints each
figure and its ratio to that baseline, and optionally the wall time of `pytest suites/` against the stack.

    .venv/bin/python bench/stack_start.py [--runs 3] [--suites] [--offset N] [--state-prefix /var/tmp/x-]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from indmlops.paths import REPO_ROOT
from indmlops.targets.local.layout import resolve_ports
from indmlops.targets.local.stack import LocalStack


def timed_up(stack: LocalStack, services: list[str] | None = None) -> tuple[float, dict[str, float]]:
    ready: dict[str, float] = {}
    t0 = time.monotonic()

    def progress(msg: str) -> None:
        name, _, rest = msg.partition(": ")
        if rest.startswith("ready in"):
            ready[name] = time.monotonic() - t0

    stack.up(services, progress=progress)
    return time.monotonic() - t0, ready


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3, help="cold/warm pairs to measure (median is quoted)")
    env_offset = os.environ.get("INDMLOPS_PORT_OFFSET", "")
    ap.add_argument("--offset", type=int, default=int(env_offset) if env_offset.lstrip("-").isdigit() else 3000,
                    help="port offset, away from a stack you may be running (keep ports below 32768); "
                         "default INDMLOPS_PORT_OFFSET, else 3000")
    ap.add_argument("--state-prefix", default="/var/tmp/indmlops-bench-",
                    help="the runs' state directories go in a fresh directory with this prefix (its parent must be "
                         "traversable by the postgres and mosquitto users)")
    ap.add_argument("--suites", action="store_true", help="also time `pytest suites/` against the started stack")
    args = ap.parse_args()

    ports = resolve_ports(args.offset)
    cold, warm, base = [], [], []
    per_service: dict[str, dict[str, list[float]]] = {"cold": {}, "warm": {}}
    prefix = Path(args.state_prefix)
    root = Path(tempfile.mkdtemp(prefix=prefix.name, dir=prefix.parent))
    root.chmod(0o755)
    try:
        for i in range(args.runs):
            state = root / f"run{i}"
            stack = LocalStack(state, ports)
            for kind, times in (("cold", cold), ("warm", warm)):
                t, ready = timed_up(stack)
                times.append(t)
                for k, v in ready.items():
                    per_service[kind].setdefault(k, []).append(v)
                stack.down()
            base.append(timed_up(stack, ["postgres"])[0])
            stack.down()
            print(f"run {i + 1}: cold {cold[-1]:.1f} s, warm {warm[-1]:.1f} s, "
                  f"baseline (postgres alone, warm) {base[-1]:.1f} s", flush=True)
        med = statistics.median
        print()
        print(f"{'figure':<34}{'median':>8}{'min':>8}{'max':>8}{'x baseline':>12}")
        for name, xs in (("baseline: postgres alone, warm", base), ("cold start, all ready", cold),
                         ("warm start, all ready", warm)):
            print(f"{name:<34}{med(xs):>7.1f}s{min(xs):>7.1f}s{max(xs):>7.1f}s{med(xs) / med(base):>11.2f}x")
        print("\nseconds from `up` until each service was ready (median):")
        print(f"  {'service':<12}{'cold':>7}{'warm':>7}")
        for k, xs in sorted(per_service["cold"].items(), key=lambda kv: med(kv[1])):
            ws = per_service["warm"].get(k)
            print(f"  {k:<12}{med(xs):>5.1f} s{med(ws) if ws else float('nan'):>5.1f} s")
        print(f"\ngoal: all ready <= 15 s cold: {'met' if med(cold) <= 15 else 'NOT met'} (median {med(cold):.1f} s)")

        if args.suites:
            stack = LocalStack(root / "run0", ports)
            stack.up()
            env = dict(os.environ, INDMLOPS_STATE_DIR=str(stack.layout.state_dir))
            t0 = time.monotonic()
            res = subprocess.run([sys.executable, "-m", "pytest", "suites/", "-q", "-p", "no:cacheprovider",
                                  "--reports-dir", str(root / "reports")], cwd=REPO_ROOT, env=env,
                                 capture_output=True, text=True)
            wall = time.monotonic() - t0
            stack.down()
            tail = res.stdout.strip().splitlines()[-1] if res.stdout.strip() else res.stderr[-300:]
            print(f"pytest suites/ wall time: {wall:.1f} s ({wall / med(base):.1f}x baseline): {tail}")
            if res.returncode != 0:
                print(res.stdout[-3000:])
                return 1
    finally:
        for d in root.glob("run*"):
            LocalStack(d).down()
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
