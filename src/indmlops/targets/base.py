"""The Target protocol: everything a check may know about where the system under test runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from indmlops.wire import Endpoint

if TYPE_CHECKING:
    from indmlops.hostcheck.measure import SlowFsync

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


@dataclass(frozen=True)
class Peer:
    """One end of a probed flow: a workload by namespace and pod labels, or an address outside the cluster (`ip`).
    A source is probed *as* this workload (a pod carrying its labels, so NetworkPolicies select it)."""

    name: str
    namespace: str
    labels: tuple[tuple[str, str], ...] = ()
    ip: str | None = None
    selector: tuple[tuple[str, str], ...] = ()  # how to find its running pods (default: all of `labels`)


@dataclass(frozen=True)
class ProbeRequest:
    source: Peer
    destination: Peer
    port: int
    protocol: str = "TCP"

    def __str__(self) -> str:
        return f"{self.source.name} -> {self.destination.name}:{self.port}/{self.protocol}"


@dataclass(frozen=True)
class ProbeResult:
    """What one attempt showed: reachable True (connected or refused), False (timeout/unreachable: denied), None
    (unknown: the probe could not tell, `outcome` says why). `reproduce` is a command that repeats it by hand."""

    request: ProbeRequest
    reachable: bool | None
    outcome: str
    reproduce: str
    address: str = ""  # the destination address probed (a pod IP), for the report


@dataclass(frozen=True)
class EnforcementEvidence:
    """The enforcement canary's findings: a listener reachable before a deny-all policy and denied after it."""

    before: str
    after: str
    seconds_to_deny: float


@dataclass(frozen=True)
class DryRunVerdict:
    """What the API server said of one object submitted with a server-side dry run. `outcome`: accepted; rejected
    (invalid, or refused by admission); not-served (the cluster's version has no such apiVersion/kind); not-judged
    (the server could not be asked: no permission, unreachable, failed), never a pass."""

    outcome: str
    detail: str = ""
    causes: tuple[str, ...] = ()
    status: int | None = None

    @property
    def accepted(self) -> bool:
        return self.outcome == "accepted"


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

    def hold(self, component: str) -> str:
        """Stop `component` so that its supervisor does not bring it back (an outage longer than a restart); return
        what was done. `release` lets it run again."""
        ...

    def release(self, component: str) -> None:
        """Undo `hold`: the component runs again (its readiness is `wait_ready`'s to judge)."""
        ...

    def volume_identity(self, component: str) -> str:
        """The identity of the storage holding the component's state (on Kubernetes: the bound PVC's uid), so a
        durability check can prove a replacement mounts the same claim. Targets without it raise
        NotSupportedByTarget."""
        ...

    def probe(self, requests: list[ProbeRequest], timeout: float) -> list[ProbeResult]:
        """Try each flow from a pod that carries the source's labels in the source's namespace, all at once; one
        result per request, in order. Targets that cannot enforce isolation raise NotSupportedByTarget."""
        ...

    def enforcement_canary(self, timeout: float) -> EnforcementEvidence:
        """Prove the network enforces NetworkPolicy: a listener in a scratch namespace is reachable, then a
        deny-all policy there must make it unreachable within `timeout` s, else IsolationNotEnforced."""
        ...

    def server_dry_run(self, body: dict, declared_namespaces: frozenset[str]) -> DryRunVerdict:
        """Submit one rendered object to the cluster's API server (server-side apply, dryRun=All): nothing is stored.
        A namespace the object needs that the cluster lacks is created (and removed at close) only when the manifest
        set declares it. Targets without an API server raise NotSupportedByTarget."""
        ...

    def versions(self) -> dict[str, str]: ...

    # --- what the harness needs around a test -------------------------------------------------------------------

    def describe(self) -> str:
        """One line for the report header: where the stack runs and how it is reached."""
        ...

    def evidence(self, directory: Path) -> str:
        """Write what explains a failed test into `directory` (log tails, component state, events), each part that
        cannot be read saying why in its place; return the pytest options that select this same target again, for
        the `reproduce.sh` written next to it."""
        ...

    def broker_autosave(self) -> str | None:
        """The broker's save policy as deployed (indmlops.broker: `N` changes, `Ns` seconds), read from the
        configuration the running broker was given; None when the target cannot read it (then the
        `broker_autosave` option says how it was deployed, and the report says it was not read)."""
        ...

    def broker_data_dir(self) -> Path | None:
        """The broker's persistence directory when it is on this host's disk (where the host check times saves),
        else None."""
        ...

    def slow_fsync(self) -> SlowFsync | None:
        """The slow disk on purpose the stack's services run on (an LD_PRELOAD shim sleeping before each fsync), so
        the host check measures saves under it and names it; None when the services use the disk as it is."""
        ...

    def process_roots(self) -> list[int] | None:
        """Pids heading the stack's processes on this host, asked again at each host sample so their CPU and disk
        writes are not blamed on the host (a cluster on this host: its control plane and pods, or kind's node
        containers); None where they are not on this host (a remote cluster), so neither the host's CPU nor its
        disk writes are attributed there."""
        ...

    def close(self) -> None:
        """Release what the target holds (port-forwards, API connections); the factory calls it."""
        ...
