"""Robustness checks of the deployed edge under hostile input: each hostile MQTT reading is dead-lettered (or,
if the contract allows, predicted), each hostile HTTP body gets a 4xx, and afterwards the edge is healthy and
still predicts valid readings. Slow is not broken: an answer that comes after its bound while /healthz and /readyz
answer 200 and the edge keeps predicting is recorded as late (the SLO test judges it); only no answer after a
bounded, progress-aware wait, or an unhealthy edge, fails. A failure saves the payloads and names them."""


from indmlops.checks.live.robustness.checks import (
    answers_on_time,
    edge_alive,
    error_counters_grew,
    error_counts,
    http_hostile_rejected,
    mqtt_hostile_handled,
)
from indmlops.checks.live.robustness.edge import ERRORS_METRIC, Budget, Edge, Observer, budget
from indmlops.checks.live.robustness.replay import main, replay
from indmlops.checks.live.robustness.waiting import (
    LateWait,
    ValidStream,
    every_valid_reading_acknowledged,
    every_valid_reading_drained,
    no_valid_reading_lost,
    settle,
    wait_late,
)

__all__ = [
    "ERRORS_METRIC", "Budget", "Edge", "LateWait", "Observer", "ValidStream", "answers_on_time", "budget",
    "edge_alive",
    "error_counters_grew", "error_counts", "every_valid_reading_acknowledged", "every_valid_reading_drained",
    "http_hostile_rejected", "main",
    "mqtt_hostile_handled", "no_valid_reading_lost", "replay", "settle", "wait_late",
]
