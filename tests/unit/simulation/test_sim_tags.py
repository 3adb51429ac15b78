"""Flow tags: one constructor per kind, scoped route lookups, and what results carry."""

from __future__ import annotations

import uuid
from ipaddress import ip_address, ip_network

from golden_loader import GOLDEN_DIR, build_frame, load

from tenet.model import Route
from tenet.simulation import Verdict, simulate, tags

R1, R2 = uuid.UUID(int=1), uuid.UUID(int=2)


def test_each_kind_has_its_own_text() -> None:
    bridge, port = uuid.uuid4(), uuid.uuid4()
    assert tags.of_id(port) == str(port)
    assert tags.mac(bridge, bytes.fromhex("020000000001")) == f"mac/{bridge}/02:00:00:00:00:01"
    assert tags.arp(R1, ip_address("10.0.0.1")) == f"arp/{R1}/10.0.0.1"
    assert tags.binding(port) == f"binding/{port}"
    assert tags.route_lookup(R1, ip_address("10.9.1.1")) == f"route/{R1}/0a090101"
    v6 = ip_address("2001:db8::1")
    assert tags.route_lookup(R1, v6) == tags.route_lookup(R1, v6.packed)


def test_route_lookups_are_scoped_by_router_and_nothing_else_is() -> None:
    v4 = tags.route_lookup(R1, ip_address("10.9.1.1"))
    v6 = tags.route_lookup(R1, ip_address("2001:db8::1"))
    assert tags.scope_of(v4) == tags.scope_of(v6) == tags.route_scope(R1) != tags.route_scope(R2)
    for other in (
        tags.of_id(R1),
        tags.mac(R1, b"\x02" * 6),
        tags.arp(R1, ip_address("10.0.0.1")),
        tags.binding(R1),
    ):
        assert tags.scope_of(other) is None
    assert tags.lookup_destination(v4) == ip_address("10.9.1.1")
    assert tags.lookup_destination(v6) == ip_address("2001:db8::1")


def test_lookups_within_a_prefix_of_their_own_family() -> None:
    lookups = [
        tags.route_lookup(R1, ip_address(a))
        for a in ("8.8.8.8", "10.9.1.1", "10.9.255.255", "10.10.0.1", "2001:db8::1", "::a09:101")
    ]
    assert tags.lookups_within(lookups, [ip_network("10.9.0.0/16")]) == {lookups[1], lookups[2]}
    assert tags.lookups_within(lookups, [ip_network("0.0.0.0/0")]) == set(lookups[:4])
    assert tags.lookups_within(lookups, [ip_network("::/0")]) == set(lookups[4:])
    both = [ip_network("8.8.8.8/32"), ip_network("2001:db8::/64")]
    assert tags.lookups_within(lookups, both) == {lookups[0], lookups[4]}
    assert tags.lookups_within(lookups, []) == set()


def test_a_routed_result_is_tagged_with_its_lookup_and_its_whole_ecmp_group() -> None:
    topo, _ = load(GOLDEN_DIR / "router.toml")
    desc = {
        "type": "ipv4", "proto": "tcp", "eth_src": "vm-a1", "eth_dst": "r1-a",
        "src": "10.0.0.1", "dst": "100.64.0.9", "sport": 40000, "dport": 80,
    }  # fmt: skip
    result = simulate(build_frame(topo, desc), topo.id("vm-a1"), topo.view, topo.state(), 1.0)
    assert result.verdict is Verdict.FORWARD, result.trace_text()
    router = topo.id("r1")
    assert tags.route_lookup(router, ip_address("100.64.0.9")) in result.tags
    routes = [r for r in topo.records if isinstance(r, Route) and r.router_id == router]
    equal = [r for r in routes if r.dst == ip_network("100.64.0.0/24") and r.weight == 100]
    heavier = [r for r in routes if r.dst == ip_network("100.64.0.0/24") and r.weight > 100]
    assert len(equal) == 2
    assert heavier
    assert {tags.of_id(r.id) for r in equal} <= result.tags  # the pick and the other member
    assert not {tags.of_id(r.id) for r in heavier} & result.tags  # not of the group
    assert not any(t.startswith("routes/") for t in result.tags)  # no per-router tag
