"""The live isolation check, end to end through KubernetesTarget and probe pods, on a fake cluster whose network
behaves as a CNI would: it enforces the project's NetworkPolicies (as the static matrix evaluates them), or
breaks them in one cell at a time — each break must fail the check and name the cell."""

from __future__ import annotations

from pathlib import Path

import pytest
from kube_fake import target_at
from kube_probe_fake import FakeProbeCluster

from indmlops.checks.live import isolation as isolation_live
from indmlops.checks.static.isolation import computed_matrix, load_intent, pods
from indmlops.checks.static.netpol import Cell
from indmlops.manifests import load_cached

REPO = Path(__file__).resolve().parents[2]
INTENT = load_intent(REPO / "fixtures" / "isolation" / "intent.yaml")


@pytest.fixture(scope="module")
def manifests():
    return load_cached(REPO / "manifests" / "overlays" / "kind")


@pytest.fixture(scope="module")
def static(manifests):
    return computed_matrix(manifests, INTENT)[0]


class PolicyNetwork:
    """Decides each probe from the static matrix, with `opened`/`closed` cells overriding it (a faulty CNI or a
    policy edited on the cluster). Workloads are recognised by namespace and labels, destinations by pod IP."""

    def __init__(self, static: dict[Cell, bool], ips: dict[str, str]) -> None:
        self.static = static
        self.by_ip = {ip: name for name, ip in ips.items()}
        self.opened: set[Cell] = set()
        self.closed: set[Cell] = set()

    def source(self, labels: dict[str, str], ns: str) -> str:
        for w in INTENT.workloads.values():
            if not w.external and w.namespace == ns and w.labels.items() <= labels.items():
                return w.name
        return "cluster/other-namespace-pod"

    def __call__(self, labels, ns, host, port, proto):
        cell = Cell(self.source(labels, ns), self.by_ip.get(host, "?"), port, proto)
        if cell in self.opened or (cell not in self.closed and self.static.get(cell)):
            return True, "connected" if proto == "TCP" else "dns-reply"
        return False, "timeout"


@pytest.fixture
def cluster(httpserver, static, manifests):
    """One running pod per workload, labelled as its template says (plus what a controller adds), and CoreDNS."""
    ips = {}
    net = PolicyNetwork(static, ips)
    fake = FakeProbeCluster(httpserver, net)
    deployed = [(p.id, p.namespace, dict(p.labels)) for p in pods(manifests, INTENT)[0]]
    deployed.append(("kube-system/kube-dns", "kube-system", {"k8s-app": "kube-dns"}))
    for i, (name, ns, labels) in enumerate(deployed):
        ips[name] = f"10.244.3.{10 + i}"
        fake.add_workload_pod(ns, name.split("/")[1] + "-0", dict(labels, **{"pod-template-hash": "7c9f"}), ips[name])
    net.by_ip = {ip: name for name, ip in ips.items()}
    fake.network = net  # type: ignore[attr-defined]
    return fake


@pytest.fixture
def kube(cluster, httpserver, tmp_path):
    with target_at(httpserver, tmp_path, protocol_probes=False) as t:
        yield t


def test_cluster_enforcing_the_policies_matches_intent_and_static(kube, cluster, manifests, static):
    live = isolation_live.observe(kube, manifests, INTENT)
    assert isolation_live.verdict(live) == []
    assert len(live.cells) + len(live.unprobed) == len(static)
    assert sum(c.observed is True for c in live.cells) == sum(static.values()) > 10
    # One probe pod per source, each trying all of its cells at once.
    sources = {c.cell.src for c in live.cells}
    assert len(cluster.created_pods) == len(sources)
    workloads = sources - {"cluster/other-namespace-pod"}  # outside-to-outside flows are no cells
    assert {str(c) for c, _ in live.unprobed} == {f"{src} -> internet:443/TCP" for src in workloads}
    assert all("RFC 5737" in why for _, why in live.unprobed)


@pytest.mark.parametrize(("cell", "kind"), [
    (Cell("ot-edge/simulator", "it-core/mlflow", 5000), "opened"),
    (Cell("cluster/other-namespace-pod", "it-core/postgres", 5432), "opened"),
    (Cell("ot-edge/inference", "it-core/mlflow", 5000), "closed"),
    (Cell("it-core/mlflow", "kube-system/kube-dns", 53, "UDP"), "closed"),
], ids=["cell:simulator->mlflow:5000-opened", "cell:elsewhere->postgres:5432-opened",
        "cell:inference->mlflow:5000-closed", "cell:mlflow->kube-dns:53/UDP-closed"])
def test_one_broken_cell_fails_naming_it_with_a_reproduce_command(kube, cluster, manifests, cell, kind):
    getattr(cluster.network, kind).add(cell)
    live = isolation_live.observe(kube, manifests, INTENT)
    problems = isolation_live.verdict(live)
    text = "\n".join(problems)
    word = "ALLOWED" if kind == "opened" else "DENIED"
    assert f"the cluster differs from {INTENT.source} in 1 cell(s):\n  {word} by the cluster" in text
    assert f"{cell} (" in text and "reproduce: kubectl" in text
    assert "differs from the static evaluation of the NetworkPolicies in 1 cell(s)" in text
    assert f"* {cell}" in text  # the full table marks it


def test_destination_without_pods_is_reported_unknown_not_passed(kube, cluster, manifests):
    del cluster.pods[("governance", "grafana-0")]
    problems = isolation_live.verdict(isolation_live.observe(kube, manifests, INTENT))
    assert problems and "could not be observed" in problems[0]
    assert "no running pod of governance/grafana" in problems[0]


def test_without_intent_the_cluster_is_judged_against_the_static_matrix(kube, cluster, manifests):
    cluster.network.opened.add(Cell("ot-edge/simulator", "it-core/postgres", 5432))
    live = isolation_live.observe(kube, manifests, None)
    problems = isolation_live.verdict(live)
    assert len(problems) == 2 and "static evaluation" in problems[0]
    assert INTENT.source not in "\n".join(problems) and "by the cluster, intent" not in "\n".join(problems)
    assert "ot-edge/simulator -> it-core/postgres:5432/TCP: static deny, observed allow" in problems[0]


def test_report_keeps_the_three_matrices_and_a_script_for_the_differences(kube, cluster, manifests, tmp_path):
    cell = Cell("ot-edge/nodered", "it-core/mlflow", 5000)
    cluster.network.opened.add(cell)
    live = isolation_live.observe(kube, manifests, INTENT)
    out = isolation_live.write_report(live, tmp_path / "isolation", "header line")
    text = (out / "matrix.txt").read_text()
    assert text.startswith("header line\n") and "intent  static  observed" in text and f"* {cell}" in text
    rows = (out / "matrix.csv").read_text().splitlines()
    assert rows[0].startswith("source,destination,port,protocol,intent,static,observed")
    assert any(r.startswith("ot-edge/nodered,it-core/mlflow,5000,TCP,deny,deny,allow,connected") for r in rows)
    script = (out / "reproduce.sh").read_text()
    assert f"# {cell}: intent deny, static deny, observed allow" in script and script.count("kubectl") == 1
