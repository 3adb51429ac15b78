"""The topology the simulation reads, indexed, and kept up to date record by record.

:class:`TopologyView` holds the records of the kinds agents hold
(``KindSpec.held``) that the simulation reads, indexed for cheap lookups:
records by id, ports by device, routes by router, DHCP subnets by bridge and
hosts by subnet, bindings by port, the underlay address of each host, and per
bridge the IPs and MACs it knows without learning. :meth:`TopologyView.build`
makes one from records (``tenet trace``, tests); :meth:`TopologyView.apply`
applies one record change (the agent, for every store event it holds) and
updates only the indexes that record touches: its device's ports, its router's
routes, ``known_ips``/``known_macs`` of the bridges it or its peer is on, its
host's address. The view also owns the simulation's memos (:mod:`.memo`) and
drops those built from a changed record.

Invariants: after any sequence of ``apply`` calls, the view equals
``build`` of the same records (a unit test checks it); one simulation reads one
view and nothing changes it meanwhile (the agent applies changes and simulates
on one thread). Readers see ``Mapping`` types; only ``apply`` writes. The kinds
it reads (:data:`READ_KINDS`) and those it leaves (:data:`UNREAD_KINDS`) are
exactly the held kinds (a unit test checks it); records of any other kind are
ignored. Ports, routes, DHCP subnets and hosts, and tunnel-zone members are
ordered by id within their group.
"""

from __future__ import annotations

import uuid
from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from tenet.model import (
    Bridge,
    Chain,
    DeviceType,
    DhcpHost,
    DhcpSubnet,
    Host,
    IPAddress,
    IPAddrGroup,
    Port,
    PortBinding,
    PortGroup,
    Record,
    Route,
    Router,
    Rule,
    SecurityGroup,
    TunnelZone,
    TunnelZoneMember,
)
from tenet.model.kinds import SPECS, Ref
from tenet.simulation.memo import Memos
from tenet.simulation.state import DictState, StateView

R = TypeVar("R", bound=Record)


def mac_bytes(mac: str) -> bytes:
    return bytes.fromhex(mac.replace(":", ""))


class TopologyView:
    """Every record the simulation may read, indexed; see the module docstring."""

    __slots__ = (
        "_bindings",
        "_bridges",
        "_chains",
        "_device_ports",
        "_dhcp_hosts",
        "_dhcp_subnets",
        "_host_addresses",
        "_ip_addr_groups",
        "_known_ips",
        "_known_macs",
        "_members",
        "_peered_by",
        "_port_groups",
        "_ports",
        "_records",
        "_routers",
        "_routes",
        "_rules",
        "_security_groups",
        "bindings",
        "bridges",
        "chains",
        "device_ports",
        "dhcp_hosts",
        "dhcp_subnets",
        "host_addresses",
        "ip_addr_groups",
        "known_ips",
        "known_macs",
        "local_host_id",
        "memos",
        "port_groups",
        "ports",
        "routers",
        "routes",
        "rules",
        "security_groups",
    )

    def __init__(self, local_host_id: uuid.UUID | None = None) -> None:
        self.local_host_id = local_host_id
        self._records: dict[uuid.UUID, Record] = {}
        # each public Mapping is the private dict next to it: read-only to readers
        self._ports: dict[uuid.UUID, Port] = {}
        self.ports: Mapping[uuid.UUID, Port] = self._ports
        self._bridges: dict[uuid.UUID, Bridge] = {}
        self.bridges: Mapping[uuid.UUID, Bridge] = self._bridges
        self._routers: dict[uuid.UUID, Router] = {}
        self.routers: Mapping[uuid.UUID, Router] = self._routers
        self._chains: dict[uuid.UUID, Chain] = {}
        self.chains: Mapping[uuid.UUID, Chain] = self._chains
        self._rules: dict[uuid.UUID, Rule] = {}
        self.rules: Mapping[uuid.UUID, Rule] = self._rules
        self._port_groups: dict[uuid.UUID, PortGroup] = {}
        self.port_groups: Mapping[uuid.UUID, PortGroup] = self._port_groups
        self._ip_addr_groups: dict[uuid.UUID, IPAddrGroup] = {}
        self.ip_addr_groups: Mapping[uuid.UUID, IPAddrGroup] = self._ip_addr_groups
        self._security_groups: dict[uuid.UUID, SecurityGroup] = {}
        self.security_groups: Mapping[uuid.UUID, SecurityGroup] = self._security_groups
        self._bindings: dict[uuid.UUID, PortBinding] = {}  # by port id
        self.bindings: Mapping[uuid.UUID, PortBinding] = self._bindings
        # underlay address by host id: its tunnel-zone membership of the lowest id
        self._host_addresses: dict[uuid.UUID, IPAddress] = {}
        self.host_addresses: Mapping[uuid.UUID, IPAddress] = self._host_addresses
        self._device_ports: dict[uuid.UUID, tuple[Port, ...]] = {}
        self.device_ports: Mapping[uuid.UUID, tuple[Port, ...]] = self._device_ports
        self._routes: dict[uuid.UUID, tuple[Route, ...]] = {}  # by router id
        self.routes: Mapping[uuid.UUID, tuple[Route, ...]] = self._routes
        self._dhcp_subnets: dict[uuid.UUID, tuple[DhcpSubnet, ...]] = {}  # by bridge id
        self.dhcp_subnets: Mapping[uuid.UUID, tuple[DhcpSubnet, ...]] = self._dhcp_subnets
        self._dhcp_hosts: dict[uuid.UUID, tuple[DhcpHost, ...]] = {}  # by subnet id
        self.dhcp_hosts: Mapping[uuid.UUID, tuple[DhcpHost, ...]] = self._dhcp_hosts
        # bridge id -> IP -> MAC known without learning (static entries, VM ports,
        # router ports peered to the bridge): ARP is answered from this, not flooded
        self._known_ips: dict[uuid.UUID, dict[IPAddress, bytes]] = {}
        self.known_ips: Mapping[uuid.UUID, Mapping[IPAddress, bytes]] = self._known_ips
        # bridge id -> MAC -> the bridge port behind which that MAC is configured
        # (a VM port's mac, or the bridge port peered to a router port with that mac)
        self._known_macs: dict[uuid.UUID, dict[bytes, uuid.UUID]] = {}
        self.known_macs: Mapping[uuid.UUID, Mapping[bytes, uuid.UUID]] = self._known_macs
        self._members: dict[uuid.UUID, tuple[TunnelZoneMember, ...]] = {}  # by host id
        self._peered_by: dict[uuid.UUID, set[uuid.UUID]] = {}  # port -> ports peered to it
        self.memos = Memos()

    @classmethod
    def build(
        cls, records: Iterable[Record], local_host_id: uuid.UUID | None = None
    ) -> TopologyView:
        """A view of ``records`` (of one id, the last counts), indexed in one pass."""
        view = cls(local_host_id)
        for record in records:
            if type(record) in _INDEXES:
                view._records[record.id] = record
        groups: dict[str, dict[uuid.UUID, list[Record]]] = {}
        for record in view._records.values():
            kind = type(record)
            table = _TABLES.get(kind)
            if table is not None:
                getattr(view, table)[record.id] = record
            grouping = _GROUPS.get(kind)
            if grouping is not None:
                attr, group_of = grouping
                groups.setdefault(attr, {}).setdefault(group_of(record), []).append(record)
            if isinstance(record, PortBinding):
                view._bindings[record.port_id] = record
        for attr, by_group in groups.items():
            index = getattr(view, attr)
            for group, members in by_group.items():
                index[group] = tuple(sorted(members, key=_record_id))
        for host, tzms in view._members.items():
            view._host_addresses[host] = tzms[0].address
        for port in view._ports.values():
            if port.peer_id is not None:
                view._peered_by.setdefault(port.peer_id, set()).add(port.id)
        bridges = set(view._bridges)
        bridges.update(p.device_id for p in view._ports.values() if _on_bridge(p))
        for bridge_id in bridges:
            view._refresh_bridge(bridge_id)
        return view

    def apply(self, record_id: uuid.UUID, record: Record | None) -> None:
        """Record ``record_id`` is now ``record`` (None: deleted); update what it touches."""
        old = self._records.get(record_id)
        present = record if record is not None else old
        if present is None:
            return
        kind = type(present)
        if kind not in _INDEXES:  # not a kind the simulation reads
            return
        if record is None:
            del self._records[record_id]
        else:
            self._records[record_id] = record
        table = _TABLES.get(kind)
        if table is not None:
            records: dict[uuid.UUID, Record] = getattr(self, table)
            if record is None:
                del records[record_id]
            else:
                records[record_id] = record
        grouping = _GROUPS.get(kind)
        if grouping is not None:
            _regroup(getattr(self, grouping[0]), grouping[1], old, record)
        follow = _INDEXES[kind]
        if follow is not None:
            follow(self, old, record)
        self.memos.drop(_sources(old) | _sources(record))

    def peer(self, port: Port) -> Port | None:
        return self._ports.get(port.peer_id) if port.peer_id is not None else None

    def port_host(self, port_id: uuid.UUID) -> uuid.UUID | None:
        binding = self._bindings.get(port_id)
        return binding.host_id if binding is not None else None

    # -- what else a change updates, per kind (old, new: records of the kind, or None) --
    def _port(self, old: Port | None, new: Port | None) -> None:
        port_id = (new or old).id  # type: ignore[union-attr]
        if old is not None and old.peer_id is not None:
            referrers = self._peered_by.get(old.peer_id, set())
            referrers.discard(port_id)
            if not referrers:
                self._peered_by.pop(old.peer_id, None)
        if new is not None and new.peer_id is not None:
            self._peered_by.setdefault(new.peer_id, set()).add(port_id)
        # the bridges whose known tables read this port: its own, its peers', and
        # those of ports that name it as their peer
        near: list[Port | None] = [old, new]
        for port in (old, new):
            if port is not None and port.peer_id is not None:
                near.append(self._ports.get(port.peer_id))
        near += [self._ports.get(p) for p in self._peered_by.get(port_id, ())]
        for bridge_id in {p.device_id for p in near if p is not None and _on_bridge(p)}:
            self._refresh_bridge(bridge_id)

    def _bridge(self, old: Bridge | None, new: Bridge | None) -> None:
        self._refresh_bridge((new or old).id)  # type: ignore[union-attr]

    def _member(self, old: TunnelZoneMember | None, new: TunnelZoneMember | None) -> None:
        for host in {m.host_id for m in (old, new) if m is not None}:
            first = self._members.get(host)
            if first:
                self._host_addresses[host] = first[0].address
            else:
                self._host_addresses.pop(host, None)

    def _binding(self, old: PortBinding | None, new: PortBinding | None) -> None:
        if old is not None and self._bindings.get(old.port_id) is old:
            del self._bindings[old.port_id]
        if new is not None:
            self._bindings[new.port_id] = new

    def _refresh_bridge(self, bridge_id: uuid.UUID) -> None:
        """Recompute what one bridge knows without learning, from its ports and peers."""
        ports = [p for p in self._device_ports.get(bridge_id, ()) if _on_bridge(p)]
        bridge = self._bridges.get(bridge_id)
        if bridge is None:
            self._known_ips.pop(bridge_id, None)
        else:
            ips: dict[IPAddress, bytes] = {}
            for entry in bridge.static_arp:
                ips[entry.ip] = mac_bytes(entry.mac)
            for port in ports:
                peer = self.peer(port)
                if peer is not None and peer.address is not None and peer.mac is not None:
                    ips.setdefault(peer.address, mac_bytes(peer.mac))
                if port.mac is not None:
                    for ip in port.fixed_ips:
                        ips.setdefault(ip, mac_bytes(port.mac))
            self._known_ips[bridge_id] = ips
        if not ports:
            self._known_macs.pop(bridge_id, None)
            return
        macs: dict[bytes, uuid.UUID] = {}
        for port in ports:
            peer = self.peer(port)
            if peer is not None and peer.mac is not None:
                macs.setdefault(mac_bytes(peer.mac), port.id)
            if port.mac is not None and peer is None:
                macs.setdefault(mac_bytes(port.mac), port.id)
        self._known_macs[bridge_id] = macs


def _on_bridge(port: Port) -> bool:
    return port.device_type is DeviceType.BRIDGE


def _device_of(port: Port) -> uuid.UUID:
    return port.device_id


def _router_of(route: Route) -> uuid.UUID:
    return route.router_id


def _bridge_of(subnet: DhcpSubnet) -> uuid.UUID:
    return subnet.bridge_id


def _subnet_of(host: DhcpHost) -> uuid.UUID:
    return host.subnet_id


def _host_of(member: TunnelZoneMember) -> uuid.UUID:
    return member.host_id


def _record_id(record: Record) -> uuid.UUID:
    return record.id


def _regroup(
    index: dict[uuid.UUID, tuple[R, ...]],
    group_of: Callable[[R], uuid.UUID],
    old: R | None,
    new: R | None,
) -> None:
    """Move a record within ``index`` (group id -> records ordered by id)."""
    if old is not None:
        group = group_of(old)
        members = index.get(group, ())
        at = bisect_left(members, old.id, key=_record_id)
        if at < len(members) and members[at].id == old.id:
            members = members[:at] + members[at + 1 :]
        if members:
            index[group] = members
        else:
            index.pop(group, None)
    if new is not None:
        group = group_of(new)
        members = index.get(group, ())
        at = bisect_left(members, new.id, key=_record_id)
        index[group] = (*members[:at], new, *members[at:])


def _sources(record: Record | None) -> set[uuid.UUID]:
    """The ids memos built from ``record`` are filed under: its own and its parents'."""
    if record is None:
        return set()
    out = {record.id}
    for ref in _PARENTS[type(record)]:
        out.update(ref.ids(record))
    return out


# records by id, per kind: the attribute that holds them
_TABLES: dict[type[Record], str] = {
    Port: "_ports",
    Bridge: "_bridges",
    Router: "_routers",
    Chain: "_chains",
    Rule: "_rules",
    PortGroup: "_port_groups",
    IPAddrGroup: "_ip_addr_groups",
    SecurityGroup: "_security_groups",
}
# records by group, ordered by id, per kind: the attribute and the group's id
_GROUPS: dict[type[Record], tuple[str, Callable[[Any], uuid.UUID]]] = {
    Port: ("_device_ports", _device_of),
    Route: ("_routes", _router_of),
    DhcpSubnet: ("_dhcp_subnets", _bridge_of),
    DhcpHost: ("_dhcp_hosts", _subnet_of),
    TunnelZoneMember: ("_members", _host_of),
}
# every kind the view reads, and what else a change to one updates (None: nothing)
_INDEXES: dict[type[Record], Callable[[TopologyView, Any, Any], None] | None] = {
    Port: TopologyView._port,
    Bridge: TopologyView._bridge,
    Router: None,
    Chain: None,
    Rule: None,
    PortGroup: None,
    IPAddrGroup: None,
    SecurityGroup: None,
    Route: None,
    DhcpSubnet: None,
    DhcpHost: None,
    TunnelZoneMember: TopologyView._member,
    PortBinding: TopologyView._binding,
}
READ_KINDS: frozenset[type[Record]] = frozenset(_INDEXES)
# kinds agents hold that the simulation has no use for (their children matter)
UNREAD_KINDS: frozenset[type[Record]] = frozenset((Host, TunnelZone))
# a record's parents: what its cascading references point to (a port's device, a
# route's router, a rule's chain): memos built from a parent's children go with it
_PARENTS: dict[type[Record], tuple[Ref, ...]] = {
    kind: tuple(ref for ref in SPECS[kind].refs if ref.cascades) for kind in READ_KINDS
}

__all__ = ["READ_KINDS", "UNREAD_KINDS", "DictState", "StateView", "TopologyView", "mac_bytes"]
