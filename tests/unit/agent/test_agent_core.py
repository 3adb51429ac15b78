"""The agent's logic against a fake datapath that forwards: bindings, upcalls, flows,
megaflows, eviction and invalidation, asserted as what happens to packets."""

from __future__ import annotations

import ipaddress
import uuid

from agent_helpers import Host, mac, udp

from tenet.agent.learned import mac_key
from tenet.datapath.base import Output, Tunnel
from tenet.flows import FlowTable
from tenet.model import (
    Bridge,
    DeviceType,
    Port,
    PortBinding,
    Record,
    Tenant,
    TunnelZone,
    TunnelZoneMember,
)
from tenet.model import Host as HostRecord
from tenet.model.types import MAC
from tenet.simulation import TopologyView, tags
from tenet.store.base import Event, EventType, KeyValue

H1, H2 = uuid.uuid4(), uuid.uuid4()
VM1_MAC, VM2_MAC, VM3_MAC = "02:00:00:00:00:01", "02:00:00:00:00:02", "02:00:00:00:00:03"


def topology() -> tuple[list[Record], dict[str, Port]]:
    """One bridge: vm1 and vm2 on host 1, vm3 on host 2."""
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
        records.append(HostRecord(id=host, name=f"h{n}"))
        address = ipaddress.ip_address(f"192.0.2.{n}")
        records.append(TunnelZoneMember(tunnel_zone_id=zone.id, host_id=host, address=address))
    for name, host in (("vm1", H1), ("vm2", H1), ("vm3", H2)):
        records.append(PortBinding(port_id=ports[name].id, host_id=host, interface=f"tap-{name}"))
    return records, ports


def agent() -> tuple[Host, dict[str, Port]]:
    records, ports = topology()
    host = Host(H1, records)
    vm1 = ports["vm1"]  # its MAC is learned already: results carry no state to write
    host.learned.macs[(vm1.device_id, mac(VM1_MAC))] = vm1.id
    return host, ports


def to(dst: int, sport: int = 1000) -> bytes:
    """UDP from vm1 to vm<dst>."""
    return udp(VM1_MAC, f"02:00:00:00:00:0{dst}", "10.0.0.1", f"10.0.0.{dst}", sport)


def test_local_bindings_become_datapath_ports_with_their_tunnel_keys() -> None:
    host, ports = agent()
    assert sorted(host.dp.ports.values()) == ["tap-vm1", "tap-vm2"]
    assert host.dp.tunnel_ports == {
        101: host.port_no(ports["vm1"].id),
        102: host.port_no(ports["vm2"].id),
    }


def test_a_frame_leaves_on_the_destination_port_and_its_flow_carries_the_next() -> None:
    host, ports = agent()
    vm1, vm2 = ports["vm1"].id, ports["vm2"].id
    frame = to(2)
    first = host.send(frame, vm1)
    assert first.upcalled
    assert first.out == [(Output(host.port_no(vm2)), frame)]  # as it came: one bridge
    second = host.send(frame, vm1)
    assert not second.upcalled  # the datapath forwarded it: the agent never saw it
    assert second.out == first.out
    assert (host.core.counters.upcalls, host.core.counters.simulations) == (1, 1)


def test_a_remote_port_is_reached_through_a_tunnel_with_its_key() -> None:
    host, ports = agent()
    frame = to(3)
    for _ in range(2):
        sent = host.send(frame, ports["vm1"].id)
        assert sent.out == [(Tunnel(ipaddress.IPv4Address("192.0.2.2"), 103), frame)]
    assert host.core.counters.upcalls == 1


def test_a_second_microflow_is_served_from_the_megaflow_cache() -> None:
    host, ports = agent()
    vm1, vm2 = ports["vm1"].id, ports["vm2"].id
    for sport in (1000, 2000):
        sent = host.send(to(2, sport), vm1)
        assert sent.upcalled  # a new microflow: the exact-match datapath has no flow
        assert [where for where, _ in sent.out] == [Output(host.port_no(vm2))]
    assert (host.core.counters.simulations, host.core.counters.megaflow_hits) == (1, 1)
    assert not host.send(to(2, 2000), vm1).upcalled


def test_a_change_removes_exactly_the_flows_that_depended_on_it() -> None:
    host, ports = agent()
    vm1 = ports["vm1"].id
    host.send(to(2), vm1)
    host.send(to(3), vm1)
    host.change(ports["vm3"].replace(admin_state_up=False))
    still = host.send(to(2), vm1)
    assert not still.upcalled
    assert [where for where, _ in still.out] == [Output(host.port_no(ports["vm2"].id))]
    again = host.send(to(3), vm1)
    assert again.upcalled  # its flow was removed: simulated afresh
    assert again.out == []  # vm3 is down now
    assert not host.send(to(3), vm1).upcalled  # and the drop is a flow too


def test_unbinding_a_local_port_removes_it_from_the_datapath() -> None:
    host, ports = agent()
    binding = next(
        r
        for r in host.core.records.values()
        if isinstance(r, PortBinding) and r.port_id == ports["vm2"].id
    )
    host.send(to(2), ports["vm1"].id)
    host.delete(binding)
    assert sorted(host.dp.ports.values()) == ["tap-vm1"]
    assert 102 not in host.dp.tunnel_ports
    after = host.send(to(2), ports["vm1"].id)
    assert after.upcalled  # the flow to the unbound port went with its binding
    assert after.out == []


def test_flows_evicted_at_the_limit_leave_the_datapath() -> None:
    host, ports = agent()
    host.core.flows = FlowTable(max_flows=2)
    vm1 = ports["vm1"].id
    for sport in (1, 2, 3):
        host.send(to(2, sport), vm1, now=float(sport))
    assert not host.send(to(2, 3), vm1).upcalled
    assert not host.send(to(2, 2), vm1).upcalled
    assert host.send(to(2, 1), vm1).upcalled  # the least recently used went


def test_a_learned_mac_invalidates_the_flood_that_looked_it_up() -> None:
    """The learned entry's tag (agent side) is the tag the flood carries (simulation
    side): both are built by tenet.simulation.tags."""
    host, ports = agent()
    vm1, vm2 = ports["vm1"].id, ports["vm2"].id
    stranger = "02:00:00:00:00:99"
    frame = udp(VM1_MAC, stranger, "10.0.0.1", "10.0.0.99")
    flood = host.send(frame, vm1)
    assert {where for where, _ in flood.out} == {
        Output(host.port_no(vm2)),
        Tunnel(ipaddress.IPv4Address("192.0.2.2"), 103),
    }
    assert not host.send(frame, vm1).upcalled
    bridge = ports["vm1"].device_id
    kv = KeyValue(mac_key(bridge, mac(stranger)), str(vm2).encode(), 5, 5, 1)
    tag = host.learned.apply(Event(EventType.PUT, kv))
    assert tag == tags.mac(bridge, mac(stranger))
    assert host.core.invalidate({tag}) == 1
    learned = host.send(frame, vm1)
    assert learned.upcalled
    assert learned.out == [(Output(host.port_no(vm2)), frame)]  # no flood any more


def test_the_view_follows_every_event_as_if_built_afresh() -> None:
    host, ports = agent()
    tenant_id = ports["vm1"].tenant_id
    bridge_id = ports["vm1"].device_id
    view = host.core.view
    vm4 = Port(
        tenant_id=tenant_id,
        device_id=bridge_id,
        device_type=DeviceType.BRIDGE,
        name="vm4",
        mac=MAC("02:00:00:00:00:04"),
        fixed_ips=(ipaddress.ip_address("10.0.0.4"),),
        tunnel_key=104,
    )
    host.change(ports["vm2"].replace(mac=MAC("02:00:00:00:00:22")))
    host.core.hold([vm4, PortBinding(port_id=vm4.id, host_id=H2, interface="tap-vm4")])
    host.delete(ports["vm3"])
    assert host.core.view is view  # updated in place, not rebuilt
    fresh = TopologyView.build(host.core.records.values(), H1)
    for name in ("ports", "bindings", "device_ports", "known_ips", "known_macs"):
        mine = {
            k: v if not isinstance(v, dict) else dict(v) for k, v in getattr(view, name).items()
        }
        built = {
            k: v if not isinstance(v, dict) else dict(v) for k, v in getattr(fresh, name).items()
        }
        assert mine == built, name
    assert view.known_ips[bridge_id][ipaddress.ip_address("10.0.0.2")] == mac("02:00:00:00:00:22")
    assert view.port_host(vm4.id) == H2
