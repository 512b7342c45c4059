"""The broker's configuration, one text for every place that runs Mosquitto."""

from __future__ import annotations

from pathlib import Path

from indmlops import broker


def mosquitto_conf_text(*, port: int, conf_dir: Path, data_dir: Path,
                        autosave: object = broker.DEFAULT_BROKER_AUTOSAVE, host: str = "127.0.0.1",
                        password_file: Path | None = None) -> str:
    """The broker's configuration, one text for the local target, bench/edge_latency.py (which varies
    `autosave` to measure the durability/throughput trade-off) and Kubernetes (`indmlops kube-config`,
    the base and manifests/components/broker-*). `autosave` is a save policy (indmlops.broker): `N` changes or
    `Ns` seconds."""
    try:
        policy = broker.parse(autosave)
    except ValueError as exc:
        raise ValueError(f"autosave {exc}") from None
    return f"""# Rendered by indmlops; edit config/mosquitto/ or the renderer, not this file.
per_listener_settings false
listener {port} {host}
allow_anonymous false
password_file {password_file or conf_dir / 'passwd'}
acl_file {conf_dir / 'acl.conf'}

# Durability (the stack option broker_autosave = {policy}): {policy.describe()}.
# Mosquitto rewrites its whole database at every save, so saving on every change makes each save dearer as a
# backlog grows; a timed save costs the same per second whatever the backlog. What a SIGKILL loses since the
# last save, the publishers' outbox re-sends (it keeps each reading until its prediction confirms it).
# SIGTERM always writes the database on exit. Bounds per policy: fixtures/slo.yaml, fixtures/durability.yaml.
persistence true
persistence_location {data_dir}/
persistence_file mosquitto.db
{policy.mosquitto_lines()}

# Queue depth for offline persistent sessions (default 1000 drops readings during a long inference outage).
max_queued_messages 100000
# A persistent session nobody resumes for an hour is dropped: its queue would otherwise grow the database that
# every save rewrites whole (at a save per change a 16 MB database cut QoS1 throughput to ~20 msg/s).
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
