"""The reference stack on this machine's Kubernetes 1.20 (`--target cluster`, manifests/overlays/cluster): every
suite passes there except the live isolation suite, which must find that nothing here enforces NetworkPolicy and
say so (fail, never pass). The session brings the cluster up, loads the images, deploys, runs the suites (quick
profile) and takes everything down again.

Not the robustness suite: its hostile HTTP bodies make the edge reset connections, and each reset ends the
`kubectl port-forward` they travel through; the forward is restarted and the edge retries through it (unit-tested),
but a run on this cluster still met a reset on a health check once. Until that transport is judged apart from the
edge everywhere, the robustness suite runs on the local target (./lab test) and on kind, not here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from here import cluster_dir, require_root

from indmlops import containers
from indmlops.paths import REPO_ROOT
from indmlops.targets.kubernetes.cluster.lifecycle import SingleNodeCluster

STACK_ENV = "INDMLOPS_CLUSTER_STACK"
pytestmark = [
    pytest.mark.cluster,
    pytest.mark.skipif(os.environ.get(STACK_ENV, "") != "1", reason=(
        f"the whole stack on this machine's cluster runs on request ({STACK_ENV}=1, about 10 min): it passed in "
        "every run since 2026-11-30 (two here, two CI runs from clean clones), but both CI runs that included it "
        "then failed the local latency suite's MQTT p99 (disk stalls: I/O pressure peaks of 50-64 % against at most "
        "30 % in other runs) and that link is not understood yet. Run it with `sudo INDMLOPS_CLUSTER_STACK=1 "
        ".venv/bin/pytest tests/cluster/test_stack_on_cluster.py`")),
]

OVERLAY = REPO_ROOT / "manifests" / "overlays" / "cluster"


@pytest.fixture(scope="module")
def images_built() -> None:
    """The project's and the overlay's images (scripts/build-images.sh; its cache makes a rebuild quick)."""
    require_root()
    res = containers.build([*containers.IMAGES, *containers.SERVICE_IMAGES])
    if res.returncode != 0:
        pytest.fail(f"image build failed (exit {res.returncode}): {res.failing_step}", pytrace=False)
    print(f"images built in {res.seconds:.1f} s")


@pytest.fixture
def cluster_forgotten():
    """Afterwards the clone's cluster directory goes too (its containerd holds ~3 GB of images)."""
    yield cluster_dir()
    SingleNodeCluster(cluster_dir()).down(purge=True)


def test_every_suite_passes_on_the_cluster_but_isolation_which_says_nothing_enforces_it(images_built, tmp_path,
                                                                                       cluster_forgotten):
    where = cluster_forgotten
    env = {**os.environ, "INDMLOPS_CLUSTER_DIR": str(where)}
    t0 = time.monotonic()
    res = subprocess.run(
        [sys.executable, "-m", "pytest", "suites/", "-p", "no:cacheprovider", "-q", "--profile", "quick",
         "-m", "not robustness",
         "--target", "cluster", "--reports-dir", str(tmp_path)],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=3600, check=False)
    took = time.monotonic() - t0
    out = res.stdout + res.stderr
    (tmp_path / "session.log").write_text(out)
    report = json.loads((tmp_path / "conformance.json").read_text())
    print(f"suites on the cluster in {took:.0f} s: " + json.dumps(
        {a: v["counts"] for a, v in report["areas"].items() if v["tests"]}))
    print("recovery on the cluster: " + json.dumps(report.get("chaos", {}).get("recovery", {})))
    areas = report["areas"]
    broken = {a: v["counts"] for a, v in areas.items()
              if a != "isolation" and v["tests"] and (v["counts"]["failed"] or v["counts"]["error"]
                                                       or v["counts"]["environment"])}
    assert not broken, f"suites failed on the cluster: {broken}\n{out[-6000:]}"
    for area in ("smoke", "static", "durability", "mlflow", "latency", "chaos", "observability"):
        assert areas[area]["counts"]["passed"] > 0, f"{area}: nothing passed on the cluster\n{out[-3000:]}"
    isolation = areas["isolation"]["counts"]
    assert isolation["passed"] == 0, f"the isolation suite passed on a cluster that enforces nothing:\n{out[-4000:]}"
    assert isolation["failed"] + isolation["error"] >= 1, out[-4000:]
    assert "NetworkPolicy is not enforced on this cluster" in out, out[-4000:]
    # and why: Debian's bridge CNI runs here, no NetworkPolicy implementation (not a broken one)
    assert "No NetworkPolicy implementation runs on this cluster" in out, out[-4000:]
    # The session started the cluster, so it stopped it again.
    assert SingleNodeCluster(where).node_condition().startswith("API unreachable"), out[-2000:]
