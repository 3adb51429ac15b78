"""Route changes invalidate per prefix: the flows whose destination lies under the
changed route's prefix, and those that chose from its ECMP group; nothing else.

vm1 (10.0.0.1) -- b1 -- r1 -- ext -- gw1 (172.16.0.2), gw2 (172.16.0.3), all on this
host. r1 routes 0.0.0.0/0 to gw1 and 9.9.0.0/16 to gw1 and gw2 (ECMP); it has a
third port, r1-x (192.168.7.1/24), linked to nothing.
"""

from __future__ import annotations

import ipaddress
import uuid

from agent_helpers import Host, Sent, mac, udp

from tenet.datapath.base import Output
from tenet.model import (
    Bridge,
    DeviceType,
    Port,
    PortBinding,
    Record,
    Route,
    Router,
    Tenant,
    TunnelZone,
    TunnelZoneMember,
)
from tenet.model import Host as HostRecord
from tenet.model.types import MAC

H1 = uuid.uuid4()
TENANT = Tenant(name="t")
VM1_MAC, R1_B1_MAC, R1_UP_MAC = "02:00:00:00:00:01", "02:00:00:00:01:fe", "02:00:00:00:02:fe"
GW_MACS = {"gw1": "02:00:00:00:03:01", "gw2": "02:00:00:00:03:02"}


def ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(text)


def net(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(text)


class Topo:
    def __init__(self) -> None:
        t = TENANT.id
        zone = TunnelZone(name="z")
        self.b1 = Bridge(tenant_id=t, name="b1")
        self.ext = Bridge(tenant_id=t, name="ext")
        self.r1 = Router(tenant_id=t, name="r1")
        bridge, router = DeviceType.BRIDGE, DeviceType.ROUTER
        b1_r, ext_r = uuid.uuid4(), uuid.uuid4()
        self.r1_b1 = Port(
            tenant_id=t, device_id=self.r1.id, device_type=router, name="r1-b1",
            mac=MAC(R1_B1_MAC), address=ip("10.0.0.254"), subnet=net("10.0.0.0/24"),
            peer_id=b1_r,
        )  # fmt: skip
        self.r1_up = Port(
            tenant_id=t, device_id=self.r1.id, device_type=router, name="r1-up",
            mac=MAC(R1_UP_MAC), address=ip("172.16.0.1"), subnet=net("172.16.0.0/24"),
            peer_id=ext_r,
        )  # fmt: skip
        self.r1_x = Port(
            tenant_id=t, device_id=self.r1.id, device_type=router, name="r1-x",
            mac=MAC("02:00:00:00:05:fe"), address=ip("192.168.7.1"), subnet=net("192.168.7.0/24"),
        )  # fmt: skip
        links = [
            Port(id=b1_r, tenant_id=t, device_id=self.b1.id, device_type=bridge,
                 peer_id=self.r1_b1.id),
            Port(id=ext_r, tenant_id=t, device_id=self.ext.id, device_type=bridge,
                 peer_id=self.r1_up.id),
        ]  # fmt: skip
        self.vm1 = Port(
            tenant_id=t, device_id=self.b1.id, device_type=bridge, name="vm1",
            mac=MAC(VM1_MAC), fixed_ips=(ip("10.0.0.1"),), tunnel_key=101,
        )  # fmt: skip
        self.gw = {
            name: Port(
                tenant_id=t, device_id=self.ext.id, device_type=bridge, name=name,
                mac=MAC(GW_MACS[name]), fixed_ips=(ip(f"172.16.0.{n}"),), tunnel_key=200 + n,
            )
            for n, name in ((2, "gw1"), (3, "gw2"))
        }  # fmt: skip
        self.default = self.route("0.0.0.0/0", "172.16.0.2")
        self.ecmp = [self.route("9.9.0.0/16", "172.16.0.2"), self.route("9.9.0.0/16", "172.16.0.3")]
        self.records: list[Record] = [
            TENANT, zone, HostRecord(id=H1, name="h1"),
            TunnelZoneMember(tunnel_zone_id=zone.id, host_id=H1, address=ip("192.0.2.1")),
            self.b1, self.ext, self.r1, self.r1_b1, self.r1_up, self.r1_x, *links, self.vm1,
            *self.gw.values(), self.default, *self.ecmp,
        ]  # fmt: skip
        for port in (self.vm1, *self.gw.values()):
            self.records.append(
                PortBinding(port_id=port.id, host_id=H1, interface=f"t-{port.name}")
            )

    def route(self, dst: str, gateway: str, weight: int = 100) -> Route:
        return Route(
            tenant_id=TENANT.id, router_id=self.r1.id, dst=net(dst), next_hop_port_id=self.r1_up.id,
            next_hop_gateway=ip(gateway), weight=weight,
        )  # fmt: skip


def setup() -> tuple[Topo, Host]:
    topo = Topo()
    host = Host(H1, topo.records)
    host.learned.macs[(topo.b1.id, mac(VM1_MAC))] = topo.vm1.id  # nothing to learn
    return topo, host


def send(topo: Topo, host: Host, dst: str) -> Sent:
    return host.send(udp(VM1_MAC, R1_B1_MAC, "10.0.0.1", dst), topo.vm1.id)


def gateway(topo: Topo, host: Host, sent: Sent) -> str:
    """Which gateway the packet left for (and check it left as a router sends it)."""
    where, eth, packet = sent.only
    name = next(n for n, p in topo.gw.items() if where == Output(host.port_no(p.id)))
    assert eth.src == mac(R1_UP_MAC)
    assert eth.dst == mac(GW_MACS[name])
    assert packet.ttl == 63
    return name


def test_a_routed_packet_leaves_rewritten_and_its_flow_carries_the_next() -> None:
    topo, host = setup()
    first = send(topo, host, "1.1.1.1")
    assert first.upcalled
    assert gateway(topo, host, first) == "gw1"
    _, _, packet = first.only
    assert (packet.src, packet.dst) == (ip("10.0.0.1"), ip("1.1.1.1"))
    second = send(topo, host, "1.1.1.1")
    assert not second.upcalled
    assert second.out == first.out


def test_a_new_route_invalidates_only_the_flows_under_its_prefix() -> None:
    topo, host = setup()
    for dst in ("8.8.8.8", "10.9.1.1", "9.9.9.9"):
        send(topo, host, dst)
    host.change(topo.route("10.9.0.0/16", "172.16.0.3"))
    kept = send(topo, host, "8.8.8.8")  # via the default route, not under 10.9/16
    assert not kept.upcalled
    assert gateway(topo, host, kept) == "gw1"
    assert not send(topo, host, "9.9.9.9").upcalled  # via the ECMP group: survives too
    moved = send(topo, host, "10.9.1.1")  # via the default route, under 10.9/16
    assert moved.upcalled
    assert gateway(topo, host, moved) == "gw2"


def test_removing_the_route_a_flow_used_invalidates_it() -> None:
    topo, host = setup()
    specific = topo.route("10.9.0.0/16", "172.16.0.3")
    host.change(specific)
    assert gateway(topo, host, send(topo, host, "10.9.1.1")) == "gw2"
    send(topo, host, "1.1.1.1")
    host.delete(specific)
    back = send(topo, host, "10.9.1.1")
    assert back.upcalled
    assert gateway(topo, host, back) == "gw1"
    assert not send(topo, host, "1.1.1.1").upcalled


def test_removing_an_unchosen_ecmp_member_invalidates_the_flows_of_its_group() -> None:
    topo, host = setup()
    chosen = gateway(topo, host, send(topo, host, "9.9.9.9"))
    send(topo, host, "1.1.1.1")
    unchosen = topo.ecmp[0] if chosen == "gw2" else topo.ecmp[1]  # .2 is gw1, .3 gw2
    host.delete(unchosen)
    again = send(topo, host, "9.9.9.9")
    assert again.upcalled  # the hash picks among fewer members now
    assert gateway(topo, host, again) == chosen
    assert not send(topo, host, "1.1.1.1").upcalled  # another prefix: survives


def test_changing_a_route_invalidates_its_prefix_not_others() -> None:
    topo, host = setup()
    send(topo, host, "9.9.9.9")
    send(topo, host, "1.1.1.1")
    host.change(topo.ecmp[0].replace(weight=50))  # now the only best route to 9.9/16
    moved = send(topo, host, "9.9.9.9")
    assert moved.upcalled
    assert gateway(topo, host, moved) == "gw1"
    assert not send(topo, host, "1.1.1.1").upcalled


def test_an_ipv6_route_leaves_ipv4_flows_alone() -> None:
    topo, host = setup()
    send(topo, host, "1.1.1.1")
    v6 = Route(tenant_id=TENANT.id, router_id=topo.r1.id, dst=net("::/0"),
               next_hop_port_id=topo.r1_up.id)  # fmt: skip
    host.change(v6)
    assert not send(topo, host, "1.1.1.1").upcalled


def test_a_router_port_subnet_change_invalidates_the_destinations_it_now_connects() -> None:
    """A port's subnet is a connected route: changing it is a route change."""
    topo, host = setup()
    assert gateway(topo, host, send(topo, host, "10.0.5.5")) == "gw1"  # default route
    send(topo, host, "1.1.1.1")
    host.change(topo.r1_x.replace(subnet=net("10.0.5.0/24"), address=ip("10.0.5.1")))
    connected = send(topo, host, "10.0.5.5")
    assert connected.upcalled
    assert connected.out == []  # out of r1-x now: linked to nothing
    assert not send(topo, host, "1.1.1.1").upcalled


def test_a_router_port_address_is_delivered_locally_once_it_has_it() -> None:
    topo, host = setup()
    send(topo, host, "172.16.9.9")  # via the default route
    send(topo, host, "1.1.1.1")
    host.change(topo.r1_x.replace(address=ip("172.16.9.9"), subnet=net("172.16.9.0/24")))
    mine = send(topo, host, "172.16.9.9")
    assert mine.upcalled
    assert [data[23] for _, data in mine.out] == [1]  # ICMP port unreachable, from r1
    assert not send(topo, host, "1.1.1.1").upcalled


def test_a_new_router_port_takes_its_subnet_from_the_default_route() -> None:
    topo, host = setup()
    send(topo, host, "192.168.8.7")
    port = Port(
        tenant_id=TENANT.id, device_id=topo.r1.id, device_type=DeviceType.ROUTER,
        name="r1-new", mac=MAC("02:00:00:00:04:fe"), address=ip("192.168.8.1"),
        subnet=net("192.168.8.0/24"),
    )  # fmt: skip
    host.change(port)
    again = send(topo, host, "192.168.8.7")
    assert again.upcalled
    assert again.out == []  # out of a port with no peer: nothing to send to
