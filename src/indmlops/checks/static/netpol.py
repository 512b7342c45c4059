"""Evaluate NetworkPolicies into a reachability matrix: source workload -> destination workload:port/protocol.

Semantics follow networking.k8s.io/v1: a pod selected by no policy of a direction is open in that direction;
once selected, only what some selecting policy's rules allow passes; a connection needs the source's egress
and the destination's ingress. Pod IPs are not known statically, the cluster's networks are (`ipblocks`): an
ipBlock whose range minus its `except` still overlaps the pod network matches every pod, in egress the service
network counts too (a ClusterIP may stand for any pod), one disjoint from them matches no pod; an unreadable
ipBlock, or any ipBlock when the networks are unknown, matches every pod. Each approximation errs towards
"reachable": a static check must not pass a hole. An endpoint outside the cluster (a Pod with `ip`) is matched
by ipBlocks only, `except` included.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from indmlops.checks.static.ipblocks import ClusterNetworks, contains, may_match_pods

Labels = Mapping[str, str]


@dataclass(frozen=True)
class Port:
    number: int
    protocol: str = "TCP"
    name: str = ""

    def __str__(self) -> str:
        return f"{self.number}/{self.protocol}"


@dataclass(frozen=True)
class Pod:
    """The pods of one workload: namespace, template labels, declared container ports. With `ip`, an endpoint
    outside the cluster (matched by ipBlock peers only)."""

    id: str
    namespace: str
    labels: Labels
    ports: tuple[Port, ...] = ()
    ip: str | None = None


@dataclass(frozen=True)
class Cell:
    src: str
    dst: str
    port: int
    protocol: str = "TCP"

    def __str__(self) -> str:
        return f"{self.src} -> {self.dst}:{self.port}/{self.protocol}"


@dataclass(frozen=True)
class Policy:
    namespace: str
    name: str
    pod_selector: dict[str, Any]
    types: frozenset[str]
    ingress: tuple[dict[str, Any], ...] = ()
    egress: tuple[dict[str, Any], ...] = ()


def parse_policy(body: Mapping[str, Any], namespace: str) -> Policy:
    spec = body.get("spec") or {}
    ingress = tuple(spec.get("ingress") or ())
    egress = tuple(spec.get("egress") or ())
    types = spec.get("policyTypes")
    if not types:  # the API's default: Ingress always, Egress when egress rules are present
        types = ["Ingress"] + (["Egress"] if "egress" in spec else [])
    return Policy(namespace, str((body.get("metadata") or {}).get("name", "")), spec.get("podSelector") or {},
                  frozenset(types), ingress, egress)


def selector_matches(selector: Mapping[str, Any] | None, labels: Labels) -> bool:
    """A LabelSelector against labels; an empty selector matches everything."""
    selector = selector or {}
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != str(v):
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), [str(v) for v in expr.get("values") or []]
        present = key in labels
        if op == "In" and not (present and labels[key] in values):
            return False
        if op == "NotIn" and present and labels[key] in values:
            return False
        if op == "Exists" and not present:
            return False
        if op == "DoesNotExist" and present:
            return False
        if op not in ("In", "NotIn", "Exists", "DoesNotExist"):
            return False
    return True


@dataclass
class Evaluator:
    pods: list[Pod]
    policies: list[Policy]
    namespace_labels: dict[str, dict[str, str]] = field(default_factory=dict)
    networks: ClusterNetworks | None = None  # None: unknown, every ipBlock may match pods

    def ns_labels(self, ns: str) -> dict[str, str]:
        # The API server labels every namespace with its name; selectors commonly rely on it.
        return {**self.namespace_labels.get(ns, {}), "kubernetes.io/metadata.name": ns}

    def _peer_matches(self, peer: Mapping[str, Any], policy_ns: str, pod: Pod, *, egress: bool) -> bool:
        if pod.ip is not None:
            return "ipBlock" in peer and contains(peer["ipBlock"], pod.ip)
        if "ipBlock" in peer:
            return may_match_pods(peer["ipBlock"], self.networks, via_services=egress)
        if "namespaceSelector" in peer:
            if not selector_matches(peer["namespaceSelector"], self.ns_labels(pod.namespace)):
                return False
        elif pod.namespace != policy_ns:
            return False
        return selector_matches(peer.get("podSelector"), pod.labels)

    @staticmethod
    def _port_matches(rule_ports: Iterable[Mapping[str, Any]] | None, dst: Pod, port: Port) -> bool:
        rule_ports = list(rule_ports or [])
        if not rule_ports:
            return True
        for rp in rule_ports:
            if str(rp.get("protocol") or "TCP") != port.protocol:  # null is absent: the API's default, TCP
                continue
            value = rp.get("port")
            if value is None:
                return True
            if isinstance(value, str):  # a name to the API (IntOrString), even "5432", which names no port
                if port.name and value == port.name:  # a named port resolves against the destination pod
                    return True
                continue
            low = int(value)
            high = int(rp.get("endPort") or low)
            if low <= port.number <= high:
                return True
        return False

    def _selecting(self, pod: Pod, direction: str) -> list[Policy]:
        return [p for p in self.policies
                if p.namespace == pod.namespace and direction in p.types
                and selector_matches(p.pod_selector, pod.labels)]

    def egress_allows(self, src: Pod, dst: Pod, port: Port) -> bool:
        selecting = self._selecting(src, "Egress")
        if not selecting:
            return True
        for pol in selecting:
            for rule in pol.egress:
                peers = rule.get("to")
                if (not peers or any(self._peer_matches(p, pol.namespace, dst, egress=True) for p in peers)) \
                        and self._port_matches(rule.get("ports"), dst, port):
                    return True
        return False

    def ingress_allows(self, src: Pod, dst: Pod, port: Port) -> bool:
        selecting = self._selecting(dst, "Ingress")
        if not selecting:
            return True
        for pol in selecting:
            for rule in pol.ingress:
                peers = rule.get("from")
                if (not peers or any(self._peer_matches(p, pol.namespace, src, egress=False) for p in peers)) \
                        and self._port_matches(rule.get("ports"), dst, port):
                    return True
        return False

    def allows(self, src: Pod, dst: Pod, port: Port, *, dst_external: bool = False) -> bool:
        """Whether src may open a connection to dst:port. An external destination's ingress policies are not
        ours to know (cluster DNS): only the source's egress decides."""
        if not self.egress_allows(src, dst, port):
            return False
        return dst_external or self.ingress_allows(src, dst, port)


def matrix(pods: list[Pod], policies: list[Policy], namespace_labels: dict[str, dict[str, str]] | None = None,
           external: list[Pod] | None = None, external_sources: list[Pod] | None = None,
           networks: ClusterNetworks | None = None) -> dict[Cell, bool]:
    """Every (source, destination, destination port) cell: sources are `pods` and `external_sources` (say, a
    pod of another namespace), destinations `pods` and `external` (outside the manifests: kube-dns, the
    internet), ports those each destination declares; ipBlocks judged against the cluster's `networks`."""
    ev = Evaluator(pods, policies, dict(namespace_labels or {}), networks)
    external = external or []
    out: dict[Cell, bool] = {}
    ext_src = list(external_sources or [])
    for src in pods + ext_src:
        # Between two endpoints outside the manifests nothing is ours to judge.
        dsts = [(d, False) for d in pods] + ([] if src in ext_src else [(d, True) for d in external])
        for dst, is_ext in dsts:
            for port in dst.ports:
                out[Cell(src.id, dst.id, port.number, port.protocol)] = ev.allows(src, dst, port, dst_external=is_ext)
    return out


def format_matrix(cells: Mapping[Cell, bool]) -> str:
    """One line per source: the destinations it can reach, then a count of what it cannot."""
    lines = []
    for src in sorted({c.src for c in cells}):
        row = sorted((c for c in cells if c.src == src), key=str)
        allowed = [f"{c.dst}:{c.port}/{c.protocol}" for c in row if cells[c]]
        lines.append(f"  {src} -> {', '.join(allowed) if allowed else '(nothing)'}"
                     f"  [{len(row) - len(allowed)} of {len(row)} denied]")
    return "\n".join(lines)
