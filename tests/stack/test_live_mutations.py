"""The live mutation harness: one realistic fault at a time in a running scratch stack, the suite that ought to
notice it run in a fresh pytest process, and that run must fail naming the fault (tests/stack/live_faults.py).

The same selection passes on the unbroken stack first, so each failure below is the fault's and not the stack's.
Reproduce one by hand: `indmlops up`, apply the change `what` says, then the command printed for it.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import live_faults
import pytest

from indmlops.paths import REPO_ROOT

pytestmark = pytest.mark.stack

RUN_TIMEOUT_S = 600  # the slowest selection (durability's broker kill, with its settle time) takes ~30 s here


@dataclass
class SuiteRun:
    command: list[str]
    returncode: int
    failures: dict[str, str]  # test id -> its failure text
    passed: int
    output: str

    def shown(self) -> str:
        return " ".join(shlex.quote(c) for c in self.command)


def run_suite(args: list[str], state_dir: Path, reports: Path) -> SuiteRun:
    """`pytest <args>` in a fresh process against the stack in `state_dir`, as a user would run it; the verdicts
    are read from its JUnit XML. INDMLOPS_* variables of this session are not passed on: the run sees only the
    state directory it is given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INDMLOPS_")}
    command = [sys.executable, "-m", "pytest", *args, "--target", "local", "--state-dir", str(state_dir),
               "--profile", "quick", "--reports-dir", str(reports), "-p", "no:cacheprovider", "-q"]
    done = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
                          check=False)
    failures: dict[str, str] = {}
    passed = 0
    junit = reports / "junit.xml"
    if junit.exists():
        for case in ET.parse(junit).iter("testcase"):
            bad = case.findall("failure") + case.findall("error")
            if bad:
                failures[f"{case.get('classname')}::{case.get('name')}"] = "\n".join(
                    f"{b.get('message', '')}\n{b.text or ''}" for b in bad)
            elif not case.findall("skipped"):
                passed += 1
    return SuiteRun(command, done.returncode, failures, passed, done.stdout[-6000:] + done.stderr[-2000:])


@pytest.fixture(scope="module")
def live(module_scratch_stack):
    stack = module_scratch_stack()
    stack.up()
    return live_faults.Live(stack)


def test_every_fault_selection_passes_on_the_unbroken_stack(live, tmp_path):
    suites = sorted({f.suite for f in live_faults.FAULTS})
    selection = " or ".join(f"({f.select})" for f in live_faults.FAULTS)
    run = run_suite([*suites, "-k", selection], live.stack.layout.state_dir, tmp_path)
    assert run.returncode == 0 and not run.failures and run.passed, (
        f"the suites fail on the unbroken scratch stack, so no fault below could be told apart "
        f"(exit {run.returncode}, {run.passed} passed, failed: {list(run.failures)}):\n{run.output}\n"
        f"reproduce: {run.shown()}")
    print(f"{run.passed} tests passed on the unbroken stack: {run.shown()}")


@pytest.mark.parametrize("fault", live_faults.FAULTS, ids=[f"fault/{f.name}" for f in live_faults.FAULTS])
def test_suite_fails_naming_the_fault(live, fault, tmp_path):
    with fault.inject(live):
        run = run_suite([fault.suite, "-k", fault.select], live.stack.layout.state_dir, tmp_path)
    print(f"{live_faults.describe(fault)}\n  {run.shown()}\n  exit {run.returncode}, failed: {list(run.failures)}")
    assert run.returncode == 1 and run.failures, (
        f"fault {live_faults.describe(fault)}: {fault.suite} -k {fault.select!r} did not fail (exit "
        f"{run.returncode}, {run.passed} passed):\n{run.output}\nreproduce: {run.shown()}")
    named = {test: m.group(0) for test, text in run.failures.items()
             if (m := re.search(fault.names, text, re.S))}
    assert named, (
        f"fault {live_faults.describe(fault)}: {fault.suite} failed, but no failure says what is wrong (expected "
        f"/{fault.names}/); the failures say:\n"
        + "\n".join(f"--- {t}\n{text[:1500]}" for t, text in run.failures.items()) + f"\nreproduce: {run.shown()}")
    for test, said in named.items():
        print(f"  {test}: ...{said[:300]}...")
    # The fault is undone: every component is ready again, so the next fault starts from a whole stack.
    for component in live.target.components():
        live.target.wait_ready(component, 90)


def test_the_catalogue_spans_the_live_areas_and_the_classes_of_issue_25():
    faults = live_faults.FAULTS
    assert len(faults) >= 15 and len({f.name for f in faults}) == len(faults), [f.name for f in faults]
    suites = {f.suite for f in faults}
    assert {"suites/smoke", "suites/durability", "suites/mlflow", "suites/observability"} <= suites, suites
    kinds = {f.kind for f in faults}
    for cls in ("readiness that says ready", "durability behaviour that differs", "message contract weakened",
                "identity contract", "expectation read from the configuration under test", "another protocol",
                "limit that drops"):
        assert any(cls in k for k in kinds), f"no fault of the class {cls!r}: {sorted(kinds)}"
