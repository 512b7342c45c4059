"""Which NetworkPolicy implementation a cluster runs, told from its pods' images. When the enforcement canary finds a
deny-all ignored, this says why: nothing here implements NetworkPolicy (the cluster cannot isolate; not supported),
or an implementation runs and did not act (broken, not ready, or not watching; a fault to fix)."""

from __future__ import annotations

from dataclasses import dataclass

from kubernetes import client

from indmlops.errors import KubernetesError
from indmlops.targets.kubernetes.api import KubeApi

# A fragment of an image reference → the implementation whose agent that image runs. Agents only: an operator or
# a controller alone enforces nothing on a node.
IMPLEMENTATIONS: tuple[tuple[str, str], ...] = (
    ("calico/node", "Calico"),
    ("cilium/cilium", "Cilium"),
    ("antrea/antrea-agent", "Antrea"),
    ("antrea/antrea-ubuntu", "Antrea"),
    ("kube-router", "kube-router"),
    ("weave-npc", "Weave Net"),
    ("kube-ovn", "Kube-OVN"),
    ("kube-network-policies", "kube-network-policies"),
    ("ovn-kubernetes", "OVN-Kubernetes"),
)


@dataclass(frozen=True)
class Enforcer:
    implementation: str
    pod: str  # namespace/name
    image: str
    ready: bool


def _ready(pod: client.V1Pod) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in (pod.status and pod.status.conditions) or [])


def running(pods: list[client.V1Pod]) -> list[Enforcer]:
    """The pods among `pods` that run a NetworkPolicy agent (one Enforcer per pod)."""
    found = []
    for pod in pods:
        if pod.status is not None and pod.status.phase in ("Succeeded", "Failed"):
            continue
        spec = pod.spec
        images = [c.image or "" for c in [*(spec.init_containers or []), *(spec.containers or [])]] if spec else []
        match = next(((impl, image) for image in images for fragment, impl in IMPLEMENTATIONS
                      if fragment in image.lower()), None)
        if match:
            found.append(Enforcer(match[0], f"{pod.metadata.namespace}/{pod.metadata.name}", match[1], _ready(pod)))
    return found


def explain(api: KubeApi) -> tuple[str, str]:
    """(why the deny-all was ignored, what to do), from the pods the cluster runs."""
    known = ", ".join(sorted({impl for _fragment, impl in IMPLEMENTATIONS}))
    try:
        found = running(api.list_all_pods())
    except KubernetesError as exc:
        return (f"Which NetworkPolicy implementation runs here is unknown: listing the cluster's pods failed ({exc})",
                "run on a CNI that enforces NetworkPolicy")
    if not found:
        return (f"No NetworkPolicy implementation runs on this cluster (no agent pod of {known} in any namespace): "
                "its network cannot isolate workloads, so NetworkPolicy is not supported here",
                "run on a CNI that enforces NetworkPolicy (the kind cluster of manifests/overlays/kind installs "
                "Calico: manifests/README.md 'Why Calico on kind')")
    shown = "; ".join(f"{e.pod} ({e.image}, {'Ready' if e.ready else 'NOT Ready'})" for e in found[:4])
    more = f" and {len(found) - 4} more" if len(found) > 4 else ""
    first = found[0]
    ns, name = first.pod.split("/", 1)
    return (f"{first.implementation} runs here ({shown}{more}) yet did not act on the policy: the implementation is "
            "broken, not ready or not watching this namespace",
            f"look at its agent (`kubectl -n {ns} logs {name}`, `kubectl -n {ns} describe pod {name}`) and fix it")
