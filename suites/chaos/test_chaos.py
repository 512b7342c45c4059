"""Chaos suite: each fixtures/chaos experiment, run by chaostoolkit through the target, must hold its steady state
before and after a fault that provably happened, recover within bound, and lose no acknowledged reading."""

from __future__ import annotations

from pathlib import Path

import pytest

from indmlops import intent
from indmlops.chaos import judge, runner
from indmlops.hostcheck import timing_failure
from indmlops.plugin import option

pytestmark = pytest.mark.chaos

CHAOS = intent.load("slo")["chaos"]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "run_index" in metafunc.fixturenames:
        profile = option(metafunc.config, "profile")
        kills = CHAOS["kills_per_experiment"][profile]
        cases = [(e, i) for e in runner.experiments(profile) for i in range(1, kills + 1)]
        metafunc.parametrize(("experiment", "run_index"), cases,
                             ids=[f"experiment/{e}" + (f"#{i}" if kills > 1 else "") for e, i in cases])


def test_experiment_holds_steady_state_and_recovers_when_fault_injected(target, experiment, run_index, pytestconfig,
                                                                        host_fit, broker_autosave):
    journal_dir = Path(option(pytestconfig, "reports_dir")) / "chaos"
    with host_fit.monitor(f"chaos/{experiment}#{run_index}") as host_run:
        run = runner.run(experiment, target, journal_dir, repeat=run_index)
    runner.summarize(journal_dir)  # reports/chaos/summary.txt, over every journal so far
    summary = run.summary()
    print(summary)
    # What the stack alone answers for, whatever the host did (indmlops.chaos.judge): a fault that hit nothing, a
    # run that did not complete or whose steady state did not hold, a loss (repaired by the outbox or not), readings
    # never acknowledged, duplicates beyond QoS1's redelivery window.
    stack = judge.stack_findings(run, broker_autosave)
    assert not stack, "\n".join(stack) + f"\n{summary}"
    # What takes time (a recovery bound, the drain, the catch-up): a host that could not carry the run before or
    # during it makes these an environment verdict, with its figures (reports/environment.json).
    # Only when the shortfall explains every breach (hostcheck.explain): a finding without numbers stays the stack's.
    with host_fit.judging(host_run.summary):
        timing = judge.timing_breaches(run)
        if timing:
            breaches = [b for _t, b in timing if b is not None]
            raise timing_failure("\n".join(t for t, _b in timing) + f"\n{summary}",
                                 breaches if len(breaches) == len(timing) else [])
