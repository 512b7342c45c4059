"""The cluster tier: the single-node Kubernetes cluster built and run here (`indmlops cluster`). Root only: it makes
a bridge, iptables chains and mounts. Each module brings its own cluster up and takes it down again."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from here import cluster_dir, require_root

from indmlops.targets.kubernetes.cluster.lifecycle import SingleNodeCluster


@pytest.fixture(scope="module")
def cluster_up() -> Iterator[SingleNodeCluster]:
    require_root()
    cluster = SingleNodeCluster(cluster_dir(), progress=lambda m: print(f"cluster: {m}", flush=True))
    try:
        cluster.up()
        yield cluster
    finally:
        cluster.down(purge=True)  # the directory is this clone's: nothing of it outlives the tests
