"""Live isolation: what a cluster lets through, cell by cell, against the isolation intent and the static matrix."""

from __future__ import annotations

import csv
import io
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from indmlops.checks.static.ipblocks import ClusterNetworks
from indmlops.checks.static.isolation import DEFAULT_EXTERNALS, Intent, computed_matrix, expected_cells, pods
from indmlops.checks.static.netpol import Cell, Pod
from indmlops.manifests import Manifests
from indmlops.targets.base import Peer, ProbeRequest, ProbeResult, Target

PROBE_TIMEOUT = 2.0  # seconds per connection attempt; a denied cell costs this much (all cells run at once)
CANARY_TIMEOUT = 30.0  # seconds for a fresh deny-all policy to take effect (Calico: typically under 2 s)
# Documentation ranges (RFC 5737) have no host behind them: a timeout there proves nothing, so they are not probed.
DOCUMENTATION_NETS = tuple(ipaddress.ip_network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24"))
MARK = {True: "allow", False: "deny", None: "?"}


@dataclass(frozen=True)
class LiveCell:
    cell: Cell
    intent: bool | None  # None: no intent file applies to these manifests
    static: bool
    observed: bool | None  # None: the probe could not tell (outcome says why)
    outcome: str
    address: str
    reproduce: str

    @property
    def intent_mark(self) -> str:
        return MARK[self.intent] if self.intent is not None else "-"

    @property
    def differs(self) -> bool:
        return self.observed is None or self.observed != self.static or (
            self.intent is not None and self.observed != self.intent)


@dataclass(frozen=True)
class LiveMatrix:
    cells: list[LiveCell]
    unprobed: list[tuple[Cell, str]]
    intent_source: str | None

    def table(self, only_differing: bool = False) -> str:
        rows = [c for c in self.cells if c.differs or not only_differing]
        width = max([len(str(c.cell)) for c in rows] + [4])
        head = f"  {'cell':<{width}}  intent  static  observed  outcome (probed address)"
        lines = [head] + [
            f"{'*' if c.differs else ' '} {c.cell!s:<{width}}  {c.intent_mark:<6}"
            f"  {MARK[c.static]:<6}  {MARK[c.observed]:<8}  {c.outcome} ({c.address or 'no address'})" for c in rows]
        lines += [f"  {cell!s:<{width}}  not probed: {why}" for cell, why in self.unprobed if not only_differing]
        return "\n".join(lines)

    def csv(self) -> str:
        out = io.StringIO()
        w = csv.writer(out)
        w.writerow(["source", "destination", "port", "protocol", "intent", "static", "observed", "outcome",
                    "address", "reproduce"])
        for c in self.cells:
            w.writerow([c.cell.src, c.cell.dst, c.cell.port, c.cell.protocol, MARK[c.intent] if c.intent is not None
                        else "", MARK[c.static], MARK[c.observed], c.outcome, c.address, c.reproduce])
        for cell, why in self.unprobed:
            w.writerow([cell.src, cell.dst, cell.port, cell.protocol, "", "", "not probed", why, "", ""])
        return out.getvalue()


def _pairs(labels: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((str(k), str(v)) for k, v in labels.items()))


def _peer(pod: Pod, intent: Intent | None) -> Peer:
    """Probed as the whole pod template (policies may select on any label); found by the intent's labels for it
    (a deployed version label may differ from the manifests'), else by the template's."""
    named = intent.workloads.get(pod.id) if intent else None
    return Peer(pod.id, pod.namespace, _pairs(pod.labels), pod.ip, _pairs(named.labels) if named else ())


def _documentation_address(ip: str | None) -> bool:
    if not ip:
        return False
    addr = ipaddress.ip_address(ip)
    return any(addr in net for net in DOCUMENTATION_NETS)


def plan(m: Manifests, intent: Intent | None, networks: ClusterNetworks | None = None
         ) -> tuple[dict[Cell, bool], list[ProbeRequest], dict[ProbeRequest, Cell], list[tuple[Cell, str]]]:
    """The static matrix (ipBlocks judged against the cluster's `networks`) and, for each of its cells, the probe
    that observes it live (or why none can)."""
    static, _ = computed_matrix(m, intent, networks)
    workload_pods, _ = pods(m, intent)
    externals = [w.pod() for w in intent.workloads.values() if w.external] if intent else \
        [w.pod() for w in DEFAULT_EXTERNALS]
    peers = {p.id: _peer(p, intent) for p in [*workload_pods, *externals]}
    requests: list[ProbeRequest] = []
    cell_of: dict[ProbeRequest, Cell] = {}
    unprobed: list[tuple[Cell, str]] = []
    for cell in sorted(static, key=str):
        dst = peers[cell.dst]
        if _documentation_address(dst.ip):
            why = (f"{dst.ip} is a documentation address (RFC 5737) with no host behind it, so a timeout would "
                   f"prove nothing; give {cell.dst} a real ip in the isolation intent to probe it")
            unprobed.append((cell, why))
            continue
        req = ProbeRequest(peers[cell.src], dst, cell.port, cell.protocol)
        requests.append(req)
        cell_of[req] = cell
    return static, requests, cell_of, unprobed


def observe(target: Target, m: Manifests, intent: Intent | None, timeout: float = PROBE_TIMEOUT,
            networks: ClusterNetworks | None = None) -> LiveMatrix:
    static, requests, cell_of, unprobed = plan(m, intent, networks)
    expected = None
    if intent is not None:
        external = {w.name for w in intent.workloads.values() if w.external}
        expected = expected_cells(intent, sorted({c.src for c in static} - external))
    results: list[ProbeResult] = target.probe(requests, timeout)
    cells = [LiveCell(cell_of[r.request], None if expected is None else cell_of[r.request] in expected,
                      static[cell_of[r.request]], r.reachable, r.outcome, r.address, r.reproduce) for r in results]
    return LiveMatrix(cells, unprobed, intent.source if intent else None)


def verdict(live: LiveMatrix) -> list[str]:
    """What is wrong, one paragraph per kind: cells the probes could not observe, cells the cluster lets through
    or blocks against the intent, cells where the cluster disagrees with the static evaluation of the policies."""
    problems = []
    unknown = [c for c in live.cells if c.observed is None]
    if unknown:
        problems.append(f"{len(unknown)} cell(s) could not be observed (the probe could not tell allowed from "
                        "denied):\n" + "\n".join(f"  {c.cell}: {c.outcome}\n    reproduce: {c.reproduce}"
                                                 for c in unknown))
    if live.intent_source:
        against = [c for c in live.cells if c.observed is not None and c.observed != c.intent]
        if against:
            problems.append(f"the cluster differs from {live.intent_source} in {len(against)} cell(s):\n" + "\n".join(
                f"  {'ALLOWED' if c.observed else 'DENIED'} by the cluster, intent "
                f"{'allows' if c.intent else 'denies'}: {c.cell} ({c.outcome} at {c.address})\n"
                f"    reproduce: {c.reproduce}" for c in against))
    static = [c for c in live.cells if c.observed is not None and c.observed != c.static]
    if static:
        problems.append(f"the cluster differs from the static evaluation of the NetworkPolicies in {len(static)} "
                        "cell(s) (a policy feature the static matrix models wrongly, or policies on the cluster that "
                        "are not the manifests'):\n" + "\n".join(
                            f"  {c.cell}: static {MARK[c.static]}, observed {MARK[c.observed]} ({c.outcome})\n"
                            f"    reproduce: {c.reproduce}" for c in static))
    if problems:
        allowed = sum(1 for c in live.cells if c.observed)
        problems.append(f"all {len(live.cells)} probed cells ({allowed} observed allowed; * marks a difference):\n"
                        + live.table())
    return problems


def write_report(live: LiveMatrix, directory: Path, header: str) -> Path:
    """reports/isolation/: the three matrices side by side (txt, csv) and a script repeating every differing probe."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "matrix.txt").write_text(f"{header}\n{live.table()}\n")
    (directory / "matrix.csv").write_text(live.csv())
    differing = [c for c in live.cells if c.differs]
    script = ["#!/bin/sh", "# Repeat each probe whose observation differs from the intent or the static matrix.",
              "# Destination addresses are pod IPs at probe time: a replaced pod has a new one.", "set -x"]
    script += [f"# {c.cell}: intent {c.intent_mark}, static {MARK[c.static]}, "
               f"observed {MARK[c.observed]}\n{c.reproduce}" for c in differing]
    (directory / "reproduce.sh").write_text("\n".join(script) + "\n")
    return directory
