"""Control plane: from a change in the store until every agent has applied it (root for the
real agents).

Each agent publishes the store revision up to which it has applied object changes
(``/tenet/v1/status/hosts/<id>/applied``, like OVN's ``hv_cfg``); applying a change
invalidates the flows it touches in the same step. A change made at revision R
has taken effect everywhere once every agent's applied revision is at least R.

* **3 real agents**, one per host namespace, each with VMs whose flows exist
  (pings went through first): add a rule to a chain their ports use, delete it,
  add a route to the tenant's router, delete it; repeated;
* **100 agents simulated in one process** against the same kind of store: the
  real :class:`~tenet.agent.daemon.Agent` code with an in-memory datapath, each
  with its own store connection and watch, served round robin by one thread.

The baseline, in the same run: a bare watch on the same store seeing the same
change (the store's own notification latency, the floor for any agent).
Changes are made through the object layer (the API's only path to the store).
"""

from __future__ import annotations

import ipaddress
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from ipaddress import IPv4Address
from pathlib import Path

from tenet.agent.daemon import Agent
from tenet.datapath.fake import FakeDatapath
from tenet.model import (
    MAC,
    Bridge,
    Chain,
    Condition,
    DeviceType,
    Host,
    Port,
    PortBinding,
    Route,
    Router,
    RouteType,
    Rule,
    RuleAction,
    Tenant,
    TunnelZone,
    TunnelZoneMember,
)
from tenet.store import SqliteStore
from tenet.store.base import Store
from tenet.store.keys import AGENT_WATCH, OBJECTS, applied_key
from tenet.store.objects import ObjectStore

Change = Callable[[], int]  # makes one change, returns its revision


def percentile(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def summary(values: Sequence[float]) -> dict[str, float]:
    return {
        "p50_ms": statistics.median(values) * 1e3,
        "p99_ms": percentile(values, 99) * 1e3,
        "n": len(values),
    }


def changes(objects: ObjectStore, tenant: Tenant, chain: Chain, router: Router) -> list[Change]:
    """Add a rule, delete it, add a route, delete it: each returns its revision."""
    made: dict[str, uuid.UUID] = {}

    def add_rule() -> int:
        rule = Rule(
            tenant_id=tenant.id,
            chain_id=chain.id,
            condition=Condition(nw_proto=17),
            action=RuleAction.ACCEPT,
        )
        stored = objects.create(rule)
        made["rule"] = stored.record.id
        return stored.revision

    def delete_rule() -> int:
        objects.delete(Rule, made.pop("rule"))
        return objects.store.revision()

    def add_route() -> int:
        route = Route(
            tenant_id=tenant.id,
            router_id=router.id,
            dst=ipaddress.ip_network("198.51.100.0/24"),
            type=RouteType.BLACKHOLE,
        )
        stored = objects.create(route)
        made["route"] = stored.record.id
        return stored.revision

    def delete_route() -> int:
        objects.delete(Route, made.pop("route"))
        return objects.store.revision()

    return [add_rule, delete_rule, add_route, delete_route]


def measure(
    store: Store, todo: list[Change], rounds: int, all_applied: Callable[[int], bool]
) -> dict[str, object]:
    """Per change: time until ``all_applied(R)`` and until a bare watch saw R."""
    agents: list[float] = []
    floor: list[float] = []
    for _ in range(rounds):
        for change in todo:
            watch = store.watch(OBJECTS, store.revision() + 1)
            start = time.monotonic()
            revision = change()
            seen = done = 0.0
            deadline = start + 30
            while not (seen and done) and time.monotonic() < deadline:
                if not seen and any(e.revision >= revision for e in watch.get(timeout=0)):
                    seen = time.monotonic() - start
                if not done and all_applied(revision):
                    done = time.monotonic() - start
                if not (seen and done):
                    time.sleep(0.0005)
            watch.close()
            if not done:
                sys.exit(f"a change at revision {revision} was not applied by every agent in 30 s")
            agents.append(done)
            floor.append(seen)
    return {"agents": summary(agents), "bare_watch": summary(floor)}


def topology(objects: ObjectStore, name: str = "bench") -> tuple[Tenant, Bridge, Chain, Router]:
    tenant = objects.create(Tenant(name=name)).record
    bridge = objects.create(Bridge(tenant_id=tenant.id, name="net")).record
    chain = objects.create(Chain(tenant_id=tenant.id, name="in")).record
    router = objects.create(Router(tenant_id=tenant.id, name="r")).record
    rport = objects.create(
        Port(
            tenant_id=tenant.id,
            device_id=router.id,
            device_type=DeviceType.ROUTER,
            mac=MAC("02:00:00:00:aa:01"),
            address=ipaddress.ip_address("10.0.0.254"),
            subnet=ipaddress.ip_network("10.0.0.0/16"),
        )
    ).record
    bport = objects.create(
        Port(tenant_id=tenant.id, device_id=bridge.id, device_type=DeviceType.BRIDGE)
    ).record
    objects.link(bport.id, rport.id)
    return tenant, bridge, chain, router


def sim_host(
    n: int, zone: TunnelZone, tenant: Tenant, bridge: Bridge, chain: Chain
) -> tuple[Host, TunnelZoneMember, Port, PortBinding]:
    """Simulated host ``n``: its record, tunnel-zone member, one VM port and its binding."""
    host = Host(name=f"sim{n}")
    address = IPv4Address("10.251.0.0") + n + 1
    port = Port(
        tenant_id=tenant.id,
        device_id=bridge.id,
        device_type=DeviceType.BRIDGE,
        mac=MAC(f"02:00:00:01:{n >> 8:02x}:{n & 0xFF:02x}"),
        fixed_ips=(ipaddress.ip_address(f"10.0.{1 + n // 250}.{1 + n % 250}"),),
        inbound_chain_id=chain.id,
    )
    return (
        host,
        TunnelZoneMember(tunnel_zone_id=zone.id, host_id=host.id, address=address),
        port,
        PortBinding(port_id=port.id, host_id=host.id, interface=f"sim{n}"),
    )


def simulated(count: int, rounds: int) -> dict[str, object]:
    """``count`` agents in this process, each its own connection and watch."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "store.db"
        store = SqliteStore(path)
        objects = ObjectStore(store)
        tenant, bridge, chain, router = topology(objects)
        zone = objects.create(TunnelZone(name="underlay")).record
        agents: list[Agent] = []
        for n in range(count):
            for record in sim_host(n, zone, tenant, bridge, chain):
                objects.create(record)
        for record in objects.list(Host):
            agent = Agent(
                record.record.id,
                SqliteStore(path),
                IPv4Address("10.251.0.1"),
                datapath=FakeDatapath(),
                lease_ttl=3600,
            )
            agent.start()
            agents.append(agent)
        watches = [a.store.watch(AGENT_WATCH, a.store.revision() + 1) for a in agents]
        applied = [0] * count

        def all_applied(revision: int) -> bool:
            for i, (agent, watch) in enumerate(zip(agents, watches, strict=True)):
                if applied[i] >= revision:
                    continue
                events = watch.get(timeout=0)
                agent.apply_events(events)
                if events:
                    applied[i] = max(applied[i], events[-1].revision)
            return min(applied) >= revision

        result = measure(store, changes(objects, tenant, chain, router), rounds, all_applied)
        for watch in watches:
            watch.close()
        for agent in agents:
            agent.store.close()
        store.close()
    result["count"] = count
    return result


def real(rounds: int) -> dict[str, object]:
    """Three agents in host namespaces, with traffic flowing first (root)."""
    from tests.integration.netns import Lab
    from tests.integration.topo import World, ping

    lab = Lab(datapath="kernel")
    lab.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            world = World(lab, Path(tmp) / "store.db")
            world.add_hosts(3)
            tenant = world.tenant("bench")
            net = world.bridge(tenant, "net")
            chain = world.objects.create(Chain(tenant_id=tenant.id, name="in")).record
            vms = [world.vm(tenant, net, n, f"02:00:00:00:00:0{n + 1}", f"10.0.0.{n + 1}/24")
                   for n in range(3)]  # fmt: skip
            router = world.router(tenant, "r", {"gw": (net, "10.0.0.254/24", "02:00:00:00:aa:01")})
            for vm in vms:
                port = world.objects.get(Port, world.ports[vm.name]).record
                world.objects.update(port.replace(inbound_chain_id=chain.id))
            world.start_agents()
            for vm in vms[1:]:
                ping(vms[0], vm.ip, count=2)
            hosts = [h for _, h in world.hosts]

            def all_applied(revision: int) -> bool:
                for host_id in hosts:
                    kv = world.store.get(applied_key(host_id))
                    if kv is None or int(kv.value) < revision:
                        return False
                return True

            todo = changes(world.objects, tenant, chain, router)
            result = measure(world.store, todo, rounds, all_applied)
            world.store.close()
    finally:
        lab.close()
    result["count"] = 3
    return result


def store_footprint(count: int) -> dict[str, float]:
    """Write rate (ports created, one transaction each) and file size per object."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "store.db"
        store = SqliteStore(path)
        objects = ObjectStore(store)
        tenant, bridge, _, _ = topology(objects)
        start = time.monotonic()
        for n in range(count):
            objects.create(
                Port(
                    tenant_id=tenant.id,
                    device_id=bridge.id,
                    device_type=DeviceType.BRIDGE,
                    mac=MAC(f"02:00:00:02:{n >> 8:02x}:{n & 0xFF:02x}"),
                )
            )
        elapsed = time.monotonic() - start
        store.close()
        size = sum(p.stat().st_size for p in Path(tmp).iterdir())
    return {
        "objects_written": count,
        "writes_per_s": count / elapsed,
        "store_bytes": size,
        "bytes_per_object": size / count,
    }
