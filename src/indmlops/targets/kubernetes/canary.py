"""The enforcement canary: proof that the cluster's network enforces NetworkPolicy before any cell is judged."""

from __future__ import annotations

import uuid

from indmlops.errors import IsolationNotEnforced, KubernetesError
from indmlops.targets.base import EnforcementEvidence, Peer, ProbeRequest
from indmlops.targets.kubernetes import enforcers
from indmlops.targets.kubernetes.probe_pods import ProbePods, Run, pod_spec, running_with_ip, target_arg

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
    owner = probes.owner(ns, f"indmlops-canary-{run_id}", "owner of the canary's pods")
    probes.api.create_pod(ns, pod_spec(listener, ns, {"indmlops.io/canary": "listener"}, probes.image,
                                     ["listen", str(CANARY_PORT)], owner))
    pod = probes.wait_pods([Run(listener, ns, [], [], [])], "indmlops.io/canary=listener", running_with_ip,
                           "canary listener", "the enforcement canary's listener did not run")[listener]
    address = str(pod.status.pod_ip)
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
        why, remedy = enforcers.explain(probes.api)
        raise IsolationNotEnforced(
            f"NetworkPolicy is not enforced on this cluster: {ns}/{listener} ({address}:{CANARY_PORT}) was still "
            f"reachable ({after.get('outcome')}, {after.get('attempts')} attempts over {after.get('seconds')} s) "
            f"after NetworkPolicy {ns}/indmlops-canary-deny-all denied all ingress to it, so every isolation "
            f"observation would be meaningless. {why}. To judge isolation, {remedy}; or pass --allow-unenforced "
            "to skip the live isolation suite")
    return EnforcementEvidence(f"{before['outcome']} after {before['ms']} ms with no policy",
                               f"{after['outcome']} after the deny-all policy", float(after.get("seconds", 0)))


def _canary_probe(probes: ProbePods, req: ProbeRequest, address: str, run_id: str, flags: list[str]) -> dict:
    run = Run(f"indmlops-canary-client-{run_id}", req.source.namespace, [req], [address],
               ["probe", *flags, target_arg(address, req)])
    found, failure = probes.run_pods([(run, dict(req.source.labels))], run_id)[run.pod]
    return found.get(target_arg(address, req)) or {"reachable": None, "outcome": failure or "no observation"}

