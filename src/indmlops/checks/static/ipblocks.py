"""NetworkPolicy ipBlock peers against the cluster's pod and service networks: what a range may match, and the
`ipblock-scope` rule (no ipBlock reaches into the cluster's own networks)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class ClusterNetworks:
    """The target cluster's pod and service CIDRs (kind: podSubnet and serviceSubnet of its cluster config)."""

    pods: tuple[Network, ...]
    services: tuple[Network, ...] = ()

    @classmethod
    def parse(cls, doc: Any, source: str) -> ClusterNetworks:
        if not isinstance(doc, Mapping) or not doc.get("pods"):
            raise ValueError(f"{source}: cluster_networks needs pods: [CIDR, ...] and services: [CIDR, ...], "
                             f"got {doc!r}")
        out: dict[str, tuple[Network, ...]] = {}
        for key in ("pods", "services"):
            values = doc.get(key) or []
            if isinstance(values, str) or not isinstance(values, list):
                raise ValueError(f"{source}: cluster_networks.{key} must be a list of CIDRs, got {values!r}")
            try:
                out[key] = tuple(ipaddress.ip_network(str(v)) for v in values)
            except ValueError as exc:
                raise ValueError(f"{source}: cluster_networks.{key}: {exc}") from None
        return cls(out["pods"], out["services"])

    def named(self) -> list[tuple[str, Network]]:
        return [("pod network", n) for n in self.pods] + [("service network", n) for n in self.services]


@dataclass(frozen=True)
class IPBlock:
    """A readable ipBlock: its range and the `except` ranges the API would accept (strictly inside it). An except
    the API would reject is left out, so the block only ever grows (fails closed)."""

    cidr: Network
    excepts: tuple[Network, ...] = ()


def _network(text: str) -> Network:
    text = text.strip()
    prefix = text.partition("/")[2]
    if prefix and not prefix.isdigit():  # Python reads 10.0.0.0/255.0.0.0, the API does not
        raise ValueError(f"{text!r} does not end in a prefix length")
    return ipaddress.ip_network(text, strict=False)


def _strictly_inside(inner: Network, outer: Network) -> bool:
    return (inner.version == outer.version and inner.prefixlen > outer.prefixlen
            and int(outer.network_address) <= int(inner.network_address)
            and int(inner.broadcast_address) <= int(outer.broadcast_address))


def parse_ip_block(raw: Any) -> tuple[IPBlock | None, list[str]]:
    """The block (None when its cidr is unreadable) and what the API would reject or read otherwise than written."""
    if not isinstance(raw, Mapping):
        return None, [f"is a {type(raw).__name__}; expected a mapping with cidr"]
    text = raw.get("cidr")
    if not isinstance(text, str) or not text.strip():
        return None, [f"has no cidr (got {text!r})"]
    try:
        cidr = _network(text)
    except ValueError:
        return None, [f"cidr {text!r} is not a CIDR (an address and a prefix length, e.g. 203.0.113.0/24 or "
                      f"2001:db8::/32): the API rejects the policy"]
    problems = []
    if "/" not in text:
        problems.append(f"cidr {text!r} has no prefix length: the API rejects it; write {cidr}")
    elif ipaddress.ip_interface(text.strip()).ip != cidr.network_address:  # not `str(cidr) != text`: FD00::/8 is fine
        problems.append(f"cidr {text!r} has host bits set: it denotes {cidr}, which is {cidr.num_addresses} "
                        f"addresses; write {cidr} if that is meant, or the single address as "
                        f"{ipaddress.ip_interface(text.strip()).ip}/{cidr.max_prefixlen}")
    raw_excepts = raw.get("except") or []
    if isinstance(raw_excepts, str) or not isinstance(raw_excepts, list):
        return IPBlock(cidr), [*problems, f"except must be a list of CIDRs, got {raw_excepts!r}"]
    excepts = []
    for i, e in enumerate(raw_excepts):
        try:
            net = _network(str(e))
        except ValueError:
            problems.append(f"except[{i}] {e!r} is not a CIDR: the API rejects the policy")
            continue
        if not _strictly_inside(net, cidr):
            problems.append(f"except[{i}] {net} is not a strict subset of cidr {cidr}: the API rejects the policy "
                            f"(an except removes part of the cidr, never adds)")
            continue
        excepts.append(net)
    return IPBlock(cidr, tuple(excepts)), problems


def _address(version: int, value: int) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.IPv4Address(value) if version == 4 else ipaddress.IPv6Address(value)


def overlap(block: IPBlock, net: Network) -> list[Network]:
    """The addresses of `net` that `block` matches (inside its cidr, outside every except), as CIDRs."""
    if block.cidr.version != net.version:
        return []
    low = max(int(block.cidr.network_address), int(net.network_address))
    high = min(int(block.cidr.broadcast_address), int(net.broadcast_address))
    holes = sorted((int(e.network_address), int(e.broadcast_address)) for e in block.excepts)
    spans, cur = [], low
    for a, b in holes:
        if b < cur:
            continue
        if a > high:
            break
        if a > cur:
            spans.append((cur, a - 1))
        cur = b + 1
    if cur <= high:
        spans.append((cur, high))
    v = net.version
    return [n for a, b in spans for n in ipaddress.summarize_address_range(_address(v, a), _address(v, b))]


def may_match_pods(raw: Any, networks: ClusterNetworks | None, *, via_services: bool) -> bool:
    """Whether an ipBlock peer may match a cluster pod. Pod IPs are not known statically, so any overlap with the
    pod network counts; with `via_services` (egress) so does the service network, since whether a policy sees a
    ClusterIP or the pod behind it is up to the network plugin. Fails closed: an unreadable block (the API would
    reject the policy) counts, and with unknown networks so does any block that matches any address."""
    block, _ = parse_ip_block(raw)
    if block is None:
        return True
    if networks is None:
        return bool(overlap(block, block.cidr))
    nets = networks.pods + (networks.services if via_services else ())
    return any(overlap(block, n) for n in nets)


def contains(raw: Any, ip: str) -> bool:
    """Whether an ipBlock peer matches one address outside the cluster (an unreadable block fails closed: yes)."""
    block, _ = parse_ip_block(raw)
    if block is None:
        return True
    return bool(overlap(block, ipaddress.ip_network(ip)))


def ip_block_peers(body: Mapping[str, Any]) -> Iterator[tuple[str, bool, Mapping[str, Any]]]:
    """Every peer with an ipBlock: its path (`spec.egress[1].to[0]`), whether it is egress, the peer."""
    spec = body.get("spec") or {}
    for direction, key, egress in (("ingress", "from", False), ("egress", "to", True)):
        for i, rule in enumerate(spec.get(direction) or []):
            for j, peer in enumerate((rule or {}).get(key) or []):
                if isinstance(peer, Mapping) and "ipBlock" in peer:
                    yield f"spec.{direction}[{i}].{key}[{j}]", egress, peer


def _cidrs(nets: list[Network], limit: int = 4) -> str:
    shown = ", ".join(map(str, nets[:limit]))
    return shown + (f" and {len(nets) - limit} more" if len(nets) > limit else "")


def _describe(block: IPBlock, name: str, net: Network, hit: list[Network]) -> str:
    written = str(block.cidr) + (f" except {_cidrs(list(block.excepts))}" if block.excepts else " (no except)")
    whole = hit == [net]
    what = (f"covers the whole {name} {net}" if whole else f"covers {_cidrs(hit)} of the {name} {net}")
    why = ("it matches pods of every namespace (pod IPs are not fixed), so this rule reopens what default-deny "
           "and the selector rules close" if name == "pod network" else
           "it matches Services' ClusterIPs, and whether a policy sees the ClusterIP or the pod behind it depends "
           "on the network plugin: it may allow every Service's pods")
    if block.cidr.prefixlen < net.prefixlen:
        fix = f"add {_cidrs(hit) if not whole else net} to except"
    else:  # the range lies inside the cluster network: an except must be a strict subset of it
        fix = "no except can remove it (the range lies inside that network): select pods with podSelector/" \
              "namespaceSelector peers instead"
    return f"ipBlock {written} {what}: {why}; {fix}"


def check_ip_blocks(body: Mapping[str, Any], networks: ClusterNetworks | None) -> list[str]:
    """The ipblock-scope rule for one NetworkPolicy: every ipBlock is one the API accepts as written, and none
    matches any part of the pod or the service network that its except does not remove."""
    out = []
    for path, _egress, peer in ip_block_peers(body):
        others = sorted(k for k in peer if k != "ipBlock")
        if others:
            out.append(f"{path}: ipBlock is combined with {', '.join(others)} in one peer: the API rejects that "
                       f"(a peer is either an ipBlock or selectors); make them two peers")
        block, problems = parse_ip_block(peer["ipBlock"])
        out += [f"{path}.ipBlock {p}" for p in problems]
        if block is None:
            continue
        if networks is None:
            out.append(f"{path}: ipBlock {block.cidr} cannot be judged: the cluster's pod and service networks are "
                       f"not configured (cluster_networks in fixtures/static.yaml)")
            continue
        for name, net in networks.named():
            hit = overlap(block, net)
            if hit:
                out.append(f"{path}: {_describe(block, name, net, hit)}")
    return out


def pod_matching_peers(policies: list[tuple[str, Mapping[str, Any]]], networks: ClusterNetworks | None) -> list[str]:
    """The ipBlock peers the reachability matrix counts as matching cluster pods, named for an isolation finding."""
    out = []
    for ref, body in policies:
        for path, egress, peer in ip_block_peers(body):
            raw = peer["ipBlock"]
            if may_match_pods(raw, networks, via_services=egress):
                written = raw.get("cidr") if isinstance(raw, Mapping) else raw
                out.append(f"{ref} {path}.ipBlock {written}" + (" (except " + ", ".join(map(str, raw["except"])) + ")"
                                                                if isinstance(raw, Mapping) and raw.get("except")
                                                                and isinstance(raw["except"], list) else ""))
    return out
