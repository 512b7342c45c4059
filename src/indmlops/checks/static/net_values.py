"""Service and NetworkPolicy values the API server rejects and the JSON schema lets through: types and policies,
port numbers and names, the port/protocol pairs, clusterIP forms, node ports, NetworkPolicy ports and peers."""

from __future__ import annotations

import ipaddress
from typing import Any

from indmlops.checks.static.api_names import SUBDOMAIN, is_qualified, is_subdomain
from indmlops.checks.static.pod_values import PROTOCOLS, enum, is_ip, num, port
from indmlops.manifests import Obj

SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName")
NODE_PORTS = (30000, 32767)  # the API server's default --service-node-port-range
MAX_AFFINITY_SECONDS = 86400


def _cidr(value: Any) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    try:
        return ipaddress.ip_network(str(value).strip(), strict=False)
    except ValueError:
        return None


def _ports(spec: dict[str, Any], kind: str, headless: bool) -> list[str]:
    out, seen = [], set()
    for i, p in enumerate(spec.get("ports") or []):
        if not isinstance(p, dict):
            continue
        where = f"spec.ports[{i}]"
        if p.get("port") is None:
            out.append(f"{where}.port is missing; the API requires a port number 1-65535")
        out += port(f"{where}.port", p.get("port"), named=False)
        out += enum(f"{where}.protocol", p.get("protocol"), PROTOCOLS)
        if p.get("targetPort") not in (None, 0, ""):  # unset, the API uses port
            out += port(f"{where}.targetPort", p.get("targetPort"))
        if p.get("appProtocol") is not None and not is_qualified(p["appProtocol"]):
            out.append(f"{where}.appProtocol {p['appProtocol']!r} is not a qualified name (e.g. http, "
                       "kubernetes.io/h2c)")
        node_port = num(p.get("nodePort"))
        if node_port:
            if kind == "ClusterIP" or headless:
                out.append(f"{where}.nodePort {node_port} is set on a {'headless' if headless else kind} Service; the "
                           "API accepts nodePort only for NodePort and LoadBalancer")
            elif not NODE_PORTS[0] <= node_port <= NODE_PORTS[1]:
                out.append(f"{where}.nodePort {node_port} is outside {NODE_PORTS[0]}-{NODE_PORTS[1]}, the API server's "
                           "default node port range")
        key = (p.get("port"), p.get("protocol") or "TCP")
        if key in seen:
            out.append(f"{where}: port {key[0]}/{key[1]} is defined twice; the API requires unique (port, protocol)")
        seen.add(key)
    return out


def check_service(svc: Obj) -> list[str]:
    spec = svc.body.get("spec") or {}
    kind = spec.get("type") or "ClusterIP"
    out = enum("spec.type", kind, SERVICE_TYPES)
    cluster_ip = spec.get("clusterIP")
    headless = cluster_ip == "None"
    ips = [cluster_ip] if cluster_ip not in (None, "") else []
    ips += [ip for ip in spec.get("clusterIPs") or [] if ip != cluster_ip]
    for ip in ips:
        if ip != "None" and not is_ip(ip):
            out.append(f"spec.clusterIP {ip!r} is not an IP address, '' or 'None'")
    if headless and kind in ("NodePort", "LoadBalancer"):
        out.append(f"spec.clusterIP 'None' (headless) with type {kind}; the API accepts None only for ClusterIP")
    if kind == "ExternalName":
        if ips:
            out.append(f"spec.clusterIP {ips[0]!r} is set on an ExternalName Service; the API forbids it")
        name = str(spec.get("externalName") or "").rstrip(".")
        if not is_subdomain(name):
            out.append(f"spec.externalName {spec.get('externalName')!r} is not {SUBDOMAIN}; an ExternalName Service "
                       "requires one")
    if not spec.get("ports") and not headless and kind != "ExternalName":
        out.append(f"spec.ports is empty; the API requires at least one port on a {kind} Service (only headless "
                   "and ExternalName Services may have none)")
    out += _ports(spec, kind, headless)
    affinity = spec.get("sessionAffinity")
    out += enum("spec.sessionAffinity", affinity, ("None", "ClientIP"))
    timeout = ((spec.get("sessionAffinityConfig") or {}).get("clientIP") or {}).get("timeoutSeconds")
    if affinity == "ClientIP" and (n := num(timeout)) is not None and not 0 < n <= MAX_AFFINITY_SECONDS:
        out.append(f"spec.sessionAffinityConfig.clientIP.timeoutSeconds is {timeout}; the API accepts 1-"
                   f"{MAX_AFFINITY_SECONDS}")
    if affinity in (None, "", "None") and spec.get("sessionAffinityConfig") is not None:
        out.append("spec.sessionAffinityConfig is set while sessionAffinity is None; the API forbids it")
    external = kind in ("NodePort", "LoadBalancer") or (kind == "ClusterIP" and spec.get("externalIPs"))
    if spec.get("externalTrafficPolicy") and not external:
        out.append(f"spec.externalTrafficPolicy {spec['externalTrafficPolicy']!r} is set on a {kind} Service; the API "
                   "accepts it only for externally reachable Services (NodePort, LoadBalancer, externalIPs)")
    out += enum("spec.externalTrafficPolicy", spec.get("externalTrafficPolicy"), ("Cluster", "Local"))
    out += enum("spec.internalTrafficPolicy", spec.get("internalTrafficPolicy"), ("Cluster", "Local"))
    out += enum("spec.ipFamilyPolicy", spec.get("ipFamilyPolicy"), ("SingleStack", "PreferDualStack",
                                                                    "RequireDualStack"))
    out += [p for f in spec.get("ipFamilies") or [] for p in enum("spec.ipFamilies", f, ("IPv4", "IPv6"))]
    out += enum("spec.trafficDistribution", spec.get("trafficDistribution"),
                ("PreferClose", "PreferSameZone", "PreferSameNode"))
    out += [f"spec.externalIPs {ip!r} is not an IP address" for ip in spec.get("externalIPs") or [] if not is_ip(ip)]
    for key in ("loadBalancerSourceRanges", "allocateLoadBalancerNodePorts", "loadBalancerClass"):
        if spec.get(key) is not None and kind != "LoadBalancer":
            out.append(f"spec.{key} is set on a {kind} Service; the API accepts it only for type LoadBalancer")
    out += [f"spec.loadBalancerSourceRanges {r!r} is not a CIDR" for r in spec.get("loadBalancerSourceRanges") or []
            if _cidr(r) is None or "/" not in str(r)]
    return out


def _peer(where: str, peer: dict[str, Any]) -> list[str]:
    # ipBlock values (CIDRs, except, combined with selectors) are the ipblock-scope rule's.
    if all(peer.get(k) is None for k in ("podSelector", "namespaceSelector", "ipBlock")):
        return [f"{where} names no peer; the API requires podSelector, namespaceSelector or ipBlock"]
    return []


def check_network_policy(spec: dict[str, Any]) -> list[str]:
    out = [p for t in spec.get("policyTypes") or [] for p in enum("spec.policyTypes", t, ("Ingress", "Egress"))]
    for direction, peers_key in (("ingress", "from"), ("egress", "to")):
        for i, rule in enumerate(spec.get(direction) or []):
            if not isinstance(rule, dict):
                continue
            for j, peer in enumerate(rule.get(peers_key) or []):
                if isinstance(peer, dict):
                    out += _peer(f"spec.{direction}[{i}].{peers_key}[{j}]", peer)
            for j, p in enumerate(rule.get("ports") or []):
                if not isinstance(p, dict):
                    continue
                where = f"spec.{direction}[{i}].ports[{j}]"
                out += enum(f"{where}.protocol", p.get("protocol"), PROTOCOLS) + port(f"{where}.port", p.get("port"))
                end = num(p.get("endPort"))
                if end is not None and num(p.get("port")) is None:
                    out.append(f"{where}.endPort {end} needs a numeric port; found port {p.get('port')!r}")
                elif end is not None and not p["port"] <= end <= 65535:
                    out.append(f"{where}.endPort {end}: the API accepts port ({p['port']}) to 65535")
    return out
