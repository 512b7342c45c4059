"""The reference sensor simulator: plausible machine telemetry with seeded faults, published over MQTT."""

from indmlops.simulator.model import (
    FAULT_MODES,
    LABELS,
    SCHEMA_VERSION,
    SIGNALS,
    Episode,
    Plant,
    fault_schedule,
)

__all__ = ["FAULT_MODES", "LABELS", "SCHEMA_VERSION", "SIGNALS", "Episode", "Plant", "fault_schedule"]
