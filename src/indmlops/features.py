"""Features for fault detection, shared by training and the edge service so both compute them identically.

A single reading cannot show a stuck sensor (its value is plausible) or a spike (relative to what?), so each
machine keeps its previous reading: the vector is the four signals plus their change since that reading.
"""

from __future__ import annotations

from indmlops.simulator.model import SIGNALS

FEATURE_NAMES = list(SIGNALS) + [f"d_{s}" for s in SIGNALS]
FIRST_DELTAS = (0.5, 0.1, 0.3, 0.05)  # a machine's first reading: a noise-sized change per signal, not a stuck 0


class FeatureState:
    """Per-machine memory of the last reading; `vector()` is O(1) and allocation-light.

    At most `max_machines` machines are remembered (the least recently seen is forgotten first): machine names come
    from the input, and a stream of invented ones must not grow the service's memory without bound. 10,000 machines
    × ~400 B ≈ 4 MB."""

    def __init__(self, max_machines: int = 10_000) -> None:
        self._last: dict[str, list[float]] = {}
        self._order: dict[str, int] = {}  # the newest reading's order (its timestamp) per machine, where given
        self.max_machines = max_machines

    def vector(self, machine_key: str, features: dict[str, float], order: int | None = None) -> list[float]:
        """`order`, when given, orders the readings (the reading's timestamp, not its sequence number, which starts
        again when a publisher restarts): one older than the machine's newest (a re-sent reading that arrives after
        later ones) is judged without history and leaves the state alone, so it cannot turn the next fresh
        reading's change into a jump."""
        values = [float(features[s]) for s in SIGNALS]
        last = self._last
        if order is not None and machine_key in last and order < self._order.get(machine_key, order):
            return values + list(FIRST_DELTAS)
        prev = last.pop(machine_key, None)  # re-inserted below: the dict's order is least recently seen first
        if prev is None and len(last) >= self.max_machines:
            forgotten = next(iter(last))
            del last[forgotten]
            self._order.pop(forgotten, None)
        last[machine_key] = values
        if order is not None:
            self._order[machine_key] = order
        # The first reading of a machine has no history: a delta of 0 would look like a stuck sensor, so use
        # a typical noise-sized change instead (the per-signal noise standard deviation).
        deltas = [v - p for v, p in zip(values, prev)] if prev else list(FIRST_DELTAS)
        return values + deltas
