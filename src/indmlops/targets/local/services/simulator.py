"""The reference sensor simulator (`indmlops simulate`): ready when a reading reaches a subscriber."""

from __future__ import annotations

from indmlops import wire
from indmlops.targets.local import render
from indmlops.targets.local.layout import StackConfig
from indmlops.targets.local.services.common import endpoint, indmlops_command

SIMULATOR_ARGS = ("--lines", "1", "--machines", "4", "--rate", "20", "--qos", "1", "--seed", "-1",
                  "--duration", str(10 * 365 * 86400))


def prepare(cfg: StackConfig) -> dict[str, str]:
    return {"command": render.launch(cfg, "simulator", indmlops_command(cfg, "simulate", *SIMULATOR_ARGS)),
            "environment": 'PYTHONUNBUFFERED="1"'}


def ready(cfg: StackConfig) -> str:
    """Ready when one of its readings reaches a subscriber (the monitor role)."""
    import queue

    got: queue.Queue = queue.Queue()
    client = wire.mqtt_connect(endpoint(cfg, "mosquitto"), "monitor", cfg.credentials["mosquitto"]["monitor_password"])
    try:
        client.on_message = lambda _c, _u, m: got.put(m.topic)
        client.subscribe("factory/+/+/telemetry", qos=0)
        try:
            return f"reading on {got.get(timeout=3)}"
        except queue.Empty:
            raise wire.NoAnswer("no telemetry reading within 3 s") from None
    finally:
        wire.mqtt_close(client)
