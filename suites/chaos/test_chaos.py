"""Chaos suite: each fixtures/chaos experiment, run by chaostoolkit through the target, must hold its steady state
before and after a fault that provably happened, recover within bound, and lose no acknowledged reading."""

from __future__ import annotations

from pathlib import Path

import pytest

from indmlops import intent
from indmlops.chaos import context, runner
from indmlops.plugin import option

pytestmark = pytest.mark.chaos

EXPERIMENTS = runner.experiments()
CHAOS = intent.load("slo")["chaos"]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "run_index" in metafunc.fixturenames:
        kills = CHAOS["kills_per_experiment"][option(metafunc.config, "profile")]
        cases = [(e, i) for e in EXPERIMENTS for i in range(1, kills + 1)]
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
    # What the stack alone answers for, whatever the host did: a proven loss (a later reading of the same machine
    # was predicted), duplicates beyond QoS1's redelivery window, a kill that replaced nothing.
    lost = [why for why in run.failures("stop") if "InterruptExecution: lost:" in why]
    assert not lost, f"{lost[0]}\n{summary}"
    recoveries = run.outputs("wait_ready")
    for rec in recoveries:
        assert rec["new_identity"] != rec["old_identity"], f"{rec['component']} was not replaced\n{summary}"
    for record in run.records("stop"):
        traffic, faulted = record["output"], record["activity"]["provider"]["arguments"].get("bound_for")
        bound = context.loss_bound(faulted, broker_autosave)
        assert traffic["lost_acknowledged"] <= bound, (f"lost: more than the {bound} allowed for a kill of {faulted} "
                                                       f"(broker_autosave {broker_autosave}): {traffic['summary']}"
                                                       f"\n{summary}")
        assert traffic["duplicates"] <= CHAOS["max_duplicates_per_kill"] * len(recoveries), (
            f"{traffic['duplicates']} readings predicted twice, at most {CHAOS['max_duplicates_per_kill']} per kill: "
            f"{traffic['summary']}\n{summary}")
    # What takes time (a steady-state probe's deadline, a recovery bound, the drain): a host that could not carry
    # the run before or during it makes these an environment verdict, with its figures (reports/environment.json).
    with host_fit.judging(host_run.summary):
        assert run.status == "completed" and not run.journal.get("deviated"), summary
        assert run.hypothesis_met("before") and run.hypothesis_met("after"), summary
        assert recoveries, f"no recovery recorded: the experiment killed nothing\n{summary}"
        for rec in recoveries:
            assert rec["recovery_s"] <= rec["bound_s"], summary
        for record in run.records("stop"):
            traffic = record["output"]
            assert traffic["acknowledged"] > 0, f"the traffic got no reading acknowledged\n{summary}"
            assert traffic["undrained"] == 0, (f"not drained (late or stalled, not shown lost): {traffic['summary']}"
                                               f"\n{summary}")
