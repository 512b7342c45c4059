"""Protocol readiness on Kubernetes: a Ready pod must also answer its own protocol through the target's
port-forward, as "ready" means on the local target (Mosquitto's readinessProbe, say, only opens a TCP socket)."""

from __future__ import annotations

from typing import Protocol

from indmlops import clients
from indmlops.targets.base import Credentials
from indmlops.wire import Endpoint

# Path and expected body of each HTTP component's readiness answer (the local target's probes, and the
# manifests' readinessProbes for Grafana and Jupyter).
HTTP_READY: dict[str, tuple[str, str | None]] = {
    "mlflow": (clients.MLFLOW_READY_PATH, clients.MLFLOW_READY_BODY),
    "prometheus": ("/-/ready", None),
    "nodered": ("/indmlops/health", '"ok":true'),
    "inference": ("/readyz", '"ready":true'),
    "grafana": ("/api/health", None),
    "jupyter": ("/api", None),
}


class Reachable(Protocol):
    def endpoint(self, service: str) -> Endpoint: ...

    def credentials(self, service: str, role: str | None = None) -> Credentials: ...


def protocol_ready(target: Reachable, component: str) -> str | None:
    """What the component answered, or None when it has no protocol to ask (the simulator listens nowhere;
    its pod's exec probes prove it generates readings). Raises wire.NoAnswer with the last answer."""
    if component == "mosquitto":
        c = target.credentials("mosquitto", "monitor")
        return clients.mqtt_ready(target.endpoint("mosquitto"), c.username, c.password)
    if component == "postgres":
        c = target.credentials("postgres", "superuser")
        return clients.postgres_ready(target.endpoint("postgres"), c.username, c.password, c.extra["database"])
    if component == "s3":
        c = target.credentials("s3")
        # the data path too (a round trip through the bucket), as on the local target
        return clients.s3_ready(target.endpoint("s3"), c.username, c.password, c.extra.get("bucket"))
    if component in HTTP_READY:
        path, body = HTTP_READY[component]
        return clients.http_ready(f"{target.endpoint(component).url}{path}", expect_body=body)
    return None
