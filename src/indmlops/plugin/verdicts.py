"""Environment verdicts (src/indmlops/hostcheck/, fixtures/host.yaml): the host's figures before the first latency or
chaos test, and every failure labelled `verdict=environment` (the host could not carry the profile) or
`verdict=stack`, in JUnit XML (a property) and in a terminal section of its own."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from indmlops.plugin.config import option
from indmlops.plugin.session import live_printer
from indmlops.targets.base import Target

if TYPE_CHECKING:
    from indmlops.hostcheck import HostFit, OwnRoots

_HOST_FIT = pytest.StashKey["HostFit"]()


@pytest.fixture(scope="session")
def host_fsync_dir(pytestconfig: pytest.Config, target: Target) -> Path:
    """Where the preflight times saves: the broker's persistence directory when it is on this host's disk; else the
    reports directory (a kind cluster's nodes write to this host's disk too)."""
    broker = target.broker_data_dir()
    if broker is not None:
        return broker
    reports = Path(option(pytestconfig, "reports_dir"))
    reports.mkdir(parents=True, exist_ok=True)
    return reports


def _own_roots(target: Target) -> OwnRoots | None:
    """The pids heading our own process trees, asked again at each sample: this pytest (the xdist controller when in
    a worker) with Locust and the chaos clients below it, and the target's own process roots on this host (the
    local stack's supervisord). None where the target does not map its processes (containers on a cluster), so
    neither the host's CPU nor its disk writes are attributed there."""
    if target.process_roots() is None:
        return None
    harness = os.getppid() if os.environ.get("PYTEST_XDIST_WORKER") else os.getpid()

    def roots() -> list[int]:
        return [harness, *(target.process_roots() or [])]

    return roots


@pytest.fixture(scope="session")
def host_fit(pytestconfig: pytest.Config, target: Target, host_fsync_dir: Path, broker_autosave: str) -> HostFit:
    """The host measured once per session (~1.3 s) against the session's profile and the broker's save interval,
    in reports/environment.json; `host_fit.monitor(name)` watches a run, `host_fit.judging(summary)` around the
    asserts (or `host_fit.judge(text, summary)`) raises the right verdict."""
    from indmlops import hostcheck, slo

    prof = slo.profile(option(pytestconfig, "profile"))
    peak = slo.peak_rate(prof)
    # The host is judged against every load the session will offer, not the latency profile's alone: the chaos
    # traffic asks 200 readings/s where the quick profile asks 100.
    from indmlops.chaos.runner import traffic_rates

    peak = max([peak, *traffic_rates(prof.name)])
    try:
        thresholds = hostcheck.Thresholds.load()
    except hostcheck.HostFileError as exc:
        raise pytest.UsageError(str(exc)) from None
    roots = _own_roots(target)
    # Under a slow disk on purpose (INDMLOPS_SLOW_FSYNC_MS) the saves are timed under the services' own shim.
    figures = hostcheck.preflight(fsync_dir=host_fsync_dir, own_roots=roots, slow_fsync=target.slow_fsync())
    fit = hostcheck.HostFit(figures, hostcheck.Demand(prof.name, prof.rate, peak, broker_autosave), thresholds,
                            Path(option(pytestconfig, "reports_dir")) / "environment.json", own_roots=roots)
    pytestconfig.stash[_HOST_FIT] = fit
    live_printer(pytestconfig, "indmlops host")(fit.line())
    return fit


def record_verdict(item: pytest.Item, call: pytest.CallInfo, report: pytest.TestReport) -> None:
    from indmlops.hostcheck import EnvironmentVerdict

    env = call.excinfo is not None and call.excinfo.errisinstance(EnvironmentVerdict)
    prop = ("verdict", "environment" if env else "stack")
    if prop not in item.user_properties:  # the teardown report carries it into JUnit XML
        item.user_properties.append(prop)
    if prop not in report.user_properties:
        report.user_properties.append(prop)


def _crash_line(report: pytest.TestReport) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    text = crash.message if crash is not None else str(report.longrepr)
    return text.splitlines()[0] if text else ""


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config) -> None:
    """Environment verdicts apart from failures of the stack, whenever the host was measured or blamed."""
    env: list[pytest.TestReport] = []
    stack: list[pytest.TestReport] = []
    for rep in terminalreporter.stats.get("failed", []) + terminalreporter.stats.get("error", []):
        verdict = dict(getattr(rep, "user_properties", ())).get("verdict")
        if verdict:
            (env if verdict == "environment" else stack).append(rep)
    fit = config.stash.get(_HOST_FIT, None)
    if fit is None and not env:
        return
    tr = terminalreporter
    tr.write_sep("=", "indmlops verdicts: the host or the stack")
    if fit is not None:
        tr.write_line(f"host before the first run: {fit.line()}")
        for name, run in fit.runs.items():
            mon = run["monitor"]
            found = "; ".join(s["text"] for s in run["shortfalls"]) or (
                "carried it" if mon["samples"] else "not sampled (shorter than the monitor's interval)")
            if run.get("context"):  # e.g. a slow disk that our own writes explain: not held against the host
                found += f"; not the host's: {'; '.join(run['context'])}"
            tr.write_line(f"host during {name} ({mon['samples']} samples, {mon['seconds']:.0f} s): {found}")
    tr.write_line(f"environment verdicts (the host, not the stack): {len(env)}")
    for rep in env:
        tr.write_line(f"  {rep.nodeid} ({rep.when}): {_crash_line(rep)}")
    tr.write_line(f"failures of the stack: {len(stack)}")
    for rep in stack:
        tr.write_line(f"  {rep.nodeid} ({rep.when}): {_crash_line(rep)}")
    if fit is not None:
        fit.verdicts.update({rep.nodeid: "environment" for rep in env} | {rep.nodeid: "stack" for rep in stack})
        fit.write()
        tr.write_line(f"figures: {fit.path}")
