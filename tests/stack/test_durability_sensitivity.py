"""The durability check fails, naming the lost content, when a component comes back without its data."""

from __future__ import annotations

import pytest

from indmlops.checks.live import durability
from indmlops.targets.local.target import LocalTarget

pytestmark = [pytest.mark.stack, pytest.mark.durability]


def test_durability_check_names_lost_rows_when_postgres_restarts_on_throwaway_data_dir(scratch_stack):
    stack = scratch_stack(no_autorestart=frozenset({"postgres"}))
    stack.up(["postgres"])
    target = LocalTarget(stack.layout.state_dir)
    data = stack.layout.data / "postgres"

    def throwaway_data_dir() -> None:
        # What a pod rescheduled onto an empty volume does: a fresh initdb, the role and database bootstrapped.
        data.rename(data.with_name("postgres.orig"))
        stack.up(["postgres"])

    with pytest.raises(AssertionError) as err:
        durability.content_survives_kill(target, "postgres", kinds=["postgres-rows"], timeout=30,
                                         after_kill=throwaway_data_dir)
    print(err.value)
    message = str(err.value)
    assert "postgres lost content across a kill" in message, message
    assert "indmlops_durability.content" in message and "all 500 rows lost" in message, message


def test_durability_check_passes_when_postgres_restarts_on_its_own_data_dir(scratch_stack):
    stack = scratch_stack()
    stack.up(["postgres"])
    outcome = durability.content_survives_kill(LocalTarget(stack.layout.state_dir), "postgres",
                                               kinds=["postgres-rows"], timeout=30)
    assert outcome.verified == {"postgres rows": 500}, outcome.summary()
