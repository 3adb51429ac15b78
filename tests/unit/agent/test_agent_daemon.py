"""The agent daemon against a fake datapath and a memory store: start, adoption,
services, crash-only, and what its store watch sees."""

from __future__ import annotations

import ipaddress
import json
import uuid

import pytest

from tenet.agent.daemon import Agent
from tenet.clock import FakeClock
from tenet.datapath.fake import FakeDatapath
from tenet.model import (
    Bridge,
    DeviceType,
    Host,
    Port,
    PortBinding,
    Tenant,
    TunnelZone,
    TunnelZoneMember,
)
from tenet.model.types import MAC
from tenet.packets import ETH_TYPE_IPV4, UDP, Ethernet, IPv4, Packet, extract_match, mac_from_str
from tenet.packets.actions import Output
from tenet.services.base import ServiceContext
from tenet.services.status import StatusService
from tenet.store import MemoryStore
from tenet.store.keys import AGENT_WATCH, alive_key, applied_key, interfaces_key, stats_key
from tenet.store.objects import ObjectStore

UNDERLAY = ipaddress.IPv4Address("192.0.2.1")


def world(store: MemoryStore, hosts: int = 1) -> tuple[list[uuid.UUID], list[Port]]:
    o = ObjectStore(store, FakeClock())
    tenant = o.create(Tenant(name="t")).record
    zone = o.create(TunnelZone(name="z")).record
    bridge = o.create(Bridge(tenant_id=tenant.id)).record
    host_ids, ports = [], []
    for n in range(hosts):
        host = o.create(Host(name=f"h{n}")).record
        address = ipaddress.ip_address(f"192.0.2.{n + 1}")
        o.create(TunnelZoneMember(tunnel_zone_id=zone.id, host_id=host.id, address=address))
        host_ids.append(host.id)
    for n in range(2):
        port = o.create(
            Port(
                tenant_id=tenant.id,
                device_id=bridge.id,
                device_type=DeviceType.BRIDGE,
                mac=MAC(f"02:00:00:00:00:0{n + 1}"),
                fixed_ips=(ipaddress.ip_address(f"10.0.0.{n + 1}"),),
            )
        ).record
        o.create(PortBinding(port_id=port.id, host_id=host_ids[0], interface=f"tap{n}"))
        ports.append(port)
    ports.sort(key=lambda p: p.id)  # the fake numbers ports 1, 2 in this order
    return host_ids, ports


def frame(src: Port, dst: Port) -> bytes:
    """A UDP frame from the VM behind ``src`` to the one behind ``dst``."""
    assert src.mac is not None
    assert dst.mac is not None
    eth = Ethernet(mac_from_str(dst.mac), mac_from_str(src.mac), ETH_TYPE_IPV4)
    ip = IPv4(src.fixed_ips[0], dst.fixed_ips[0], 17)  # type: ignore[arg-type]
    return Packet(eth, ip, UDP(1000, 53), b"q").build()


def no_interfaces() -> list[dict[str, object]]:
    return [{"name": "tap0", "index": 4, "mac": ""}]


def agent_for(
    store: MemoryStore, host: uuid.UUID, dp: FakeDatapath, clock: FakeClock, **kw: object
) -> Agent:
    services = kw.pop("services", [StatusService(interfaces=no_interfaces)])
    return Agent(host, store, UNDERLAY, datapath=dp, clock=clock, services=services, **kw)  # type: ignore[arg-type]


def test_constructing_an_agent_does_no_io() -> None:
    store = MemoryStore(FakeClock())
    hosts, _ = world(store)
    revision = store.revision()
    dp = FakeDatapath()
    agent_for(store, hosts[0], dp, FakeClock())
    assert store.revision() == revision
    assert dp.ports == {}


def test_start_takes_the_lease_binds_ports_and_the_status_service_publishes() -> None:
    clock = FakeClock()
    store = MemoryStore(clock)
    hosts, _ = world(store)
    dp = FakeDatapath()
    agent = agent_for(store, hosts[0], dp, clock)
    agent.start()
    alive = store.get(alive_key(hosts[0]))
    assert alive is not None
    assert alive.value == str(UNDERLAY).encode()
    assert sorted(dp.ports.values()) == ["tap0", "tap1"]
    assert store.get(applied_key(hosts[0])) is not None
    agent.tick(clock.monotonic())
    stats = store.get(stats_key(hosts[0]))
    assert stats is not None
    assert json.loads(stats.value)["flows_in_table"] == 0
    assert json.loads(store.get(interfaces_key(hosts[0])).value) == no_interfaces()  # type: ignore[union-attr]
    agent.close()
    assert store.get(alive_key(hosts[0])) is None  # the lease is revoked: its keys go


def test_a_previous_runs_flows_are_revalidated_kept_or_removed() -> None:
    clock = FakeClock()
    store = MemoryStore(clock)
    hosts, ports = world(store)
    first = frame(ports[0], ports[1])  # ports[0] is datapath port 1, ports[1] port 2
    good = extract_match(first, 1)
    gone = extract_match(first, 7)  # a port number this run does not have
    dp = FakeDatapath.with_previous_run([(good, []), (gone, [Output(9)])], {999: 3})
    agent = agent_for(store, hosts[0], dp, clock)
    agent.start()
    assert agent.adopted == (1, 1)
    assert set(dp.flows) == {good}
    assert 999 not in dp.tunnel_ports  # a key the previous run mapped, this one did not
    assert set(dp.tunnel_ports) == {ports[0].tunnel_key, ports[1].tunnel_key}
    # the kept flow forwards as this run's simulation says: to the second port
    dp.sent.clear()
    assert dp.receive(first, 1) is None
    assert dp.sent == [(Output(2), first)]
    agent.tick(clock.monotonic())
    published = json.loads(store.get(stats_key(hosts[0])).value)  # type: ignore[union-attr]
    assert (published["flows_adopted"], published["flows_adoption_removed"]) == (1, 1)


class Failing:
    name = "failing"

    def __init__(self) -> None:
        self.started = self.closed = False

    def start(self, ctx: ServiceContext) -> None:
        self.started = True

    def tick(self, now: float) -> None:
        raise RuntimeError("the service broke")

    def close(self) -> None:
        self.closed = True


def test_a_failing_service_ends_the_agent_which_cleans_up() -> None:
    clock = FakeClock()
    store = MemoryStore(clock)
    hosts, _ = world(store)
    failing = Failing()
    agent = agent_for(store, hosts[0], FakeDatapath(), clock, services=[failing])
    with pytest.raises(RuntimeError, match="the service broke"):
        agent.run()
    assert failing.started
    assert failing.closed
    assert store.get(alive_key(hosts[0])) is None


def test_a_failed_datapath_thread_ends_the_agent() -> None:
    clock = FakeClock()
    store = MemoryStore(clock)
    hosts, _ = world(store)
    dp = FakeDatapath()
    dp.failure = OSError("the ring reader died")
    agent = agent_for(store, hosts[0], dp, clock, services=[])
    with pytest.raises(RuntimeError, match="datapath thread failed"):
        agent.run()


def test_agents_do_not_hear_each_others_status() -> None:
    """Measured before: with 10 agents, each watch got 30 status events per object event."""
    clock = FakeClock()
    store = MemoryStore(clock)
    hosts, ports = world(store, hosts=10)
    agents = [agent_for(store, h, FakeDatapath(), clock) for h in hosts]
    for agent in agents:
        agent.start()
    watch = store.watch(AGENT_WATCH, store.revision() + 1)
    for agent in agents:
        agent.tick(clock.monotonic())  # status of every agent
    o = ObjectStore(store, clock)
    o.update(o.get(Port, ports[0].id).record.replace(name="renamed"))  # one object event
    for agent in agents:
        agent.apply_events(store.watch(AGENT_WATCH, store.revision()).get(timeout=0))
    events = watch.get(timeout=0)
    assert [e.key.split("/")[-2] for e in events] == ["ports"]
    watch.close()
