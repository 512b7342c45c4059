"""Reading pod state: Ready or not, why not, and whether waiting can help (a missing image never loads itself)."""

from __future__ import annotations

from typing import Any

from kubernetes import client

from indmlops.errors import KubernetesError

# Waiting reasons that mean the node cannot get the image. On kind the project's images are loaded with
# `kind load` and pulled IfNotPresent, so none of these heals by waiting.
PULL_FAILURES = ("ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull", "InvalidImageName")


def uid(pod: client.V1Pod) -> str:
    return str(pod.metadata.uid)


def terminating(pod: client.V1Pod) -> bool:
    return pod.metadata.deletion_timestamp is not None


def ready(pod: client.V1Pod) -> bool:
    if terminating(pod) or not pod.status or pod.status.phase != "Running":
        return False
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


def _container_statuses(pod: client.V1Pod) -> list[client.V1ContainerStatus]:
    status = pod.status
    if status is None:
        return []
    return list(status.init_container_statuses or []) + list(status.container_statuses or [])


def claims(pod: client.V1Pod) -> list[str]:
    """The PersistentVolumeClaims the pod mounts: a replacement of a stateful pod must mount the same ones."""
    volumes = pod.spec.volumes if pod.spec else None
    return sorted(v.persistent_volume_claim.claim_name for v in volumes or [] if v.persistent_volume_claim)


def restart_count(pod: client.V1Pod) -> int:
    return sum(int(c.restart_count or 0) for c in (pod.status.container_statuses or [] if pod.status else []))


def pull_failure(pod: client.V1Pod) -> tuple[str, str] | None:
    """(image, "reason: message") when a container of the pod cannot get its image, else None."""
    for cs in _container_statuses(pod):
        waiting = cs.state.waiting if cs.state else None
        if waiting is not None and waiting.reason in PULL_FAILURES:
            return str(cs.image), f"{waiting.reason}: {waiting.message or 'no message'}"
    return None


def describe(pod: client.V1Pod) -> str:
    """'pod it-core/mlflow-7c… uid=… phase=Pending, reason=Unschedulable (0/2 nodes…)' — the last observed state."""
    meta, status = pod.metadata, pod.status
    parts = [f"pod {meta.namespace}/{meta.name} uid={meta.uid}", f"phase={status.phase if status else 'unknown'}"]
    if terminating(pod):
        parts.append("terminating")
    reasons = []
    for cond in (status.conditions or []) if status else []:
        if cond.status != "True" and (cond.reason or cond.message):
            reasons.append(f"{cond.type}=False reason={cond.reason} ({cond.message or 'no message'})")
    for cs in _container_statuses(pod):
        waiting = cs.state.waiting if cs.state else None
        if waiting is not None and waiting.reason:
            reasons.append(f"container {cs.name} waiting reason={waiting.reason} ({waiting.message or 'no message'})")
        elif cs.state and cs.state.terminated is not None:
            t = cs.state.terminated
            reasons.append(f"container {cs.name} terminated reason={t.reason} exit={t.exit_code}")
    return ", ".join(parts + reasons)


def describe_events(events: list[client.CoreV1Event], limit: int = 8, *, per_line: bool = False) -> str:
    """The newest `limit` events, oldest first: '; '-joined for one pod, one per line (naming the object) for a
    namespace."""
    if not events:
        return "no events"
    events = sorted(events, key=lambda e: str(e.last_timestamp or e.event_time or ""))[-limit:]
    if per_line:
        return "\n".join(f"{e.last_timestamp or e.event_time or ''} {e.type} {e.reason} "
                         f"{e.involved_object.kind}/{e.involved_object.name}: {e.message}" for e in events)
    return "; ".join(f"{e.type} {e.reason}: {e.message}" for e in events)


def state_with_events(api: Any, pod: client.V1Pod) -> str:
    """'<describe(pod)>; events: <its newest events>', the last observed state of a pod being waited for. `api` is a
    KubeApi. Events are a courtesy: when they cannot be read, the text says why in their place."""
    try:
        events = describe_events(api.pod_events(pod.metadata.namespace, pod.metadata.name))
    except KubernetesError as exc:
        events = f"events unavailable ({exc})"
    return f"{describe(pod)}; events: {events}{log_tail(api, pod)}"


def log_tail(api: Any, pod: client.V1Pod, lines: int = 6, limit: int = 700) -> str:
    """'; log of container C (last n lines): …' for the first running container that is not ready, or "": a probe
    answers the kubelet with a status code only, while the container usually says why it is not ready. A
    courtesy like the events."""
    cs = next((c for c in _container_statuses(pod) if c.state and c.state.running is not None and not c.ready), None)
    if cs is None:
        return ""
    try:
        text = api.pod_log(pod.metadata.namespace, pod.metadata.name, cs.name, lines)
    except KubernetesError as exc:
        return f"; log of container {cs.name} unavailable ({exc})"
    shown = " | ".join(line.strip() for line in text.strip().splitlines()[-lines:] if line.strip())
    return f"; log of container {cs.name} (last {lines} lines): {shown[-limit:] or '(empty)'}"
