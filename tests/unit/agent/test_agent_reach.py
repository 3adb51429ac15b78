"""An agent holds what its local ports can reach, fetched on demand, and nothing else."""

from __future__ import annotations

import ipaddress
import uuid

from tenet.clock import FakeClock
from tenet.model import (
    Bridge,
    Chain,
    DeviceType,
    Host,
    Port,
    PortBinding,
    Router,
    Rule,
    Tenant,
    TunnelZone,
    TunnelZoneMember,
)
from tenet.model.types import MAC
from tenet.store import EventType, MemoryStore
from tenet.store.keys import OBJECTS
from tenet.store.objects import ObjectStore, decode_event
from tenet.store.reach import Reach


def world() -> tuple[ObjectStore, dict[str, uuid.UUID]]:
    o = ObjectStore(MemoryStore(FakeClock()), FakeClock())
    zone = o.create(TunnelZone(name="z")).record
    ids: dict[str, uuid.UUID] = {}
    for n in (1, 2):
        host = o.create(Host(name=f"h{n}")).record
        ip = ipaddress.ip_address(f"192.0.2.{n}")
        o.create(TunnelZoneMember(tunnel_zone_id=zone.id, host_id=host.id, address=ip))
        ids[f"h{n}"] = host.id
    for name, host in (("a", "h1"), ("b", "h2")):
        tenant = o.create(Tenant(name=name)).record
        bridge = o.create(Bridge(tenant_id=tenant.id, name=f"{name}-net")).record
        port = o.create(
            Port(
                tenant_id=tenant.id,
                device_id=bridge.id,
                device_type=DeviceType.BRIDGE,
                mac=MAC("02:00:00:00:00:01"),
            )
        ).record
        o.create(PortBinding(port_id=port.id, host_id=ids[host], interface=f"tap-{name}"))
        ids[f"{name}-tenant"], ids[f"{name}-net"], ids[f"{name}-port"] = (
            tenant.id,
            bridge.id,
            port.id,
        )
    return o, ids


def follow(o: ObjectStore, reach: Reach, start: int) -> list[bool]:
    """Feed every object event since ``start`` to ``reach``; which ones it took."""
    taken = []
    with o.store.watch(OBJECTS, start) as watch:
        while batch := watch.get(timeout=0.1):
            for event in batch:
                obj = decode_event(event)
                assert obj is not None
                taken.append(reach.accept(obj) is not None and event.type is EventType.PUT)
    return taken


def test_an_agent_loads_only_what_its_ports_reach() -> None:
    o, ids = world()
    held = Reach(o, ids["h1"]).load()
    assert ids["a-net"] in held
    assert ids["a-port"] in held
    assert ids["b-net"] not in held  # tenant b has no port on h1
    assert ids["b-port"] not in held
    # the remote host's address is not needed until a port on it is reachable
    assert ids["h2"] not in held


def test_linking_to_a_router_makes_its_other_networks_reachable() -> None:
    o, ids = world()
    reach = Reach(o, ids["h1"])
    reach.load()
    start = o.store.revision() + 1
    tenant = ids["a-tenant"]
    router = o.create(Router(tenant_id=tenant, name="r")).record
    rport = o.create(
        Port(
            tenant_id=tenant,
            device_id=router.id,
            device_type=DeviceType.ROUTER,
            mac=MAC("02:00:00:00:01:01"),
            address=ipaddress.ip_address("10.0.0.1"),
            subnet=ipaddress.ip_network("10.0.0.0/24"),
        )
    ).record
    bport = o.create(
        Port(tenant_id=tenant, device_id=ids["a-net"], device_type=DeviceType.BRIDGE)
    ).record
    o.link(bport.id, rport.id)
    follow(o, reach, start)
    assert bport.id in reach.records  # a new port on a held bridge
    assert router.id in reach.records  # reached through the link
    assert rport.id in reach.records


def test_changes_to_unreachable_objects_are_ignored_and_new_chains_are_fetched() -> None:
    o, ids = world()
    reach = Reach(o, ids["h1"])
    reach.load()
    start = o.store.revision() + 1
    o.create(Bridge(tenant_id=ids["b-tenant"], name="b-other"))  # tenant b: not ours
    chain = o.create(Chain(tenant_id=ids["a-tenant"], name="sg")).record
    rule = o.create(Rule(tenant_id=ids["a-tenant"], chain_id=chain.id)).record
    port = o.get(Port, ids["a-port"]).record
    o.update(port.replace(inbound_chain_id=chain.id))
    taken = follow(o, reach, start)
    assert taken[0] is False  # the other tenant's bridge
    assert chain.id in reach.records
    assert rule.id in reach.records  # fetched with its chain
