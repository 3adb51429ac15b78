"""Single-record rules of every kind, through from_dict; frozen, hashable, replace()."""

from __future__ import annotations

import dataclasses
import ipaddress
import uuid
from typing import Any

import pytest
from model_factories import (
    CHAIN,
    MINIMAL,
    OTHER_CHAIN,
    ROUTER_PORT,
    body,
    build,
    rejects,
)

from tenet.errors import ValidationError
from tenet.model import (
    KINDS,
    BgpPeer,
    Chain,
    Condition,
    DeviceType,
    DhcpSubnet,
    HealthMonitor,
    IPsecConnection,
    Port,
    Route,
    RouteType,
    Rule,
    RuleAction,
    from_dict,
    to_dict,
)

# ---------------------------------------------------------------- ports

BAD_PORTS = [
    # router ports need a MAC, an address and the subnet it faces
    pytest.param({k: v for k, v in ROUTER_PORT.items() if k != "mac"}, "mac", "needs a MAC",
                 id="router-no-mac"),
    pytest.param({k: v for k, v in ROUTER_PORT.items() if k != "address"}, "address", "needs an",
                 id="router-no-address"),
    pytest.param({k: v for k, v in ROUTER_PORT.items() if k != "subnet"}, "subnet", "subnet",
                 id="router-no-subnet"),
    pytest.param(dict(ROUTER_PORT, address="10.0.1.1"), "address", "usable",
                 id="router-address-outside-subnet"),
    pytest.param(dict(ROUTER_PORT, address="10.0.0.0"), "address", "usable",
                 id="router-network-address"),
    pytest.param(dict(ROUTER_PORT, address="10.0.0.255"), "address", "usable",
                 id="router-broadcast-address"),
    pytest.param(dict(ROUTER_PORT, address="10.0.0.3", subnet="10.0.0.0/30"), "address",
                 "usable", id="router-broadcast-of-slash-30"),
    pytest.param(dict(ROUTER_PORT, address="2001:db9::1", subnet="2001:db8::/64"), "address",
                 "usable", id="router-v6-address-outside-subnet"),
    pytest.param(dict(ROUTER_PORT, fixed_ips=["10.0.0.7"]), "fixed_ips", "address",
                 id="router-with-fixed-ips"),
    # bridge ports have no address of their own
    pytest.param(body("ports", address="10.0.0.5"), "address", "only router ports",
                 id="bridge-with-address"),
    pytest.param(body("ports", subnet="10.0.0.0/24"), "subnet", "only router ports",
                 id="bridge-with-subnet"),
    pytest.param(body("ports", address="10.0.0.5", subnet="10.0.0.0/24"), "address",
                 "only router ports", id="bridge-with-address-and-subnet"),
    # duplicates
    pytest.param(body("ports", fixed_ips=["10.0.0.5", "10.0.0.6", "10.0.0.5"]), "fixed_ips",
                 "twice", id="duplicate-fixed-ip"),
    pytest.param(body("ports", fixed_ips=["2001:db8::5", "2001:DB8:0::5"]), "fixed_ips",
                 "twice", id="duplicate-fixed-ip-two-spellings"),
    pytest.param(body("ports", port_group_ids=[CHAIN, OTHER_CHAIN, CHAIN.upper()]),
                 "port_group_ids", "twice", id="duplicate-port-group"),
    pytest.param(body("ports", device_type="switch"), "device_type", "'bridge', 'router'",
                 id="unknown-device-type"),
]  # fmt: skip


@pytest.mark.parametrize(("data", "field", "keyword"), BAD_PORTS)
def test_port_rejects(data: dict[str, Any], field: str, keyword: str) -> None:
    rejects("ports", data, field, keyword)


def test_port_cannot_be_peered_to_itself() -> None:
    port_id = "6f1d2c3b-0000-4000-8000-00000000c0c0"
    rejects("ports", body("ports", id=port_id, peer_id=port_id), "peer_id", "itself")


@pytest.mark.parametrize(
    ("address", "subnet"),
    [
        ("10.0.0.1", "10.0.0.0/24"),
        ("10.0.0.254", "10.0.0.0/24"),
        ("10.0.0.0", "10.0.0.0/31"),  # RFC 3021 point-to-point: both addresses usable
        ("10.0.0.1", "10.0.0.0/31"),
        ("192.0.2.7", "192.0.2.7/32"),
        ("2001:db8::1", "2001:db8::/64"),
        ("2001:db8::ffff:ffff:ffff:ffff", "2001:db8::/64"),
        ("fe80::1", "fe80::/10"),
    ],
)
def test_router_port_accepts_usable_addresses_of_either_family(address: str, subnet: str) -> None:
    port = from_dict(Port, dict(ROUTER_PORT, address=address, subnet=subnet))
    assert port.device_type is DeviceType.ROUTER
    assert port.address == ipaddress.ip_address(address)
    assert port.subnet == ipaddress.ip_network(subnet)
    assert port.address in port.subnet


def test_bridge_port_holds_addresses_of_both_families_and_address_pairs() -> None:
    port = build(
        Port,
        mac="02:00:00:00:00:05",
        fixed_ips=["10.0.0.5", "2001:db8::5"],
        port_security=True,
        allowed_address_pairs=[
            {"ip": "10.0.0.100"},
            {"ip": "2001:db8:1::/48", "mac": "02:00:00:00:00:06"},
        ],
    )
    assert [ip.version for ip in port.fixed_ips] == [4, 6]
    pairs = port.allowed_address_pairs
    assert pairs[0].ip == ipaddress.IPv4Network("10.0.0.100/32")
    assert pairs[0].mac is None
    assert pairs[1].ip == ipaddress.IPv6Network("2001:db8:1::/48")
    assert not port.interior


def test_peered_port_is_interior() -> None:
    assert build(Port, peer_id="6f1d2c3b-0000-4000-8000-00000000c0c1").interior


# ---------------------------------------------------------------- bridges, chains, groups


@pytest.mark.parametrize(
    ("kind", "data", "field", "keyword"),
    [
        pytest.param(
            "bridges",
            body(
                "bridges",
                static_arp=[
                    {"ip": "10.0.0.5", "mac": "02:00:00:00:00:05"},
                    {"ip": "10.0.0.6", "mac": "02:00:00:00:00:06"},
                    {"ip": "10.0.0.5", "mac": "02:00:00:00:00:07"},
                ],
            ),
            "static_arp[2].ip",
            "static_arp[0]",
            id="static-arp-duplicate-ip",
        ),
        pytest.param(
            "chains",
            body("chains", rule_ids=[CHAIN, OTHER_CHAIN, CHAIN]),
            "rule_ids",
            "twice",
            id="chain-duplicate-rule",
        ),
        pytest.param(
            "ip_addr_groups",
            body("ip_addr_groups", addresses=["10.0.0.0/8", "10.0.0.0/255.0.0.0"]),
            "addresses",
            "twice",
            id="ip-addr-group-duplicate",
        ),
    ],
)
def test_duplicates_are_rejected(kind: str, data: dict[str, Any], field: str, keyword: str) -> None:
    rejects(kind, data, field, keyword)


def test_static_arp_may_bind_both_families_and_repeat_a_mac() -> None:
    bridge = from_dict(
        KINDS["bridges"],
        body(
            "bridges",
            static_arp=[
                {"ip": "10.0.0.5", "mac": "02:00:00:00:00:05"},
                {"ip": "2001:db8::5", "mac": "02:00:00:00:00:05"},
            ],
        ),
    )
    assert len(bridge.static_arp) == 2  # type: ignore[attr-defined]


# ---------------------------------------------------------------- routes

BAD_ROUTES = [
    pytest.param({"next_hop_port_id": None}, "next_hop_port_id", "next-hop port",
                 id="normal-without-port"),
    pytest.param({"type": "blackhole"}, "next_hop_port_id", "no next hop",
                 id="blackhole-with-port"),
    pytest.param({"type": "blackhole", "next_hop_port_id": None, "next_hop_gateway": "10.0.0.1"},
                 "next_hop_gateway", "no next hop", id="blackhole-with-gateway"),
    pytest.param({"type": "reject"}, "next_hop_port_id", "no next hop", id="reject-with-port"),
    pytest.param({"type": "local"}, "next_hop_port_id", "no next hop", id="local-with-port"),
    pytest.param({"type": "drop"}, "type", "'blackhole'", id="unknown-type"),
    pytest.param({"src": "2001:db8::/32"}, "src", "IPv6", id="src-family"),
    pytest.param({"dst": "::/0", "src": "10.0.0.0/8"}, "src", "IPv4", id="src-family-v6-dst"),
    pytest.param({"next_hop_gateway": "::1"}, "next_hop_gateway", "IPv6", id="gateway-family"),
    pytest.param({"weight": 0}, "weight", "1..65535", id="weight-zero"),
    pytest.param({"weight": -1}, "weight", "1..65535", id="weight-negative"),
    pytest.param({"weight": 65536}, "weight", "1..65535", id="weight-too-big"),
    pytest.param({"weight": 1.5}, "weight", "integer", id="weight-float"),
    pytest.param({"weight": "10"}, "weight", "integer", id="weight-string"),
]  # fmt: skip


@pytest.mark.parametrize(("changes", "field", "keyword"), BAD_ROUTES)
def test_route_rejects(changes: dict[str, Any], field: str, keyword: str) -> None:
    rejects("routes", body("routes", **changes), field, keyword)


@pytest.mark.parametrize(
    "changes",
    [
        {"weight": 1},
        {"weight": 65535},
        {"dst": "10.0.0.0/8", "src": "192.168.0.0/16", "next_hop_gateway": "10.0.0.1"},
        {"dst": "2001:db8::/32", "src": "2001:db8:1::/48", "next_hop_gateway": "fe80::1"},
        {"type": "blackhole", "next_hop_port_id": None},
        {"type": "reject", "next_hop_port_id": None, "dst": "::/0"},
        {"type": "local", "next_hop_port_id": None, "dst": "10.0.0.1/32"},
    ],
)
def test_route_accepts(changes: dict[str, Any]) -> None:
    route = build(Route, **changes)
    for name, value in changes.items():
        if value is not None and name != "weight":
            assert str(getattr(route, name)) == value


def test_route_src_network_defaults_to_everything_of_the_dst_family() -> None:
    assert build(Route).src_network == ipaddress.IPv4Network("0.0.0.0/0")
    assert build(Route, dst="2001:db8::/32").src_network == ipaddress.IPv6Network("::/0")
    src = build(Route, src="10.0.0.0/8").src_network
    assert src == ipaddress.IPv4Network("10.0.0.0/8")


def test_route_defaults() -> None:
    route = build(Route)
    assert route.type is RouteType.NORMAL
    assert route.weight == 100


# ---------------------------------------------------------------- rules and conditions


def rule(condition: dict[str, Any] | None = None, **changes: Any) -> dict[str, Any]:
    data = body("rules", **changes)
    if condition is not None:
        data["condition"] = condition
    return data


TCP = 6
BAD_RULES = [
    # port ranges
    pytest.param(rule({"nw_proto": TCP, "tp_dst": {"start": 100, "end": 10}}),
                 "condition.tp_dst.end", "below start", id="tp-dst-out-of-order"),
    pytest.param(rule({"nw_proto": TCP, "tp_src": {"start": 2, "end": 1}}),
                 "condition.tp_src.end", "below start", id="tp-src-out-of-order"),
    pytest.param(rule({"nw_proto": TCP, "tp_dst": {"start": -1, "end": 10}}),
                 "condition.tp_dst.start", "0..65535", id="tp-start-negative"),
    pytest.param(rule({"nw_proto": TCP, "tp_dst": {"start": 0, "end": 65536}}),
                 "condition.tp_dst.end", "0..65535", id="tp-end-too-big"),
    pytest.param(rule({"nw_proto": TCP, "tp_src": {"start": 70000, "end": 70001}}),
                 "condition.tp_src.start", "0..65535", id="tp-start-too-big"),
    pytest.param(rule({"nw_proto": TCP, "tp_dst": {"start": "80", "end": 80}}),
                 "condition.tp_dst.start", "integer", id="tp-start-string"),
    pytest.param(rule({"tp_dst": {"start": 80, "end": 80}}),
                 "condition.tp_dst", "nw_proto", id="ports-without-proto"),
    pytest.param(rule({"nw_proto": 1, "tp_src": {"start": 80, "end": 80}}),
                 "condition.tp_src", "nw_proto", id="ports-with-icmp"),
    pytest.param(rule({"nw_proto": 47, "tp_dst": {"start": 80, "end": 80}}),
                 "condition.tp_dst", "TCP", id="ports-with-gre"),
    # ICMP
    pytest.param(rule({"nw_proto": 1, "icmp_code": 0}), "condition.icmp_code", "icmp_type",
                 id="icmp-code-without-type"),
    pytest.param(rule({"icmp_type": 8}), "condition.icmp_type", "nw_proto",
                 id="icmp-type-without-proto"),
    pytest.param(rule({"nw_proto": 6, "icmp_type": 8}), "condition.icmp_type", "ICMP",
                 id="icmp-type-with-tcp"),
    pytest.param(rule({"nw_proto": 1, "icmp_type": 8, "tp_dst": {"start": 1, "end": 1}}),
                 "condition.icmp_type", "tp_src/tp_dst", id="icmp-and-ports"),
    pytest.param(rule({"nw_proto": 1, "icmp_type": 256}), "condition.icmp_type", "0..255",
                 id="icmp-type-too-big"),
    pytest.param(rule({"nw_proto": 1, "icmp_type": 3, "icmp_code": -1}), "condition.icmp_code",
                 "0..255", id="icmp-code-negative"),
    # other condition fields
    pytest.param(rule({"nw_proto": 256}), "condition.nw_proto", "0..255", id="proto-too-big"),
    pytest.param(rule({"eth_type": 0x05FF}), "condition.eth_type", "outside",
                 id="eth-type-is-a-length"),
    pytest.param(rule({"eth_type": 0x10000}), "condition.eth_type", "outside",
                 id="eth-type-too-big"),
    pytest.param(rule({"ct_state": "related"}), "condition.ct_state", "'established'",
                 id="unknown-ct-state"),
    pytest.param(rule({"inv_nw_src": 1}), "condition.inv_nw_src", "true or false",
                 id="inversion-not-bool"),
    pytest.param(rule({"in_port_ids": ["nope"]}), "condition.in_port_ids[0]", "UUID",
                 id="in-port-not-uuid"),
    # jumps
    pytest.param(rule(action="jump"), "jump_chain_id", "target chain", id="jump-without-target"),
    pytest.param(rule(action="jump", jump_chain_id=CHAIN), "jump_chain_id", "own chain",
                 id="jump-to-own-chain"),
    pytest.param(rule(action="accept", jump_chain_id=OTHER_CHAIN), "jump_chain_id", "only jump",
                 id="accept-with-jump-target"),
    pytest.param(rule(action="goto"), "action", "'jump'", id="unknown-action"),
    # NAT
    pytest.param(rule(action="snat"), "nat_targets", "needs a target", id="snat-without-targets"),
    pytest.param(rule(action="dnat", nat_targets=[]), "nat_targets", "needs a target",
                 id="dnat-empty-targets"),
    pytest.param(rule(action="accept", nat_targets=[{"start": "1.1.1.1", "end": "1.1.1.1"}]),
                 "nat_targets", "no NAT targets", id="accept-with-targets"),
    pytest.param(rule(action="masquerade", nat_targets=[{"start": "1.1.1.1", "end": "1.1.1.1"}]),
                 "nat_targets", "no NAT targets", id="masquerade-with-targets"),
    pytest.param(rule(action="rev_snat", nat_targets=[{"start": "1.1.1.1", "end": "1.1.1.1"}]),
                 "nat_targets", "no NAT targets", id="rev-snat-with-targets"),
    pytest.param(
        rule(action="snat", nat_targets=[
            {"start": "1.1.1.1", "end": "1.1.1.2"}, {"start": "1.1.1.9", "end": "1.1.1.8"}]),
        "nat_targets[1].end", "below start", id="nat-end-below-start"),
    pytest.param(
        rule(action="dnat", nat_targets=[{"start": "2001:db8::9", "end": "2001:db8::1"}]),
        "nat_targets[0].end", "below start", id="nat-v6-end-below-start"),
    pytest.param(
        rule(action="snat", nat_targets=[
            {"start": "1.1.1.1", "end": "1.1.1.1"}, {"start": "1.1.1.1", "end": "2001:db8::1"}]),
        "nat_targets[1].end", "IPv6", id="nat-mixed-families"),
    pytest.param(
        rule(action="snat", nat_targets=[
            {"start": "1.1.1.1", "end": "1.1.1.1", "port_start": 2000, "port_end": 1000}]),
        "nat_targets[0].port_end", "below port_start", id="nat-ports-out-of-order"),
    pytest.param(
        rule(action="snat", nat_targets=[
            {"start": "1.1.1.1", "end": "1.1.1.1", "port_start": 1, "port_end": 65536}]),
        "nat_targets[0].port_end", "0..65535", id="nat-port-too-big"),
    pytest.param(
        rule(action="snat", nat_targets=[{"start": "1.1.1.1"}]),
        "nat_targets[0].end", "required", id="nat-target-without-end"),
]  # fmt: skip


@pytest.mark.parametrize(("data", "field", "keyword"), BAD_RULES)
def test_rule_rejects(data: dict[str, Any], field: str, keyword: str) -> None:
    rejects("rules", data, field, keyword)


@pytest.mark.parametrize(
    "condition",
    [
        {"nw_proto": 6, "tp_dst": {"start": 0, "end": 65535}},
        {"nw_proto": 17, "tp_src": {"start": 53, "end": 53}, "inv_tp_src": True},
        {"nw_proto": 132, "tp_dst": {"start": 5000, "end": 5010}},
        {"nw_proto": 1, "icmp_type": 3, "icmp_code": 4},
        {"nw_proto": 58, "icmp_type": 128, "nw_src": "2001:db8::/32", "nw_dst": "::/0"},
        {"eth_type": 0x0800, "nw_src": "10.0.0.0/8", "inv_nw_src": True, "nw_dst": "10.1.0.0/16"},
        {"eth_type": 0x86DD, "nw_dst": "2001:db8::1/128"},
        {"ct_state": "established", "inv_ct_state": True},
    ],
)
def test_rule_accepts_conditions(condition: dict[str, Any]) -> None:
    built = from_dict(Rule, rule(condition)).condition
    assert built == from_dict(Condition, condition)
    assert built != Condition()


def test_tcp_port_range_holds_its_bounds() -> None:
    cond = from_dict(Rule, rule({"nw_proto": 6, "tp_dst": {"start": 80, "end": 90}})).condition
    assert cond.tp_dst is not None
    assert 80 in cond.tp_dst
    assert 90 in cond.tp_dst
    assert 91 not in cond.tp_dst
    assert 79 not in cond.tp_dst


@pytest.mark.parametrize(
    "changes",
    [
        {"action": "jump", "jump_chain_id": OTHER_CHAIN},
        {"action": "snat", "nat_targets": [{"start": "198.51.100.1", "end": "198.51.100.9"}]},
        {
            "action": "dnat",
            "nat_targets": [
                {"start": "10.0.0.5", "end": "10.0.0.5", "port_start": 8080, "port_end": 8080},
                {"start": "2001:db8::5", "end": "2001:db8::5"},
            ],
        },
        {"action": "masquerade"},
        {"action": "rev_dnat"},
        {"action": "return"},
    ],
)
def test_rule_accepts_actions(changes: dict[str, Any]) -> None:
    built = from_dict(Rule, rule(**changes))
    assert built.action is RuleAction(changes["action"])
    assert len(built.nat_targets) == len(changes.get("nat_targets", []))


def test_rule_defaults_to_accept_everything() -> None:
    built = from_dict(Rule, rule())
    assert built.action is RuleAction.ACCEPT
    assert built.condition == Condition()


# ---------------------------------------------------------------- services

BAD_SERVICES = [
    # DHCP
    pytest.param("dhcp_subnets", {"gateway": "10.0.1.1"}, "gateway", "usable",
                 id="dhcp-gateway-outside-cidr"),
    pytest.param("dhcp_subnets", {"gateway": "10.0.0.0"}, "gateway", "usable",
                 id="dhcp-gateway-network-address"),
    pytest.param("dhcp_subnets", {"gateway": "10.0.0.255"}, "gateway", "usable",
                 id="dhcp-gateway-broadcast"),
    pytest.param("dhcp_subnets", {"server_address": "192.168.0.2"}, "server_address", "usable",
                 id="dhcp-server-outside-cidr"),
    pytest.param("dhcp_subnets", {"cidr": "2001:db8::/64"}, "cidr", "IPv4", id="dhcp-ipv6"),
    pytest.param("dhcp_subnets", {"mtu": 575}, "mtu", "576..9000", id="dhcp-mtu-low"),
    pytest.param("dhcp_subnets", {"mtu": 9001}, "mtu", "576..9000", id="dhcp-mtu-high"),
    pytest.param("dhcp_subnets", {"lease_time": 59}, "lease_time", "60..", id="dhcp-lease-short"),
    pytest.param("dhcp_subnets", {"host_routes": [{"destination": "2001:db8::/32",
                                                   "nexthop": "2001:db8::1"}]},
                 "host_routes[0].destination", "IPv6", id="dhcp-route-v6"),
    pytest.param("dhcp_subnets", {"host_routes": [{"destination": "10.9.0.0/16",
                                                   "nexthop": "fe80::1"}]},
                 "host_routes[0].nexthop", "IPv6", id="dhcp-route-nexthop-family"),
    # BGP
    pytest.param("bgp_peers", {"local_as": 0}, "local_as", "1..4294967295", id="asn-zero"),
    pytest.param("bgp_peers", {"local_as": 1 << 32}, "local_as", "1..4294967295",
                 id="asn-too-big"),
    pytest.param("bgp_peers", {"peer_as": -5}, "peer_as", "1..4294967295", id="peer-asn-neg"),
    pytest.param("bgp_peers", {"hold_time": 2}, "hold_time", "3..65535", id="hold-time-2"),
    pytest.param("bgp_peers", {"hold_time": 65536}, "hold_time", "3..65535", id="hold-too-big"),
    pytest.param("bgp_peers", {"hold_time": 90, "keepalive": 31}, "keepalive", "1..30",
                 id="keepalive-above-third-of-hold"),
    pytest.param("bgp_peers", {"hold_time": 9, "keepalive": 0}, "keepalive", "1..3",
                 id="keepalive-zero"),
    pytest.param("bgp_peers", {"hold_time": 0, "keepalive": -1}, "keepalive", "outside",
                 id="keepalive-negative-without-hold"),
    # IPsec
    pytest.param("ipsec_connections", {"psk": "1234567"}, "psk", "at least 8",
                 id="psk-too-short"),
    pytest.param("ipsec_connections", {"local_cidrs": []}, "local_cidrs", "at least one",
                 id="no-local-cidr"),
    pytest.param("ipsec_connections", {"peer_cidrs": []}, "peer_cidrs", "at least one",
                 id="no-peer-cidr"),
    pytest.param("ipsec_connections", {"local_cidrs": ["10.0.0.0/16"],
                                       "peer_cidrs": ["192.168.0.0/24", "10.0.5.0/24"]},
                 "local_cidrs[0]", "overlaps", id="local-contains-peer"),
    pytest.param("ipsec_connections", {"local_cidrs": ["172.16.0.0/24", "10.1.0.128/25"]},
                 "local_cidrs[1]", "overlaps", id="second-local-inside-peer"),
    pytest.param("ipsec_connections", {"local_cidrs": ["2001:db8::/48"],
                                       "peer_cidrs": ["2001:db8::/32"]},
                 "local_cidrs[0]", "overlaps", id="v6-overlap"),
    pytest.param("ipsec_connections", {"mtu": 10000}, "mtu", "576..9000", id="ipsec-mtu"),
    pytest.param("ipsec_connections", {"ike_version": "ikev3"}, "ike_version", "'ikev2'",
                 id="ike-version"),
    # load balancing
    pytest.param("health_monitors", {"delay": 3, "timeout": 4}, "timeout", "delay",
                 id="timeout-above-delay"),
    pytest.param("health_monitors", {"timeout": 0}, "timeout", "> 0", id="timeout-zero"),
    pytest.param("health_monitors", {"delay": 0}, "delay", "0..3600", id="delay-zero"),
    pytest.param("health_monitors", {"delay": 3601}, "delay", "0..3600", id="delay-too-long"),
    pytest.param("health_monitors", {"max_retries": 0}, "max_retries", "1..10", id="retries-0"),
    pytest.param("health_monitors", {"max_retries": 11}, "max_retries", "1..10", id="retries-11"),
    pytest.param("health_monitors", {"http_path": "health"}, "http_path", "/", id="http-path"),
    pytest.param("health_monitors", {"type": "udp"}, "type", "'ping'", id="monitor-type"),
    pytest.param("pool_members", {"protocol_port": 0}, "protocol_port", "1..65535",
                 id="member-port-zero"),
    pytest.param("pool_members", {"protocol_port": 65536}, "protocol_port", "1..65535",
                 id="member-port-too-big"),
    pytest.param("pool_members", {"weight": 257}, "weight", "0..256", id="member-weight"),
    pytest.param("vips", {"protocol_port": 0}, "protocol_port", "1..65535", id="vip-port"),
    pytest.param("vips", {"protocol": "sctp"}, "protocol", "'tcp'", id="vip-protocol"),
    pytest.param("pools", {"lb_method": "least_conn"}, "lb_method", "'round_robin'",
                 id="lb-method"),
]  # fmt: skip


@pytest.mark.parametrize(("kind", "changes", "field", "keyword"), BAD_SERVICES)
def test_service_rejects(kind: str, changes: dict[str, Any], field: str, keyword: str) -> None:
    rejects(kind, body(kind, **changes), field, keyword)


@pytest.mark.parametrize(
    ("kind", "changes"),
    [
        ("dhcp_subnets", {"gateway": "10.0.0.1", "server_address": "10.0.0.2"}),
        ("dhcp_subnets", {"mtu": 576, "lease_time": 60}),
        ("dhcp_subnets", {"mtu": 9000, "dns_servers": ["10.0.0.2", "8.8.8.8"]}),
        ("dhcp_subnets", {"host_routes": [{"destination": "0.0.0.0/0", "nexthop": "10.0.0.1"}]}),
        ("bgp_peers", {"local_as": 1, "peer_as": (1 << 32) - 1}),
        ("bgp_peers", {"hold_time": 3, "keepalive": 1}),
        ("bgp_peers", {"hold_time": 0}),  # no keepalives; the default keepalive stays
        ("bgp_peers", {"hold_time": 0, "keepalive": 0}),
        ("bgp_peers", {"peer_address": "2001:db8::1"}),
        ("ipsec_connections", {"psk": "12345678"}),
        ("ipsec_connections", {"local_cidrs": ["10.0.0.0/24"], "peer_cidrs": ["10.0.1.0/24"]}),
        ("ipsec_connections", {"local_cidrs": ["10.0.0.0/8"], "peer_cidrs": ["2001:db8::/32"]}),
        ("ipsec_connections", {"peer_address": "2001:db8::9", "ike_version": "ikev1"}),
        ("health_monitors", {"delay": 3, "timeout": 3, "type": "http", "http_path": "/healthz"}),
        ("health_monitors", {"delay": 0.5, "timeout": 0.25, "max_retries": 10}),
        ("pool_members", {"protocol_port": 65535, "weight": 0, "address": "2001:db8::10"}),
        ("vips", {"address": "2001:db8::80", "protocol": "udp",
                  "session_persistence": "source_ip"}),
    ],
)  # fmt: skip
def test_service_accepts(kind: str, changes: dict[str, Any]) -> None:
    record = from_dict(KINDS[kind], body(kind, **changes))
    for name, value in changes.items():
        got = getattr(record, name)
        if isinstance(value, list):
            assert len(got) == len(value)
        elif isinstance(value, str):
            assert str(got) == value
        else:
            assert got == value


def test_hold_time_zero_disables_the_keepalive_check() -> None:
    peer = from_dict(BgpPeer, body("bgp_peers", hold_time=0, keepalive=21845))
    assert peer.keepalive == 21845


def test_dhcp_subnet_defaults() -> None:
    subnet = build(DhcpSubnet)
    assert subnet.mtu == 1450
    assert subnet.enabled
    assert subnet.gateway is None


# ---------------------------------------------------------------- frozen, hashable, replace


@pytest.mark.parametrize("kind", sorted(MINIMAL))
def test_every_record_is_frozen_and_hashable(kind: str) -> None:
    record = from_dict(KINDS[kind], body(kind))
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.name = "changed"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.id = uuid.uuid4()  # type: ignore[misc]
    twin = from_dict(KINDS[kind], body(kind, id=str(record.id)))
    assert twin == record
    assert hash(twin) == hash(record)
    assert len({record, twin}) == 1
    assert record != record.replace(name="other")


def test_nested_values_are_frozen_too() -> None:
    built = from_dict(
        Rule,
        rule({"nw_proto": 6, "tp_dst": {"start": 1, "end": 2}}, action="snat",
             nat_targets=[{"start": "1.1.1.1", "end": "1.1.1.1"}]),
    )  # fmt: skip
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.condition.nw_proto = 17  # type: ignore[misc]
    assert built.condition.tp_dst is not None
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.condition.tp_dst.end = 1000  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.nat_targets[0].port_end = 5  # type: ignore[misc]
    assert isinstance(built.nat_targets, tuple)
    assert isinstance(built.condition.in_port_ids, tuple)
    assert hash(built) == hash(from_dict(Rule, to_dict(built)))


def test_replace_returns_a_new_record_and_keeps_the_old_one() -> None:
    port = build(Port, tunnel_key=5)
    moved = port.replace(tunnel_key=6, name="p1")
    assert moved.tunnel_key == 6
    assert moved.name == "p1"
    assert moved.id == port.id
    assert port.tunnel_key == 5
    assert port.name == ""


@pytest.mark.parametrize(
    ("record", "changes", "field"),
    [
        (build(Port), {"tunnel_key": 1 << 24}, "tunnel_key"),
        (build(Port), {"name": "a\nb"}, "name"),
        (build(Port), {"mac": "01:00:5e:00:00:01"}, "mac"),
        (build(Port), {"device_type": DeviceType.ROUTER}, "mac"),
        (from_dict(Port, ROUTER_PORT), {"address": ipaddress.ip_address("10.0.0.255")},
         "address"),
        (build(Route), {"type": RouteType.BLACKHOLE}, "next_hop_port_id"),
        (build(Route), {"weight": 0}, "weight"),
        (build(Rule), {"action": RuleAction.JUMP}, "jump_chain_id"),
        (build(Rule), {"jump_chain_id": uuid.UUID(CHAIN), "action": RuleAction.JUMP},
         "jump_chain_id"),
        (build(Chain), {"rule_ids": (uuid.UUID(CHAIN), uuid.UUID(CHAIN))}, "rule_ids"),
        (build(DhcpSubnet), {"cidr": ipaddress.ip_network("2001:db8::/64")}, "cidr"),
        (build(HealthMonitor), {"timeout": 10.0}, "timeout"),
        (build(IPsecConnection), {"psk": "short"}, "psk"),
    ],
)  # fmt: skip
def test_replace_validates_again(record: Any, changes: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        record.replace(**changes)
    assert info.value.field == field
    assert info.value.reason
