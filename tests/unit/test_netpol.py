"""The NetworkPolicy evaluator: selector semantics, directions, ports, peers, and properties over random pods."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indmlops.checks.static.ipblocks import ClusterNetworks
from indmlops.checks.static.netpol import Cell, Evaluator, Pod, Port, matrix, parse_policy, selector_matches

NS = ["a", "b"]
APPS = ["web", "db", "cache"]


def pol(ns: str, name: str, spec: dict) -> dict:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": name}, "spec": spec}


def policies(*docs: tuple[str, dict]):
    return [parse_policy(pol(ns, f"p{i}", spec), ns) for i, (ns, spec) in enumerate(docs)]


DENY_ALL = {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
WEB = Pod("a/web", "a", {"app": "web"}, (Port(8080, name="http"),))
DB = Pod("a/db", "a", {"app": "db"}, (Port(5432, name="pg"), Port(5433)))
OTHER = Pod("b/web", "b", {"app": "web"}, (Port(8080, name="http"),))


def test_no_policy_means_everything_reachable():
    cells = matrix([WEB, DB, OTHER], [])
    assert cells and all(cells.values())


def test_default_deny_closes_every_cell():
    cells = matrix([WEB, DB, OTHER], policies(("a", DENY_ALL), ("b", DENY_ALL)))
    assert cells and not any(cells.values())


def test_a_flow_needs_egress_at_the_source_and_ingress_at_the_destination():
    egress = ("a", {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Egress"],
                    "egress": [{"to": [{"podSelector": {"matchLabels": {"app": "db"}}}], "ports": [{"port": 5432}]}]})
    ingress = ("a", {"podSelector": {"matchLabels": {"app": "db"}}, "policyTypes": ["Ingress"],
                     "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "web"}}}],
                                  "ports": [{"port": "pg"}]}]})
    assert matrix([WEB, DB], policies(("a", DENY_ALL), egress))[Cell("a/web", "a/db", 5432)] is False
    cells = matrix([WEB, DB], policies(("a", DENY_ALL), egress, ingress))
    assert cells[Cell("a/web", "a/db", 5432)] is True  # the ingress names the port "pg": resolved on db
    assert cells[Cell("a/web", "a/db", 5433)] is False
    assert cells[Cell("a/db", "a/web", 8080)] is False


def test_pod_selector_without_namespace_selector_stays_in_the_policy_namespace():
    ingress = ("a", {"podSelector": {}, "policyTypes": ["Ingress"],
                     "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "web"}}}]}]})
    cells = matrix([WEB, DB, OTHER], policies(ingress))
    assert cells[Cell("a/web", "a/db", 5432)] is True
    assert cells[Cell("b/web", "a/db", 5432)] is False


def test_namespace_selector_uses_the_automatic_name_label_and_ands_with_pod_selector():
    peer = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "b"}},
            "podSelector": {"matchLabels": {"app": "web"}}}
    ingress = ("a", {"podSelector": {"matchLabels": {"app": "db"}}, "ingress": [{"from": [peer]}]})
    cells = matrix([WEB, DB, OTHER], policies(ingress))
    assert cells[Cell("b/web", "a/db", 5432)] is True
    assert cells[Cell("a/web", "a/db", 5432)] is False


def test_policy_types_default_to_ingress_plus_egress_when_egress_rules_exist():
    assert parse_policy(pol("a", "x", {"podSelector": {}}), "a").types == {"Ingress"}
    assert parse_policy(pol("a", "x", {"podSelector": {}, "egress": []}), "a").types == {"Ingress", "Egress"}


def test_port_ranges_and_protocols():
    dst = Pod("a/dns", "a", {"app": "dns"}, (Port(53, "UDP"), Port(53, "TCP"), Port(60)))
    src = Pod("a/web", "a", {"app": "web"})
    ingress = ("a", {"podSelector": {"matchLabels": {"app": "dns"}},
                     "ingress": [{"ports": [{"port": 53, "protocol": "UDP"}, {"port": 55, "endPort": 65}]}]})
    cells = matrix([src, dst], policies(ingress))
    assert cells[Cell("a/web", "a/dns", 53, "UDP")] and cells[Cell("a/web", "a/dns", 60)]
    assert not cells[Cell("a/web", "a/dns", 53, "TCP")]


def test_ip_blocks_match_outside_addresses_with_except_and_pods_only_when_everything():
    internet = Pod("internet", "", {}, (Port(443),), ip="198.51.100.7")
    narrow = ("a", {"podSelector": {}, "policyTypes": ["Egress"],
                    "egress": [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["198.51.100.0/24"]}}]}]})
    wide = ("a", {"podSelector": {}, "policyTypes": ["Egress"],
                  "egress": [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}]})
    assert matrix([WEB, DB], policies(narrow), external=[internet])[Cell("a/web", "internet", 443)] is False
    cells = matrix([WEB, DB], policies(wide), external=[internet])
    assert cells[Cell("a/web", "internet", 443)] and cells[Cell("a/web", "a/db", 5432)]


def test_external_destination_ingress_is_not_judged_and_external_source_pairs_are_left_out():
    elsewhere = Pod("other", "z", {})
    dns = Pod("kube-dns", "kube-system", {"k8s-app": "kube-dns"}, (Port(53, "UDP"),))
    cells = matrix([WEB], policies(("kube-system", DENY_ALL)), external=[dns], external_sources=[elsewhere])
    assert cells[Cell("a/web", "kube-dns", 53, "UDP")] is True
    assert Cell("other", "kube-dns", 53, "UDP") not in cells and cells[Cell("other", "a/web", 8080)] is True


def test_match_expressions():
    labels = {"app": "web", "tier": "front"}
    assert selector_matches({"matchExpressions": [{"key": "app", "operator": "In", "values": ["web", "x"]}]}, labels)
    assert not selector_matches({"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["web"]}]}, labels)
    assert selector_matches({"matchExpressions": [{"key": "zone", "operator": "DoesNotExist"}]}, labels)
    assert not selector_matches({"matchExpressions": [{"key": "zone", "operator": "Exists"}]}, labels)
    assert not selector_matches({"matchExpressions": [{"key": "app", "operator": "Bogus"}]}, labels)


label_sets = st.dictionaries(st.sampled_from(["app", "tier"]), st.sampled_from(APPS), max_size=2)
pods_strategy = st.lists(
    st.tuples(st.sampled_from(NS), label_sets, st.sets(st.sampled_from([80, 443, 5432]), max_size=2)),
    min_size=1, max_size=6,
).map(lambda items: [Pod(f"{ns}/p{i}", ns, labels, tuple(Port(p) for p in sorted(ports)))
                     for i, (ns, labels, ports) in enumerate(items)])


@settings(max_examples=60, deadline=None)
@given(pods_strategy, label_sets)
def test_empty_selector_matches_everything_and_match_labels_is_a_subset_test(pods, selector):
    for p in pods:
        assert selector_matches({}, p.labels)
        assert selector_matches({"matchLabels": selector}, p.labels) == (selector.items() <= dict(p.labels).items())


@settings(max_examples=60, deadline=None)
@given(pods_strategy, label_sets, label_sets, st.sampled_from([80, 443, 5432]))
def test_deny_all_plus_one_allow_opens_exactly_the_matching_cells(pods, src_sel, dst_sel, port):
    allow_egress = {"podSelector": {"matchLabels": src_sel}, "policyTypes": ["Egress"],
                    "egress": [{"to": [{"namespaceSelector": {}, "podSelector": {"matchLabels": dst_sel}}],
                                "ports": [{"port": port}]}]}
    allow_ingress = {"podSelector": {"matchLabels": dst_sel}, "policyTypes": ["Ingress"],
                     "ingress": [{"from": [{"namespaceSelector": {}, "podSelector": {"matchLabels": src_sel}}],
                                  "ports": [{"port": port}]}]}
    docs = [(ns, spec) for ns in NS for spec in (DENY_ALL, allow_egress, allow_ingress)]
    cells = matrix(pods, policies(*docs))
    by_id = {p.id: p for p in pods}
    for cell, allowed in cells.items():
        src, dst = by_id[cell.src], by_id[cell.dst]
        expected = (src_sel.items() <= dict(src.labels).items() and dst_sel.items() <= dict(dst.labels).items()
                    and cell.port == port)
        assert allowed == expected, cell


@settings(max_examples=60, deadline=None)
@given(pods_strategy, st.lists(st.tuples(st.sampled_from(NS), label_sets, st.sampled_from([80, 443])), max_size=4))
def test_adding_an_allow_policy_never_closes_a_cell(pods, allows):
    base = [(ns, DENY_ALL) for ns in NS]
    before = matrix(pods, policies(*base))
    extra = [(ns, {"podSelector": {"matchLabels": sel}, "ingress": [{"ports": [{"port": p}]}]})
             for ns, sel, p in allows]
    after = matrix(pods, policies(*base, *extra))
    assert all(after[c] for c, ok in before.items() if ok)


def test_evaluator_reports_directions_separately():
    ev = Evaluator([WEB, DB], policies(("a", {"podSelector": {}, "policyTypes": ["Egress"]})))
    assert not ev.egress_allows(WEB, DB, Port(5432)) and ev.ingress_allows(WEB, DB, Port(5432))


KIND = ClusterNetworks((ipaddress.ip_network("10.244.0.0/16"),), (ipaddress.ip_network("10.96.0.0/12"),))
INTERNET = Pod("internet", "", {}, (Port(443),), ip="198.51.100.7")


def egress_to(block: dict) -> tuple[str, dict]:
    return ("a", {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{"to": [{"ipBlock": block}]}]})


@pytest.mark.parametrize("block,pods_reached,internet_reached", [
    ({"cidr": "0.0.0.0/0"}, True, True),
    ({"cidr": "0.0.0.0/0", "except": ["10.244.0.0/16", "10.96.0.0/12"]}, False, True),
    ({"cidr": "0.0.0.0/0", "except": ["10.244.0.0/16"]}, True, True),  # a ClusterIP may stand for any pod
    ({"cidr": "10.0.0.0/8"}, True, False),
    ({"cidr": "10.96.0.10/32"}, True, False),
    ({"cidr": "198.51.100.0/24"}, False, True),
    ({"cidr": "::/0"}, False, False),
    ({"cidr": "198.51.100.0/33"}, True, True),  # unreadable: the API rejects it, the matrix fails closed
])
def test_egress_ip_blocks_are_judged_against_the_cluster_networks(block, pods_reached, internet_reached):
    cells = matrix([WEB, DB], policies(egress_to(block)), external=[INTERNET], networks=KIND)
    assert cells[Cell("a/web", "a/db", 5432)] is pods_reached
    assert cells[Cell("a/web", "internet", 443)] is internet_reached


@pytest.mark.parametrize("block,other_reaches_db", [
    ({"cidr": "0.0.0.0/0"}, True),
    ({"cidr": "10.96.0.0/12"}, False),  # a source never has a ClusterIP
    ({"cidr": "0.0.0.0/0", "except": ["10.244.0.0/16"]}, False),
    ({"cidr": "10.244.0.0/16", "except": ["10.244.0.0/16"]}, True),  # that except is rejected, so dropped
])
def test_ingress_ip_blocks_let_every_pod_in_when_they_overlap_the_pod_network(block, other_reaches_db):
    ingress = ("a", {"podSelector": {"matchLabels": {"app": "db"}}, "policyTypes": ["Ingress"],
                     "ingress": [{"from": [{"ipBlock": block}]}]})
    cells = matrix([WEB, DB, OTHER], policies(ingress), networks=KIND)
    assert cells[Cell("b/web", "a/db", 5432)] is other_reaches_db


octet = st.integers(0, 255)
in_ten = st.tuples(octet, octet, st.integers(8, 30)).map(
    lambda t: ipaddress.ip_network((10 << 24 | t[0] << 16 | t[1] << 8, t[2]), strict=False))


@settings(max_examples=80, deadline=None)
@given(in_ten, st.lists(in_ten, max_size=3))
def test_an_ip_block_lets_every_pod_in_exactly_when_its_remainder_meets_the_pod_network(cidr, excepts):
    pods = KIND.pods[0]
    kept = [e for e in excepts if e.subnet_of(cidr) and e.prefixlen > cidr.prefixlen]  # the API rejects the rest
    # CIDRs nest or are disjoint: cidr ∩ pods is the smaller of the two, and is left when the excepts do not cover it.
    both = cidr if cidr.subnet_of(pods) else pods if pods.subnet_of(cidr) else None
    covered = sum(h.num_addresses for h in ipaddress.collapse_addresses(
        [both if both.subnet_of(e) else e for e in kept if e.overlaps(both)])) if both else 0
    expected = both is not None and covered < both.num_addresses
    ingress = ("a", {"podSelector": {}, "policyTypes": ["Ingress"],
                     "ingress": [{"from": [{"ipBlock": {"cidr": str(cidr), "except": list(map(str, excepts))}}]}]})
    cells = matrix([WEB, OTHER], policies(ingress), networks=KIND)
    assert cells[Cell("b/web", "a/web", 8080)] is expected
