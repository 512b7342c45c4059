"""Features for fault detection, shared by training and the edge service so both compute them identically.

A single reading cannot show a stuck sensor (its value is plausible) or a spike (relative to what?), so each
machine keeps its previous reading: the vector is the four signals plus their change since that reading.
"""

from __future__ import annotations

from indmlops.simulator.model import SIGNALS

FEATURE_NAMES = list(SIGNALS) + [f"d_{s}" for s in SIGNALS]


class FeatureState:
    """Per-machine memory of the last reading; `vector()` is O(1) and allocation-light."""

    def __init__(self) -> None:
        self._last: dict[str, list[float]] = {}

    def vector(self, machine_key: str, features: dict[str, float]) -> list[float]:
        values = [float(features[s]) for s in SIGNALS]
        prev = self._last.get(machine_key)
        self._last[machine_key] = values
        # The first reading of a machine has no history: a delta of 0 would look like a stuck sensor, so use
        # a typical noise-sized change instead (the per-signal noise standard deviation).
        deltas = [v - p for v, p in zip(values, prev)] if prev else [0.5, 0.1, 0.3, 0.05]
        return values + deltas
