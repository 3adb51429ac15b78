"""The object layer keeps references whole, on every store backend."""

from __future__ import annotations

import ipaddress
import threading
import uuid
from pathlib import Path

import pytest
from objworld import Topo

from tenet.clock import FakeClock
from tenet.errors import (
    AlreadyExists,
    NotFoundError,
    ReferenceConflict,
    TxnConflict,
    ValidationError,
)
from tenet.model import (
    Bridge,
    Chain,
    Condition,
    DeviceType,
    DhcpHost,
    DhcpSubnet,
    Host,
    Port,
    PortBinding,
    PortGroup,
    Route,
    Router,
    Rule,
    RuleAction,
    Tenant,
    TunnelZone,
    TunnelZoneMember,
)
from tenet.model.types import MAC, TUNNEL_KEY_MAX
from tenet.store.keys import OBJECTS
from tenet.store.objects import ObjectStore, decode_event
from tenet.store.sqlite import SqliteStore


def test_linking_sets_both_sides_and_unlinking_clears_both(topo: Topo) -> None:
    bridge, router = topo.bridge(), topo.router()
    bp, rp = topo.bport(bridge), topo.rport(router)
    topo.o.link(bp.id, rp.id)
    assert topo.port(bp.id).peer_id == rp.id
    assert topo.port(rp.id).peer_id == bp.id
    topo.o.unlink(rp.id)
    assert topo.port(bp.id).peer_id is None
    assert topo.port(rp.id).peer_id is None


def test_deleting_a_bridge_deletes_its_ports_and_unlinks_their_peers(topo: Topo) -> None:
    bridge, router = topo.bridge(), topo.router()
    bp, rp = topo.bport(bridge), topo.rport(router)
    other = topo.bport(bridge)
    topo.o.link(bp.id, rp.id)
    topo.o.delete(Bridge, bridge.id)
    assert topo.o.find(Port, bp.id) is None
    assert topo.o.find(Port, other.id) is None
    assert topo.port(rp.id).peer_id is None
    with pytest.raises(NotFoundError, match="bridge"):
        topo.o.get(Bridge, bridge.id)


def test_deleting_a_router_deletes_ports_routes_and_unlinks(topo: Topo) -> None:
    bridge, router = topo.bridge(), topo.router()
    bp, rp = topo.bport(bridge), topo.rport(router)
    topo.o.link(bp.id, rp.id)
    route = topo.o.create(
        Route(
            tenant_id=topo.tenant.id,
            router_id=router.id,
            dst=ipaddress.ip_network("192.168.0.0/16"),
            next_hop_port_id=rp.id,
            next_hop_gateway=ipaddress.ip_address("10.0.0.9"),
        )
    ).record
    topo.o.delete(Router, router.id)
    assert topo.o.find(Route, route.id) is None
    assert topo.o.find(Port, rp.id) is None
    assert topo.port(bp.id).peer_id is None


def test_deleting_a_port_deletes_routes_through_it(topo: Topo) -> None:
    router = topo.router()
    rp = topo.rport(router)
    route = topo.o.create(
        Route(
            tenant_id=topo.tenant.id,
            router_id=router.id,
            dst=ipaddress.ip_network("0.0.0.0/0"),
            next_hop_port_id=rp.id,
        )
    ).record
    topo.o.delete(Port, rp.id)
    assert topo.o.find(Route, route.id) is None


def test_deleting_a_chain_in_use_is_refused_with_the_user_named(topo: Topo) -> None:
    chain = topo.chain()
    bridge = topo.bridge()
    port = topo.bport(bridge, inbound_chain_id=chain.id)
    with pytest.raises(ReferenceConflict, match=str(port.id)) as info:
        topo.o.delete(Chain, chain.id)
    assert "inbound_chain_id" in str(info.value)
    topo.o.update(topo.port(port.id).replace(inbound_chain_id=None))
    topo.o.delete(Chain, chain.id)
    assert topo.o.find(Chain, chain.id) is None


def test_deleting_a_chain_deletes_its_rules(topo: Topo) -> None:
    chain = topo.chain()
    rule = topo.o.create(Rule(tenant_id=topo.tenant.id, chain_id=chain.id)).record
    topo.o.delete(Chain, chain.id)
    assert topo.o.find(Rule, rule.id) is None


def test_a_refused_delete_writes_nothing(topo: Topo) -> None:
    group = topo.o.create(PortGroup(tenant_id=topo.tenant.id)).record
    port = topo.bport(topo.bridge(), port_group_ids=(group.id,))
    chain = topo.chain()
    topo.o.create(
        Rule(
            tenant_id=topo.tenant.id,
            chain_id=chain.id,
            condition=Condition(in_port_group_id=group.id),
        )
    )
    before = topo.o.store.revision()
    with pytest.raises(ReferenceConflict, match="in_port_group_id"):
        topo.o.delete(PortGroup, group.id)
    assert topo.o.store.revision() == before
    assert topo.port(port.id).port_group_ids == (group.id,)


def test_deleting_a_port_group_clears_membership(topo: Topo) -> None:
    group = topo.o.create(PortGroup(tenant_id=topo.tenant.id)).record
    port = topo.bport(topo.bridge(), port_group_ids=(group.id,))
    topo.o.delete(PortGroup, group.id)
    assert topo.port(port.id).port_group_ids == ()


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda t: Bridge(tenant_id=uuid.uuid4()), "tenant_id"),
        (
            lambda t: Port(
                tenant_id=t.tenant.id, device_id=uuid.uuid4(), device_type=DeviceType.BRIDGE
            ),
            "device_id",
        ),
        (
            lambda t: Bridge(tenant_id=t.tenant.id, inbound_chain_id=uuid.uuid4()),
            "inbound_chain_id",
        ),
        (
            lambda t: Rule(
                tenant_id=t.tenant.id,
                chain_id=t.chain().id,
                action=RuleAction.JUMP,
                jump_chain_id=uuid.uuid4(),
            ),
            "jump_chain_id",
        ),
        (
            lambda t: Route(
                tenant_id=t.tenant.id,
                router_id=t.router().id,
                dst=ipaddress.ip_network("0.0.0.0/0"),
                next_hop_port_id=uuid.uuid4(),
            ),
            "next_hop_port_id",
        ),
        (
            lambda t: Port(
                tenant_id=t.tenant.id,
                device_id=t.bridge().id,
                device_type=DeviceType.BRIDGE,
                port_group_ids=(uuid.uuid4(),),
            ),
            "port_group_ids",
        ),
    ],
)
def test_a_reference_to_a_missing_object_is_refused(topo: Topo, build: object, field: str) -> None:
    record = build(topo)  # type: ignore[operator]
    before = topo.o.store.revision()
    with pytest.raises(NotFoundError, match="does not exist") as info:
        topo.o.create(record)
    assert info.value.field == field
    assert topo.o.store.revision() == before


def test_a_reference_to_another_tenants_object_is_refused(topo: Topo) -> None:
    other = Topo(topo.o)
    chain = other.chain()
    with pytest.raises(ValidationError, match="another tenant") as info:
        topo.bridge(inbound_chain_id=chain.id)
    assert info.value.field == "inbound_chain_id"


def test_peering_rules(topo: Topo) -> None:
    bridge, router = topo.bridge(), topo.router()
    b1, b2 = topo.bport(bridge), topo.bport(bridge)
    b3 = topo.bport(topo.bridge())
    r1, r2 = topo.rport(router, "10.0.1.0/24"), topo.rport(router, "10.0.2.0/24")
    with pytest.raises(ValidationError, match="same device") as info:
        topo.o.link(r1.id, r2.id)
    assert info.value.field == "peer_id"
    with pytest.raises(ValidationError, match="bridge"):
        topo.o.link(b1.id, b3.id)
    topo.o.link(b1.id, r1.id)
    with pytest.raises(ReferenceConflict, match="already linked"):
        topo.o.link(b2.id, r1.id)
    # router to router across devices is fine
    r3 = topo.rport(topo.router(), "10.0.3.0/30")
    topo.o.link(r2.id, r3.id)
    assert topo.port(r3.id).peer_id == r2.id


def test_interior_and_bound_ports_exclude_each_other(topo: Topo) -> None:
    host = topo.o.create(Host(name="h1")).record
    bridge, router = topo.bridge(), topo.router()
    bp, rp = topo.bport(bridge), topo.rport(router)
    topo.o.create(PortBinding(port_id=bp.id, host_id=host.id, interface="veth1"))
    with pytest.raises(ReferenceConflict, match="bound"):
        topo.o.link(bp.id, rp.id)
    other = topo.bport(bridge)
    topo.o.link(other.id, rp.id)
    with pytest.raises(ValidationError, match="interior") as info:
        topo.o.create(PortBinding(port_id=other.id, host_id=host.id, interface="veth2"))
    assert info.value.field == "port_id"


def test_bindings_are_unique_per_port_and_per_interface(topo: Topo) -> None:
    host = topo.o.create(Host(name="h1")).record
    bridge = topo.bridge()
    p1, p2 = topo.bport(bridge), topo.bport(bridge)
    topo.o.create(PortBinding(port_id=p1.id, host_id=host.id, interface="veth1"))
    with pytest.raises(AlreadyExists, match="already bound"):
        topo.o.create(PortBinding(port_id=p1.id, host_id=host.id, interface="veth9"))
    with pytest.raises(AlreadyExists, match="veth1"):
        topo.o.create(PortBinding(port_id=p2.id, host_id=host.id, interface="veth1"))
    topo.o.delete(Port, p1.id)
    assert topo.o.list(PortBinding) == []
    topo.o.create(PortBinding(port_id=p2.id, host_id=host.id, interface="veth1"))


def test_tunnel_zone_membership_is_unique(topo: Topo) -> None:
    zone = topo.o.create(TunnelZone(name="z")).record
    host = topo.o.create(Host(name="h")).record
    addr = ipaddress.ip_address("192.0.2.1")
    topo.o.create(TunnelZoneMember(tunnel_zone_id=zone.id, host_id=host.id, address=addr))
    with pytest.raises(AlreadyExists):
        topo.o.create(TunnelZoneMember(tunnel_zone_id=zone.id, host_id=host.id, address=addr))
    topo.o.delete(Host, host.id)
    assert topo.o.list(TunnelZoneMember) == []


def test_tunnel_keys_are_unique_24_bit_and_stable(topo: Topo) -> None:
    bridge = topo.bridge()
    ports = [topo.bport(bridge) for _ in range(60)]
    keys = [p.tunnel_key for p in ports] + [bridge.tunnel_key]
    assert len(set(keys)) == len(keys)
    assert all(1 <= k <= TUNNEL_KEY_MAX for k in keys)
    stored = topo.port(ports[0].id)
    with pytest.raises(ValidationError, match="cannot be changed") as info:
        topo.o.update(stored.replace(tunnel_key=stored.tunnel_key + 1000))
    assert info.value.field == "tunnel_key"
    # an update that leaves the key at 0 keeps the allocated one
    kept = topo.o.update(stored.replace(tunnel_key=0, name="renamed")).record
    assert kept.tunnel_key == stored.tunnel_key


def test_an_explicit_tunnel_key_is_claimed_once_and_freed_on_delete(topo: Topo) -> None:
    bridge = topo.bridge()
    first = topo.bport(bridge, tunnel_key=4242)
    assert first.tunnel_key == 4242
    with pytest.raises(AlreadyExists, match="4242"):
        topo.bport(bridge, tunnel_key=4242)
    topo.o.delete(Port, first.id)
    assert topo.bport(bridge, tunnel_key=4242).tunnel_key == 4242


def test_allocation_skips_explicitly_taken_keys(topo: Topo) -> None:
    bridge = topo.bridge()  # takes the next key
    taken = bridge.tunnel_key + 1
    topo.bport(bridge, tunnel_key=taken)
    auto = topo.bport(bridge)
    assert auto.tunnel_key not in (taken, bridge.tunnel_key)


def test_concurrent_writers_never_share_a_tunnel_key(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    setup = SqliteStore(path)
    o = ObjectStore(setup)
    tenant = o.create(Tenant(name="t")).record
    bridge = o.create(Bridge(tenant_id=tenant.id)).record
    keys: list[int] = []
    lock = threading.Lock()

    def writer() -> None:
        store = SqliteStore(path)
        try:
            objs = ObjectStore(store)
            for _ in range(15):
                port = objs.create(
                    Port(tenant_id=tenant.id, device_id=bridge.id, device_type=DeviceType.BRIDGE)
                ).record
                with lock:
                    keys.append(port.tunnel_key)
        finally:
            store.close()

    threads = [threading.Thread(target=writer) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    setup.close()
    assert len(keys) == 45
    assert len(set(keys)) == 45


def test_updates_with_a_stale_revision_are_conflicts(topo: Topo) -> None:
    bridge = topo.bridge()
    stored = topo.o.get(Bridge, bridge.id)
    topo.o.update(stored.record.replace(name="one"), expected_revision=stored.revision)
    with pytest.raises(TxnConflict, match="changed since"):
        topo.o.update(stored.record.replace(name="two"), expected_revision=stored.revision)
    assert topo.o.get(Bridge, bridge.id).record.name == "one"


def test_identity_fields_cannot_change(topo: Topo) -> None:
    port = topo.bport(topo.bridge())
    with pytest.raises(ValidationError) as info:
        topo.o.update(port.replace(device_id=topo.bridge().id))
    assert info.value.field == "device_id"


def test_timestamps_come_from_the_clock(objects: ObjectStore) -> None:
    clock = FakeClock(5000.0)
    o = ObjectStore(objects.store, clock)
    tenant = o.create(Tenant(name="t")).record
    assert tenant.created_at == tenant.updated_at == 5000.0
    clock.advance(10)
    updated = o.update(tenant.replace(name="u")).record
    assert (updated.created_at, updated.updated_at) == (5000.0, 5010.0)


def test_rules_are_kept_in_chain_order(topo: Topo) -> None:
    chain = topo.chain()
    t = topo.tenant.id
    a = topo.o.create(Rule(tenant_id=t, chain_id=chain.id, name="a")).record
    b = topo.o.create(Rule(tenant_id=t, chain_id=chain.id, name="b")).record
    c = topo.o.create(Rule(tenant_id=t, chain_id=chain.id, name="c"), position=0).record
    assert topo.o.get(Chain, chain.id).record.rule_ids == (c.id, a.id, b.id)
    with pytest.raises(ValidationError) as info:
        topo.o.create(Rule(tenant_id=t, chain_id=chain.id), position=7)
    assert info.value.field == "position"
    topo.o.delete(Rule, a.id)
    assert topo.o.get(Chain, chain.id).record.rule_ids == (c.id, b.id)
    stored = topo.o.get(Chain, chain.id).record
    topo.o.update(stored.replace(rule_ids=(b.id, c.id)))
    with pytest.raises(ValidationError, match="reordered") as info:
        topo.o.update(stored.replace(rule_ids=(b.id,)))
    assert info.value.field == "rule_ids"


def test_a_jump_cycle_through_chains_is_refused(topo: Topo) -> None:
    t = topo.tenant.id
    a, b, c = topo.chain(), topo.chain(), topo.chain()
    topo.o.create(Rule(tenant_id=t, chain_id=a.id, action=RuleAction.JUMP, jump_chain_id=b.id))
    topo.o.create(Rule(tenant_id=t, chain_id=b.id, action=RuleAction.JUMP, jump_chain_id=c.id))
    before = topo.o.store.revision()
    with pytest.raises(ValidationError, match="loop") as info:
        topo.o.create(Rule(tenant_id=t, chain_id=c.id, action=RuleAction.JUMP, jump_chain_id=a.id))
    assert info.value.field == "jump_chain_id"
    assert topo.o.store.revision() == before
    # a chain used as a jump target cannot be deleted
    with pytest.raises(ReferenceConflict, match="jump_chain_id"):
        topo.o.delete(Chain, c.id)


def test_router_ports_must_face_disjoint_subnets(topo: Topo) -> None:
    router = topo.router()
    topo.rport(router, "10.0.0.0/24")
    with pytest.raises(ValidationError, match="overlaps") as info:
        topo.rport(router, "10.0.0.0/16")
    assert info.value.field == "subnet"
    topo.rport(topo.router(), "10.0.0.0/16")  # another router may
    topo.rport(router, "2001:db8::/64")


def test_a_route_must_leave_through_a_port_of_its_router(topo: Topo) -> None:
    r1, r2 = topo.router(), topo.router()
    foreign = topo.rport(r2)
    with pytest.raises(ValidationError, match="not a port of router") as info:
        topo.o.create(
            Route(
                tenant_id=topo.tenant.id,
                router_id=r1.id,
                dst=ipaddress.ip_network("0.0.0.0/0"),
                next_hop_port_id=foreign.id,
            )
        )
    assert info.value.field == "next_hop_port_id"


def test_dhcp_hosts_stay_inside_their_subnet(topo: Topo) -> None:
    bridge = topo.bridge()
    subnet = topo.o.create(
        DhcpSubnet(
            tenant_id=topo.tenant.id, bridge_id=bridge.id, cidr=ipaddress.ip_network("10.1.0.0/24")
        )
    ).record
    with pytest.raises(ValidationError) as info:
        topo.o.create(
            DhcpHost(
                tenant_id=topo.tenant.id,
                subnet_id=subnet.id,
                mac=MAC("02:00:00:00:00:09"),
                ip=ipaddress.ip_address("10.2.0.5"),
            )
        )
    assert info.value.field == "ip"
    topo.o.delete(Bridge, bridge.id)
    assert topo.o.list(DhcpSubnet) == []


def test_a_tenant_is_deleted_only_when_it_owns_nothing(topo: Topo) -> None:
    bridge = topo.bridge()
    with pytest.raises(ReferenceConflict, match="bridges"):
        topo.o.delete(Tenant, topo.tenant.id)
    topo.o.delete(Bridge, bridge.id)
    topo.o.delete(Tenant, topo.tenant.id)


def test_list_filters_by_field(topo: Topo) -> None:
    b1, b2 = topo.bridge(), topo.bridge()
    topo.bport(b1)
    topo.bport(b1)
    topo.bport(b2)
    assert len(topo.o.list(Port, device_id=b1.id)) == 2
    with pytest.raises(ValidationError) as info:
        topo.o.list(Port, colour="red")
    assert info.value.field == "colour"


def test_creating_twice_is_refused(topo: Topo) -> None:
    bridge = topo.bridge()
    with pytest.raises(AlreadyExists):
        topo.o.create(bridge)


def test_changes_arrive_on_a_watch_as_object_events(topo: Topo) -> None:
    start = topo.o.store.revision() + 1
    bridge = topo.bridge()
    port = topo.bport(bridge)
    topo.o.delete(Bridge, bridge.id)
    events = []
    with topo.o.store.watch(OBJECTS, start) as watch:
        while len(events) < 4:
            batch = watch.get(timeout=5)
            assert batch, "the watch went quiet"
            events += [e for e in (decode_event(ev) for ev in batch) if e is not None]
    assert [(e.kind, e.id, e.record is None) for e in events] == [
        (Bridge, bridge.id, False),
        (Port, port.id, False),
        (Bridge, bridge.id, True),
        (Port, port.id, True),
    ]
