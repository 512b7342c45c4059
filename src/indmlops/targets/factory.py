"""The one way to get a target: `open_target(TargetSpec(...))`, a context manager, used by the pytest plugin, the
CLI, chaos experiments, the benches and Locust alike.

Opening does what the kind of target needs and closing undoes exactly that: a local stack that was not running is
started (when `start`) and stopped again (unless `keep_stack`); a kind cluster is created or reused, and what this
opening created is removed (unless `keep_cluster`); port-forwards and API connections are closed. Errors are
`TargetSpecError` (the request itself is wrong: a usage error) or another `IndMLOpsError` (the target could not be
reached or set up), each naming what to do.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from indmlops.errors import IndMLOpsError
from indmlops.targets.base import Target
from indmlops.targets.kubernetes import CALICO_MANIFEST, KIND_CONTEXT

KINDS = ("local", "kind", "kubeconfig", "cluster")


class TargetSpecError(IndMLOpsError):
    """The target asked for is inconsistent (a usage error, not an unreachable target)."""

    def __init__(self, what: str, reason: str) -> None:
        super().__init__(f"{what}: {reason}")
        self.reason = reason


def _quiet(_msg: str) -> None:
    return None


@dataclass(frozen=True)
class TargetSpec:
    """What to open. `name` is local, kind or kubeconfig; the other fields apply to the kinds their comment names."""

    name: str = "local"
    state_dir: Path | None = None  # local: None is the default state directory
    ports: dict[str, int] | None = None  # local: None reads INDMLOPS_PORT_OFFSET / INDMLOPS_PORTS
    broker_autosave: str | None = None  # local: the save policy wanted when starting; None takes the stack's own
    start: bool = True  # local: start the stack when it is not running; kind: create/deploy the cluster. False opens
    #                     what is there as it is (the CLI, chaos from `chaos run`, the benches, Locust)
    keep_stack: bool = False  # local: leave a stack this opening started running
    keep_cluster: bool = False  # kind: leave the cluster (or what was deployed into one) this opening made
    kubeconfig: str | None = None  # kind, kubeconfig
    context: str | None = None  # kind, kubeconfig: kind defaults to kind-indmlops
    probe_image: str | None = None  # kind, kubeconfig
    cni_manifest: str | None = None  # kind: applied when the nodes have no CNI
    overlay: Path | None = None  # kind: the manifests deployed (kustomization or YAML directory); None: the project's
    #                              cluster: the manifests deployed; None: nothing is deployed
    cluster_dir: Path | None = None  # cluster: the state directory of `indmlops cluster` (None: its default)

    def __post_init__(self) -> None:
        if self.name not in KINDS:
            raise TargetSpecError(f"target {self.name!r}", f"expected one of {', '.join(KINDS)}")
        if self.name == "kind" and self.context not in (None, KIND_CONTEXT):
            raise TargetSpecError(f"--context {self.context!r} with --target kind",
                                  f"kind's cluster has context {KIND_CONTEXT!r}; use --target kubeconfig for another "
                                  "cluster")

    @property
    def progress_label(self) -> str:
        """How progress lines of opening this target start."""
        return {"local": "indmlops up", "kind": "indmlops kind", "kubeconfig": "indmlops kube",
                "cluster": "indmlops cluster"}[self.name]

    @property
    def kube_context(self) -> str | None:
        if self.context is None and self.name in ("kind", "cluster"):
            from indmlops.targets.kubernetes.cluster import CONTEXT

            return KIND_CONTEXT if self.name == "kind" else CONTEXT
        return self.context


@contextmanager
def open_target(spec: TargetSpec, progress: Callable[[str], None] = _quiet) -> Iterator[Target]:
    with _OPENERS[spec.name](spec, progress) as target:
        yield target


def preview(spec: TargetSpec) -> list[str]:
    """Report-header lines about the target before it is opened (nothing is started or contacted for them)."""
    return _PREVIEWS[spec.name](spec)


# --- local ---------------------------------------------------------------------------------------------------------

def _local_stack(spec: TargetSpec, wanted: str | None = None):
    from indmlops.targets.local.layout import default_state_dir, ports_from_environment
    from indmlops.targets.local.stack import LocalStack

    ports = spec.ports if spec.ports is not None else ports_from_environment()
    return LocalStack(spec.state_dir or default_state_dir(), ports, broker_autosave=wanted)


@contextmanager
def _open_local(spec: TargetSpec, progress: Callable[[str], None]) -> Iterator[Target]:
    from indmlops.targets.local.target import LocalTarget

    wanted = spec.broker_autosave
    stack = _local_stack(spec, wanted)
    running = stack.running()
    if wanted and running and (found := stack.config().broker_autosave) != wanted:
        # A stack this opening did not start is left as found: its broker is not restarted with another setting.
        raise TargetSpecError(
            f"broker_autosave {wanted}", f"the running stack in {stack.layout.state_dir} has broker_autosave "
            f"{found}; run `indmlops up --broker-autosave {wanted}` first")
    started = False
    if spec.start and not running:
        t0 = time.monotonic()
        stack.up(progress=progress)
        progress(f"all ready in {time.monotonic() - t0:.1f} s")
        started = True
    target = LocalTarget(stack.layout.state_dir)
    try:
        yield target
    finally:
        target.close()
        if started and not spec.keep_stack:
            stack.down()


def _preview_local(spec: TargetSpec) -> list[str]:
    from indmlops.targets.local.target import LocalTarget

    t = LocalTarget(_local_stack(spec).layout.state_dir)
    if not t.stack.running():
        return [f"indmlops endpoints: {t.describe()}"]
    from indmlops import broker

    policy = t.broker_autosave()
    caveat = ""
    if policy is not None and not broker.parse(policy).timed:
        # Not a silent cliff: saving by changes rewrites the whole database at every save, so a backlog makes every
        # save dearer (docs/suites.md, "Broker durability").
        caveat = ("; saves by changes: after an outage the edge drains only as fast as the disk rewrites a growing "
                  "database (docs/suites.md, 'Policies by changes: the measured curve')")
    return [f"indmlops endpoints: {t.describe()}",
            "indmlops versions: " + "; ".join(f"{k}: {v}" for k, v in t.versions().items()),
            f"indmlops broker: broker_autosave={policy} (read from the running broker's mosquitto.conf){caveat}"]


# --- Kubernetes ----------------------------------------------------------------------------------------------------

def _kube_target(spec: TargetSpec, kubeconfig: str | None, progress: Callable[[str], None],
                 host_roots: Callable[[], list[int]] | None = None) -> Target:
    from indmlops.targets.kubernetes.probe_pods import PROBE_IMAGE
    from indmlops.targets.kubernetes.target import KubernetesTarget

    return KubernetesTarget(spec.name, kubeconfig=kubeconfig, context=spec.kube_context, progress=progress,
                            probe_image=spec.probe_image or PROBE_IMAGE, host_roots=host_roots)


@contextmanager
def _open_kubeconfig(spec: TargetSpec, progress: Callable[[str], None]) -> Iterator[Target]:
    target = _kube_target(spec, spec.kubeconfig, progress)
    try:
        yield target
    finally:
        target.close()


@contextmanager
def _open_kind(spec: TargetSpec, progress: Callable[[str], None]) -> Iterator[Target]:
    from indmlops.targets.kubernetes.kind import KIND_OVERLAY, KindCluster, kind_kubeconfig

    if not spec.start:  # the cluster as it is, at kind's context: nothing created, deployed or removed
        with _open_kubeconfig(spec, progress) as target:
            yield target
        return
    cluster = KindCluster(kind_kubeconfig(spec.kubeconfig), progress=progress,
                          cni_manifest=spec.cni_manifest or CALICO_MANIFEST, overlay=spec.overlay or KIND_OVERLAY)
    try:
        cluster.up()
        target = _kube_target(spec, str(cluster.kubeconfig), progress, host_roots=cluster.node_pids)
    except BaseException as exc:
        try:
            cluster.down(keep=spec.keep_cluster)
        except IndMLOpsError as cleanup:
            progress(f"could not remove what this session created: {cleanup}")
        if isinstance(exc, IndMLOpsError) and not spec.keep_cluster:
            raise IndMLOpsError(f"{exc} (pass --keep-cluster to keep the cluster for a look)") from exc
        raise
    try:
        yield target
    finally:
        target.close()  # before the cluster goes: its port-forwards point into it
        cluster.down(keep=spec.keep_cluster)


@contextmanager
def _open_cluster(spec: TargetSpec, progress: Callable[[str], None]) -> Iterator[Target]:
    """This machine's single-node cluster (`indmlops cluster`): brought up unless it runs, the project's images
    loaded into its containerd, `overlay` deployed when given; then as --target kubeconfig. At the end, what this
    opening started or deployed goes again (unless keep_cluster)."""
    from indmlops.targets.kubernetes.cluster.session import ClusterSession

    session = ClusterSession(spec.cluster_dir, spec.overlay, progress)
    try:
        if spec.start:
            session.open()
        target = _kube_target(spec, str(session.kubeconfig), progress, host_roots=session.cluster.host_pids)
    except BaseException:
        session.close(keep=spec.keep_cluster)
        raise
    try:
        yield target
    finally:
        target.close()
        session.close(keep=spec.keep_cluster)


def _preview_cluster(spec: TargetSpec) -> list[str]:
    from indmlops.targets.kubernetes.cluster.lifecycle import default_state_dir

    where = spec.cluster_dir or default_state_dir()
    return [f"indmlops endpoints: the single-node cluster of this machine ({where}, context "
            f"{spec.kube_context}), through port-forwards the target opens when a test needs them"]


def _preview_kube(spec: TargetSpec) -> list[str]:
    return [f"indmlops endpoints: Kubernetes context {spec.kube_context or '(current-context)'} of kubeconfig "
            f"{spec.kubeconfig or '(default)'}, through port-forwards the target opens when a test needs them"]


_OPENERS = {"local": _open_local, "kind": _open_kind, "kubeconfig": _open_kubeconfig, "cluster": _open_cluster}
_PREVIEWS = {"local": _preview_local, "kind": _preview_kube, "kubeconfig": _preview_kube, "cluster": _preview_cluster}
