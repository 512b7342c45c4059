"""The broker's configuration, one text for every place that runs Mosquitto."""

from __future__ import annotations

from pathlib import Path

from indmlops.broker import DEFAULT_BROKER_AUTOSAVE


def mosquitto_conf_text(*, port: int, conf_dir: Path, data_dir: Path,
                        autosave_changes: int = DEFAULT_BROKER_AUTOSAVE, host: str = "127.0.0.1",
                        password_file: Path | None = None) -> str:
    """The broker's configuration, one text for the local target, bench/edge_latency.py (which varies
    `autosave_changes` to measure the durability/throughput trade-off) and Kubernetes (`indmlops kube-config`,
    the base and manifests/components/broker-*)."""
    if autosave_changes < 1:
        raise ValueError(f"autosave_changes {autosave_changes}: Mosquitto needs a whole number of changes ≥ 1")
    return f"""# Rendered by indmlops; edit config/mosquitto/ or the renderer, not this file.
per_listener_settings false
listener {port} {host}
allow_anonymous false
password_file {password_file or conf_dir / 'passwd'}
acl_file {conf_dir / 'acl.conf'}

# Durability (the stack option broker_autosave): save the in-memory database after every
# autosave_interval changes (autosave_on_changes true; there is no timed save besides), so a SIGKILL loses
# what changed since the last write: at 1 at most the last message or so, the most Mosquitto 2.0 allows.
# SIGTERM always writes the database on exit. Loss per SIGKILL by setting: fixtures/slo.yaml.
persistence true
persistence_location {data_dir}/
persistence_file mosquitto.db
autosave_on_changes true
autosave_interval {autosave_changes}

# Queue depth for offline persistent sessions (default 1000 drops readings during a long inference outage).
max_queued_messages 100000
# A persistent session nobody resumes for an hour is dropped: its queue would otherwise grow the database that
# every autosave rewrites whole (a 16 MB database cut QoS1 throughput to ~20 msg/s in our tests).
persistent_client_expiration 1h
max_inflight_messages 100
# Nagle's algorithm holds a small PUBLISH until the previous segment is acknowledged, and the peer delays that
# ACK up to 40 ms: relayed readings at 500 msg/s saw p50 9 ms with it, far above the 0.13 ms QoS1 floor.
set_tcp_nodelay true

log_dest stdout
log_type error
log_type warning
log_type notice
log_type information
connection_messages true
log_timestamp true
"""
