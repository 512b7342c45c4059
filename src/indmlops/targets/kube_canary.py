"""The enforcement canary: proof that the cluster's network enforces NetworkPolicy before any cell is judged."""

from __future__ import annotations

import time
import uuid

from indmlops.errors import ImageNotLoaded, IsolationNotEnforced, KubernetesError
from indmlops.targets import kube_pods as pods
from indmlops.targets.base import EnforcementEvidence, Peer, ProbeRequest
from indmlops.targets.kube_probe import (
    POD_BUDGET,
    POLL,
    ProbePods,
    Run,
    pod_spec,
    target_arg,
)

CANARY_NAMESPACE = "indmlops-canary"
CANARY_PORT = 8080


def canary(probes: ProbePods, timeout: float) -> EnforcementEvidence:
    """A listener in a scratch namespace must be reachable before a deny-all ingress policy there, and denied
    within `timeout` s after it. Reachable after → IsolationNotEnforced. Not reachable before → the probes
    themselves cannot tell allowed from denied here: KubernetesError."""
    run_id = uuid.uuid4().hex[:6]
    ns = f"{CANARY_NAMESPACE}-{run_id}"  # one per run: a deleted namespace stays Terminating for a while
    try:
        return _canary(probes, ns, run_id, timeout)
    finally:
        probes.cleanup()


def _canary(probes: ProbePods, ns: str, run_id: str, timeout: float) -> EnforcementEvidence:
    probes.ensure_namespace(ns)
    listener = f"indmlops-canary-listener-{run_id}"
    uid = probes.api.create_config_map(ns, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
        "name": f"indmlops-canary-{run_id}"}, "data": {"purpose": "owner of the canary's pods"}})
    probes.api.create_pod(ns, pod_spec(listener, ns, {"indmlops.io/canary": "listener"}, probes.image,
                                     ["listen", str(CANARY_PORT)], (f"indmlops-canary-{run_id}", uid)))
    address = _wait_running(probes, ns, listener)
    peer = Peer("canary/listener", ns, (("indmlops.io/canary", "listener"),), address)
    req = ProbeRequest(Peer("canary/client", ns, (("indmlops.io/canary", "client"),)), peer, CANARY_PORT)
    before = _canary_probe(probes, req, address, run_id + "a", ["--timeout", "2"])
    if before.get("reachable") is not True:
        raise KubernetesError(
            f"the enforcement canary's client could not reach its listener {ns}/{listener} at "
            f"{address}:{CANARY_PORT} before any NetworkPolicy existed ({before.get('outcome')}): probe pods "
            f"cannot tell allowed from denied on this cluster; reproduce with "
            f"`{probes.reproduce(req, address, 2)}`")
    probes.api.create_network_policy(ns, {
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "indmlops-canary-deny-all"},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}})
    after = _canary_probe(probes, req, address, run_id + "b", ["--timeout", "2", "--until-blocked", f"{timeout:g}"])
    if after.get("reachable") is not False:
        raise IsolationNotEnforced(
            f"NetworkPolicy is not enforced on this cluster: {ns}/{listener} ({address}:{CANARY_PORT}) was still "
            f"reachable ({after.get('outcome')}, {after.get('attempts')} attempts over {after.get('seconds')} s) "
            f"after NetworkPolicy {ns}/indmlops-canary-deny-all denied all ingress to it. Its CNI ignores "
            "NetworkPolicy, so every isolation observation would be meaningless: run on a CNI that enforces it "
            "(the kind cluster of manifests/overlays/kind installs Calico: manifests/README.md 'Why Calico on "
            "kind'), or pass --allow-unenforced to skip the live isolation suite")
    return EnforcementEvidence(f"{before['outcome']} after {before['ms']} ms with no policy",
                               f"{after['outcome']} after the deny-all policy", float(after.get("seconds", 0)))


def _canary_probe(probes: ProbePods, req: ProbeRequest, address: str, run_id: str, flags: list[str]) -> dict:
    run = Run(f"indmlops-canary-client-{run_id}", req.source.namespace, [req], [address],
               ["probe", *flags, target_arg(address, req)])
    found, failure = probes.run_pods([(run, dict(req.source.labels))], run_id)[run.pod]
    return found.get(run.args[-1]) or {"reachable": None, "outcome": failure or "no observation"}


def _wait_running(probes: ProbePods, ns: str, name: str) -> str:
    t0 = time.monotonic()
    last = None
    while time.monotonic() - t0 < POD_BUDGET:
        found = [p for p in probes.api.list_pods(ns, "indmlops.io/canary=listener")[0] if p.metadata.name == name]
        if found:
            last = found[0]
            failure = pods.pull_failure(last)
            if failure is not None:
                raise ImageNotLoaded(f"canary listener {ns}/{name}", time.monotonic() - t0, pods.describe(last),
                                     failure[0])
            if last.status and last.status.phase == "Running" and last.status.pod_ip:
                return str(last.status.pod_ip)
        time.sleep(POLL)
    raise KubernetesError(f"the enforcement canary's listener did not run within {POD_BUDGET:.0f} s: "
                          + probes.stuck(Run(name, ns, [], [], []), last))

