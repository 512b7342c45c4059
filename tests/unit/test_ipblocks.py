"""ipBlock ranges against the cluster's networks: range arithmetic, ipblock-scope findings, the fixture's networks."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from indmlops.checks.static.ipblocks import (
    ClusterNetworks,
    IPBlock,
    check_ip_blocks,
    contains,
    may_match_pods,
    overlap,
    parse_ip_block,
)

REPO = Path(__file__).resolve().parents[2]
KIND = ClusterNetworks((ipaddress.ip_network("10.244.0.0/16"),), (ipaddress.ip_network("10.96.0.0/12"),))
DUAL = ClusterNetworks(KIND.pods + (ipaddress.ip_network("fd00:10:244::/56"),),
                       KIND.services + (ipaddress.ip_network("fd00:10:96::/112"),))


def policy(*peers: dict, direction: str = "egress") -> dict:
    key = "to" if direction == "egress" else "from"
    return {"kind": "NetworkPolicy", "spec": {"podSelector": {}, direction: [{key: list(peers)}]}}


def test_fixture_networks_are_those_the_kind_cluster_is_created_with():
    networks = ClusterNetworks.parse(yaml.safe_load((REPO / "fixtures" / "static.yaml").read_text())
                                     ["cluster_networks"], "fixtures/static.yaml")
    kind = yaml.safe_load((REPO / "manifests" / "overlays" / "kind" / "kind-cluster.yaml").read_text())["networking"]
    subnets = {key: {ipaddress.ip_network(s.strip()) for s in str(kind[key]).split(",")}
               for key in ("podSubnet", "serviceSubnet")}
    assert set(networks.pods) == subnets["podSubnet"] and set(networks.services) == subnets["serviceSubnet"]


@pytest.mark.parametrize("doc,needle", [
    (None, "cluster_networks needs pods"),
    ({"pods": "10.244.0.0/16"}, "cluster_networks.pods must be a list"),
    ({"pods": ["10.244.0.0/33"]}, "cluster_networks.pods"),
    ({"pods": ["10.244.0.1/16"]}, "has host bits set"),
])
def test_malformed_cluster_networks_name_the_file_and_the_key(doc, needle):
    with pytest.raises(ValueError, match="fixtures/static.yaml") as err:
        ClusterNetworks.parse(doc, "fixtures/static.yaml")
    assert needle in str(err.value)


@pytest.mark.parametrize("block,pods", [
    ({"cidr": "0.0.0.0/0"}, True),
    ({"cidr": "10.0.0.0/8"}, True),
    ({"cidr": "10.244.3.0/24"}, True),
    ({"cidr": "0.0.0.0/0", "except": ["10.244.0.0/16"]}, False),
    ({"cidr": "0.0.0.0/0", "except": ["10.244.0.0/17"]}, True),  # half the pod network is left
    ({"cidr": "10.244.0.0/16", "except": ["10.244.0.0/17", "10.244.128.0/17"]}, False),
    ({"cidr": "192.168.0.0/16"}, False),
    ({"cidr": "::/0"}, False),  # an IPv4-only cluster: no pod has an IPv6 address
    ({"cidr": "10.300.0.0/16"}, True),  # unreadable: fails closed
    ({"cidr": "0.0.0.0/0", "except": ["10.244.0.0/16", "bogus"]}, False),
    ({"cidr": "0.0.0.0/0", "except": ["10.244.0.0/16", "::/0"]}, False),  # the rejected except is dropped
    ({"cidr": "192.168.0.0/16", "except": ["10.244.0.0/16"]}, False),  # dropped, and the cidr is elsewhere
    ({}, True),
    ("10.0.0.0/8", True),
])
def test_ip_block_matches_pods_when_what_its_except_leaves_overlaps_the_pod_network(block, pods):
    assert may_match_pods(block, KIND, via_services=False) is pods


def test_service_network_counts_for_egress_only():
    block = {"cidr": "10.96.0.10/32"}
    assert may_match_pods(block, KIND, via_services=True) and not may_match_pods(block, KIND, via_services=False)


def test_ipv6_ranges_match_pods_of_a_dual_stack_cluster():
    assert may_match_pods({"cidr": "::/0"}, DUAL, via_services=False)
    assert not may_match_pods({"cidr": "::/0", "except": ["fd00:10:244::/56"]}, DUAL, via_services=False)
    assert may_match_pods({"cidr": "::/0", "except": ["fd00:10:244::/56"]}, DUAL, via_services=True)
    assert not may_match_pods({"cidr": "2001:db8::/32"}, DUAL, via_services=True)


def test_unknown_networks_count_every_range_that_matches_any_address():
    assert may_match_pods({"cidr": "192.168.0.0/16"}, None, via_services=False)
    assert not may_match_pods({"cidr": "192.168.0.0/16", "except": ["192.168.0.0/17", "192.168.128.0/17"]}, None,
                              via_services=False)


def test_outside_addresses_are_matched_with_except_and_unreadable_blocks_fail_closed():
    assert contains({"cidr": "0.0.0.0/0", "except": ["198.51.100.0/24"]}, "203.0.113.9")
    assert not contains({"cidr": "0.0.0.0/0", "except": ["198.51.100.0/24"]}, "198.51.100.7")
    assert not contains({"cidr": "::/0"}, "198.51.100.7")
    assert contains({"cidr": "not-a-cidr"}, "198.51.100.7")


@pytest.mark.parametrize("cidr,needle", [
    ("10.0.0.0/255.0.0.0", "is not a CIDR"),  # Python would read the netmask form; the API does not
    ("10.244.1.7", "has no prefix length"),
    ("010.0.0.0/8", "is not a CIDR"),
    ("10.244.1.7/16", "has host bits set: it denotes 10.244.0.0/16"),
    ("", "has no cidr"),
])
def test_a_cidr_the_api_rejects_or_reads_otherwise_is_a_problem(cidr, needle):
    _, problems = parse_ip_block({"cidr": cidr})
    assert any(needle in p for p in problems), problems


@pytest.mark.parametrize("cidr", ["FD00:10:244::/56", "2001:0db8::/32", "10.244.0.0/16", "::/0"])
def test_a_network_address_in_another_spelling_is_no_problem(cidr):
    assert parse_ip_block({"cidr": cidr})[1] == []


def test_except_must_be_a_strict_subset_of_its_cidr():
    block, problems = parse_ip_block({"cidr": "10.0.0.0/8", "except": ["10.0.0.0/8", "11.0.0.0/16", "10.1.0.0/16"]})
    assert block == IPBlock(ipaddress.ip_network("10.0.0.0/8"), (ipaddress.ip_network("10.1.0.0/16"),))
    assert [p.split(" ")[0] for p in problems] == ["except[0]", "except[1]"]
    assert parse_ip_block({"cidr": "10.0.0.0/8", "except": "10.1.0.0/16"})[1] == [
        "except must be a list of CIDRs, got '10.1.0.0/16'"]


def test_scope_finding_names_path_range_network_and_the_except_needed():
    findings = check_ip_blocks(policy({"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.244.0.0/17"]}}), KIND)
    assert findings[0].startswith("spec.egress[0].to[0]: ipBlock 0.0.0.0/0 except 10.244.0.0/17 covers "
                                  "10.244.128.0/17 of the pod network 10.244.0.0/16")
    assert findings[0].endswith("add 10.244.128.0/17 to except")
    assert "covers the whole service network 10.96.0.0/12" in findings[1]
    assert findings[1].endswith("add 10.96.0.0/12 to except")
    assert len(findings) == 2


def test_scope_accepts_ranges_outside_the_cluster_and_ranges_excepting_it():
    assert check_ip_blocks(policy({"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.244.0.0/16", "10.96.0.0/12"]}},
                                  {"ipBlock": {"cidr": "::/0"}}, {"podSelector": {}}), KIND) == []
    assert check_ip_blocks(policy({"ipBlock": {"cidr": "192.168.0.0/16"}}, direction="ingress"), KIND) == []


def test_scope_without_configured_networks_cannot_pass_an_ip_block():
    findings = check_ip_blocks(policy({"ipBlock": {"cidr": "192.168.0.0/16"}}), None)
    assert findings and "cluster_networks in fixtures/static.yaml" in findings[0]


def test_scope_inside_the_pod_network_says_no_except_can_fix_it():
    (finding,) = check_ip_blocks(policy({"ipBlock": {"cidr": "10.244.7.0/24"}}, direction="ingress"), KIND)
    assert finding.startswith("spec.ingress[0].from[0]: ipBlock 10.244.7.0/24 (no except) covers 10.244.7.0/24 "
                              "of the pod network 10.244.0.0/16")
    assert "no except can remove it" in finding


def test_scope_reports_an_ip_block_combined_with_selectors():
    findings = check_ip_blocks(policy({"ipBlock": {"cidr": "203.0.113.0/24"}, "podSelector": {}}), KIND)
    assert findings == ["spec.egress[0].to[0]: ipBlock is combined with podSelector in one peer: the API rejects "
                        "that (a peer is either an ipBlock or selectors); make them two peers"]


# Ranges inside 10.0.0.0/8 with prefixes /8../28: they nest or are disjoint, like every pair of CIDRs.
nets = st.builds(lambda offset, prefix: ipaddress.ip_network((0x0A000000 + offset, prefix), strict=False),
                 st.integers(0, 2**24 - 1), st.integers(8, 28))


@settings(max_examples=200, deadline=None)
@given(nets, st.lists(nets, max_size=4), nets)
def test_overlap_is_exactly_the_network_inside_cidr_and_outside_every_except(cidr, excepts, net):
    inside = [e for e in excepts if e.subnet_of(cidr) and e.prefixlen > cidr.prefixlen]
    block = IPBlock(cidr, tuple(inside))
    pieces = overlap(block, net)
    for p in pieces:
        assert p.subnet_of(net) and p.subnet_of(cidr) and not any(p.overlaps(e) for e in inside)
    assert sum(p.num_addresses for p in ipaddress.collapse_addresses(pieces)) == sum(p.num_addresses for p in pieces)
    # Counting: |cidr ∩ net| minus the excepted part of it (CIDRs nest, so an intersection is the smaller one).
    both = cidr if cidr.subnet_of(net) else net if net.subnet_of(cidr) else None
    holes = ipaddress.collapse_addresses([e if e.subnet_of(both) else both for e in inside if e.overlaps(both)]) \
        if both else []
    expected = (both.num_addresses - sum(h.num_addresses for h in holes)) if both else 0
    assert sum(p.num_addresses for p in pieces) == expected


@settings(max_examples=200, deadline=None)
@given(nets, st.lists(nets, max_size=3), nets, st.integers(0, 2**24 - 1))
def test_adding_an_except_never_widens_a_block(cidr, excepts, extra, offset):
    raw = {"cidr": str(cidr), "except": [str(e) for e in excepts]}
    wider = {"cidr": str(cidr), "except": [str(e) for e in [*excepts, extra]]}
    assert may_match_pods(wider, KIND, via_services=True) <= may_match_pods(raw, KIND, via_services=True)
    address = str(ipaddress.ip_address(0x0A000000 + offset))
    assert contains(wider, address) <= contains(raw, address)
    kept = [e for e in excepts if e.subnet_of(cidr) and e.prefixlen > cidr.prefixlen]
    assert contains(raw, address) == (ipaddress.ip_address(address) in cidr
                                      and not any(ipaddress.ip_address(address) in e for e in kept))
