"""The trace service answers as the agent on the ingress port's host would: over what
that agent holds, with the learned entries of the devices reached, at the ``now`` given."""

from __future__ import annotations

import ipaddress
import uuid

import pytest

from tenet.clock import FakeClock
from tenet.errors import ValidationError
from tenet.model import (
    Bridge,
    Chain,
    Condition,
    CtState,
    DeviceType,
    Host,
    Port,
    PortBinding,
    Router,
    Rule,
    RuleAction,
    Tenant,
    TunnelZone,
    TunnelZoneMember,
)
from tenet.model.types import MAC
from tenet.packets import IPPROTO_TCP, IPPROTO_UDP, Packet, mac_from_str
from tenet.packets.actions import OutputLocal, OutputTunnel
from tenet.services.trace import Probe, build_frame, learned, trace
from tenet.simulation import TopologyView, Verdict
from tenet.store import MemoryStore
from tenet.store.keys import arp_key, mac_key
from tenet.store.objects import ObjectStore
from tenet.store.reach import Reach

IP = ipaddress.ip_address


def world() -> tuple[ObjectStore, dict[str, uuid.UUID]]:
    """Two VMs on one bridge on two hosts, a router behind it; another tenant apart."""
    o = ObjectStore(MemoryStore(FakeClock()), FakeClock())
    ids: dict[str, uuid.UUID] = {}
    zone = o.create(TunnelZone(name="z")).record
    for n in (1, 2):
        host = o.create(Host(name=f"h{n}")).record
        o.create(
            TunnelZoneMember(tunnel_zone_id=zone.id, host_id=host.id, address=IP(f"192.0.2.{n}"))
        )
        ids[f"h{n}"] = host.id
    tenant = o.create(Tenant(name="acme")).record
    bridge = o.create(Bridge(tenant_id=tenant.id, name="net")).record
    router = o.create(Router(tenant_id=tenant.id, name="r")).record
    rport = o.create(Port(tenant_id=tenant.id, device_id=router.id, device_type=DeviceType.ROUTER,
                          mac=MAC("02:00:00:00:00:aa"), address=IP("10.0.0.1"),
                          subnet=ipaddress.ip_network("10.0.0.0/24"))).record  # fmt: skip
    bport = o.create(Port(tenant_id=tenant.id, device_id=bridge.id,
                          device_type=DeviceType.BRIDGE)).record  # fmt: skip
    o.link(bport.id, rport.id)
    for name, n in (("vm1", 1), ("vm2", 2)):
        port = o.create(Port(tenant_id=tenant.id, device_id=bridge.id,
                             device_type=DeviceType.BRIDGE, mac=MAC(f"02:00:00:00:00:0{n}"),
                             fixed_ips=(IP(f"10.0.0.{n + 4}"),))).record  # fmt: skip
        o.create(PortBinding(port_id=port.id, host_id=ids[f"h{n}"], interface=f"tap-{name}"))
        ids[name] = port.id
    other = o.create(Tenant(name="globex")).record
    ids["elsewhere"] = o.create(Bridge(tenant_id=other.id, name="apart")).record.id
    ids.update(bridge=bridge.id, router=router.id, rport=rport.id, bport=bport.id)
    return o, ids


def test_a_packet_to_a_vm_on_another_host_is_tunnelled_there() -> None:
    o, ids = world()
    result = trace(o, Probe(ids["vm1"], IP("10.0.0.6"), protocol="tcp"), now=5.0)
    assert result.verdict is Verdict.FORWARD
    (out,) = [a for a in result.actions if isinstance(a, OutputTunnel)]
    assert (out.port_id, out.host_id, out.address) == (ids["vm2"], ids["h2"], IP("192.0.2.2"))


def test_from_the_other_host_the_same_vm_is_local() -> None:
    o, ids = world()
    result = trace(o, Probe(ids["vm2"], IP("10.0.0.5"), protocol="udp"), now=5.0)
    assert result.verdict is Verdict.FORWARD
    assert OutputLocal(ids["vm1"]) not in result.actions  # vm1 is on h1: a tunnel from h2
    assert any(isinstance(a, OutputTunnel) and a.port_id == ids["vm1"] for a in result.actions)


def test_the_frame_takes_the_ports_defaults() -> None:
    o, ids = world()
    port = o.get(Port, ids["vm1"]).record
    view = TopologyView.build(Reach(o, ids["h1"]).load_from(Port, port.id).values(), ids["h1"])
    to_vm = Packet.parse(build_frame(Probe(port.id, IP("10.0.0.6"), protocol="tcp"), port, view))
    assert to_vm.eth.src == mac_from_str("02:00:00:00:00:01")
    assert to_vm.eth.dst == mac_from_str("02:00:00:00:00:02")  # the VM holding the address
    assert to_vm.net is not None
    assert (to_vm.net.src, to_vm.net.proto) == (IP("10.0.0.5"), IPPROTO_TCP)
    away = Packet.parse(build_frame(Probe(port.id, IP("8.8.8.8"), protocol="udp"), port, view))
    assert away.eth.dst == mac_from_str("02:00:00:00:00:aa")  # the gateway
    assert away.net is not None
    assert away.net.proto == IPPROTO_UDP
    with pytest.raises(ValidationError) as bad:
        build_frame(Probe(port.id, IP("2001:db8::1")), port, view)
    assert bad.value.field == "ip_dst"


def test_learned_entries_are_read_for_the_devices_reached_only() -> None:
    o, ids = world()
    o.store.put(mac_key(ids["bridge"], "02:00:00:00:00:09"), str(ids["vm2"]).encode())
    o.store.put(mac_key(ids["elsewhere"], "02:00:00:00:00:09"), str(ids["vm2"]).encode())
    o.store.put(mac_key(ids["bridge"], "not-a-mac"), b"junk")  # skipped, not fatal
    o.store.put(arp_key(ids["router"], IP("10.0.0.9")), b"02:00:00:00:00:09")
    view = TopologyView.build(Reach(o, ids["h1"]).load_from(Port, ids["vm1"]).values(), ids["h1"])
    state = learned(o.store, view)
    assert state.macs == {(ids["bridge"], mac_from_str("02:00:00:00:00:09")): ids["vm2"]}
    assert state.arps == {(ids["router"], IP("10.0.0.9")): mac_from_str("02:00:00:00:00:09")}


def test_an_unbound_port_is_traced_from_no_host() -> None:
    o, ids = world()
    tenant = o.get(Bridge, ids["bridge"]).record.tenant_id
    port = o.create(Port(tenant_id=tenant, device_id=ids["bridge"],
                         device_type=DeviceType.BRIDGE, mac=MAC("02:00:00:00:00:07"),
                         fixed_ips=(IP("10.0.0.7"),))).record  # fmt: skip
    result = trace(o, Probe(port.id, IP("10.0.0.5"), protocol="tcp"), now=5.0)
    assert result.verdict is Verdict.FORWARD
    assert any(isinstance(a, OutputTunnel) and a.port_id == ids["vm1"] for a in result.actions)


@pytest.mark.parametrize(
    ("ct_state", "verdict"),
    [("new", Verdict.DROP), ("established", Verdict.DROP), ("return", Verdict.FORWARD)],
)
def test_a_trace_assumes_the_connection_state_it_is_told(ct_state: str, verdict: Verdict) -> None:
    """vm2 takes only replies; the trace says which state it assumed and which rule."""
    o, ids = world()
    vm2 = o.get(Port, ids["vm2"]).record
    chain = o.create(Chain(tenant_id=vm2.tenant_id, name="replies-only")).record
    o.create(Rule(tenant_id=vm2.tenant_id, chain_id=chain.id, name="replies",
                  condition=Condition(ct_state=CtState.RETURN)))  # fmt: skip
    o.create(Rule(tenant_id=vm2.tenant_id, chain_id=chain.id, name="deny",
                  action=RuleAction.DROP))  # fmt: skip
    o.patch(Port, vm2.id, {"outbound_chain_id": str(chain.id)})
    probe = Probe(ids["vm1"], IP("10.0.0.6"), protocol="tcp", ct_state=ct_state)  # type: ignore[arg-type]
    result = trace(o, probe, now=5.0)
    assert result.verdict is verdict
    text = result.trace_text()
    assert f": {ct_state}" in text
    assert ("replies" if ct_state == "return" else "deny") in text
