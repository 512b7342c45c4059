"""Evaluate NetworkPolicies into a reachability matrix: source workload -> destination workload:port/protocol.

Semantics follow networking.k8s.io/v1: a pod selected by no policy of a direction is open in that direction;
once selected, only what some selecting policy's rules allow passes; a connection needs the source's egress
and the destination's ingress. Two approximations, both erring towards "reachable" (a static check must not
pass a hole): an ipBlock covering 0.0.0.0/0 or ::/0 matches every pod (pod IPs are not known statically,
`except` is ignored), any other ipBlock matches no pod. An endpoint outside the cluster (a Pod with `ip`) is
matched by ipBlocks only, `except` included.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

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


def _ip_block_matches_pods(block: Mapping[str, Any]) -> bool:
    return str(block.get("cidr", "")) in ("0.0.0.0/0", "::/0")


def _ip_block_contains(block: Mapping[str, Any], ip: str) -> bool:
    addr = ipaddress.ip_address(ip)
    try:
        nets = [ipaddress.ip_network(str(block.get("cidr")), strict=False)]
        excepts = [ipaddress.ip_network(str(e), strict=False) for e in block.get("except") or []]
    except ValueError:
        return False
    return any(addr in n for n in nets if n.version == addr.version) and not any(
        addr in e for e in excepts if e.version == addr.version)


@dataclass
class Evaluator:
    pods: list[Pod]
    policies: list[Policy]
    namespace_labels: dict[str, dict[str, str]] = field(default_factory=dict)

    def ns_labels(self, ns: str) -> dict[str, str]:
        # The API server labels every namespace with its name; selectors commonly rely on it.
        return {**self.namespace_labels.get(ns, {}), "kubernetes.io/metadata.name": ns}

    def _peer_matches(self, peer: Mapping[str, Any], policy_ns: str, pod: Pod) -> bool:
        if pod.ip is not None:
            return "ipBlock" in peer and _ip_block_contains(peer["ipBlock"], pod.ip)
        if "ipBlock" in peer:
            return _ip_block_matches_pods(peer["ipBlock"])
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
            if str(rp.get("protocol", "TCP")) != port.protocol:
                continue
            value = rp.get("port")
            if value is None:
                return True
            if isinstance(value, str) and not value.isdigit():
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
                if (not peers or any(self._peer_matches(p, pol.namespace, dst) for p in peers)) \
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
                if (not peers or any(self._peer_matches(p, pol.namespace, src) for p in peers)) \
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
           external: list[Pod] | None = None, external_sources: list[Pod] | None = None) -> dict[Cell, bool]:
    """Every (source, destination, destination port) cell: sources are `pods` and `external_sources` (say, a
    pod of another namespace), destinations `pods` and `external` (outside the manifests: kube-dns, the
    internet), ports those each destination declares."""
    ev = Evaluator(pods, policies, dict(namespace_labels or {}))
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
