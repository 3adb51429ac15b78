"""The read-only views the simulation reads: topology and learned state.

:class:`TopologyView` indexes a set of model records for cheap lookups by id.
It is built once from records (the agent's cache, or a store listing) and never
changes afterwards: a topology change makes a new view, so one simulation sees
one consistent topology. :class:`StateView` is the learned state (MAC and ARP
tables) the simulation reads; :class:`DictState` is a plain in-memory one.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Protocol, TypeVar

from tenet.model import (
    Bridge,
    Chain,
    DeviceType,
    DhcpHost,
    DhcpSubnet,
    IPAddress,
    IPAddrGroup,
    Port,
    PortBinding,
    PortGroup,
    Record,
    Route,
    Router,
    Rule,
    TunnelZoneMember,
)

R = TypeVar("R", bound=Record)


def mac_bytes(mac: str) -> bytes:
    return bytes.fromhex(mac.replace(":", ""))


def _freeze(d: dict[uuid.UUID, R]) -> Mapping[uuid.UUID, R]:
    return MappingProxyType(d)


@dataclass(frozen=True, slots=True)
class TopologyView:
    """Every record the simulation may read, indexed; immutable once built."""

    local_host_id: uuid.UUID | None
    ports: Mapping[uuid.UUID, Port]
    bridges: Mapping[uuid.UUID, Bridge]
    routers: Mapping[uuid.UUID, Router]
    chains: Mapping[uuid.UUID, Chain]
    rules: Mapping[uuid.UUID, Rule]
    port_groups: Mapping[uuid.UUID, PortGroup]
    ip_addr_groups: Mapping[uuid.UUID, IPAddrGroup]
    bindings: Mapping[uuid.UUID, PortBinding]  # by port id
    host_addresses: Mapping[uuid.UUID, IPAddress]  # underlay address by host id
    device_ports: Mapping[uuid.UUID, tuple[Port, ...]]
    routes: Mapping[uuid.UUID, tuple[Route, ...]]  # by router id
    dhcp_subnets: Mapping[uuid.UUID, tuple[DhcpSubnet, ...]]  # by bridge id
    dhcp_hosts: Mapping[uuid.UUID, tuple[DhcpHost, ...]]  # by subnet id
    # bridge id -> IP -> MAC known without learning (static entries, VM ports,
    # router ports peered to the bridge): ARP is answered from this, not flooded
    known_ips: Mapping[uuid.UUID, Mapping[IPAddress, bytes]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    # bridge id -> MAC -> the bridge port behind which that MAC is configured
    # (a VM port's mac, or the bridge port peered to a router port with that mac)
    known_macs: Mapping[uuid.UUID, Mapping[bytes, uuid.UUID]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    # derived per-view indexes the simulation computes on first use (a pure cache:
    # the view never changes, so neither do they)
    memo: dict[object, object] = field(default_factory=dict, compare=False, hash=False, repr=False)

    @classmethod
    def build(
        cls, records: Iterable[Record], local_host_id: uuid.UUID | None = None
    ) -> TopologyView:
        by: dict[type, dict[uuid.UUID, Record]] = {}
        for record in records:
            by.setdefault(type(record), {})[record.id] = record

        def of(kind: type[R]) -> dict[uuid.UUID, R]:
            return by.get(kind, {})  # type: ignore[return-value]

        ports = of(Port)
        device_ports: dict[uuid.UUID, list[Port]] = {}
        for port in sorted(ports.values(), key=lambda p: p.id):
            device_ports.setdefault(port.device_id, []).append(port)
        routes: dict[uuid.UUID, list[Route]] = {}
        for route in sorted(of(Route).values(), key=lambda r: r.id):
            routes.setdefault(route.router_id, []).append(route)
        subnets: dict[uuid.UUID, list[DhcpSubnet]] = {}
        for subnet in of(DhcpSubnet).values():
            subnets.setdefault(subnet.bridge_id, []).append(subnet)
        hosts: dict[uuid.UUID, list[DhcpHost]] = {}
        for host in of(DhcpHost).values():
            hosts.setdefault(host.subnet_id, []).append(host)
        addresses: dict[uuid.UUID, IPAddress] = {}
        for member in sorted(of(TunnelZoneMember).values(), key=lambda m: m.id):
            addresses.setdefault(member.host_id, member.address)
        bindings = {b.port_id: b for b in of(PortBinding).values()}
        return cls(
            local_host_id=local_host_id,
            ports=_freeze(ports),
            bridges=_freeze(of(Bridge)),
            routers=_freeze(of(Router)),
            chains=_freeze(of(Chain)),
            rules=_freeze(of(Rule)),
            port_groups=_freeze(of(PortGroup)),
            ip_addr_groups=_freeze(of(IPAddrGroup)),
            bindings=MappingProxyType(bindings),
            host_addresses=MappingProxyType(addresses),
            device_ports=MappingProxyType({k: tuple(v) for k, v in device_ports.items()}),
            routes=MappingProxyType({k: tuple(v) for k, v in routes.items()}),
            dhcp_subnets=MappingProxyType({k: tuple(v) for k, v in subnets.items()}),
            dhcp_hosts=MappingProxyType({k: tuple(v) for k, v in hosts.items()}),
            known_ips=MappingProxyType(_known_ips(of(Bridge), ports)),
            known_macs=MappingProxyType(_known_macs(ports)),
        )

    def peer(self, port: Port) -> Port | None:
        return self.ports.get(port.peer_id) if port.peer_id is not None else None

    def port_host(self, port_id: uuid.UUID) -> uuid.UUID | None:
        binding = self.bindings.get(port_id)
        return binding.host_id if binding is not None else None


def _known_ips(
    bridges: Mapping[uuid.UUID, Bridge], ports: Mapping[uuid.UUID, Port]
) -> dict[uuid.UUID, Mapping[IPAddress, bytes]]:
    known: dict[uuid.UUID, dict[IPAddress, bytes]] = {b: {} for b in bridges}
    for bridge in bridges.values():
        for entry in bridge.static_arp:
            known[bridge.id][entry.ip] = mac_bytes(entry.mac)
    for port in ports.values():
        if port.device_type is not DeviceType.BRIDGE or port.device_id not in known:
            continue
        table = known[port.device_id]
        peer = ports.get(port.peer_id) if port.peer_id else None
        if peer is not None and peer.address is not None and peer.mac is not None:
            table.setdefault(peer.address, mac_bytes(peer.mac))
        if port.mac is not None:
            for ip in port.fixed_ips:
                table.setdefault(ip, mac_bytes(port.mac))
    return {k: MappingProxyType(v) for k, v in known.items()}


def _known_macs(ports: Mapping[uuid.UUID, Port]) -> dict[uuid.UUID, Mapping[bytes, uuid.UUID]]:
    known: dict[uuid.UUID, dict[bytes, uuid.UUID]] = {}
    for port in sorted(ports.values(), key=lambda p: p.id):
        if port.device_type is not DeviceType.BRIDGE:
            continue
        table = known.setdefault(port.device_id, {})
        peer = ports.get(port.peer_id) if port.peer_id else None
        if peer is not None and peer.mac is not None:
            table.setdefault(mac_bytes(peer.mac), port.id)
        if port.mac is not None and peer is None:
            table.setdefault(mac_bytes(port.mac), port.id)
    return {k: MappingProxyType(v) for k, v in known.items()}


class StateView(Protocol):
    """Learned state the simulation reads (written by agents under leases)."""

    def mac_port(self, bridge_id: uuid.UUID, mac: bytes) -> uuid.UUID | None:
        """The port a MAC was learned on, on one bridge."""
        ...

    def arp_mac(self, router_id: uuid.UUID, ip: IPAddress) -> bytes | None:
        """The MAC a router learned for a next-hop address."""
        ...

    def arp_failed(self, router_id: uuid.UUID, ip: IPAddress) -> bool:
        """True while a router's ARP requests for ``ip`` have gone unanswered (it
        answers packets to it with ICMP host unreachable until the entry expires)."""
        ...


@dataclass
class DictState:
    """Learned state in plain dicts (tests, ``tenet trace``, the agent's cache)."""

    macs: dict[tuple[uuid.UUID, bytes], uuid.UUID] = field(default_factory=dict)
    arps: dict[tuple[uuid.UUID, IPAddress], bytes] = field(default_factory=dict)
    failed: set[tuple[uuid.UUID, IPAddress]] = field(default_factory=set)

    def mac_port(self, bridge_id: uuid.UUID, mac: bytes) -> uuid.UUID | None:
        return self.macs.get((bridge_id, mac))

    def arp_mac(self, router_id: uuid.UUID, ip: IPAddress) -> bytes | None:
        return self.arps.get((router_id, ip))

    def arp_failed(self, router_id: uuid.UUID, ip: IPAddress) -> bool:
        return (router_id, ip) in self.failed
