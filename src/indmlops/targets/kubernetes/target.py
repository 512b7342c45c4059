"""KubernetesTarget: the reference architecture on kind or any kubeconfig, reached through port-forwards it owns."""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from kubernetes import client

from indmlops.errors import (
    ImageNotLoaded,
    IndMLOpsError,
    KubernetesError,
    NotReady,
    NotSupportedByTarget,
    PortForwardFailed,
    UnknownComponent,
)
from indmlops.targets.base import (
    Credentials,
    DryRunVerdict,
    EnforcementEvidence,
    KillEvidence,
    ProbeRequest,
    ProbeResult,
    ReadyEvidence,
)
from indmlops.targets.kubernetes import KIND_CONTEXT, pods  # noqa: F401  (KIND_CONTEXT: part of this module's API)
from indmlops.targets.kubernetes.api import KubeApi, location_flags
from indmlops.targets.kubernetes.canary import canary
from indmlops.targets.kubernetes.components import (
    COMPONENTS,
    POSTGRES_DATABASE,
    S3_BUCKET,
    S3_REGION,
    SECRETS,
    KubeComponent,
)
from indmlops.targets.kubernetes.dryrun import ServerValidator
from indmlops.targets.kubernetes.portforward import PortForwards
from indmlops.targets.kubernetes.probe_pods import PROBE_IMAGE, ProbePods
from indmlops.targets.kubernetes.readiness import protocol_ready
from indmlops.wire import Endpoint, NoAnswer

PROBE_INTERVAL = 0.2  # seconds between protocol probes once the pod is Ready
WATCH_WINDOW = 5  # seconds per watch request; wait_ready lists again between windows, so a lost event costs ≤ 5 s


class KubernetesTarget:
    """The seam on a cluster. `kill` deletes a component's pod with a zero grace period (as a node loss would);
    `wait_ready` watches until a *replacement* pod is Ready; `restarts` counts container restarts plus the pods
    this target replaced, so a kill always shows as one restart (as on the local target)."""

    def __init__(self, name: str = "kubeconfig", *, kubeconfig: str | None = None, context: str | None = None,
                 kubectl: str | None = None, api: KubeApi | None = None, protocol_probes: bool = True,
                 probe_image: str = PROBE_IMAGE, progress: Callable[[str], None] | None = None,
                 host_roots: Callable[[], list[int]] | None = None) -> None:
        self.name = name
        # The pids heading what the cluster runs on this host (hostpids.py); None: it runs elsewhere.
        self.host_roots = host_roots
        self.probe_image = probe_image
        self.progress = progress or (lambda _msg: None)
        self.protocol_probes = protocol_probes
        self.api = api or KubeApi(kubeconfig, context)
        self.forwards = PortForwards(self.api.kubeconfig_arg, self.api.context, kubectl)
        self._killed: dict[str, set[str]] = {}
        self._held: dict[str, tuple[str, str, int]] = {}  # component → (kind, name, replicas before hold)
        self._replaced: dict[str, int] = {}
        self._claims: dict[str, list[str]] = {}  # the PVCs the last killed pod of a component mounted
        self._validator: ServerValidator | None = None

    def close(self) -> None:
        self.forwards.close()
        if self._validator is not None:
            self._validator.close()
        self.api.close()

    # --- services ---------------------------------------------------------------------------------------------
    def _component(self, name: str) -> KubeComponent:
        if name not in COMPONENTS:
            raise UnknownComponent(name, list(COMPONENTS))
        return COMPONENTS[name]

    def endpoint(self, service: str) -> Endpoint:
        c = self._component(service) if service in COMPONENTS else None
        if c is None or c.service is None or c.port is None:
            raise NotSupportedByTarget(self.name, f"endpoint {service!r}",
                                       "no Service for it in manifests/base (see targets/kube_components.py)")
        port = self.forwards.local_port(c.namespace, c.service, c.port)
        return Endpoint(service, "127.0.0.1", port, c.scheme, forwarded=True)

    def credentials(self, service: str, role: str | None = None) -> Credentials:
        if service not in SECRETS:
            self._component(service)
            return Credentials(service, "", "")  # MLflow, Prometheus, Node-RED, inference: no login in the manifests
        data = self._secret(*SECRETS[service])
        if service == "mosquitto":
            role = role or "monitor"
            if role not in data:
                raise IndMLOpsError(f"no MQTT role {role!r} in Secret ot-edge/mqtt-credentials: expected one of "
                                    f"{', '.join(sorted(data))}")
            return Credentials(service, role, data[role])
        if service == "postgres":
            # POSTGRES_USER of the official image is the cluster's superuser too.
            if role not in (None, "mlflow", "superuser"):
                raise IndMLOpsError(f"no PostgreSQL role {role!r}: expected mlflow or superuser")
            database = "postgres" if role == "superuser" else POSTGRES_DATABASE
            return Credentials(service, data["username"], data["password"], {"database": database})
        if service == "s3":
            return Credentials(service, data["root-user"], data["root-password"],
                               {"region": S3_REGION, "bucket": S3_BUCKET})
        return Credentials(service, data["admin-user"], data["admin-password"])

    def _secret(self, namespace: str, base: str) -> dict[str, str]:
        """The newest Secret named `base` or `base-<kustomize hash>`, decoded."""
        pattern = re.compile(rf"^{re.escape(base)}(-[a-z0-9]{{10}})?$")
        found = [s for s in self.api.list_secrets(namespace) if pattern.match(s.metadata.name or "")]
        if not found:
            raise KubernetesError(f"Secret {namespace}/{base} (or {base}-<hash>) not found at context "
                                  f"{self.api.context!r}: apply the manifests with `kubectl apply -k "
                                  f"manifests/overlays/kind`; check with `kubectl -n {namespace} get secrets`")
        newest = max(found, key=lambda s: str(s.metadata.creation_timestamp or ""))
        return {k: base64.b64decode(v).decode() for k, v in (newest.data or {}).items()}

    # --- components -------------------------------------------------------------------------------------------
    def components(self) -> list[str]:
        return list(COMPONENTS)

    def _live(self, c: KubeComponent) -> list[client.V1Pod]:
        found, _ = self.api.list_pods(c.namespace, c.selector)
        return [p for p in found if not pods.terminating(p)]

    def _current(self, c: KubeComponent) -> client.V1Pod | None:
        """The pod a check talks to: a Ready one if any, the newest otherwise."""
        live = self._live(c)
        live.sort(key=lambda p: (pods.ready(p), str(p.metadata.creation_timestamp or "")))
        return live[-1] if live else None

    def identity(self, component: str) -> str:
        """The uid of the component's current pod; "" while it has none (as the local target's "0")."""
        pod = self._current(self._component(component))
        return pods.uid(pod) if pod is not None else ""

    def kill(self, component: str) -> KillEvidence:
        c = self._component(component)
        pod = self._current(c)
        if pod is None:
            raise IndMLOpsError(f"cannot kill {component}: no pod matches {c.where}; check with "
                                f"`kubectl -n {c.namespace} get pods -l {c.selector}`")
        at = time.time()
        self.api.delete_pod(c.namespace, pod.metadata.name, grace_seconds=0)
        self._killed.setdefault(component, set()).add(pods.uid(pod))
        self._claims[component] = pods.claims(pod)
        # The killed pod's own container restarts leave with it: carry them, or the count would drop on a kill
        # (found on a real cluster: a simulator with 4 liveness restarts counted 1 after its replacement).
        self._replaced[component] = self._replaced.get(component, 0) + 1 + pods.restart_count(pod)
        return KillEvidence(component, pods.uid(pod), "pod delete (grace 0 s)", at)

    def wait_ready(self, component: str, timeout: float) -> ReadyEvidence:
        """Until a pod of the component that this target did not kill is Ready, and then (protocol_probes) until
        it answers its own protocol through the port-forward. A pod that cannot get its image fails at once
        (ImageNotLoaded); on timeout NotReady names the last pod state and its events, or the last answer."""
        t0 = time.monotonic()
        pod_ready = self._wait_pod_ready(self._component(component), timeout, t0)
        if not self.protocol_probes:
            return pod_ready
        last = "not asked yet"
        while True:
            try:
                answer = protocol_ready(self, component)
            except (NoAnswer, PortForwardFailed) as exc:
                last = str(exc)
            else:
                said = f"; answers: {answer}" if answer is not None else ""
                return replace(pod_ready, seconds=time.monotonic() - t0, detail=pod_ready.detail + said)
            if time.monotonic() - t0 >= timeout:
                raise NotReady(component, timeout, f"{pod_ready.detail}, but its protocol probe failed: {last}")
            time.sleep(PROBE_INTERVAL)

    def _wait_pod_ready(self, c: KubeComponent, timeout: float, t0: float) -> ReadyEvidence:
        killed = self._killed.get(c.name, set())
        last: client.V1Pod | None = None
        while True:
            found, version = self.api.list_pods(c.namespace, c.selector)
            for pod in found:
                hit = self._judge(c, pod, killed, t0)
                if isinstance(hit, ReadyEvidence):
                    return hit
                last = hit or last
            remaining = timeout - (time.monotonic() - t0)
            if remaining <= 0:
                break
            for _type, pod in self.api.watch_pods(c.namespace, c.selector, version,
                                                  int(min(WATCH_WINDOW, remaining)) or 1):
                hit = self._judge(c, pod, killed, t0)
                if isinstance(hit, ReadyEvidence):
                    return hit
                last = hit or last
                if time.monotonic() - t0 >= timeout:
                    break
            if time.monotonic() - t0 >= timeout:
                break
        raise NotReady(c.name, timeout, self._last_state(c, last))

    def _judge(self, c: KubeComponent, pod: client.V1Pod, killed: set[str],
               t0: float) -> ReadyEvidence | client.V1Pod | None:
        """ReadyEvidence for a Ready replacement, the pod itself when it is a candidate still coming up."""
        if pods.uid(pod) in killed or pods.terminating(pod):
            return None
        if pods.ready(pod):
            if killed and c.service:
                self.forwards.reopen(c.namespace, c.service)  # the old forwards were bound to the killed pod
            replaced = f"; replaces {', '.join(sorted(killed))}" if killed else ""
            return ReadyEvidence(c.name, pods.uid(pod), time.monotonic() - t0,
                                 f"pod {c.namespace}/{pod.metadata.name} Ready{replaced}"
                                 f"{self._claims_note(c.name, pods.claims(pod))}")
        failure = pods.pull_failure(pod)
        if failure is not None:
            image, why = failure
            raise ImageNotLoaded(c.name, time.monotonic() - t0, f"{pods.describe(pod)}; {why}", image)
        return pod

    def _claims_note(self, component: str, now: list[str]) -> str:
        """Durability evidence: whether the replacement mounts the claims the killed pod mounted."""
        before = self._claims.get(component)
        if before is None or (not before and not now):
            return f"; claims {', '.join(now)}" if now else ""
        if before == now:
            return f"; same claims {', '.join(now)}"
        return f"; claims CHANGED {', '.join(before) or 'none'} -> {', '.join(now) or 'none'}"

    def hold(self, component: str) -> str:
        """Scale the component's Deployment or StatefulSet to 0 replicas and wait until its pods are gone."""
        c = self._component(component)
        kind, name, replicas = self.api.scale_owner(c.namespace, c.selector, 0)
        self._held[component] = (kind, name, replicas)
        deadline = time.monotonic() + 120
        while (left := self.api.list_pods(c.namespace, c.selector)[0]) and time.monotonic() < deadline:
            time.sleep(0.5)
        if left:
            raise IndMLOpsError(f"{kind} {c.namespace}/{name} scaled to 0, but pods {[p.metadata.name for p in left]} "
                                f"still run after 120 s; see `kubectl -n {c.namespace} get pods -l {c.selector}`")
        return f"{kind} {c.namespace}/{name} scaled from {replicas} to 0 replicas"

    def release(self, component: str) -> None:
        c = self._component(component)
        _kind, _name, replicas = self._held.pop(component, ("", "", 1))
        self.api.scale_owner(c.namespace, c.selector, replicas or 1)

    def claims(self, component: str) -> list[str]:
        """The PersistentVolumeClaims the component's current pod mounts ([] when stateless or absent)."""
        pod = self._current(self._component(component))
        return pods.claims(pod) if pod is not None else []

    def volume_identity(self, component: str) -> str:
        """The claims the current pod mounts, by namespace/name: a StatefulSet's or a Deployment's replacement pod
        must bind the same ones (a fresh claim would start from empty storage)."""
        c = self._component(component)
        found = self.claims(component)
        if not found:
            raise NotSupportedByTarget(self.name, f"volume identity of {component}",
                                       f"{c.where} mounts no PersistentVolumeClaim")
        return ",".join(f"{c.namespace}/{name}" for name in sorted(found))

    def _last_state(self, c: KubeComponent, pod: client.V1Pod | None) -> str:
        if pod is None:
            return (f"no replacement pod for {c.where} appeared; check the controller with "
                    f"`kubectl -n {c.namespace} get deploy,sts,rs -l {c.selector}`")
        return (f"{pods.state_with_events(self.api, pod)}; reproduce with "
                f"`kubectl -n {c.namespace} describe pod {pod.metadata.name}`")

    def restarts(self, component: str) -> int:
        """Container restarts of its live pods, plus each pod this target replaced and the restarts it had."""
        c = self._component(component)
        return sum(pods.restart_count(p) for p in self._live(c)) + self._replaced.get(component, 0)

    def _probes(self) -> ProbePods:
        flags = location_flags(self.api.kubeconfig_arg, self.api.context)
        return ProbePods(self.api, self.probe_image, f"kubectl{flags}", self.progress)

    def probe(self, requests: list[ProbeRequest], timeout: float) -> list[ProbeResult]:
        """Each source's flows from one probe pod carrying its labels in its namespace (targets/kube_probe.py)."""
        return self._probes().probe(requests, timeout)

    def enforcement_canary(self, timeout: float) -> EnforcementEvidence:
        return canary(self._probes(), timeout)

    def evidence(self, directory: Path) -> str:
        """A failed test's reports/<test id>/: each component's pod state and log tail, each namespace's recent
        events, and `cluster.sh` to look at the cluster again."""
        for fname, text in self.evidence_files().items():
            (directory / fname).write_text(text + "\n")
        flags = location_flags(self.api.kubeconfig_arg, self.api.context)
        (directory / "cluster.sh").write_text(f"#!/bin/sh\n# What ran on the cluster when the test failed.\n"
                                             f"kubectl{flags} get pods,events -A -o wide\n")
        return f"--target {self.name}{flags}"

    def describe(self) -> str:
        return (f"Kubernetes context {self.api.context} of kubeconfig {self.api.kubeconfig_arg or '(default)'}, "
                "through port-forwards opened when a test needs them")

    def broker_autosave(self) -> str | None:
        """Read from the mosquitto.conf of the Secret the broker's pods mount (ot-edge, `mosquitto-config*`); None
        when it cannot be read (no such Secret, no right to read Secrets): the option then says."""
        import base64

        from indmlops import broker

        try:
            secrets = [s for s in self.api.list_secrets("ot-edge")
                       if s.metadata.name.startswith("mosquitto-config") and "mosquitto.conf" in (s.data or {})]
        except Exception:  # RBAC, API away: not knowable here
            return None
        if len(secrets) != 1:
            return None  # none, or several generations (a hash suffix each): which one is mounted is not told here
        text = base64.b64decode(secrets[0].data["mosquitto.conf"]).decode(errors="replace")
        try:
            return str(broker.from_conf(text))
        except ValueError as exc:
            raise IndMLOpsError(f"Secret ot-edge/{secrets[0].metadata.name} mosquitto.conf: {exc}") from None

    def broker_data_dir(self) -> Path | None:
        return None  # on the nodes' disks, in containers

    def slow_fsync(self) -> None:
        return None  # the nodes' disks as they are: the slow-fsync shim is the local stack's

    def process_roots(self) -> list[int] | None:
        """The cluster's processes on this host (its control plane and pods, or kind's node containers) when it
        runs here; None for a cluster elsewhere, whose work this host's figures do not see."""
        return None if self.host_roots is None else self.host_roots()

    def evidence_files(self, tail_lines: int = 200) -> dict[str, str]:
        """File name → text: each component's pod state and log tail, and each namespace's recent events.
        Whatever cannot be read says why, in its place."""
        out: dict[str, str] = {}
        for name, c in COMPONENTS.items():
            try:
                live = self._live(c)
                out[f"{name}.pods.txt"] = "\n".join(pods.describe(p) for p in live) or f"no pod matches {c.where}"
                for p in live:
                    for container in p.spec.containers if p.spec else []:
                        out[f"{name}.{p.metadata.name}.{container.name}.log.tail"] = self.api.pod_log(
                            c.namespace, p.metadata.name, container.name, tail_lines)
            except KubernetesError as exc:
                out.setdefault(f"{name}.pods.txt", f"unavailable: {exc}")
        for ns in sorted({c.namespace for c in COMPONENTS.values()}):
            try:
                out[f"events.{ns}.txt"] = pods.describe_events(self.api.namespace_events(ns), limit=50, per_line=True)
            except KubernetesError as exc:
                out[f"events.{ns}.txt"] = f"unavailable: {exc}"
        return out

    def server_dry_run(self, body: dict, declared_namespaces: frozenset[str]) -> DryRunVerdict:
        if self._validator is None:
            self._validator = ServerValidator(self.api)
        return self._validator.validate(body, declared_namespaces)

    def versions(self) -> dict[str, str]:
        """The app.kubernetes.io/version label of each component's current pod."""
        out: dict[str, str] = {}
        for name, c in COMPONENTS.items():
            try:
                pod = self._current(c)
            except KubernetesError as exc:
                out[name] = f"unknown ({exc})"
                continue
            labels = (pod.metadata.labels or {}) if pod is not None else {}
            out[name] = labels.get("app.kubernetes.io/version", "no pod" if pod is None else "unlabelled")
        return out
