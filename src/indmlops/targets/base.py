"""The Target protocol: everything a check may know about where the system under test runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from indmlops.probes import Endpoint

# The services a check may ask for. A target that lacks one raises NotSupportedByTarget for it.
SERVICES = ("mosquitto", "mlflow", "s3", "postgres", "prometheus", "nodered", "inference", "grafana")


@dataclass(frozen=True)
class Credentials:
    """A service's secrets for one role. `extra` holds role-specific values (database name, bucket, ...)."""

    service: str
    username: str
    password: str
    extra: dict[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:  # never print a secret in a test report
        return f"Credentials({self.service!r}, username={self.username!r}, password='***')"


@dataclass(frozen=True)
class KillEvidence:
    component: str
    identity: str  # pid on the local target, pod uid on Kubernetes
    signal: str
    at: float  # time.time() when the kill was sent


@dataclass(frozen=True)
class ReadyEvidence:
    component: str
    identity: str
    seconds: float
    detail: str


@runtime_checkable
class Target(Protocol):
    name: str

    def endpoint(self, service: str) -> Endpoint: ...

    def credentials(self, service: str, role: str | None = None) -> Credentials: ...

    def components(self) -> list[str]: ...

    def identity(self, component: str) -> str: ...

    def kill(self, component: str) -> KillEvidence: ...

    def wait_ready(self, component: str, timeout: float) -> ReadyEvidence: ...

    def restarts(self, component: str) -> int: ...

    def volume_identity(self, component: str) -> str:
        """The identity of the storage holding the component's state (on Kubernetes: the bound PVC's uid), so a
        durability check can prove a replacement mounts the same claim. Targets without it raise
        NotSupportedByTarget."""
        ...

    def probe(self, source_namespace: str, destination: str, port: int) -> bool: ...

    def versions(self) -> dict[str, str]: ...
