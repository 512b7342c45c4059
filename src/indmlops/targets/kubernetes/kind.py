"""The kind cluster of --target kind: created or reused (pytest-kubernetes), CNI, the project's images, the manifests
in the seed's order, and removal of what the session created."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kubernetes import client
from pytest_kubernetes.kubectl import Kubectl
from pytest_kubernetes.providers.kind import KindManagerBase

from indmlops import containers
from indmlops.errors import IndMLOpsError
from indmlops.manifests import Obj, load
from indmlops.paths import REPO_ROOT
from indmlops.targets.kubernetes import CALICO_MANIFEST
from indmlops.targets.kubernetes import deploy as kube_deploy
from indmlops.targets.kubernetes.api import KubeApi
from indmlops.targets.kubernetes.model import INFERENCE_STEP, ensure_champion
from indmlops.targets.kubernetes.portforward import kubectl_binary

KIND_OVERLAY = REPO_ROOT / "manifests" / "overlays" / "kind"
KIND_CONFIG = KIND_OVERLAY / "kind-cluster.yaml"
KIND_VERSION = "v0.30.0"  # nightly's pin: its default node image is kindest/node:v1.34.0, as kind-cluster.yaml pins
NODES_TIMEOUT = 300.0  # Calico's images pull and calico-node turns Ready in 1-2 min on a CI runner
INSTALL_KIND = (f"install the pinned release: `curl -fsSLo ~/.local/bin/kind https://kind.sigs.k8s.io/dl/{KIND_VERSION}/"
                f"kind-linux-amd64 && chmod +x ~/.local/bin/kind` (or `go install sigs.k8s.io/kind@{KIND_VERSION}`)")

Progress = Callable[[str], None]


class KindError(IndMLOpsError):
    """kind, the container engine, or the cluster's set-up failed; the message says what ran and what to do."""


def kind_kubeconfig(option: str | None) -> Path:
    """Where kind writes the cluster's context: --kubeconfig, else the first file of $KUBECONFIG, else
    ~/.kube/config (as `kind create cluster` does), so the user's kubectl reaches a kept cluster afterwards."""
    first = (os.environ.get("KUBECONFIG") or "").split(os.pathsep)[0]
    return Path(option or first or "~/.kube/config").expanduser().resolve()


class _Kubectl(Kubectl):
    """pytest-kubernetes' kubectl, run as a shell line: our kubectl binary, kubeconfig and context quoted."""

    def __init__(self, binary: str, kubeconfig: Path | None, context: str | None) -> None:
        super().__init__(kubeconfig, context)
        self._binary = binary

    @property
    def _exec_path(self) -> Path:
        return Path(shlex.quote(self._binary))

    def _get_kubeconfig_args(self) -> list[str]:
        return [shlex.quote(a) for a in super()._get_kubeconfig_args()]


class KindManager(KindManagerBase):
    """KindManagerBase with what this project needs: argv instead of a shell line (paths may hold spaces), the
    engine's provider in kind's environment (its `_exec` drops `additional_env`), kind's stderr in errors, the
    context named, and a kubeconfig that is the user's: `delete()` never unlinks it."""

    def __init__(self, config: Path, kubeconfig: Path, *, kind: str, kubectl: str, env: dict[str, str]) -> None:
        self._kind, self._kubectl, self._env = kind, kubectl, env
        super().__init__(provider_config=str(config), kubeconfig=kubeconfig)  # the name comes from the config
        self.context = f"kind-{self.cluster_name}"
        self._created = False  # the library starts at True: a session that fails early must delete nothing

    def _on_create(self, cluster_options, **kwargs) -> None:
        super()._on_create(cluster_options, **kwargs)
        self._created = True  # a failed `kind create` removes its own half-made nodes

    @property
    def _exec_path(self) -> Path:
        return Path(self._kind)

    def _exec(self, arguments: list[str], additional_env: dict[str, str] | None = None,
              timeout: int | None = None) -> subprocess.CompletedProcess:
        argv = [self._kind, *arguments]
        limit = timeout or self._cluster_options.cluster_timeout
        try:
            return subprocess.run(argv, env={**os.environ, **self._env, **(additional_env or {})},
                                  capture_output=True, check=True, timeout=limit)
        except subprocess.CalledProcessError as exc:
            said = (exc.stderr or b"").decode(errors="replace").strip()[-2000:] or "no output"
            raise KindError(f"`{shlex.join(argv)}` failed (exit {exc.returncode}): {said}") from None
        except subprocess.TimeoutExpired:
            raise KindError(f"`{shlex.join(argv)}` did not finish within {limit} s") from None

    def kubectl(self, args: list[str], as_dict: bool = True, timeout: int = 60) -> dict | str:
        return _Kubectl(self._kubectl, self.kubeconfig, self.context)(args, as_dict, timeout)

    def clusters(self) -> list[str]:
        return self._exec(["get", "clusters"]).stdout.decode().split()

    def export_kubeconfig(self) -> None:
        self._exec(["export", "kubeconfig", "--name", self.cluster_name, "--kubeconfig", str(self.kubeconfig)])

    def load_archive(self, path: Path) -> None:
        self._exec(["load", "image-archive", str(path), "--name", self.cluster_name])

    def _on_delete(self) -> None:
        self._exec(["delete", "cluster", "--name", self.cluster_name, "--kubeconfig", str(self.kubeconfig)])

    def delete(self) -> None:
        if self._created:  # a cluster this manager did not create is left alone
            self._on_delete()


@dataclass(frozen=True)
class ImageLoad:
    name: str  # images/<name>/Dockerfile
    source: str  # as scripts/build-images.sh tags it: localhost/indmlops-<name>:<tag>
    ref: str  # as the manifests name it (what the kubelet looks up)


def project_images(objects: list[Obj], names: tuple[str, ...] = containers.IMAGES,
                   version: str | None = None) -> list[ImageLoad]:
    """Every image of `containers.IMAGES`, under the reference the manifests use (tag and all); one the manifests
    do not use (a probe image, say) under the project version, which build-images.sh tags too."""
    from indmlops import __version__

    used = {c.get("image", "") for o in objects for c in o.containers()}
    out = []
    for name in names:
        refs = sorted(r for r in used if r.split("/")[-1].split(":")[0] == f"indmlops-{name}")
        ref = refs[0] if refs else f"indmlops-{name}:{version or __version__}"
        out.append(ImageLoad(name, containers.image_ref(name, ref.rsplit(":", 1)[1]), ref))
    return out


class KindCluster:
    """up(): create or reuse, CNI, nodes Ready, images, manifests; down(keep): remove what up() created."""

    def __init__(self, kubeconfig: Path, *, config: Path = KIND_CONFIG, overlay: Path = KIND_OVERLAY,
                 cni_manifest: str = CALICO_MANIFEST, progress: Progress = print, kind: str | None = None,
                 kubectl: str | None = None, engine: str | None = None,
                 timeouts: dict[str, float] | None = None, default_timeout: float = kube_deploy.DEFAULT_TIMEOUT,
                 nodes_timeout: float = NODES_TIMEOUT) -> None:
        self.overlay, self.cni_manifest, self.progress = overlay, cni_manifest, progress
        self.timeouts, self.default_timeout, self.nodes_timeout = timeouts, default_timeout, nodes_timeout
        if "://" not in cni_manifest and not Path(cni_manifest).is_file():
            raise KindError(f"CNI manifest {cni_manifest}: no such file (give a path or an http(s) URL)")
        kind = kind or shutil.which("kind")
        if not kind:
            raise KindError(f"kind is not installed (no `kind` on PATH): {INSTALL_KIND}")
        if os.environ.get("KIND_EXPERIMENTAL_PROVIDER") == "podman":
            engine = engine or "podman"
        try:
            self.engine = containers.detect_engine(engine)
        except containers.NoEngine as exc:
            raise KindError(f"kind runs its nodes as containers: {exc}") from None
        env = {"KIND_EXPERIMENTAL_PROVIDER": "podman"} if self.engine == "podman" else {}
        self.kubectl = kubectl or kubectl_binary()
        self.manager = KindManager(config, kubeconfig, kind=kind, kubectl=self.kubectl, env=env)
        self.kubeconfig, self.context = kubeconfig, self.manager.context
        self.api: KubeApi | None = None
        self.created_namespaces: list[str] = []
        self.model_bootstrap = ensure_champion  # the registry of a new cluster is empty (model.py)

    @property
    def kubectl_argv(self) -> list[str]:
        return [self.kubectl, "--kubeconfig", str(self.kubeconfig), "--context", self.context]

    def up(self) -> None:
        t0 = time.monotonic()
        objects = load(self.overlay).objects  # rendered first: a broken overlay fails before anything is made
        images = project_images(objects)
        self._check_images(images)
        self._create_or_reuse()
        self.api = KubeApi(str(self.kubeconfig), self.context)
        self._ensure_cni()
        self._load(images)
        self.created_namespaces = kube_deploy.namespaces_to_create(self.api, objects)
        self.progress(f"deploying {self.overlay} ({len(objects)} objects)")
        kube_deploy.deploy(kube_deploy.plan(objects), self.kubectl_argv, self.api, self.progress,
                           self.timeouts, self.default_timeout,
                           before={INFERENCE_STEP: lambda: self.model_bootstrap(
                               str(self.kubeconfig), self.context, self.progress)})
        self.progress(f"all ready in {time.monotonic() - t0:.1f} s (context {self.context} of {self.kubeconfig})")

    def down(self, keep: bool) -> None:
        name = self.manager.cluster_name
        if keep:
            what = "cluster" if self.manager._created else "what this session deployed into reused cluster"
            self.progress(f"kept {what} {name} (--keep-cluster); remove it with `kind delete cluster --name {name}`")
        elif self.manager._created:
            t0 = time.monotonic()
            self.manager.delete()
            self.progress(f"deleted cluster {name} (created by this session) in {time.monotonic() - t0:.1f} s")
        elif self.created_namespaces and self.api is not None:
            kube_deploy.delete_namespaces(self.api, self.created_namespaces, self.progress)
        else:
            self.progress(f"left reused cluster {name} as found (its namespaces existed before this session)")
        if self.api is not None:
            self.api.close()
            self.api = None

    def _create_or_reuse(self) -> None:
        name, t0 = self.manager.cluster_name, time.monotonic()
        exists = name in self.manager.clusters()
        if exists:  # kind's context for it may be missing or stale (a restarted engine moves the API port)
            self.manager.export_kubeconfig()
        try:
            self.manager.create(timeout=60)
        except KindError as exc:
            hint = (f"; the cluster exists but its API does not answer: start its nodes (`{self.engine} start "
                    f"{name}-control-plane {name}-worker`) or delete it (`kind delete cluster --name {name}`)"
                    if exists else "")
            raise KindError(f"kind could not create cluster {name} from {self.manager._cluster_options.provider_config}"
                            f": {exc}{hint}") from None
        except RuntimeError as exc:  # pytest-kubernetes: "Cluster '…' is not ready."
            raise KindError(f"{exc} (API /readyz or the default ServiceAccount missing after 60 s); look with "
                            f"`kubectl --context {self.context} get --raw '/readyz?verbose'`") from None
        verb = "created" if self.manager._created else "reusing"
        self.progress(f"{verb} cluster {name} ({self.engine}, context {self.context}) "
                      f"in {time.monotonic() - t0:.1f} s")

    def _ensure_cni(self) -> None:
        assert self.api is not None
        t0 = time.monotonic()
        if kube_deploy.read_workload(self.api, "DaemonSet", "kube-system", "calico-node") is not None:
            self.progress("CNI: calico-node already installed")
        elif not self._nodes_not_ready():
            self.progress(f"CNI: nodes already Ready with their own CNI; {self.cni_manifest} not applied")
            return
        else:
            res = subprocess.run([*self.kubectl_argv, "apply", "-f", self.cni_manifest], capture_output=True,
                                 text=True, timeout=180, check=False)
            if res.returncode != 0:
                raise KindError(f"the CNI manifest {self.cni_manifest} could not be applied (exit {res.returncode}): "
                                f"{res.stderr.strip()[-1500:]}; without network access give a local copy with "
                                "--cni-manifest PATH")
            self.progress(f"CNI: applied {self.cni_manifest}")
        while (waiting := self._nodes_not_ready()) and time.monotonic() - t0 < self.nodes_timeout:
            time.sleep(kube_deploy.POLL)
        if waiting:
            raise KindError(f"nodes not Ready after {self.nodes_timeout:.0f} s: {'; '.join(waiting)}; look with "
                            f"`kubectl --context {self.context} -n kube-system get pods -l k8s-app=calico-node`")
        self.progress(f"nodes Ready in {time.monotonic() - t0:.1f} s")

    def node_pids(self) -> list[int]:
        """The host pid of each node container's init: everything the cluster runs descends from one of them."""
        from indmlops.targets.kubernetes.hostpids import container_init_pids

        if self.api is None:
            return []
        core = client.CoreV1Api(self.api.api_client)
        try:
            nodes = self.api._call("list", "nodes", "(cluster)", core.list_node).items or []
        except Exception:  # API away for a moment: this sample attributes nothing to the cluster
            return []
        return container_init_pids(self.engine, [n.metadata.name for n in nodes])  # kind names nodes as containers

    def _nodes_not_ready(self) -> list[str]:
        assert self.api is not None
        core = client.CoreV1Api(self.api.api_client)
        nodes = self.api._call("list", "nodes", "(cluster)", core.list_node).items or []
        out = []
        for n in nodes:
            ready = next((c for c in n.status.conditions or [] if c.type == "Ready"), None) if n.status else None
            if ready is None or ready.status != "True":
                why = f"{ready.reason}: {ready.message}" if ready is not None else "no Ready condition"
                out.append(f"node {n.metadata.name} NotReady ({why})")
        return out if nodes else ["no nodes registered"]

    def _check_images(self, images: list[ImageLoad]) -> None:
        """Before anything is made: a missing image would only show as a pod that cannot start, minutes later."""
        for im in images:
            res = subprocess.run([self.engine, "image", "inspect", im.source], capture_output=True, text=True,
                                 check=False, timeout=60)
            if res.returncode != 0:
                raise KindError(f"image {im.source} is not built ({self.engine} image inspect: "
                                f"{res.stderr.strip() or 'no such image'}): build it with `indmlops images build "
                                f"{im.name}` (or scripts/build-images.sh {im.name})")

    def _load(self, images: list[ImageLoad]) -> None:
        """Docker: tag as the manifests name it, `kind load docker-image`. Podman: kind's podman provider cannot
        read Podman's store, so tag fully qualified, `podman save` an archive, `kind load image-archive`."""
        for im in images:
            t0 = time.monotonic()
            ref = im.ref if self.engine == "docker" else containers.qualified(im.ref)
            self._engine("tag", im.source, ref)
            if self.engine == "docker":
                self.manager.load_image(ref)
            else:
                with tempfile.TemporaryDirectory(prefix="indmlops-kind-") as tmp:
                    archive = Path(tmp) / f"indmlops-{im.name}.tar"
                    self._engine("save", "-o", str(archive), ref)
                    self.manager.load_archive(archive)
            self.progress(f"loaded {im.ref} (from {im.source}) in {time.monotonic() - t0:.1f} s")

    def _engine(self, *args: str) -> None:
        res = subprocess.run([self.engine, *args], capture_output=True, text=True, timeout=600, check=False)
        if res.returncode != 0:
            raise KindError(f"`{self.engine} {shlex.join(args)}` failed (exit {res.returncode}): {res.stderr.strip()}")
