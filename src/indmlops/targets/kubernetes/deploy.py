"""Apply rendered manifests in the seed's order and wait for each workload, saying what happened and, on expiry, the
last observed state."""

from __future__ import annotations

import shlex
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from indmlops.errors import ImageNotLoaded, IndMLOpsError, KubernetesError, NotReady
from indmlops.manifests import Obj
from indmlops.targets.kubernetes import pods
from indmlops.targets.kubernetes.api import KubeApi

# The seed's order (nightly.yml waited in it): storage and databases before their clients, the bucket before
# MLflow, the broker before its clients. A workload not listed is applied after those of its namespace.
SEED_ORDER: tuple[tuple[str, str, str], ...] = (
    ("it-core", "StatefulSet", "postgres"),
    ("it-core", "Deployment", "minio"),
    ("it-core", "Job", "minio-bucket-bootstrap"),
    ("it-core", "Deployment", "mlflow"),
    ("it-core", "Deployment", "jupyter"),
    ("ot-edge", "Deployment", "mosquitto"),
    ("ot-edge", "Deployment", "nodered"),
    ("ot-edge", "Deployment", "inference"),
    ("ot-edge", "Deployment", "simulator"),
    ("governance", "Deployment", "prometheus"),
    ("governance", "Deployment", "grafana"),
)
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job")
DEFAULT_TIMEOUT = 300.0
TIMEOUTS = {"it-core/jupyter": 600.0}  # scipy-notebook is a ~1.5 GB pull on a fresh node
POLL = 1.0  # seconds between status reads: a rollout takes tens of seconds, a read costs one GET

Progress = Callable[[str], None]


class DeployFailed(KubernetesError):
    """kubectl refused a step, or a Job failed: waiting cannot help."""


@dataclass(frozen=True)
class Step:
    title: str  # "namespaces and storage", "it-core configuration", "it-core/postgres"
    objects: tuple[Obj, ...]
    workload: Obj | None = None  # waited for after the step is applied


def plan(objects: list[Obj]) -> list[Step]:
    """Namespaces, cluster-scoped objects and storage first; then plane by plane its configuration (Secrets,
    ConfigMaps, Services, NetworkPolicies) and its workloads one at a time in SEED_ORDER."""
    first = [o for o in objects if o.namespace is None or o.kind == "PersistentVolumeClaim"]
    taken = {id(o) for o in first}
    rank = {key: i for i, key in enumerate(SEED_ORDER)}
    planes = list(dict.fromkeys([ns for ns, _, _ in SEED_ORDER] + sorted(
        {str(o.namespace) for o in objects if id(o) not in taken})))
    steps = [Step("namespaces and storage", tuple(first))] if first else []
    for ns in planes:
        mine = [o for o in objects if o.namespace == ns and id(o) not in taken]
        config = tuple(o for o in mine if o.kind not in WORKLOAD_KINDS)
        if config:
            steps.append(Step(f"{ns} configuration", config))
        workloads = sorted((o for o in mine if o.kind in WORKLOAD_KINDS),
                           key=lambda o: (rank.get((ns, o.kind, o.name), len(rank)), o.name))
        steps += [Step(f"{ns}/{w.name}", (w,), w) for w in workloads]
    return steps


def apply(kubectl_argv: list[str], step: Step, timeout: float = 120.0) -> None:
    """`kubectl apply -f -` of the step's objects; kubectl's own error when it refuses."""
    text = yaml.safe_dump_all([o.body for o in step.objects], sort_keys=False)
    argv = [*kubectl_argv, "apply", "-f", "-"]
    try:
        res = subprocess.run(argv, input=text, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise DeployFailed(f"applying {step.title} did not finish within {timeout:.0f} s: `{shlex.join(argv)}`") \
            from None
    if res.returncode != 0:
        raise DeployFailed(f"applying {step.title} ({len(step.objects)} objects) failed (exit {res.returncode}): "
                           f"{res.stderr.strip()[-1500:]}; reproduce with `kubectl kustomize <the overlay>"
                           f" | {shlex.join(argv)}` (the objects of {sorted({o.source for o in step.objects})})")


def namespaces_to_create(api: KubeApi, objects: list[Obj]) -> list[str]:
    """The Namespaces among `objects` the cluster lacks: what a session that deploys them removes at its end."""
    return sorted({o.name for o in objects if o.kind == "Namespace"} - api.list_namespaces())


def deploy(steps: list[Step], kubectl_argv: list[str], api: KubeApi, progress: Progress,
           timeouts: dict[str, float] | None = None, default_timeout: float = DEFAULT_TIMEOUT,
           before: dict[str, Callable[[], object]] | None = None) -> None:
    """Apply each step and wait for its workload; `before[title]` runs just before the step of that title (the
    inference service needs a registered model before it can be Ready)."""
    timeouts = TIMEOUTS if timeouts is None else timeouts
    for step in steps:
        t0 = time.monotonic()
        if before and step.title in before:
            before[step.title]()
        apply(kubectl_argv, step)
        if step.workload is None:
            progress(f"applied {step.title} ({len(step.objects)} objects)")
            continue
        detail = wait_workload(api, step.workload, timeouts.get(step.title, default_timeout))
        progress(f"{step.title} ready in {time.monotonic() - t0:.1f} s ({detail})")


def _or_none(fn: Callable[..., Any]) -> Callable[..., Any]:
    """A read that answers None for 404 (not created yet) instead of an error."""
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
    return call


def read_workload(api: KubeApi, kind: str, namespace: str, name: str) -> Any:
    """The live object (None when absent) through the target's error translation."""
    apps, batch = client.AppsV1Api(api.api_client), client.BatchV1Api(api.api_client)
    fn = {"Deployment": apps.read_namespaced_deployment, "StatefulSet": apps.read_namespaced_stateful_set,
          "DaemonSet": apps.read_namespaced_daemon_set, "Job": batch.read_namespaced_job}[kind]
    return api._call("get", f"{kind.lower()}s", namespace, _or_none(fn), name, namespace)


def judge(kind: str, live: Any) -> tuple[bool, str]:
    """(ready, a one-line state) as `kubectl rollout status` / `wait --for=condition=complete` judge it."""
    if live is None:
        return False, "not created"
    spec, st, meta = live.spec, live.status, live.metadata
    if kind == "Job":
        for c in (st.conditions if st else None) or []:
            if c.type in ("Complete", "Failed") and c.status == "True":
                return c.type == "Complete", f"{c.type} ({c.reason or ''}: {c.message or 'no message'})"
        return False, f"active={st.active or 0} succeeded={st.succeeded or 0} failed={st.failed or 0}"
    observed = (st.observed_generation or 0) >= (meta.generation or 0)
    if kind == "DaemonSet":
        want = st.desired_number_scheduled or 0
        ready, updated = st.number_ready or 0, st.updated_number_scheduled or 0
        return observed and want > 0 and ready == updated == want, f"{ready}/{want} ready, {updated} updated"
    want = 1 if spec.replicas is None else spec.replicas
    ready = (st.available_replicas if kind == "Deployment" else st.ready_replicas) or 0
    updated, total = st.updated_replicas or 0, st.replicas or 0
    word = "available" if kind == "Deployment" else "ready"
    return (observed and ready == updated == total == want,
            f"{ready}/{want} {word}, {updated} updated, {total} total{'' if observed else ', generation not observed'}")


def selector(obj: Obj) -> str:
    if obj.kind == "Job":
        return f"job-name={obj.name}"
    labels = ((obj.body.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def wait_workload(api: KubeApi, obj: Obj, timeout: float) -> str:
    """Until the workload is ready; a project image the node cannot get, or a failed Job, fails at once (neither
    heals by waiting); on expiry NotReady names the workload, its state, its least-ready pod and that pod's events."""
    ns, where = str(obj.namespace), f"{obj.kind} {obj.namespace}/{obj.name}"
    t0 = time.monotonic()
    while True:
        ok, state = judge(obj.kind, read_workload(api, obj.kind, ns, obj.name))
        if ok:
            return state
        if obj.kind == "Job" and state.startswith("Failed"):
            raise DeployFailed(f"{where} failed: {state}; see `kubectl -n {ns} logs job/{obj.name}`")
        found, _ = api.list_pods(ns, selector(obj))
        for pod in found:
            failure = pods.pull_failure(pod)
            # The project's images are loaded by `kind load`, never pulled: a pull failure is final. Public images
            # may recover from a registry hiccup, so those wait (and the timeout message shows the failure).
            if failure is not None and failure[0].split("/")[-1].startswith("indmlops-"):
                raise ImageNotLoaded(f"{ns}/{obj.name}", time.monotonic() - t0, pods.describe(pod), failure[0])
        if time.monotonic() - t0 >= timeout:
            raise NotReady(f"{ns}/{obj.name}", timeout, f"{where} {state}; {_least_ready(api, found)}"
                                                        f"; reproduce with `kubectl -n {ns} describe "
                                                        f"{obj.kind.lower()}/{obj.name}`")
        time.sleep(POLL)


def _least_ready(api: KubeApi, found: list[client.V1Pod]) -> str:
    live = [p for p in found if not pods.terminating(p)] or found
    if not live:
        return "no pod yet"
    pod = min(live, key=lambda p: (pods.ready(p), str(p.metadata.creation_timestamp or "")))
    return pods.state_with_events(api, pod)


def delete_namespaces(api: KubeApi, names: list[str], progress: Progress, timeout: float = 180.0) -> None:
    """Delete and wait until gone: a session right after must not meet them Terminating."""
    t0 = time.monotonic()
    for name in names:
        api.delete_namespace(name, missing_ok=True)
    while (left := sorted(set(names) & api.list_namespaces())) and time.monotonic() - t0 < timeout:
        time.sleep(POLL)
    if left:
        raise IndMLOpsError(f"namespaces {', '.join(left)} still terminating after {timeout:.0f} s; check with "
                            f"`kubectl get ns {' '.join(left)}` and their finalizers")
    progress(f"deleted namespaces {', '.join(names)} (created by this session) in {time.monotonic() - t0:.1f} s")
