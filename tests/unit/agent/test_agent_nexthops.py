"""A packet whose next hop is unresolved waits; it goes on once the router learns the
next hop, and its sender hears host unreachable when the next hop never answers.

vm1 (10.0.0.1) -- b1 -- r1 -- b2 -- vm2's port, behind which 10.0.1.99 is silent
or answers. Everything on this host; the fake datapath forwards and records.
"""

from __future__ import annotations

import ipaddress
import uuid

from agent_helpers import Host, udp

from tenet.agent.learned import to_put
from tenet.agent.nexthops import FAILED_FOR, RETRY, TRIES
from tenet.datapath.base import Output
from tenet.model import Bridge, DeviceType, Port, PortBinding, Router, Tenant
from tenet.model import Host as HostRecord
from tenet.model.types import MAC
from tenet.packets import ICMP, Ethernet, IPv4, mac_from_str
from tenet.simulation.result import ArpLearned
from tenet.store.base import Event, EventType, KeyValue

H1 = uuid.uuid4()
VM1_MAC, R1_MAC, R2_MAC, SILENT_MAC = (
    "02:00:00:00:00:01", "02:00:00:00:01:fe", "02:00:00:00:02:fe", "02:00:00:00:00:99",
)  # fmt: skip
SILENT = ipaddress.IPv4Address("10.0.1.99")


def topology() -> tuple[Host, Port, Port, Router]:
    tenant = Tenant(name="t")
    t = tenant.id
    b1, b2 = Bridge(tenant_id=t, name="b1"), Bridge(tenant_id=t, name="b2")
    r1 = Router(tenant_id=t, name="r1")
    l1, l2 = uuid.uuid4(), uuid.uuid4()
    ports = [
        Port(tenant_id=t, device_id=r1.id, device_type=DeviceType.ROUTER, mac=MAC(R1_MAC),
             address=ipaddress.ip_address("10.0.0.254"),
             subnet=ipaddress.ip_network("10.0.0.0/24"), peer_id=l1),
        Port(tenant_id=t, device_id=r1.id, device_type=DeviceType.ROUTER, mac=MAC(R2_MAC),
             address=ipaddress.ip_address("10.0.1.254"),
             subnet=ipaddress.ip_network("10.0.1.0/24"), peer_id=l2),
    ]  # fmt: skip
    ports += [
        Port(id=l1, tenant_id=t, device_id=b1.id, device_type=DeviceType.BRIDGE,
             peer_id=ports[0].id),
        Port(id=l2, tenant_id=t, device_id=b2.id, device_type=DeviceType.BRIDGE,
             peer_id=ports[1].id),
    ]  # fmt: skip
    vm1 = Port(
        tenant_id=t,
        device_id=b1.id,
        device_type=DeviceType.BRIDGE,
        name="vm1",
        mac=MAC(VM1_MAC),
        fixed_ips=(ipaddress.ip_address("10.0.0.1"),),
        tunnel_key=11,
    )
    vm2 = Port(tenant_id=t, device_id=b2.id, device_type=DeviceType.BRIDGE, name="vm2",
               tunnel_key=12)  # fmt: skip
    records = [
        tenant, b1, b2, r1, *ports, vm1, vm2, HostRecord(id=H1, name="h1"),
        PortBinding(port_id=vm1.id, host_id=H1, interface="tap1"),
        PortBinding(port_id=vm2.id, host_id=H1, interface="tap2"),
    ]  # fmt: skip
    host = Host(H1, records)
    host.learned.macs[(b1.id, mac_from_str(VM1_MAC))] = vm1.id
    return host, vm1, vm2, r1


def to_silent(sport: int) -> bytes:
    return udp(VM1_MAC, R1_MAC, "10.0.0.1", str(SILENT), sport=sport)


def learned_event(router: Router) -> Event:
    put = to_put(ArpLearned(router.id, SILENT, mac_from_str(SILENT_MAC), 0.0), 0)
    return Event(EventType.PUT, KeyValue(put.key, put.value, 9, 9, 1))


def test_a_packet_waits_for_its_next_hop_and_goes_on_once_it_is_learned() -> None:
    host, vm1, vm2, r1 = topology()
    first = host.send(to_silent(1000), vm1.id, now=10.0)
    assert first.upcalled
    assert [where for where, _ in first.out] == [Output(host.port_no(vm2.id))]  # the request
    second = host.send(to_silent(1001), vm1.id, now=10.2)
    assert second.out == []  # waits too; no second request within a second
    assert len(host.core.nexthops) == 1
    tag = host.learned.apply(learned_event(r1))  # the reply, learned by whichever host saw it
    assert tag is not None
    host.core.invalidate({tag})
    before = len(host.dp.sent)
    host.core.release(tag, now=10.5)
    delivered = host.dp.sent[before:]
    assert len(delivered) == 2
    for where, data in delivered:
        assert where == Output(host.port_no(vm2.id))
        eth, rest = Ethernet.parse(data)
        ip, _ = IPv4.parse(rest)
        assert (eth.dst, ip.dst, ip.ttl) == (mac_from_str(SILENT_MAC), SILENT, 63)
    assert len(host.core.nexthops) == 0


def test_a_next_hop_that_never_answers_gets_its_senders_host_unreachable() -> None:
    host, vm1, vm2, _ = topology()
    host.send(to_silent(1000), vm1.id, now=10.0)
    now, requests = 10.0, 1
    unreachable: list[tuple[object, bytes]] = []
    for _ in range(TRIES + 1):
        now += RETRY
        before = len(host.dp.sent)
        host.core.tick(now)
        sent = host.dp.sent[before:]
        requests += sum(1 for where, _ in sent if where == Output(host.port_no(vm2.id)))
        unreachable += [s for s in sent if s[0] == Output(host.port_no(vm1.id))]
    assert requests == TRIES
    assert len(unreachable) == 1  # the packet that waited hears it
    eth, rest = Ethernet.parse(unreachable[0][1])
    ip, rest = IPv4.parse(rest)
    icmp, _ = ICMP.parse(rest)
    assert (eth.dst, ip.src, ip.dst) == (mac_from_str(VM1_MAC), ipaddress.IPv4Address(
        "10.0.0.254"), ipaddress.IPv4Address("10.0.0.1"))  # fmt: skip
    assert (icmp.type, icmp.code) == (3, 1)  # host unreachable
    # while failed, a new packet hears it at once, with no request
    again = host.send(to_silent(1002), vm1.id, now=now + 0.5)
    assert [where for where, _ in again.out] == [Output(host.port_no(vm1.id))]
    # after a while the router tries again
    host.core.tick(now + FAILED_FOR)
    retry = host.send(to_silent(1003), vm1.id, now=now + FAILED_FOR + 0.1)
    assert [where for where, _ in retry.out] == [Output(host.port_no(vm2.id))]
