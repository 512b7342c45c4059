"""--target cluster: one session's use of this machine's cluster. The cluster is brought up when it does not run
(and taken down again at the end), the project's images go into its containerd, and the manifests the user gave
are deployed (their new namespaces removed at the end)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from indmlops import containers
from indmlops.errors import IndMLOpsError
from indmlops.manifests import load
from indmlops.targets.kubernetes import deploy as kube_deploy
from indmlops.targets.kubernetes.api import KubeApi
from indmlops.targets.kubernetes.cluster import CONTEXT, images
from indmlops.targets.kubernetes.cluster.lifecycle import SingleNodeCluster
from indmlops.targets.kubernetes.kind import project_images
from indmlops.targets.kubernetes.model import INFERENCE_STEP, ensure_champion
from indmlops.targets.kubernetes.portforward import kubectl_binary

Progress = Callable[[str], None]


class ClusterSession:
    def __init__(self, cluster_dir: Path | None, overlay: Path | None, progress: Progress) -> None:
        self.cluster = SingleNodeCluster(cluster_dir, progress=progress)
        self.overlay, self.progress = overlay, progress
        self.started = False
        self.created_namespaces: list[str] = []

    @property
    def kubeconfig(self) -> Path:
        return self.cluster.kubeconfig

    def open(self) -> None:
        t0 = time.monotonic()
        objects = load(self.overlay).objects if self.overlay else []  # a broken overlay fails before anything
        if self.cluster.node_condition() != "Ready":
            self.cluster.up()
            self.started = True
        else:
            self.progress(f"reusing the running cluster in {self.cluster.layout.root}")
        engine = containers.detect_engine()
        used = project_images(objects, containers.IMAGES + containers.SERVICE_IMAGES)
        # The probe image is the target's own tool (isolation probes, the canary); the others only as deployed.
        wanted = [im for im in used if im.name == "probe" or any(im.ref == c.get("image") for o in objects
                                                                 for c in o.containers())]
        for im in wanted:
            images.load_from_engine(self.cluster.layout, engine, im.source, im.ref, self.progress)
        if not objects:
            self.progress("no manifests to deploy: nothing deployed; suites that need the stack will find its "
                          "components absent")
            return
        api = KubeApi(str(self.kubeconfig), None)
        try:
            self.created_namespaces = kube_deploy.namespaces_to_create(api, objects)
            self.progress(f"deploying {self.overlay} ({len(objects)} objects)")
            kubeconfig = str(self.kubeconfig)
            kube_deploy.deploy(kube_deploy.plan(objects), [kubectl_binary(), "--kubeconfig", kubeconfig], api,
                               self.progress, before={INFERENCE_STEP: lambda: ensure_champion(
                                   kubeconfig, CONTEXT, self.progress)})
        finally:
            api.close()
        self.progress(f"all ready in {time.monotonic() - t0:.1f} s")

    def close(self, keep: bool) -> None:
        if keep:
            self.progress("kept the cluster (--keep-cluster): `sudo indmlops cluster down` removes it")
            return
        if self.started:
            left = self.cluster.down()
            if left:
                raise IndMLOpsError(f"the cluster this session started could not be fully removed: {left}")
        elif self.created_namespaces:
            api = KubeApi(str(self.kubeconfig), None)
            try:
                kube_deploy.delete_namespaces(api, self.created_namespaces, self.progress)
            finally:
                api.close()
