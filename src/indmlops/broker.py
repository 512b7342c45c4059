"""The broker's durability setting (`broker_autosave`): its default, its validation and the loss it allows."""

from __future__ import annotations

# Mosquitto's `autosave_interval` with `autosave_on_changes true`: the database is saved after this many
# changes. 1 is the shipped value on both targets (docs/suites.md, "Broker durability: throughput vs loss").
DEFAULT_BROKER_AUTOSAVE = 1

# The tables that say, per setting, how many acknowledged messages one SIGKILL may lose.
CHAOS_TABLE = "fixtures/slo.yaml chaos.max_lost_acknowledged_by_broker_autosave"
DURABILITY_TABLE = "fixtures/durability.yaml components.mosquitto.max_lost_by_broker_autosave"


def lookup(table: dict, autosave: int, name: str) -> int:
    """The bound of the smallest row ≥ `autosave`: saving less often never loses less. A setting above every row
    has no bound: measure it (bench/edge_latency.py --curve-only) and add a row."""
    rows = sorted((int(k), int(v)) for k, v in table.items())
    for setting, bound in rows:
        if autosave <= setting:
            return bound
    raise ValueError(f"{name} has no row for broker_autosave {autosave} (largest measured: {rows[-1][0]}): measure "
                     f"it with bench/edge_latency.py --curve-only --autosave {autosave} and add a row")


def max_lost_acknowledged(autosave: int, table: dict | None = None) -> int:
    """Acknowledged QoS1 readings one SIGKILL of the broker may lose at `autosave` (the chaos suite's bound)."""
    if table is None:
        from indmlops import intent

        table = intent.load("slo")["chaos"]["max_lost_acknowledged_by_broker_autosave"]
    return lookup(table, autosave, CHAOS_TABLE)


def max_lost_queued(autosave: int, plan: dict | None = None) -> int:
    """Acknowledged messages (queued or retained) the durability suite may find missing after a broker kill at
    `autosave`, its settle time after the last write included (fixtures/durability.yaml)."""
    if plan is None:
        from indmlops import intent

        plan = intent.load("durability")
    return lookup(plan["components"]["mosquitto"]["max_lost_by_broker_autosave"], autosave, DURABILITY_TABLE)
