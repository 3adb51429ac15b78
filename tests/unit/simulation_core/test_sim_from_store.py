"""The simulation on a topology built through the object layer, as an agent sees it."""

from __future__ import annotations

import ipaddress
import uuid

from tenet.clock import FakeClock
from tenet.model import (
    Bridge,
    DeviceType,
    Host,
    Port,
    PortBinding,
    Router,
    Tenant,
    TunnelZone,
    TunnelZoneMember,
)
from tenet.model.types import MAC
from tenet.packets import ETH_TYPE_IPV4, ICMP, Ethernet, IPv4, Packet, mac_from_str
from tenet.packets.actions import OutputTunnel
from tenet.simulation import DictState, TopologyView, Verdict, simulate
from tenet.store import MemoryStore
from tenet.store.objects import ObjectStore

VM_MAC = MAC("02:00:00:00:00:10")
R_MAC = MAC("02:00:00:00:00:01")


def build() -> tuple[ObjectStore, dict[str, uuid.UUID]]:
    o = ObjectStore(MemoryStore(FakeClock()), FakeClock())
    tenant = o.create(Tenant(name="t")).record
    zone = o.create(TunnelZone(name="z")).record
    hosts = [o.create(Host(name=f"h{i}")).record for i in (1, 2)]
    for i, host in enumerate(hosts, 1):
        addr = ipaddress.ip_address(f"192.0.2.{i}")
        o.create(TunnelZoneMember(tunnel_zone_id=zone.id, host_id=host.id, address=addr))
    router = o.create(Router(tenant_id=tenant.id, name="r")).record
    ids = {"h1": hosts[0].id, "h2": hosts[1].id, "router": router.id}
    for i, cidr in enumerate(("10.0.0.0/24", "10.0.1.0/24")):
        net = ipaddress.ip_network(cidr)
        bridge = o.create(Bridge(tenant_id=tenant.id, name=f"b{i}")).record
        rport = o.create(
            Port(
                tenant_id=tenant.id,
                device_id=router.id,
                device_type=DeviceType.ROUTER,
                mac=MAC(f"02:00:00:00:00:0{i + 1}"),
                address=net.network_address + 1,
                subnet=net,
            )
        ).record
        bport = o.create(
            Port(tenant_id=tenant.id, device_id=bridge.id, device_type=DeviceType.BRIDGE)
        ).record
        o.link(bport.id, rport.id)
        vm = o.create(
            Port(
                tenant_id=tenant.id,
                device_id=bridge.id,
                device_type=DeviceType.BRIDGE,
                name=f"vm{i}",
                mac=MAC(f"02:00:00:00:00:1{i}"),
                fixed_ips=(net.network_address + 10,),
            )
        ).record
        host = hosts[i]
        o.create(PortBinding(port_id=vm.id, host_id=host.id, interface=f"tap{i}"))
        ids[f"vm{i}"] = vm.id
        ids[f"rport{i}"] = rport.id
    return o, ids


def ping(dst: str, ttl: int = 64) -> bytes:
    eth = Ethernet(mac_from_str(R_MAC), mac_from_str(VM_MAC), ETH_TYPE_IPV4)
    ip = IPv4(ipaddress.IPv4Address("10.0.0.10"), ipaddress.IPv4Address(dst), 1, ttl=ttl)
    return Packet(eth, ip, ICMP.echo_request(7, 1), b"hello").build()


def test_a_view_built_from_the_store_routes_across_hosts() -> None:
    objects, ids = build()
    records, _ = objects.snapshot()
    view = TopologyView.build(records, local_host_id=ids["h1"])
    vm1 = objects.get(Port, ids["vm1"]).record
    result = simulate(ping("10.0.1.10"), ids["vm0"], view, DictState(), now=1.0)
    assert result.verdict is Verdict.FORWARD
    (out,) = result.outputs
    assert isinstance(out, OutputTunnel)
    assert (out.port_id, out.host_id, out.key) == (vm1.id, ids["h2"], vm1.tunnel_key)
    assert str(out.address) == "192.0.2.2"
    assert str(ids["router"]) in result.tags


def test_a_next_hop_that_never_answers_arp_gives_host_unreachable() -> None:
    objects, ids = build()
    records, _ = objects.snapshot()
    view = TopologyView.build(records, local_host_id=ids["h1"])
    state = DictState()
    # 10.0.1.99 is on the connected subnet but no port has it: ARP first, the packet waits
    waiting = simulate(ping("10.0.1.99"), ids["vm0"], view, state, now=1.0)
    assert waiting.verdict is Verdict.WAIT
    assert len(waiting.emit) == 1
    state.failed.add((ids["router"], ipaddress.ip_address("10.0.1.99")))
    result = simulate(ping("10.0.1.99"), ids["vm0"], view, state, now=2.0)
    assert result.verdict is Verdict.CONSUMED
    (emit,) = result.emit
    reply = Packet.parse(emit.frame)
    assert isinstance(reply.transport, ICMP)
    assert (reply.transport.type, reply.transport.code) == (3, 1)
    assert emit.port_id == ids["rport0"]
    assert "host unreachable" in result.trace_text()
