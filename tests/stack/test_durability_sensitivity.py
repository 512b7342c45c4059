"""The durability check fails, naming the lost content, when a component comes back without its data."""

from __future__ import annotations

import time

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


def test_durable_commit_check_reads_the_running_server_not_its_files(target):
    """`ALTER SYSTEM` writes postgresql.auto.conf, which no configuration file of ours shows; after a reload the
    server acknowledges commits before flushing them. The check asks the server and fails naming the setting."""
    import psycopg

    from indmlops.checks.live import durability

    ep, su = target.endpoint("postgres"), target.credentials("postgres", "superuser")

    def system(sql: str) -> None:
        with psycopg.connect(host=ep.host, port=ep.port, user=su.username, password=su.password,
                             dbname=su.extra["database"], autocommit=True) as conn:
            conn.execute(sql)
            conn.execute("SELECT pg_reload_conf()")

    print(durability.database_commits_durably(target))
    system("ALTER SYSTEM SET synchronous_commit = off")
    try:
        time.sleep(0.5)  # the reload is signalled; backends pick it up at their next command
        with pytest.raises(AssertionError, match=r"synchronous_commit = off \(expected on or local"):
            durability.database_commits_durably(target)
    finally:
        system("ALTER SYSTEM RESET synchronous_commit")
    time.sleep(0.5)
    print(durability.database_commits_durably(target))
