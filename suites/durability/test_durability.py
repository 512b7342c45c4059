"""Durability suite: known content in every stateful component survives a kill of that component."""

from __future__ import annotations

from pathlib import Path

import pytest

from indmlops import intent, slo
from indmlops.checks.live import durability
from indmlops.plugin import option

# Kills disturb everything else, so these run with the chaos tests, after the rest of the session.
pytestmark = [pytest.mark.durability, pytest.mark.chaos]

PLAN = intent.load("durability")
COMPONENTS = list(PLAN["components"])


@pytest.fixture(scope="module")
def outcomes(pytestconfig):
    """Every kill's outcome; reports/durability/summary.{txt,json} is written when the module ends."""
    collected: list[durability.Outcome] = []
    yield collected
    if collected:
        path = durability.write_report(collected, Path(option(pytestconfig, "reports_dir")) / "durability")
        print(f"\n{path}:\n{path.read_text()}")


@pytest.mark.parametrize("component", COMPONENTS, ids=[f"kill/{c}" for c in COMPONENTS])
def test_content_survives_when_component_killed(target, component, profile, outcomes, no_s3_credentials):
    spec = PLAN["components"][component]
    timeout = slo.recovery_bound(slo.recovery_kind(target.name), component)
    for _ in range(PLAN["kills"][profile]):
        try:
            outcome = durability.content_survives_kill(target, component, kinds=spec["content"], timeout=timeout,
                                                       settle_s=spec.get("settle_s", 0))
        except durability.ContentLost as lost:
            outcomes.append(lost.outcome)  # the report shows the loss next to the other components
            raise
        outcomes.append(outcome)
        print(outcome.summary())


def test_database_runs_with_durable_commits(target):
    """What the running server says (SHOW), not its configuration files: the deployed behaviour is measured."""
    print(durability.database_commits_durably(target))
