"""Rules across records: router port subnets, peering, route next hops, jump cycles, DHCP."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

import pytest
from model_factories import OTHER_TENANT, ROUTER_PORT, TENANT, body, uid

from tenet.errors import ValidationError
from tenet.model import DhcpHost, DhcpSubnet, Port, Route, from_dict
from tenet.model.consistency import (
    check_dhcp_host,
    check_peering,
    check_route_next_hop,
    check_router_port_subnets,
    find_jump_cycle,
)

ROUTER_A = str(uid(0xA))
ROUTER_B = str(uid(0xB))
BRIDGE_A = str(uid(0xBA))
BRIDGE_B = str(uid(0xBB))


def router_port(
    subnet: str, address: str, router: str = ROUTER_A, tenant: str = TENANT, **extra: Any
) -> Port:
    return from_dict(
        Port,
        dict(ROUTER_PORT, device_id=router, tenant_id=tenant, subnet=subnet, address=address)
        | extra,
    )


def bridge_port(bridge: str = BRIDGE_A, tenant: str = TENANT, **extra: Any) -> Port:
    return from_dict(Port, body("ports", device_id=bridge, tenant_id=tenant) | extra)


def fails(check: Any, *args: Any) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        check(*args)
    assert info.value.reason
    return info.value


# ---------------------------------------------------------------- router port subnets


@pytest.mark.parametrize(
    ("subnet", "address", "other_subnet", "other_address"),
    [
        ("10.0.0.0/24", "10.0.0.1", "10.0.0.0/24", "10.0.0.2"),  # the same subnet
        ("10.0.0.0/24", "10.0.0.1", "10.0.0.128/25", "10.0.0.129"),  # inside
        ("10.0.0.0/24", "10.0.0.1", "10.0.0.0/16", "10.0.9.1"),  # around
        ("2001:db8::/64", "2001:db8::1", "2001:db8::/48", "2001:db8:0:1::1"),
    ],
)
def test_router_ports_cannot_face_overlapping_subnets(
    subnet: str, address: str, other_subnet: str, other_address: str
) -> None:
    port = router_port(subnet, address)
    other = router_port(other_subnet, other_address)
    err = fails(check_router_port_subnets, port, [other])
    assert err.field == "subnet"
    assert "overlaps" in err.reason
    assert str(other.id) in err.reason


def test_disjoint_subnets_and_other_families_are_fine() -> None:
    port = router_port("10.0.0.0/24", "10.0.0.1")
    siblings = [
        router_port("10.0.1.0/24", "10.0.1.1"),
        router_port("192.168.0.0/16", "192.168.0.1"),
        router_port("::/0", "2001:db8::1"),  # covers everything, but of the other family
        bridge_port(),  # no subnet
    ]
    check_router_port_subnets(port, siblings)


def test_the_port_itself_is_not_a_sibling() -> None:
    port = router_port("10.0.0.0/24", "10.0.0.1")
    # the stored version of the same port, about to be replaced by a change
    stored = port.replace(subnet=port.subnet, name="before")
    widened = from_dict(Port, dict(ROUTER_PORT, id=str(port.id), subnet="10.0.0.0/16"))
    check_router_port_subnets(port, [stored])
    check_router_port_subnets(widened, [stored, router_port("10.1.0.0/24", "10.1.0.1")])
    err = fails(
        check_router_port_subnets, widened, [stored, router_port("10.0.5.0/24", "10.0.5.1")]
    )
    assert err.field == "subnet"


def test_subnets_of_bridge_ports_are_not_checked() -> None:
    check_router_port_subnets(bridge_port(), [router_port("0.0.0.0/0", "10.0.0.1")])


def test_the_first_overlapping_sibling_is_reported_among_many() -> None:
    siblings = [router_port(f"10.0.{i}.0/24", f"10.0.{i}.1") for i in range(1, 6)]
    port = router_port("10.0.3.0/24", "10.0.3.9")
    err = fails(check_router_port_subnets, port, siblings)
    assert str(siblings[2].id) in err.reason


# ---------------------------------------------------------------- peering


def test_router_and_bridge_ports_of_one_tenant_may_be_peered_both_ways() -> None:
    r, b = router_port("10.0.0.0/24", "10.0.0.1"), bridge_port()
    check_peering(r, b)
    check_peering(b, r)


def test_routers_of_different_tenants_may_be_peered() -> None:
    # a tenant router linked to the provider router
    tenant_router = router_port("100.64.0.0/30", "100.64.0.1")
    provider = router_port("100.64.0.0/30", "100.64.0.2", router=ROUTER_B, tenant=OTHER_TENANT)
    check_peering(tenant_router, provider)


@pytest.mark.parametrize(
    ("port", "peer", "keyword"),
    [
        pytest.param(
            router_port("10.0.0.0/24", "10.0.0.1"),
            router_port("10.0.1.0/24", "10.0.1.1"),
            "same device",
            id="two-ports-of-one-router",
        ),
        pytest.param(bridge_port(), bridge_port(), "same device", id="two-ports-of-one-bridge"),
        pytest.param(bridge_port(), bridge_port(BRIDGE_B), "bridge", id="bridge-to-bridge"),
        pytest.param(
            bridge_port(),
            router_port("10.0.0.0/24", "10.0.0.1", tenant=OTHER_TENANT),
            "another tenant",
            id="bridge-to-router-of-another-tenant",
        ),
        pytest.param(
            router_port("10.0.0.0/24", "10.0.0.1", tenant=OTHER_TENANT),
            bridge_port(),
            "another tenant",
            id="router-to-bridge-of-another-tenant",
        ),
        pytest.param(
            bridge_port(),
            bridge_port(BRIDGE_B, tenant=OTHER_TENANT),
            "bridge",
            id="bridge-to-bridge-of-another-tenant",
        ),
    ],
)
def test_peering_rejects(port: Port, peer: Port, keyword: str) -> None:
    err = fails(check_peering, port, peer)
    assert err.field == "peer_id"
    assert keyword in err.reason


def test_a_port_cannot_be_peered_to_itself() -> None:
    port = bridge_port()
    err = fails(check_peering, port, port)
    assert err.field == "peer_id"
    assert "itself" in err.reason


# ---------------------------------------------------------------- route next hops


def route(**changes: Any) -> Route:
    return from_dict(Route, body("routes", router_id=ROUTER_A) | changes)


def test_a_normal_route_leaves_through_a_port_of_its_router() -> None:
    port = router_port("10.0.0.0/24", "10.0.0.1")
    check_route_next_hop(route(next_hop_port_id=str(port.id)), port)
    check_route_next_hop(route(next_hop_port_id=str(port.id), next_hop_gateway="10.0.0.254"), port)
    v6 = router_port("2001:db8::/64", "2001:db8::1")
    check_route_next_hop(
        route(dst="::/0", next_hop_port_id=str(v6.id), next_hop_gateway="2001:db8::ff"), v6
    )


@pytest.mark.parametrize(
    ("port", "changes", "field", "keyword"),
    [
        pytest.param(
            router_port("10.0.0.0/24", "10.0.0.1", router=ROUTER_B),
            {},
            "next_hop_port_id",
            f"router {ROUTER_A}",
            id="port-of-another-router",
        ),
        pytest.param(
            bridge_port(bridge=ROUTER_A),  # even with the router's id as its device id
            {},
            "next_hop_port_id",
            "not a port of router",
            id="bridge-port",
        ),
        pytest.param(None, {}, "next_hop_port_id", "does not exist", id="missing-port"),
        pytest.param(
            router_port("10.0.0.0/24", "10.0.0.1"),
            {"next_hop_gateway": "10.0.1.1"},
            "next_hop_gateway",
            "10.0.0.0/24",
            id="gateway-outside-the-port-subnet",
        ),
        pytest.param(
            router_port("10.0.0.0/30", "10.0.0.1"),
            {"next_hop_gateway": "10.0.0.4"},
            "next_hop_gateway",
            "not in",
            id="gateway-just-past-the-subnet",
        ),
    ],
)
def test_route_next_hop_rejects(
    port: Port | None, changes: dict[str, Any], field: str, keyword: str
) -> None:
    err = fails(check_route_next_hop, route(**changes), port)
    assert err.field == field
    assert keyword in err.reason


@pytest.mark.parametrize("kind", ["blackhole", "reject", "local"])
def test_routes_without_a_next_hop_need_no_port(kind: str) -> None:
    check_route_next_hop(route(type=kind, next_hop_port_id=None), None)


# ---------------------------------------------------------------- jump cycles

A, B, C, D, E = (uid(n) for n in range(1, 6))


def assert_walk(path: list[uuid.UUID], jumps: Mapping[uuid.UUID, Iterable[uuid.UUID]]) -> None:
    """``path`` starts and ends at the same chain and follows jump edges."""
    assert path[0] == path[-1]
    for here, there in itertools.pairwise(path):
        assert there in jumps[here], f"{here} does not jump to {there}"


def test_two_chains_jumping_to_each_other() -> None:
    jumps = {A: [B], B: [A]}
    assert find_jump_cycle(A, jumps) == [A, B, A]
    assert find_jump_cycle(B, jumps) == [B, A, B]


def test_a_chain_jumping_to_itself() -> None:
    assert find_jump_cycle(A, {A: [A]}) == [A, A]


def test_a_cycle_through_three_chains() -> None:
    jumps = {A: [B], B: [C], C: [A]}
    path = find_jump_cycle(A, jumps)
    assert path == [A, B, C, A]
    assert_walk(path, jumps)


def test_a_diamond_is_not_a_cycle() -> None:
    jumps = {A: [B, C], B: [D], C: [D], D: []}
    assert find_jump_cycle(A, jumps) is None


def test_a_cycle_found_behind_a_dead_end_branch() -> None:
    jumps = {A: [B, C], B: [D], C: [E], D: [], E: [A]}
    path = find_jump_cycle(A, jumps)
    assert path == [A, C, E, A]
    assert_walk(path, jumps)


def test_only_cycles_through_the_start_count() -> None:
    # B and C loop on each other, but the chain being checked is not in that loop
    jumps = {A: [B], B: [C], C: [B]}
    assert find_jump_cycle(A, jumps) is None
    assert find_jump_cycle(B, jumps) == [B, C, B]


def test_no_jumps_no_cycle() -> None:
    assert find_jump_cycle(A, {}) is None
    assert find_jump_cycle(A, {A: [], B: [A]}) is None


def test_a_long_chain_of_jumps_without_a_cycle() -> None:
    chain = [uid(n) for n in range(1, 200)]
    jumps = {here: [there] for here, there in itertools.pairwise(chain)}
    assert find_jump_cycle(chain[0], jumps) is None
    jumps[chain[-1]] = [chain[0]]
    path = find_jump_cycle(chain[0], jumps)
    assert path == [*chain, chain[0]]


def test_a_wide_dag_is_walked_once_per_chain() -> None:
    # each layer jumps to both chains of the next: 2**30 paths, 60 chains
    layers = [(uid(2 * i + 100), uid(2 * i + 101)) for i in range(30)]
    jumps: dict[uuid.UUID, list[uuid.UUID]] = {A: list(layers[0])}
    for here, there in itertools.pairwise(layers):
        for chain in here:
            jumps[chain] = list(there)
    assert find_jump_cycle(A, jumps) is None


# ---------------------------------------------------------------- DHCP hosts


def dhcp(cidr: str = "10.0.0.0/24") -> DhcpSubnet:
    return from_dict(DhcpSubnet, body("dhcp_subnets", cidr=cidr))


@pytest.mark.parametrize("ip", ["10.0.0.5", "10.0.0.1", "10.0.0.254"])
def test_dhcp_host_inside_the_subnet(ip: str) -> None:
    check_dhcp_host(from_dict(DhcpHost, body("dhcp_hosts", ip=ip)), dhcp())


@pytest.mark.parametrize(
    "ip",
    [
        "10.0.1.5",
        "192.168.0.5",
        "2001:db8::5",
        "::ffff:10.0.0.5",
        "10.0.0.0",  # the network address
        "10.0.0.255",  # the broadcast address
    ],
)
def test_dhcp_host_outside_the_subnet(ip: str) -> None:
    host = from_dict(DhcpHost, body("dhcp_hosts", ip=ip))
    err = fails(check_dhcp_host, host, dhcp())
    assert err.field == "ip"
    assert "10.0.0.0/24" in err.reason
