"""Known content per stateful component: write it, then verify every byte of it (used by the durability checks).
One module per plane; `WRITERS` names each writer as fixtures/durability.yaml does."""

from __future__ import annotations

from collections.abc import Callable

from indmlops.checks.live.content.base import Content
from indmlops.checks.live.content.governance import prometheus_samples
from indmlops.checks.live.content.it_core import mlflow_runs, postgres_rows, s3_objects
from indmlops.checks.live.content.ot_edge import mqtt_queued, mqtt_retained, nodered_context
from indmlops.targets.base import Target

__all__ = ["WRITERS", "Content"]

WRITERS: dict[str, Callable[[Target, str], Content]] = {
    "postgres-rows": postgres_rows,
    "s3-objects": s3_objects,
    "mlflow-runs": mlflow_runs,
    "mqtt-retained": mqtt_retained,
    "mqtt-queued": mqtt_queued,
    "nodered-context": nodered_context,
    "prometheus-samples": prometheus_samples,
}
