"""The agent's logic against a fake datapath: bindings, upcalls, flows, invalidation."""

from __future__ import annotations

import ipaddress
import uuid

from tenet.agent.core import AgentCore
from tenet.agent.learned import LearnedState
from tenet.datapath.base import Output, Tunnel
from tenet.datapath.fake import FakeDatapath
from tenet.flows import FlowTable
from tenet.model import (
    Bridge,
    DeviceType,
    Host,
    Port,
    PortBinding,
    Record,
    Tenant,
    TunnelZone,
    TunnelZoneMember,
)
from tenet.model.types import MAC
from tenet.packets import ETH_TYPE_IPV4, UDP, Ethernet, IPv4, Packet, mac_from_str
from tenet.store.objects import ObjectEvent

H1, H2 = uuid.uuid4(), uuid.uuid4()


def topology() -> tuple[list[Record], dict[str, Port]]:
    tenant = Tenant(name="t")
    zone = TunnelZone(name="z")
    bridge = Bridge(tenant_id=tenant.id, name="b", tunnel_key=9)
    ports = {
        name: Port(
            tenant_id=tenant.id,
            device_id=bridge.id,
            device_type=DeviceType.BRIDGE,
            name=name,
            mac=MAC(f"02:00:00:00:00:0{i}"),
            fixed_ips=(ipaddress.ip_address(f"10.0.0.{i}"),),
            tunnel_key=100 + i,
        )
        for i, name in ((1, "vm1"), (2, "vm2"), (3, "vm3"))
    }
    records: list[Record] = [tenant, zone, bridge, *ports.values()]
    for host, n in ((H1, 1), (H2, 2)):
        records.append(Host(id=host, name=f"h{n}"))
        address = ipaddress.ip_address(f"192.0.2.{n}")
        records.append(TunnelZoneMember(tunnel_zone_id=zone.id, host_id=host, address=address))
    for name, host in (("vm1", H1), ("vm2", H1), ("vm3", H2)):
        records.append(PortBinding(port_id=ports[name].id, host_id=host, interface=f"tap-{name}"))
    return records, ports


def frame(dst: str, sport: int = 1000) -> bytes:
    eth = Ethernet(
        mac_from_str(f"02:00:00:00:00:0{dst}"), mac_from_str("02:00:00:00:00:01"), ETH_TYPE_IPV4
    )
    ip = IPv4(ipaddress.IPv4Address("10.0.0.1"), ipaddress.IPv4Address(f"10.0.0.{dst}"), 17)
    return Packet(eth, ip, UDP(sport, 53), b"q").build()


def agent() -> tuple[AgentCore, FakeDatapath, dict[str, Port]]:
    records, ports = topology()
    dp = FakeDatapath()
    learned = LearnedState()  # vm1's MAC is known already: results carry no state to write
    vm1 = ports["vm1"]
    learned.macs[(vm1.device_id, mac_from_str("02:00:00:00:00:01"))] = vm1.id
    core = AgentCore(H1, dp, learned)
    core.load(records)
    return core, dp, ports


def test_local_bindings_become_datapath_ports_with_their_tunnel_keys() -> None:
    core, dp, ports = agent()
    assert sorted(dp.ports.values()) == ["tap-vm1", "tap-vm2"]
    assert dp.tunnel_ports == {
        101: core.port_no[ports["vm1"].id],
        102: core.port_no[ports["vm2"].id],
    }


def test_an_upcall_installs_one_flow_and_sends_the_packet() -> None:
    core, dp, ports = agent()
    vm1, vm2 = core.port_no[ports["vm1"].id], core.port_no[ports["vm2"].id]
    upcall = dp.inject(frame("2"), vm1)
    (taken,) = dp.upcalls(0)
    core.handle(taken, now=1.0)
    assert dp.flows == {upcall.match: (Output(vm2),)}
    assert dp.loose == {upcall.match: 0}  # any TCP flags, any TTL: no router on the way
    assert dp.executed == [(upcall.frame, vm1, (Output(vm2),))]


def test_a_remote_port_is_reached_through_a_tunnel_with_its_key() -> None:
    core, dp, ports = agent()
    upcall = dp.inject(frame("3"), core.port_no[ports["vm1"].id])
    core.handle(dp.upcalls(0)[0], now=1.0)
    assert dp.flows[upcall.match] == (Tunnel(ipaddress.IPv4Address("192.0.2.2"), 103),)


def test_a_second_microflow_is_served_from_the_megaflow_cache() -> None:
    core, dp, ports = agent()
    vm1 = core.port_no[ports["vm1"].id]
    dp.inject(frame("2", sport=1000), vm1)
    dp.inject(frame("2", sport=2000), vm1)
    for upcall in dp.upcalls(0):
        core.handle(upcall, now=1.0)
    assert (core.counters.simulations, core.counters.megaflow_hits) == (1, 1)
    assert len(dp.flows) == 2


def test_a_change_removes_exactly_the_flows_that_depended_on_it() -> None:
    core, dp, ports = agent()
    vm1 = core.port_no[ports["vm1"].id]
    dp.inject(frame("2"), vm1)
    dp.inject(frame("3"), vm1)
    for upcall in dp.upcalls(0):
        core.handle(upcall, now=1.0)
    assert len(dp.flows) == 2
    vm3 = ports["vm3"].replace(admin_state_up=False)
    core.apply(ObjectEvent(Port, vm3.id, vm3, revision=10))
    assert len(dp.flows) == 1
    (remaining,) = dp.flows.values()
    assert remaining == (Output(core.port_no[ports["vm2"].id]),)


def test_unbinding_a_local_port_removes_it_from_the_datapath() -> None:
    core, dp, ports = agent()
    binding = next(
        r
        for r in core.records.values()
        if isinstance(r, PortBinding) and r.port_id == ports["vm2"].id
    )
    core.apply(ObjectEvent(PortBinding, binding.id, None, revision=11))
    assert sorted(dp.ports.values()) == ["tap-vm1"]
    assert 102 not in dp.tunnel_ports


def test_flows_evicted_at_the_limit_leave_the_datapath() -> None:
    core, dp, ports = agent()
    core.flows = FlowTable(max_flows=2)
    vm1 = core.port_no[ports["vm1"].id]
    for sport in (1, 2, 3):
        dp.inject(frame("2", sport=sport), vm1)
    for upcall in dp.upcalls(0):
        core.handle(upcall, now=float(upcall.match.l4_src))
    assert len(dp.flows) == 2
    assert {m.l4_src for m in dp.flows} == {2, 3}
