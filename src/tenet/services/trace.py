"""The trace service: what one described packet would do, entering one port.

:func:`trace` answers as the agent on the port's host would: it loads what that
agent holds plus the port's own reach (:class:`~tenet.store.reach.Reach`, record
by record, never the whole store), the learned MAC and ARP entries of only the
bridges and routers reached (a range read per device), builds the frame with the
packet codecs and runs :func:`~tenet.simulation.simulate` at the ``now`` it is
given. Defaults come from the port: its first fixed IP as the source, its MAC as
the Ethernet source, and as the destination MAC the port on the same bridge
holding the destination address, else the bridge's gateway (a router port).

Invariants: it reads the store and writes nothing; the caller decides who may
trace from the port (the API checks the caller may see it) and passes the time.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Literal

from tenet.errors import PacketError, ValidationError
from tenet.model import Port, PortBinding
from tenet.packets import (
    ETH_TYPE_IPV4,
    ETH_TYPE_IPV6,
    ICMP,
    IPPROTO_ICMP,
    IPPROTO_TCP,
    IPPROTO_UDP,
    TCP,
    UDP,
    Ethernet,
    IPv4,
    IPv6,
    Packet,
    mac_from_str,
)
from tenet.packets.l4 import TCP_SYN
from tenet.simulation import DictState, SimulationResult, TopologyView, simulate
from tenet.simulation.state import Connection, ConnectionKey, Direction
from tenet.store.base import KeyValue, Store
from tenet.store.keys import arp_prefix, mac_prefix, prefix_end
from tenet.store.objects import ObjectStore
from tenet.store.reach import Reach

IPAddr = IPv4Address | IPv6Address
Protocol = Literal["icmp", "tcp", "udp"]
PROTOCOLS: tuple[Protocol, ...] = ("icmp", "tcp", "udp")
CtStateName = Literal["new", "established", "return"]
CT_STATES: tuple[CtStateName, ...] = ("new", "established", "return")
CHUNK = 256  # learned entries per range read


@dataclass(frozen=True, slots=True)
class Probe:
    """The packet to trace. ``None``: the ingress port's default (see the module doc).
    Field names are the API body's, so errors name what the caller sent."""

    ingress_port_id: uuid.UUID
    ip_dst: IPAddr
    ip_src: IPAddr | None = None
    eth_src: bytes | None = None
    eth_dst: bytes | None = None
    protocol: Protocol = "icmp"
    src_port: int = 40000
    dst_port: int = 80
    ttl: int = 64
    # the connection state to assume (an agent knows its connections; the API does
    # not): "new", "established" (a forward entry) or "return" (a reply)
    ct_state: CtStateName = "new"


def trace(objects: ObjectStore, probe: Probe, now: float) -> SimulationResult:
    """The simulation of ``probe`` entering its port, as that port's host sees it."""
    port = objects.get(Port, probe.ingress_port_id).record
    host_id = binding_host(objects, port.id)
    records = Reach(objects, host_id).load_from(Port, port.id)
    view = TopologyView.build(records.values(), host_id)
    frame = build_frame(probe, port, view)
    state = learned(objects.store, view)
    if probe.ct_state != "new":
        state = Assumed(state, probe.ct_state)
    return simulate(frame, port.id, view, state, now)


class Assumed(DictState):
    """Learned state, and every connection lookup answered as ``ct_state`` says."""

    def __init__(self, inner: DictState, ct_state: CtStateName) -> None:
        super().__init__(inner.macs, inner.arps, inner.failed)
        self.direction = Direction.RETURN if ct_state == "return" else Direction.FORWARD

    def connection(self, key: ConnectionKey) -> Connection | None:
        return Connection(key, self.direction)


def binding_host(objects: ObjectStore, port_id: uuid.UUID) -> uuid.UUID | None:
    """The host ``port_id`` is bound to (None: not bound)."""
    for _, ident in objects.children(port_id, (PortBinding,)):
        found = objects.find(PortBinding, ident)
        if found is not None:
            return found.record.host_id
    return None


def learned(store: Store, view: TopologyView) -> DictState:
    """The learned MAC entries of the bridges and ARP entries of the routers in
    ``view``; an entry that does not parse (not written by an agent) is skipped."""
    state = DictState()
    for bridge_id in view.bridges:
        prefix = mac_prefix(bridge_id)
        for kv in _range(store, prefix):
            try:
                mac = mac_from_str(kv.key.removeprefix(prefix))
                state.macs[(bridge_id, mac)] = uuid.UUID(kv.value.decode())
            except (PacketError, ValueError):
                continue
    for router_id in view.routers:
        prefix = arp_prefix(router_id)
        for kv in _range(store, prefix):
            try:
                ip = ip_address(kv.key.removeprefix(prefix))
                state.arps[(router_id, ip)] = mac_from_str(kv.value.decode())
            except (PacketError, ValueError):
                continue
    return state


def _range(store: Store, prefix: str) -> Iterator[KeyValue]:
    start, end = prefix, prefix_end(prefix)
    while True:
        chunk = store.range(start, end, limit=CHUNK)
        yield from chunk.items
        if not chunk.more or not chunk.items:
            return
        start = chunk.items[-1].key + "\0"


def build_frame(probe: Probe, port: Port, view: TopologyView) -> bytes:
    """The Ethernet frame ``probe`` describes, with the port's defaults filled in."""
    src = probe.ip_src if probe.ip_src is not None else _first(port.fixed_ips)
    if src is None:
        raise ValidationError("ip_src", "is required (the port has no fixed IP)")
    dst = probe.ip_dst
    if src.version != dst.version:
        raise ValidationError("ip_dst", "is not of the same IP version as ip_src")
    eth_src = probe.eth_src or (mac_from_str(str(port.mac)) if port.mac else None)
    if eth_src is None:
        raise ValidationError("eth_src", "is required (no default for this port)")
    eth_dst = probe.eth_dst or next_hop_mac(view, port, dst)
    if eth_dst is None:
        raise ValidationError("eth_dst", "is required (no default for this port)")
    transport: TCP | UDP | ICMP
    if probe.protocol == "tcp":
        ip_proto, transport = IPPROTO_TCP, TCP(probe.src_port, probe.dst_port, flags=TCP_SYN)
    elif probe.protocol == "udp":
        ip_proto, transport = IPPROTO_UDP, UDP(probe.src_port, probe.dst_port)
    elif src.version == 4:
        ip_proto, transport = IPPROTO_ICMP, ICMP.echo_request(1, 1)
    else:
        raise ValidationError("protocol", "use tcp or udp to trace IPv6")
    net: IPv4 | IPv6
    if isinstance(src, IPv4Address) and isinstance(dst, IPv4Address):
        net, eth_type = IPv4(src, dst, ip_proto, ttl=probe.ttl), ETH_TYPE_IPV4
    else:
        assert isinstance(src, IPv6Address)
        assert isinstance(dst, IPv6Address)
        net, eth_type = IPv6(src, dst, ip_proto, hop_limit=probe.ttl), ETH_TYPE_IPV6
    return Packet(Ethernet(eth_dst, eth_src, eth_type), net, transport, b"").build()


def next_hop_mac(view: TopologyView, port: Port, dst: IPAddr) -> bytes | None:
    """The MAC a VM on ``port``'s bridge would send to for ``dst``: the port holding that
    address on the same bridge, else the bridge's router port (the gateway)."""
    gateway = None
    for other in view.device_ports.get(port.device_id, ()):
        if other.id == port.id:
            continue
        if dst in other.fixed_ips and other.mac:
            return mac_from_str(str(other.mac))
        if other.peer_id is not None:
            peer = view.ports.get(other.peer_id)
            if peer is not None and peer.mac:
                gateway = mac_from_str(str(peer.mac))
    return gateway


def _first(addresses: tuple[IPAddr, ...]) -> IPAddr | None:
    return addresses[0] if addresses else None
