"""Benchmark: the quick suites under a noisy neighbour. N times, run `pytest suites/ --profile quick` with a
selection (default: the latency, chaos and smoke markers) while stress-ng loads the CPUs and the disk, and read
each run's JUnit XML: passed, failed by the stack, failed by the environment (`verdict=environment`, see
src/indmlops/hostcheck/), and whether a failure blamed on the stack claims a loss. A host that cannot carry the
profile must produce environment verdicts, never "lost" readings charged to the stack.

    .venv/bin/python bench/noisy_neighbour.py [--runs 5] [-m "latency or chaos or smoke"]
        [--stress "--cpu 2 --io 1 --hdd 1 --hdd-bytes 64M"] [--stress-timeout 900] [--no-stress] [-- PYTEST ARGS]

Exit 1 when a run had a stack failure claiming a loss, 2 when a run produced no JUnit XML, else 0. Results:
reports/noisy-neighbour/ (summary.txt, summary.json, and per run run-K/: junit.xml, environment.json,
pytest.log, stress-ng.log). stress-ng (Debian package stress-ng) is installed with apt-get when missing and this
runs as root; it is stopped on every way out (normal end, exception, Ctrl-C, SIGTERM, SIGHUP). Not part of CI.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "reports" / "noisy-neighbour"
DEFAULT_MARKERS = "latency or chaos or smoke"
# 2 CPU hogs for the 2 cores, 1 sync() loop and 1 writer of a 64 MB file (stress-ng's default is 1 GB per worker):
# the compiles + fsync-heavy database of issue 17, bounded in space.
DEFAULT_STRESS = "--cpu 2 --io 1 --hdd 1 --hdd-bytes 64M"

# A failure claims a loss when it counts lost readings above zero. The latency verdict prints every row (its
# "lost ratio 0.0000 (0/1510)" row too) and the chaos summary has a "lost" column, so the bare word proves nothing.
LOSS_PATTERNS = (
    re.compile(r"lost ratio [\d.]+ \((\d+)/\d+\)"),              # latency: delivery lost ratio 0.0300 (45/1500)
    re.compile(r"['\"]lost_acknowledged['\"]: (\d+)"),            # chaos traffic report
    re.compile(r"(\d+) acknowledged QoS1 readings .{0,80}?got no prediction"),  # chaos traffic interruption
    re.compile(r"\b(\d+) (?:readings? )?lost\b"),                 # "3 lost", "3 readings lost"
)


def claims_loss(text: str) -> bool:
    return any(int(n) > 0 for pattern in LOSS_PATTERNS for n in pattern.findall(text))


@dataclass
class RunResult:
    index: int
    exit_code: int
    seconds: float
    passed: int = 0
    skipped: int = 0
    failed_stack: list[str] = field(default_factory=list)
    failed_environment: list[str] = field(default_factory=list)
    stack_losses: list[str] = field(default_factory=list)  # stack failures claiming a loss
    environment_losses: list[str] = field(default_factory=list)
    preflight: str = ""
    junit: bool = True

    def line(self) -> str:
        loss = f"LOSS blamed on the stack: {', '.join(self.stack_losses)}" if self.stack_losses else "no stack loss"
        env_loss = (f" ({len(self.environment_losses)} environment verdicts saw losses)"
                    if self.environment_losses else "")
        if not self.junit:
            return f"run {self.index}: no JUnit XML (pytest exit {self.exit_code}): see its pytest.log"
        return (f"run {self.index}: {self.passed} passed, {len(self.failed_stack)} failed-stack, "
                f"{len(self.failed_environment)} failed-environment, {self.skipped} skipped; {loss}{env_loss} "
                f"({self.seconds:.0f} s, pytest exit {self.exit_code})")


def read_junit(path: Path, result: RunResult) -> None:
    """Classify every test case of a JUnit XML file into `result`."""
    for case in ET.parse(path).getroot().iter("testcase"):
        name = f"{case.get('classname')}::{case.get('name')}"
        bad = [e for e in case if e.tag in ("failure", "error")]
        if not bad:
            if any(e.tag == "skipped" for e in case):
                result.skipped += 1
            else:
                result.passed += 1
            continue
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        text = "\n".join(f"{e.get('message', '')}\n{e.text or ''}" for e in bad)
        env = props.get("verdict") == "environment"
        (result.failed_environment if env else result.failed_stack).append(name)
        if claims_loss(text):
            (result.environment_losses if env else result.stack_losses).append(name)


def ensure_stress_ng(install: bool) -> str:
    found = shutil.which("stress-ng")
    if found:
        return found
    if not install or os.geteuid() != 0:
        sys.exit("noisy_neighbour: stress-ng is not installed; install the Debian package with "
                 "`sudo apt-get install -y stress-ng` (or run this as root without --no-install)")
    print("noisy_neighbour: stress-ng is not installed; installing the Debian package stress-ng with apt-get",
          flush=True)
    cmd = ["apt-get", "install", "-y", "--no-install-recommends", "stress-ng"]
    if subprocess.run(cmd, env=dict(os.environ, DEBIAN_FRONTEND="noninteractive")).returncode != 0:
        subprocess.run(["apt-get", "update"], check=False)
        subprocess.run(cmd, check=False, env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
    found = shutil.which("stress-ng")
    if not found:
        sys.exit("noisy_neighbour: `apt-get install stress-ng` did not provide stress-ng; install it by hand")
    return found


class Stress:
    """stress-ng in its own process group; `stop()` ends the whole group and is safe to call twice."""

    def __init__(self, binary: str, args: list[str], timeout_s: int, log: Path) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="indmlops-stress-", dir="/var/tmp"))
        self.cmd = [binary, *args, "--timeout", f"{timeout_s}s", "--temp-path", str(self.tmp), "--metrics-brief"]
        self.log = log
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log, "w") as log:
            log.write("$ " + shlex.join(self.cmd) + "\n")
            log.flush()
            self.proc = subprocess.Popen(self.cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    proc.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        shutil.rmtree(self.tmp, ignore_errors=True)


def _raise_on(sig: int, _frame: object) -> None:
    raise SystemExit(128 + sig)  # unwinds through the finally blocks that stop stress-ng and pytest


def run_once(index: int, args: argparse.Namespace, stress_ng: str | None) -> RunResult:
    out = OUT / f"run-{index}"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    cmd = [sys.executable, "-m", "pytest", "suites/", "--profile", "quick", "-m", args.markers,
           "--reports-dir", str(out), "-p", "no:cacheprovider", *args.pytest_args]
    stress = None
    if stress_ng:
        stress = Stress(stress_ng, shlex.split(args.stress), args.stress_timeout, out / "stress-ng.log")
        atexit.register(stress.stop)  # also on paths that skip the finally below (sys.exit in a signal handler)
    t0 = time.monotonic()
    pytest_proc = None
    try:
        if stress:
            stress.start()
            time.sleep(args.warmup)  # let the stressors reach full pressure before the preflight measures
        with open(out / "pytest.log", "w") as log:
            log.write("$ " + shlex.join(cmd) + "\n")
            log.flush()
            pytest_proc = subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
            code = pytest_proc.wait(args.run_timeout)
    except BaseException:
        if pytest_proc is not None and pytest_proc.poll() is None:
            pytest_proc.send_signal(signal.SIGINT)  # pytest tears its fixtures (and a stack it started) down
            try:
                pytest_proc.wait(120)
            except subprocess.TimeoutExpired:
                pytest_proc.kill()
        raise
    finally:
        if stress:
            stress.stop()
    result = RunResult(index, code, time.monotonic() - t0)
    junit = out / "junit.xml"
    if junit.exists():
        read_junit(junit, result)
    else:
        result.junit = False
    env = out / "environment.json"
    if env.exists():
        doc = json.loads(env.read_text())
        short = "; ".join(s["text"] for s in doc.get("shortfalls", []))
        result.preflight = f"host short: {short}" if short else "host fit before the run"
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("-m", "--markers", default=DEFAULT_MARKERS, help=f"pytest -m selection ({DEFAULT_MARKERS!r})")
    parser.add_argument("--stress", default=DEFAULT_STRESS, help=f"stress-ng stressors ({DEFAULT_STRESS!r})")
    parser.add_argument("--stress-timeout", type=int, default=900,
                        help="stress-ng's own --timeout per run, s: bounds it even if this script is killed -9")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds of stress before pytest starts")
    parser.add_argument("--run-timeout", type=float, default=3600, help="seconds one pytest run may take")
    parser.add_argument("--no-stress", action="store_true", help="baseline: the same runs on a quiet host")
    parser.add_argument("--no-install", action="store_true", help="do not apt-get install a missing stress-ng")
    parser.add_argument("pytest_args", nargs="*", help="after --: passed to pytest")
    args = parser.parse_args(argv)
    stress_ng = None if args.no_stress else ensure_stress_ng(not args.no_install)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _raise_on)
    # Ctrl-C as KeyboardInterrupt even when started with SIGINT ignored (a background job of a non-interactive
    # shell, nohup): Python leaves an inherited SIG_IGN in place, and the pytest it starts would inherit it too.
    # A handler (unlike SIG_IGN) is reset to the default by exec, so pytest's own Ctrl-C teardown works as well.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    OUT.mkdir(parents=True, exist_ok=True)
    results: list[RunResult] = []
    header = (f"noisy neighbour: {args.runs} runs of `pytest suites/ --profile quick -m {args.markers!r}` under "
              + ("no stress (baseline)" if args.no_stress else f"stress-ng {args.stress}"))
    print(header, flush=True)
    for i in range(1, args.runs + 1):
        r = run_once(i, args, stress_ng)
        results.append(r)
        print(r.line() + (f"; {r.preflight}" if r.preflight else ""), flush=True)
    lost = [r for r in results if r.stack_losses]
    broken = [r for r in results if not r.junit]
    verdict = (f"FAIL: {len(lost)} of {len(results)} runs blamed a loss on the stack" if lost else
               f"ok: no run blamed a loss on the stack ({sum(len(r.failed_environment) for r in results)} "
               f"environment verdicts, {sum(len(r.failed_stack) for r in results)} other stack failures)")
    lines = [header, *(r.line() + (f"; {r.preflight}" if r.preflight else "") for r in results), verdict]
    (OUT / "summary.txt").write_text("\n".join(lines) + "\n")
    (OUT / "summary.json").write_text(json.dumps({"markers": args.markers, "stress": None if args.no_stress else
                                                  args.stress, "runs": [asdict(r) for r in results]}, indent=2) + "\n")
    print(verdict, f"\nresults: {OUT}/", flush=True)
    return 1 if lost else 2 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
