"""Control plane on etcd at scale: 100 and 1,000 agents simulated in one process, and an
agent's memory in a 10,000-port topology (issue 16, point 5).

The topology: agents in groups of ten, each group a tenant of its own (a bridge with a
chain on every port, a router) and a tunnel zone of its own, each agent binding one
port. The changes (a rule added and deleted in the first tenant's chain, a route added
and deleted on its router) concern the first group's ten agents: they apply them;
every other agent receives the events and finds that it holds nothing they touch.

How the agents are simulated (and what that leaves out):

* each is the real :class:`~tenet.agent.daemon.Agent` with an in-memory datapath; it
  takes its own lease, loads what its ports reach, and writes its ``applied``
  revision to etcd for every change it applies, as a real agent does;
* a real agent holds one HTTP watch stream; 1,000 streams would be 1,000 threads in one
  process. Here **one watch on what agents watch** (``AGENT_WATCH``) is read once and
  its events are handed to every agent, each filtering them through its own
  :class:`~tenet.store.reach.Reach`: every agent receives exactly the events its own
  watch would carry, but etcd serves one stream instead of N;
* agents are served by a pool of worker threads (each with its own store client), so
  the figure includes etcd taking N ``applied`` writes per change at that concurrency,
  not N machines' parallelism.

Figures: time from a change's commit until each interested agent has applied it (p50,
p99 over agents and changes), until *every* interested agent has, and until every
agent has dealt with it (p50, p99 over changes), against a bare watch seeing it; events
each agent received per change; and, in a topology of 10,000 ports over 100 tenants,
what one agent holds (records, and bytes allocated while it loads) against the whole
topology decoded in one process.

The cluster: three etcd members on loopback (``tenet.lab.etcd.EtcdCluster``).
"""

from __future__ import annotations

import ipaddress
import statistics
import sys
import threading
import time
import tracemalloc
import uuid
from concurrent.futures import ThreadPoolExecutor
from ipaddress import IPv4Address
from typing import Any

from benchmarks.bench_control import changes, percentile, sim_host, topology
from tenet.agent.daemon import Agent
from tenet.datapath.fake import FakeDatapath
from tenet.lab.etcd import EtcdCluster
from tenet.model import (
    MAC,
    Bridge,
    Chain,
    DeviceType,
    Host,
    Port,
    PortBinding,
    Record,
    Router,
    Tenant,
    TunnelZone,
    TunnelZoneMember,
)
from tenet.store import EtcdStore, Event
from tenet.store.keys import AGENT_WATCH
from tenet.store.objects import ObjectStore

WORKERS = 8
GROUP = 10  # agents per tenant and tunnel zone
PORTS_BATCH = 20  # ports per transaction (a port is a few writes: record and indexes)
BATCH = 6  # hosts per transaction while building (4 records, ~16 writes each; etcd allows 128)


def stats_ms(values: list[float]) -> dict[str, float]:
    return {
        "p50_ms": statistics.median(values) * 1e3,
        "p99_ms": percentile(values, 99) * 1e3,
        "n": len(values),
    }


def add_hosts(
    objects: ObjectStore, first: int, count: int, tenant: Tenant, bridge: Bridge, chain: Chain
) -> list[uuid.UUID]:
    """``count`` hosts in a tunnel zone of their own, each with one port on ``bridge``
    (filtered by ``chain``) bound to it; their ids."""
    zone = objects.create(TunnelZone(name=f"zone{first}")).record
    hosts = []
    for start in range(first, first + count, BATCH):
        with objects.transaction() as tx:
            for n in range(start, min(first + count, start + BATCH)):
                made = sim_host(n, zone, tenant, bridge, chain)
                for record in made:
                    tx.create(record)
                hosts.append(made[0].id)
    return hosts


def simulated(cluster: EtcdCluster, count: int, rounds: int) -> dict[str, Any]:
    """``count`` agents in groups of GROUP, a tenant (bridge, chain, router) and a tunnel
    zone per group; the changes touch the first group's tenant, so GROUP agents are
    interested and every agent receives them."""
    store = EtcdStore(cluster.url)
    objects = ObjectStore(store)
    hosts: list[uuid.UUID] = []
    interested: set[uuid.UUID] = set()
    first_tenant: tuple[Tenant, Bridge, Chain, Router] | None = None
    for first in range(0, count, GROUP):
        tenant, bridge, chain, router = topology(objects, f"t{first}")
        group = add_hosts(objects, first, min(GROUP, count - first), tenant, bridge, chain)
        hosts += group
        if first_tenant is None:
            first_tenant, interested = (tenant, bridge, chain, router), set(group)
    assert first_tenant is not None
    clients = [EtcdStore(cluster.url) for _ in range(WORKERS)]
    agents = [
        Agent(h, clients[i % WORKERS], IPv4Address("10.251.0.1"), datapath=FakeDatapath(),
              lease_ttl=3600, services=[])
        for i, h in enumerate(hosts)
    ]  # fmt: skip
    pool = ThreadPoolExecutor(WORKERS)
    started = time.monotonic()
    list(pool.map(lambda w: [a.start() for a in agents[w::WORKERS]], range(WORKERS)))
    start_s = time.monotonic() - started
    watch = store.watch(AGENT_WATCH, store.revision() + 1)
    per_agent: list[float] = []
    every_interested: list[float] = []
    every: list[float] = []
    floor: list[float] = []
    received: list[int] = []
    lock = threading.Lock()
    tenant, _, chain, router = first_tenant
    for _ in range(rounds):
        for change in changes(objects, tenant, chain, router):
            begin = time.monotonic()
            revision = change()
            events: list[Event] = []
            while not events or events[-1].revision < revision:
                more = watch.get(timeout=10)
                if not more and time.monotonic() - begin > 30:
                    sys.exit(f"the watch did not deliver revision {revision} in 30 s")
                events += more
            floor.append(time.monotonic() - begin)
            received.append(len(events))
            done: dict[uuid.UUID, float] = {}

            def serve(
                worker: int, batch: list[Event] = events, out: dict[uuid.UUID, float] = done,
                at: float = begin,
            ) -> None:  # fmt: skip
                for agent in agents[worker::WORKERS]:
                    agent.apply_events(batch)
                    with lock:
                        out[agent.host_id] = time.monotonic() - at

            list(pool.map(serve, range(WORKERS)))
            mine = [done[h] for h in interested]
            per_agent += mine
            every_interested.append(max(mine))
            every.append(max(done.values()))
    watch.close()
    pool.shutdown()
    held = statistics.mean(len(a.reach.records) for a in agents)
    for client in [store, *clients]:
        client.close()
    return {
        "count": count,
        "interested": len(interested),
        "each_agent": stats_ms(per_agent),
        "agents": stats_ms(every_interested),
        "all_agents": stats_ms(every),
        "bare_watch": stats_ms(floor),
        "events_per_agent_per_change": sum(received) / len(received),
        "agents_start_s": start_s,
        "held_records_per_agent": held,
    }


def memory(cluster: EtcdCluster, ports: int = 10_000, tenants: int = 100) -> dict[str, float]:
    """One agent's holdings in a topology of ``ports`` ports over ``tenants`` tenants
    (a bridge each), the agent's host binding two ports of one tenant."""
    store = EtcdStore(cluster.url)
    objects = ObjectStore(store)
    zone = objects.create(TunnelZone(name="underlay")).record
    per = ports // tenants
    mine: list[uuid.UUID] = []
    for t in range(tenants):
        with objects.transaction() as tx:
            tenant = tx.create(Tenant(name=f"t{t}"))
            bridge = tx.create(Bridge(tenant_id=tenant.id, name="net"))
        for first in range(0, per, PORTS_BATCH):
            with objects.transaction() as tx:
                for n in range(first, min(per, first + PORTS_BATCH)):
                    port = tx.create(
                        Port(
                            tenant_id=tenant.id,
                            device_id=bridge.id,
                            device_type=DeviceType.BRIDGE,
                            mac=MAC(f"02:00:{t:02x}:00:{n >> 8:02x}:{n & 0xFF:02x}"),
                            fixed_ips=(ipaddress.ip_address(f"10.{t}.{n // 250}.{1 + n % 250}"),),
                        )
                    )
                    if t == 0 and n < 2:
                        mine.append(port.id)
    host = objects.create(Host(name="mem")).record
    objects.create(TunnelZoneMember(tunnel_zone_id=zone.id, host_id=host.id,
                                    address=IPv4Address("10.251.9.1")))  # fmt: skip
    for n, port_id in enumerate(mine):
        objects.create(PortBinding(port_id=port_id, host_id=host.id, interface=f"m{n}"))
    agent = Agent(host.id, EtcdStore(cluster.url), IPv4Address("10.251.9.1"),
                  datapath=FakeDatapath(), lease_ttl=3600, services=[])  # fmt: skip
    tracemalloc.start()
    agent.start()
    agent_bytes = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    held = len(agent.reach.records)
    agent.store.close()
    tracemalloc.start()
    records, _ = objects.snapshot()
    whole: list[Record] = list(records)
    whole_bytes = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    store.close()
    return {
        "ports": ports,
        "records_in_store": len(whole),
        "records_held_by_agent": held,
        "agent_bytes": agent_bytes,
        "whole_topology_bytes": whole_bytes,
    }


def run(quick: bool) -> dict[str, Any]:
    """100 and 1,000 simulated agents, and the 10,000-port memory figure, each on a fresh
    three-member cluster on loopback."""
    out: dict[str, Any] = {}
    for count in (100, 1000):
        with_cluster = EtcdCluster(size=3)
        with_cluster.start()
        try:
            out[f"simulated_{count}"] = simulated(with_cluster, count, 1 if quick else 5)
        finally:
            with_cluster.close()
    with_cluster = EtcdCluster(size=3)
    with_cluster.start()
    try:
        out["memory"] = memory(with_cluster)
    finally:
        with_cluster.close()
    return out


if __name__ == "__main__":
    import json

    print(json.dumps(run("--quick" in sys.argv), indent=2))
