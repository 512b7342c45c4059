"""The broker's save policy (`broker_autosave`): its default, its validation and the loss it allows.

Mosquitto 2.0 saves its *whole* in-memory database at every save. Two policies are possible:

- `N` (changes): save after every N changes (`autosave_on_changes true`). At 1 no acknowledged message is lost
  on a SIGKILL, but every save rewrites and fsyncs the whole database, so a save costs more the larger the
  backlog: a queue for an absent subscriber makes every change dearer, and draining it costs the square of its
  size (docs/suites.md, "Broker durability").
- `Ns` (seconds): save every N seconds (`autosave_on_changes false`), whatever the traffic: the cost per reading
  does not grow with the backlog. A SIGKILL loses what changed since the last save; the publishers' outbox
  (`indmlops.outbox`) re-sends what the edge never confirmed, so no reading is lost end to end. The default.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

DEFAULT_BROKER_AUTOSAVE = "1s"

# The tables that say, per policy, what one SIGKILL of the broker may cost.
CHAOS_TABLE = "fixtures/slo.yaml chaos.max_resent_by_broker_autosave"
DURABILITY_TABLE = "fixtures/durability.yaml components.mosquitto.max_lost_by_broker_autosave"

_FORM = re.compile(r"(?P<n>[0-9]+)(?P<unit>s?)")


@dataclass(frozen=True)
class SavePolicy:
    every: int
    timed: bool  # True: every `every` seconds; False: after every `every` changes

    def __str__(self) -> str:
        return f"{self.every}s" if self.timed else str(self.every)

    def describe(self) -> str:
        if self.timed:
            return f"mosquitto saves its database every {self.every} s"
        return f"mosquitto saves its database after every {self.every} change(s)"

    def saves_per_second(self, changes_per_second: float) -> float:
        """How often the broker rewrites its database at a given rate of changes."""
        return 1.0 / self.every if self.timed else changes_per_second / self.every

    def mosquitto_lines(self) -> str:
        return (f"autosave_on_changes {'false' if self.timed else 'true'}\n"
                f"autosave_interval {self.every}")


def parse(raw: object) -> SavePolicy:
    """`N` (changes, a whole number ≥ 1) or `Ns` (seconds ≥ 1); a SavePolicy passes through."""
    if isinstance(raw, SavePolicy):
        return raw
    if isinstance(raw, bool):
        raise ValueError(f"{raw!r}: expected N (save after N changes) or Ns (save every N seconds), N ≥ 1")
    text = str(raw).strip()
    m = _FORM.fullmatch(text)
    if not m or int(m["n"]) < 1:
        raise ValueError(f"{raw!r}: expected N (save after N changes) or Ns (save every N seconds), N ≥ 1")
    return SavePolicy(int(m["n"]), timed=bool(m["unit"]))


def canonical(raw: object) -> str:
    return str(parse(raw))


def lookup(table: dict, policy: object, name: str) -> int:
    """The bound of the smallest row of the same kind ≥ the policy: saving less often never loses less. A policy
    above every row of its kind has no bound: measure it (bench/edge_latency.py --curve-only) and add a row."""
    p = parse(policy)
    rows = sorted((parse(k).every, int(v)) for k, v in table.items() if parse(k).timed == p.timed)
    for every, bound in rows:
        if p.every <= every:
            return bound
    largest = f"{rows[-1][0]}{'s' if p.timed else ''}" if rows else "none of this kind"
    raise ValueError(f"{name} has no row for broker_autosave {p} (largest measured: {largest}): measure it with "
                     f"bench/edge_latency.py --curve-only --autosave {p} and add a row")


def max_resent(policy: object, rate: float, table: dict | None = None) -> int:
    """Readings the publishers' outbox may have to re-send after one SIGKILL of the broker, at `rate` readings/s:
    what the broker had acknowledged but not saved, readings and predictions alike (each costs one re-send).

    - timed (`Ns`): Mosquitto 2.0 saves when `last save + N < now` in whole seconds, so the last save can be N + 1 s
      old, plus the loop pass that runs it (< 1 s): rate × (N + 2);
    - changes (`N`): the table's row (fixtures/slo.yaml), measured per setting."""
    p = parse(policy)
    if p.timed:
        return math.ceil(rate * (p.every + 2))
    if table is None:
        from indmlops import intent

        table = intent.load("slo")["chaos"]["max_resent_by_broker_autosave"]
    return lookup(table, p, CHAOS_TABLE)


def max_lost_queued(policy: object, plan: dict | None = None) -> int:
    """Acknowledged messages (queued or retained) the durability suite may find missing after a broker kill under
    `policy`, its settle time after the last write included (fixtures/durability.yaml)."""
    if plan is None:
        from indmlops import intent

        plan = intent.load("durability")
    return lookup(plan["components"]["mosquitto"]["max_lost_by_broker_autosave"], policy, DURABILITY_TABLE)


def from_conf(text: str) -> SavePolicy:
    """The save policy a Mosquitto configuration gives the broker, with Mosquitto 2.0's defaults for what it leaves
    out (`autosave_interval 1800`, `autosave_on_changes false`); ValueError when it saves nothing (`persistence`
    off, or `autosave_interval 0`): such a broker loses every queued message on any restart."""
    settings: dict[str, str] = {}
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if len(words) >= 2:
            settings[words[0]] = words[1]
    if settings.get("persistence", "false").lower() not in ("true", "1"):
        raise ValueError("persistence is off: the broker saves nothing")
    raw = settings.get("autosave_interval", "1800")
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"autosave_interval {raw!r}: the broker saves only on a clean shutdown")
    on_changes = settings.get("autosave_on_changes", "false").lower() in ("true", "1")
    return SavePolicy(int(raw), timed=not on_changes)
