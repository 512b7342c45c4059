"""Probe pods: indmlops-netprobe run *as* a workload (its namespace, its labels) to observe what NetworkPolicy
allows."""

from __future__ import annotations

import json
import re
import shlex
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubernetes import client

from indmlops import __version__
from indmlops.errors import ImageNotLoaded, KubernetesError
from indmlops.netprobe import MARKER
from indmlops.targets.base import Peer, ProbeRequest, ProbeResult
from indmlops.targets.kubernetes import pods
from indmlops.targets.kubernetes.api import KubeApi

PROBE_IMAGE = f"indmlops-probe:{__version__}"  # built by scripts/build-images.sh, loaded like the other images
PROBE_LABEL = "indmlops.io/probe"  # value: the run id; never a label any NetworkPolicy of ours selects on
SCRATCH_LABEL = "indmlops.io/scratch"  # namespaces the probes created and remove again
# A probe pod is scheduled, started and done in a few seconds on kind; 90 s covers a cold node (image already
# loaded: nothing is pulled) and is what a stuck pod costs before its state is reported.
POD_BUDGET = 90.0
POLL = 0.5


def _slug(text: str, limit: int) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")[:limit].strip("-") or "x"


def _selector(labels: tuple[tuple[str, str], ...]) -> str:
    return ",".join(f"{k}={v}" for k, v in labels)


def target_arg(address: str, req: ProbeRequest) -> str:
    host = f"[{address}]" if ":" in address else address
    return f"{host}:{req.port}/{req.protocol}"


def pod_spec(name: str, namespace: str, labels: dict[str, str], image: str, args: list[str],
             owner: tuple[str, str] | None = None) -> dict[str, Any]:
    """A run-to-completion pod that passes Pod Security "restricted" and never becomes Ready: its labels may
    match a Service's selector (it stands in for that workload), and only Ready pods become Service endpoints.
    `owner` (ConfigMap name, uid) makes it a controlled pod, so no ReplicaSet whose selector its labels match
    adopts it (and deletes it to keep its replica count); deleting the ConfigMap garbage-collects it."""
    meta: dict[str, Any] = {"name": name, "namespace": namespace, "labels": labels}
    if owner:
        meta["ownerReferences"] = [{"apiVersion": "v1", "kind": "ConfigMap", "name": owner[0], "uid": owner[1],
                                    "controller": True, "blockOwnerDeletion": False}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": {
        "restartPolicy": "Never", "automountServiceAccountToken": False, "enableServiceLinks": False,
        "terminationGracePeriodSeconds": 0, "activeDeadlineSeconds": int(POD_BUDGET),
        "securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001,
                            "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [{
            "name": "probe", "image": image, "imagePullPolicy": "IfNotPresent", "args": args,
            "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                "capabilities": {"drop": ["ALL"]}},
            "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"cpu": "250m", "memory": "64Mi"}},
            "readinessProbe": {"exec": {"command": ["false"]}, "periodSeconds": 300},
        }]}}


def namespace_spec(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": {
        SCRATCH_LABEL: "true", "pod-security.kubernetes.io/enforce": "restricted"}}}


def finished(pod: client.V1Pod) -> bool:
    return bool(pod.status and pod.status.phase in ("Succeeded", "Failed"))


def running_with_ip(pod: client.V1Pod) -> bool:
    return bool(pod.status and pod.status.phase == "Running" and pod.status.pod_ip)


@dataclass
class Run:
    """One probe pod: where it runs, what it tries (`args`), and the requests those arguments stand for."""

    pod: str
    namespace: str
    requests: list[ProbeRequest]
    addresses: list[str]
    args: list[str]


class ProbePods:
    """Runs probe pods through one KubeApi. `kubectl` is the command prefix printed in reproduce commands."""

    def __init__(self, api: KubeApi, image: str = PROBE_IMAGE, kubectl: str = "kubectl",
                 progress: Callable[[str], None] | None = None) -> None:
        self.api = api
        self.image = image
        self.kubectl = kubectl
        self.progress = progress or (lambda _msg: None)
        self._created_namespaces: list[str] = []

    # --- probing the matrix ----------------------------------------------------------------------------------
    def probe(self, requests: list[ProbeRequest], timeout: float) -> list[ProbeResult]:
        try:
            return self._probe(requests, timeout)
        finally:
            self.cleanup()

    def _probe(self, requests: list[ProbeRequest], timeout: float) -> list[ProbeResult]:
        addresses = {d: self._address(d) for d in {r.destination for r in requests}}
        results: dict[int, ProbeResult] = {}
        by_source: dict[Peer, list[int]] = {}
        for i, r in enumerate(requests):
            address, why = addresses[r.destination]
            if address is None:
                results[i] = ProbeResult(r, None, why, self.reproduce(r, "<no address>", timeout))
            else:
                by_source.setdefault(r.source, []).append(i)
        run_id = uuid.uuid4().hex[:6]
        runs = []
        for n, (source, idx) in enumerate(sorted(by_source.items(), key=lambda kv: kv[0].name)):
            reqs = [requests[i] for i in idx]
            addrs = [str(addresses[r.destination][0]) for r in reqs]
            args = ["probe", "--timeout", f"{timeout:g}"] + [target_arg(a, r) for a, r in zip(addrs, reqs)]
            runs.append((idx, Run(f"indmlops-probe-{run_id}-{n}-{_slug(source.name, 30)}", source.namespace,
                                   reqs, addrs, args)))
        observed = self.run_pods([(r, dict(r.requests[0].source.labels)) for _, r in runs], run_id)
        for idx, run in runs:
            found, failure = observed[run.pod]
            for i, req, addr in zip(idx, run.requests, run.addresses):
                hit = found.get(target_arg(addr, req))
                rep = self.reproduce(req, addr, timeout)
                if hit is None:
                    results[i] = ProbeResult(req, None, f"no observation ({failure or 'target missing in output'})",
                                             rep, addr)
                else:
                    results[i] = ProbeResult(req, hit["reachable"], f"{hit['outcome']} after {hit['ms']} ms", rep, addr)
        return [results[i] for i in range(len(requests))]

    def _address(self, peer: Peer) -> tuple[str | None, str]:
        """A destination's IP: its own `ip`, or the pod IP of a running pod of the workload (not a probe pod)."""
        if peer.ip:
            return peer.ip, ""
        selector = _selector(peer.selector or peer.labels)
        found, _ = self.api.list_pods(peer.namespace, selector)
        running = [p for p in found if p.status and p.status.phase == "Running" and p.status.pod_ip
                   and not pods.terminating(p) and PROBE_LABEL not in (p.metadata.labels or {})]
        if not running:
            states = "; ".join(pods.describe(p) for p in found) or "no pods"
            return None, (f"not probed: no running pod of {peer.name} to probe ({states}); check with "
                          f"`{self.kubectl} -n {peer.namespace} get pods -l {selector} -o wide`")
        running.sort(key=lambda p: (not pods.ready(p), p.metadata.name))  # a Ready pod first
        return str(running[0].status.pod_ip), ""

    def reproduce(self, req: ProbeRequest, address: str, timeout: float) -> str:
        """A `kubectl run` that repeats one probe by hand: same namespace, same labels, same image."""
        spec = pod_spec("indmlops-probe-repro", req.source.namespace, {}, self.image, [])["spec"]
        container = dict(spec["containers"][0], name="indmlops-probe-repro")
        container.pop("args")
        container.pop("image")
        overrides = {"apiVersion": "v1", "spec": dict(spec, containers=[container])}
        labels = ",".join(f"{k}={v}" for k, v in req.source.labels)
        return (f"{self.kubectl} -n {req.source.namespace} run indmlops-probe-repro --rm -i --restart=Never "
                f"--image={self.image} " + (f"--labels={shlex.quote(labels)} " if labels else "") +
                f"--overrides={shlex.quote(json.dumps(overrides, separators=(',', ':')))} -- "
                f"probe --timeout {timeout:g} {target_arg(address, req)}")

    # --- running pods to completion ----------------------------------------------------------------------------
    def ensure_namespace(self, name: str) -> None:
        if name in self._created_namespaces or self.api.namespace_exists(name):
            return
        self.api.create_namespace(namespace_spec(name))
        self._created_namespaces.append(name)

    def run_pods(self, runs: list[tuple[Run, dict[str, str]]], run_id: str) -> dict[str, tuple[dict, str]]:
        """Create every pod at once (one owner ConfigMap per namespace), wait until each has finished, read what it
        printed. pod name → (target argument → observation, why there is none)."""
        owners: dict[str, tuple[str, str]] = {}
        try:
            for run, labels in runs:
                self.ensure_namespace(run.namespace)
                if run.namespace not in owners:
                    owners[run.namespace] = self.owner(run.namespace, f"indmlops-probe-{run_id}",
                                                       "owner of this run's probe pods", {PROBE_LABEL: run_id})
                self.api.create_pod(run.namespace, pod_spec(run.pod, run.namespace, dict(labels, **{
                    PROBE_LABEL: run_id}), self.image, run.args, owners[run.namespace]))
            self.progress(f"{len(runs)} probe pod(s) created ({', '.join(sorted(owners))}); waiting for them to finish")
            return self._collect([r for r, _ in runs], run_id)
        finally:
            for ns, (name, _) in owners.items():
                try:
                    self.api.delete_config_map(ns, name)
                except KubernetesError as exc:  # cleanup must not hide the result; say what is left behind
                    self.progress(f"could not delete ConfigMap {ns}/{name} (its probe pods stay): {exc}")

    def owner(self, namespace: str, name: str, purpose: str, labels: dict[str, str] | None = None) -> tuple[str, str]:
        """A ConfigMap to name as the controller of pods (see pod_spec): (name, uid)."""
        uid = self.api.create_config_map(namespace, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
            "name": name, "labels": labels or {}}, "data": {"purpose": purpose}})
        return name, uid

    def _collect(self, runs: list[Run], run_id: str) -> dict[str, tuple[dict, str]]:
        t0 = time.monotonic()
        done = self.wait_pods(runs, f"{PROBE_LABEL}={run_id}", finished, "probe pod", "probe pods did not finish")
        self.progress(f"{len(runs)} probe pod(s) finished in {time.monotonic() - t0:.1f} s")
        return {r.pod: self._observations(r, done[r.pod]) for r in runs}

    def wait_pods(self, runs: list[Run], selector: str, done: Callable[[client.V1Pod], bool], what: str,
                  expired: str) -> dict[str, client.V1Pod]:
        """Poll the pods of `runs` (found by `selector`) until `done` holds for each: pod name → pod. A pod that
        cannot get its image fails at once; after POD_BUDGET s, `expired` and each waiting pod's state and events."""
        t0 = time.monotonic()
        pending = {r.pod: r for r in runs}
        out: dict[str, client.V1Pod] = {}
        last: dict[str, client.V1Pod] = {}
        while pending:
            for ns in sorted({r.namespace for r in pending.values()}):
                for p in self.api.list_pods(ns, selector)[0]:
                    name = p.metadata.name
                    if name not in pending:
                        continue
                    last[name] = p
                    failure = pods.pull_failure(p)
                    if failure is not None:
                        raise ImageNotLoaded(f"{what} {ns}/{name}", time.monotonic() - t0,
                                             f"{pods.describe(p)} ({failure[1]})", failure[0])
                    if done(p):
                        out[name] = p
                        del pending[name]
            if not pending:
                break
            if time.monotonic() - t0 > POD_BUDGET:
                raise KubernetesError(f"{expired} within {POD_BUDGET:.0f} s: " + " | ".join(
                    self.stuck(r, last.get(r.pod)) for r in pending.values()))
            time.sleep(POLL)
        return out

    def stuck(self, run: Run, pod: client.V1Pod | None) -> str:
        if pod is None:
            return f"pod {run.namespace}/{run.pod} never appeared"
        return (f"{pods.state_with_events(self.api, pod)}; reproduce with "
                f"`{self.kubectl} -n {run.namespace} describe pod {run.pod}`")

    def _observations(self, run: Run, pod: client.V1Pod) -> tuple[dict, str]:
        try:
            log = self.api.pod_log(run.namespace, run.pod, "probe", 400)
        except KubernetesError as exc:
            return {}, f"log of {run.namespace}/{run.pod} unreadable: {exc}"
        lines = [ln[len(MARKER):] for ln in log.splitlines() if ln.startswith(MARKER)]
        if not lines:
            return {}, f"{pods.describe(pod)} printed no result; its log ends: {log[-300:]!r}"
        try:
            results = json.loads(lines[-1])["results"]
            return {str(r["target"]): r for r in results}, ""
        except (ValueError, KeyError, TypeError) as exc:
            return {}, f"unreadable result line of {run.namespace}/{run.pod} ({exc}): {lines[-1][:200]!r}"

    def cleanup(self) -> None:
        """Delete the scratch namespaces this object created (their pods and policies go with them)."""
        while self._created_namespaces:
            ns = self._created_namespaces.pop()
            try:
                self.api.delete_namespace(ns)
            except KubernetesError as exc:
                self.progress(f"could not delete scratch namespace {ns}: {exc}; delete it with "
                              f"`{self.kubectl} delete namespace {ns}`")
