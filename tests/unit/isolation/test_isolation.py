"""Tenants are isolated by the simulation (issue "Tenant boundary", point 3).

The property (``isolation_check``): a packet entering a port of tenant T outputs
to no port of another tenant, emits on none, writes no learned state on another
tenant's device and reads none of its records, in its own walk and in the walks
of the frames it makes devices emit, unless its path went out through the
operator's edge. Checked over ``WORLDS`` x ``PACKETS`` generated cases
(``isolation_world`` / ``isolation_build``: 2-4 tenants with the same addresses
and MACs, random routes, rules and learned state, gateways onto the operator's
external network); ``run.py`` runs the same at any scale.

The checker is shown to fail: on a cross-tenant link an admin could make between
two tenants' routers (a hole that does not go through the operator), on made-up
results that reach another tenant, and through the walk of an emitted frame. And
shown to let through what crosses the edge.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import time
import uuid
from collections import defaultdict

import pytest
from isolation_build import WorldBuilder, build_world
from isolation_check import Tally, check, crossed_edge, explain, run_world
from isolation_world import (
    NOW,
    World,
    case_rng,
    draw_case,
    gw_address,
    public_net,
    router_mac,
    vm_mac,
    world_seed,
)

from tenet.model import DeviceType, Port, Route
from tenet.packets import ICMP, Ethernet, IPv4, Packet, mac_from_str
from tenet.packets.actions import OutputLocal, OutputTunnel
from tenet.simulation import (
    ArpLearned,
    Emit,
    MacLearned,
    SimulationResult,
    TraceStep,
    Verdict,
    simulate,
)

SEED = 20_240_601  # the run's base seed; world k is world_seed(SEED, k)
WORLDS = 100
PACKETS = 100
MIN_CASES = 10_000


# -- the property, at size ------------------------------------------------------------------


def test_tenants_are_isolated_over_generated_worlds() -> None:
    started = time.perf_counter()
    tally = Tally()
    for k in range(WORLDS):
        tally.merge(run_world(world_seed(SEED, k), PACKETS))
    seconds = time.perf_counter() - started
    assert tally.violations == 0, "\n\n".join(tally.reports)
    assert tally.worlds == WORLDS
    assert tally.cases == WORLDS * PACKETS >= MIN_CASES
    # the cases reach what the property is about, not only the parser
    reached = (
        "verdict forward",
        "verdict drop",
        "verdict consumed",
        "verdict wait",
        "output local",
        "output tunnel",
        "emit walks",
        "mac learned",
        "arp learned",
        "crossed the edge",
        "another tenant reached after the edge",
        "ECMP",
        "rule decided",
        "port security drop",
        "world direct",
        "world edge",
        "world 2 tenants",
        "world 3 tenants",
        "world 4 tenants",
    )
    missing = [what for what in reached if not tally.counts[what]]
    assert not missing, (missing, dict(tally.counts))
    print(f"\n{tally.cases} cases on {tally.worlds} worlds in {seconds:.1f} s: no violation")


def test_a_seed_is_one_world() -> None:
    seed = world_seed(SEED, 1)
    a, b = build_world(seed), build_world(seed)
    assert a.records == b.records
    assert a.state == b.state
    for packet in range(20):
        assert draw_case(a, case_rng(seed, packet)) == draw_case(b, case_rng(seed, packet))


def test_tenants_reuse_addresses_macs_and_learned_macs() -> None:
    world = build_world(3, tenants=3, simple=True)
    for name in ("b1/vm0", "b2/vm1", "r0/p1", "r0/p2"):
        ports = [world.view.ports[world.id(f"t{i}/{name}")] for i in range(3)]
        assert len({(p.mac, p.fixed_ips, p.address, p.subnet) for p in ports}) == 1, name
    # random worlds learn the same MACs on bridges of different tenants
    tenants_by_mac: dict[bytes, set[object]] = defaultdict(set)
    for k in range(5):
        w = build_world(world_seed(SEED, k))
        for bridge, mac in w.state.macs:
            tenants_by_mac[mac].add((k, w.owner[bridge]))
    assert any(len({t for _, t in seen}) > 1 for seen in tenants_by_mac.values())


# -- packets built by hand --------------------------------------------------------------------


def _ping(src_port: Port, dst: str, eth_dst: str, ttl: int = 64) -> bytes:
    assert src_port.mac is not None
    eth = Ethernet(mac_from_str(eth_dst), mac_from_str(src_port.mac), 0x0800)
    src = src_port.fixed_ips[0]
    assert isinstance(src, ipaddress.IPv4Address)
    layer = IPv4(src, ipaddress.IPv4Address(dst), 1, ttl=ttl)
    return Packet(eth, layer, ICMP.echo_request(7, 1), b"isolation").build()


def _run(world: World, port_name: str, frame: bytes) -> tuple[uuid.UUID, SimulationResult]:
    port = world.id(port_name)
    return port, simulate(frame, port, world.view, world.state, NOW)


def _out_ports(result: SimulationResult) -> set[uuid.UUID]:
    return {o.port_id for o in result.outputs if isinstance(o, OutputLocal | OutputTunnel)}


# -- the checker fails on a hole ------------------------------------------------------------


def _hole(b: WorldBuilder) -> None:
    """Tenant t0's router linked straight to tenant t1's (an admin may link two routers
    of different tenants), and a route of t0 into 10.0.1.0/25 through that link."""
    (t0, t1), (r0, r1) = b.tenant_ids[:2], b.tenant_routers[:2]
    subnet = ipaddress.ip_network("10.99.0.0/30")
    near, far = (
        b.create(
            Port(
                id=b.new_id(),
                tenant_id=tenant,
                device_id=router.id,
                device_type=DeviceType.ROUTER,
                name=f"{router.name}/hole",
                mac=mac,
                address=subnet.network_address + n,
                subnet=subnet,
            )
        )
        for n, tenant, router, mac in (
            (1, t0, r0, "02:00:00:00:00:aa"),
            (2, t1, r1, "02:00:00:00:00:bb"),
        )
    )
    b.o.link(near.id, far.id)
    b.create(
        Route(
            id=b.new_id(),
            tenant_id=t0,
            router_id=r0.id,
            name="t0/r0:hole",
            dst=ipaddress.ip_network("10.0.1.0/25"),
            next_hop_port_id=near.id,
        )
    )


@pytest.mark.parametrize("direct", [False, True], ids=["edge", "direct"])
def test_the_checker_reports_a_link_between_two_tenants(direct: bool) -> None:
    seed = 11
    world = build_world(seed, tenants=2, direct=direct, simple=True, before_snapshot=_hole)
    t0, t1 = world.tenants
    vm = world.view.ports[world.id("t0/b2/vm0")]
    frame = _ping(vm, "10.0.1.10", router_mac(0, 2))
    in_port, result = _run(world, "t0/b2/vm0", frame)
    # through the hole, t0's packet reaches t1's VM at t0's own address
    assert result.verdict is Verdict.FORWARD, result.trace_text()
    assert _out_ports(result) == {world.id("t1/b1/vm0")}
    assert not crossed_edge(world, result)
    findings = check(world, t0, result)
    assert {f.what for f in findings} >= {"output", "trace", "tag"}
    assert {f.other for f in findings} == {t1}
    output = next(f for f in findings if f.what == "output")
    report = explain(world, output, 0, in_port, frame)
    for text in (
        "a packet of tenant t0 reached tenant t1",
        f"world seed {seed}",
        "ingress port t0/b2/vm0",
        "10.0.2.10 -> 10.0.1.10",
        "offending output",
        "t1/b1/vm0",
        "port t1/r0/hole: ingress",  # the trace
    ):
        assert text in report, report
    others = [f for f in findings if f is not output]
    report = explain(world, output, 0, in_port, frame, others)
    assert f"and {len(others)} more thing(s) of other tenants" in report
    assert "trace: trace step 'router t1/r0: connected 10.0.1.0/24" in report


def test_the_checker_follows_emitted_frames() -> None:
    """A frame a device of t0 emits into the hole reaches t1: found in the emit's walk."""
    world = build_world(12, tenants=2, simple=True, before_snapshot=_hole)
    t0, t1 = world.tenants
    hole = world.id("t0/r0/hole")
    eth = Ethernet(mac_from_str("02:00:00:00:00:bb"), mac_from_str("02:00:00:00:00:aa"), 0x0800)
    layer = IPv4(ipaddress.IPv4Address("10.99.0.1"), ipaddress.IPv4Address("10.0.1.11"), 1)
    frame = Packet(eth, layer, ICMP(0, 0, 0x00070001), b"reply").build()
    made_up = SimulationResult(Verdict.CONSUMED, emit=(Emit(hole, frame, from_device=True),))
    findings = check(world, t0, made_up)
    assert findings
    assert {f.other for f in findings} == {t1}
    output = next(f for f in findings if f.what == "output")
    assert output.path == ("simulate", "emit #0 from t0/r0/hole")
    assert "t1/b1/vm1" in output.item


# -- the checker fails on made-up results --------------------------------------------------------


def _made_up(world: World) -> dict[str, SimulationResult]:
    """Results that each reach tenant t1 in one way, for a packet of t0."""
    theirs, bridge, router = world.id("t1/b1/vm0"), world.id("t1/b1"), world.id("t1/r0")
    mac = mac_from_str(vm_mac(1, 0))
    return {
        "output": SimulationResult(Verdict.FORWARD, actions=(OutputLocal(theirs),)),
        "emit": SimulationResult(Verdict.CONSUMED, emit=(Emit(theirs, b""),)),
        "mac-learned": SimulationResult(
            Verdict.FORWARD, state=(MacLearned(bridge, mac, theirs, NOW),)
        ),
        "arp-learned": SimulationResult(
            Verdict.CONSUMED,
            state=(ArpLearned(router, ipaddress.ip_address("10.0.1.10"), mac, NOW),),
        ),
        "trace": SimulationResult(Verdict.DROP, trace=(TraceStep("router", router, "t1/r0", "x"),)),
        "tag": SimulationResult(Verdict.DROP, tags=frozenset({f"mac/{bridge}/{vm_mac(1, 0)}"})),
    }


def test_the_checker_reports_made_up_results() -> None:
    world = build_world(13, tenants=2, simple=True)
    t0, t1 = world.tenants
    for what, result in _made_up(world).items():
        findings = check(world, t0, result)
        assert findings, what
        assert {f.what for f in findings} == {what}
        assert {(f.tenant, f.other) for f in findings} == {(t0, t1)}
        # what t1's own packet does to t1's records is no finding
        assert check(world, t1, result) == []


@pytest.mark.parametrize("direct", [False, True], ids=["edge", "direct"])
def test_the_checker_lets_through_what_entered_by_the_edge(direct: bool) -> None:
    world = build_world(13, tenants=2, direct=direct, simple=True)
    t0 = world.tenants[0]
    upstream, gateway = world.id("op/ext/upstream"), world.id("t1/r0/gw")
    operator_in = TraceStep("port", upstream, "op/ext/upstream", "ingress")
    operator_out = TraceStep("port", upstream, "op/ext/upstream", "egress: local interface")
    t1_in = TraceStep("port", gateway, "t1/r0/gw", "ingress")
    t1_vm_in = TraceStep("port", world.id("t1/b1/vm0"), "t1/b1/vm0", "ingress")
    for what, result in _made_up(world).items():

        def made(*steps: TraceStep, result: SimulationResult = result) -> SimulationResult:
            return dataclasses.replace(result, trace=(*steps, *result.trace))

        # out through the operator, in through t1's gateway: allowed
        assert check(world, t0, made(operator_in, t1_in)) == [], what
        # leaving by an operator port is not entering one
        assert check(world, t0, made(operator_out, t1_in)), what
        # after the edge, t1 entered elsewhere than by its gateway (or not at all)
        wrong = check(world, t0, made(operator_in, t1_vm_in))
        assert wrong, what
        assert "not through a port of t1" in wrong[0].why
        if what not in ("trace", "tag"):  # a tag of t1 alone needs only the crossing
            assert check(world, t0, made(operator_in)), what


# -- real paths through the edge are let through --------------------------------------------------


def test_a_packet_through_the_edge_router_reaches_another_tenant() -> None:
    world = build_world(14, tenants=2, direct=False, simple=True)
    t0 = world.tenants[0]
    vm = world.view.ports[world.id("t0/b1/vm0")]
    dst = str(public_net(1).network_address + 5)  # t1's public VM
    _, result = _run(world, "t0/b1/vm0", _ping(vm, dst, router_mac(0, 1)))
    assert result.verdict is Verdict.FORWARD, result.trace_text()
    assert _out_ports(result) == {world.id("t1/b4/vm0")}
    assert crossed_edge(world, result)
    assert check(world, t0, result) == []


def test_a_ping_across_the_external_bridge_is_answered_by_another_tenant() -> None:
    world = build_world(15, tenants=2, direct=True, simple=True)
    t0, t1 = world.tenants
    vm = world.view.ports[world.id("t0/b1/vm0")]
    _, result = _run(world, "t0/b1/vm0", _ping(vm, str(gw_address(1, True)), router_mac(0, 1)))
    assert result.verdict is Verdict.CONSUMED, result.trace_text()
    (reply,) = result.emit
    assert reply.from_device
    assert world.owner[reply.port_id] == t1  # t1's gateway answers
    assert crossed_edge(world, result)
    assert check(world, t0, result) == []
