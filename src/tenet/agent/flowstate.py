"""The agent's flow state: conntrack entries, their expiry, and how hosts share them.

Flow state never goes to the store (DESIGN.md, "Flow state"): one write per
connection would exceed the whole store's budget. Each agent keeps a
:class:`FlowStateTable`; the simulation reads it (``StateView.connection``) and
its results say what to commit, keep alive or delete
(:class:`~tenet.simulation.result.CtOutcome`).

**Groups.** The keys committed together (a connection's forward key and a return
key per egress) form a :class:`Group`: they live, expire, are evicted and are
deleted together (a NAT or reply entry never outlives its forward entry). A group
knows its peers (the hosts that hold its keys too), the TCP flags seen each way,
and when it was last used and last sent.

**Sharing** is peer to peer, in band, as MidoNet does: a flow-state message is a
frame (:func:`encode` / :func:`decode`) tunnelled with key
:data:`~tenet.datapath.base.STATE_VNI`, sent *before* the packet whose simulation
committed the state (so the reply's host knows the connection before the reply
exists: the receiving datapath queues both in the same ring, in order). A message
carries groups to upsert (commit or refresh) or delete, with lifetimes relative
to now (hosts' clocks differ). A receiver accepts it only from the underlay
address of a host of the tunnel zone, and only if the sender it names is that
host; anything else is counted and dropped, never raised.

**Expiry** (:class:`Timeouts`): by protocol and TCP progress. TCP is SYN-only
until a packet with ACK went forward (the handshake's third step), established
then, closing once FIN went both ways or RST either way. A group's deadline is
its last use plus its timeout; the agent touches groups whose flows carried
packets (flow counters, no re-simulation) and sends a refresh to the peers of a
group it has not sent for ``refresh_every`` (both ways: the host of the reply's
flow refreshes too, so a stream that only flows from server to client stays
alive). Imported groups live ``import_slack`` times their timeout, so a peer's
refresh arrives in time. The table is bounded: the least recently used group is
evicted whole; evictions and expiries are counted.
"""

from __future__ import annotations

import struct
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address, ip_address

from tenet.errors import PacketError
from tenet.model import IPAddress
from tenet.packets.checksum import internet_checksum
from tenet.simulation.state import (
    Connection,
    ConnectionKey,
    Direction,
    NatBinding,
    NatKey,
    StateView,
)

TCP_FIN, TCP_SYN, TCP_RST, TCP_ACK = 0x01, 0x02, 0x04, 0x10
PROTO_TCP = 6

# the fixed inner headers of a state frame (link-local, never routed)
STATE_SRC_MAC = bytes.fromhex("acca ba00 1501")
STATE_DST_MAC = bytes.fromhex("acca ba00 1502")
STATE_SRC_IP = IPv4Address("169.254.15.1")
STATE_DST_IP = IPv4Address("169.254.15.2")
STATE_PORT = 2925
MAGIC = b"TNFS"
VERSION = 1
MAX_PAYLOAD = 1300  # fits a 1500-byte underlay after VXLAN's 50 bytes

OP_UPSERT = 1
OP_DELETE = 2


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds a connection lives unused, by protocol and TCP progress."""

    tcp_syn: float = 60.0
    tcp_established: float = 7200.0
    tcp_closing: float = 10.0
    udp: float = 60.0
    icmp: float = 30.0
    other: float = 60.0

    def of(self, proto: int, forward_flags: int, return_flags: int) -> float:
        if proto == PROTO_TCP:
            if (forward_flags | return_flags) & TCP_RST or (
                forward_flags & TCP_FIN and return_flags & TCP_FIN
            ):
                return self.tcp_closing
            if forward_flags & TCP_ACK:  # the opener acknowledged: the handshake is done
                return self.tcp_established
            return self.tcp_syn
        if proto == 17:
            return self.udp
        if proto in (1, 58):
            return self.icmp
        return self.other


@dataclass(eq=False)
class Group:
    """The keys of one connection that live and die together."""

    keys: dict[ConnectionKey, Direction]
    proto: int
    peers: set[uuid.UUID]
    local: bool  # committed here (False: imported from a peer)
    last_used: float
    forward_flags: int = 0
    return_flags: int = 0
    last_sent: float = float("-inf")
    touched: float = float("-inf")  # last used *here* (what this host has to tell)
    slack: float = 1.0  # imported groups live longer than their timeout

    def deadline(self, timeouts: Timeouts) -> float:
        timeout = timeouts.of(self.proto, self.forward_flags, self.return_flags)
        return self.last_used + timeout * self.slack

    def timeout(self, timeouts: Timeouts) -> float:
        return timeouts.of(self.proto, self.forward_flags, self.return_flags)


@dataclass
class FlowStateCounters:
    ct_entries: int = 0
    ct_groups: int = 0
    ct_committed: int = 0
    ct_imported: int = 0
    ct_expired: int = 0
    ct_evicted: int = 0
    ct_deleted: int = 0
    state_sent: int = 0
    state_received: int = 0
    state_rejected: int = 0  # from an address or sender outside the tunnel zone
    state_malformed: int = 0
    state_late: int = 0  # flows found simulated without state that arrived after them


@dataclass
class FlowStateTable:
    """Conntrack entries by key, grouped by connection (see the module docstring).

    ``connection`` is the StateView lookup. Every method that adds, changes or
    removes keys returns the keys whose flows must be re-simulated."""

    timeouts: Timeouts = field(default_factory=Timeouts)
    max_entries: int = 1_000_000
    refresh_every: float = 30.0
    import_slack: float = 1.5
    counters: FlowStateCounters = field(default_factory=FlowStateCounters)
    version: int = 0  # bumped when keys come or go (what a saved copy is compared by)
    _keys: dict[ConnectionKey, Group] = field(default_factory=dict)
    _groups: OrderedDict[int, Group] = field(default_factory=OrderedDict)

    def __len__(self) -> int:
        return len(self._keys)

    def connection(self, key: ConnectionKey) -> Connection | None:
        group = self._keys.get(key)
        return Connection(key, group.keys[key]) if group is not None else None

    def group_of(self, key: ConnectionKey) -> Group | None:
        return self._keys.get(key)

    def groups(self) -> Iterator[Group]:
        return iter(list(self._groups.values()))

    # -- writes ---------------------------------------------------------------------
    def commit(
        self, entries: Iterable[Connection], peers: Iterable[uuid.UUID], now: float
    ) -> tuple[Group, set[ConnectionKey]]:
        """Write a connection committed by a local simulation; returns its group and
        the keys that are new or changed direction."""
        entries = tuple(entries)
        group = self._join(entries, now, local=True)
        group.touched = now
        group.peers.update(peers)
        changed = self._place(group, entries)
        self.counters.ct_committed += 1
        return group, changed

    def upsert(
        self,
        entries: Iterable[Connection],
        sender: uuid.UUID,
        ttl: float,
        forward_flags: int,
        return_flags: int,
        now: float,
    ) -> set[ConnectionKey]:
        """A peer's commit or refresh: the keys that are new or changed direction."""
        entries = tuple(entries)
        group = self._join(entries, now, local=False)
        group.peers.add(sender)
        group.forward_flags |= forward_flags
        group.return_flags |= return_flags
        timeout = self.timeouts.of(group.proto, group.forward_flags, group.return_flags)
        # the peer's word on when it was last used: the ttl left of its timeout
        used = now - max(0.0, timeout - ttl)
        if not group.keys:
            group.last_used = used  # new here
        else:
            group.last_used = max(group.last_used, used)
        if not group.local:
            group.slack = self.import_slack
        changed = self._place(group, entries)
        self.counters.ct_imported += 1
        return changed

    def touch(
        self, key: ConnectionKey, now: float, flags: int = 0, direction: Direction | None = None
    ) -> Group | None:
        """A flow holding ``key`` carried packets (with these TCP flags, going the way
        ``direction`` says: the key's own direction by default)."""
        group = self._keys.get(key)
        if group is None:
            return None
        group.last_used = max(group.last_used, now)
        group.touched = now
        way = direction or group.keys[key]
        if way is Direction.FORWARD:
            group.forward_flags |= flags
        else:
            group.return_flags |= flags
        self._groups.move_to_end(id(group))
        return group

    def delete(self, keys: Iterable[ConnectionKey]) -> list[Group]:
        """Forget the groups of ``keys`` (whole); the groups removed."""
        gone: list[Group] = []
        for key in keys:
            group = self._keys.get(key)
            if group is not None:
                self._drop(group)
                gone.append(group)
        self.counters.ct_deleted += len(gone)
        return gone

    def expire(self, now: float) -> list[Group]:
        """Remove and return the groups past their deadline."""
        gone = [g for g in self._groups.values() if g.deadline(self.timeouts) <= now]
        for group in gone:
            self._drop(group)
        self.counters.ct_expired += len(gone)
        return gone

    def due(self, now: float) -> list[Group]:
        """Groups used since they were last sent, and not sent for a while: the agent
        refreshes their peers."""
        out = []
        for group in self._groups.values():
            every = min(self.refresh_every, group.timeout(self.timeouts) / 2)
            if group.peers and group.touched > group.last_sent and now - group.last_sent >= every:
                out.append(group)
        return out

    # -- inside ---------------------------------------------------------------------
    def _join(self, entries: tuple[Connection, ...], now: float, *, local: bool) -> Group:
        for entry in entries:
            group = self._keys.get(entry.key)
            if group is not None:
                if local:  # a packet here; a peer's word on use is its ttl (upsert)
                    group.last_used = max(group.last_used, now)
                group.local = group.local or local
                self._groups.move_to_end(id(group))
                return group
        proto = entries[0].key.proto if entries else 0
        group = Group({}, proto, set(), local, now)
        self._groups[id(group)] = group
        self.counters.ct_groups = len(self._groups)
        return group

    def _place(self, group: Group, entries: tuple[Connection, ...]) -> set[ConnectionKey]:
        changed: set[ConnectionKey] = set()
        for entry in entries:
            other = self._keys.get(entry.key)
            if other is not None and other is not group:
                self._drop(other)  # a key of an older connection: replaced whole
            if group.keys.get(entry.key) is not entry.direction:
                changed.add(entry.key)
            group.keys[entry.key] = entry.direction
            self._keys[entry.key] = group
        if changed:
            self.version += 1
        while len(self._keys) > self.max_entries and self._groups:
            _, oldest = next(iter(self._groups.items()))
            if oldest is group:
                break
            self._drop(oldest)
            self.counters.ct_evicted += 1
        self.counters.ct_entries = len(self._keys)
        return changed

    def _drop(self, group: Group) -> None:
        for key in group.keys:
            if self._keys.get(key) is group:
                del self._keys[key]
        self._groups.pop(id(group), None)
        self.version += 1
        self.counters.ct_entries = len(self._keys)
        self.counters.ct_groups = len(self._groups)

    # -- a restart --------------------------------------------------------------------
    def snapshot(self, now: float) -> bytes:
        """Every group, as one upsert message from nobody (lifetimes relative to now)."""
        return b"".join(
            _encode_group(OP_UPSERT, g, self.timeouts, now, local=g.local) for g in self.groups()
        )

    def restore(self, data: bytes, now: float) -> int:
        """Load a :meth:`snapshot`; how many groups. Bad data raises PacketError."""
        count = 0
        for op, entries, ttl, fwd, ret, local in _decode_groups(data, -1):
            if op != OP_UPSERT or not entries:
                continue
            group = self._join(entries, now, local=local)
            group.forward_flags, group.return_flags = fwd, ret
            timeout = self.timeouts.of(group.proto, fwd, ret)
            group.last_used = now - max(0.0, timeout - ttl)
            self._place(group, entries)
            count += 1
        return count


# -- the wire ----------------------------------------------------------------------------

_HEADER = struct.Struct("!4sBB16sIH")  # magic, version, flags, sender, sequence, groups
_GROUP = struct.Struct("!BBIHHH")  # op, local, ttl (ms, capped), fwd flags, ret flags, keys
_KEY = struct.Struct("!BBB16sHH")  # direction, family (4/6), proto, zone, sport, dport


@dataclass(frozen=True, slots=True)
class Message:
    sender: uuid.UUID
    sequence: int
    groups: tuple[tuple[int, tuple[Connection, ...], float, int, int], ...]
    # (op, entries, ttl seconds, forward flags, return flags)


def encode(
    sender: uuid.UUID,
    sequence: int,
    groups: Iterable[tuple[int, Group]],
    timeouts: Timeouts,
    now: float,
) -> list[bytes]:
    """State frames carrying ``groups`` (op, group), as many as their size needs."""
    frames: list[bytes] = []
    bodies: list[bytes] = []
    size = 0
    for op, group in groups:
        body = _encode_group(op, group, timeouts, now, local=False)
        if bodies and size + len(body) > MAX_PAYLOAD:
            frames.append(_frame(sender, sequence + len(frames), bodies))
            bodies, size = [], 0
        bodies.append(body)
        size += len(body)
    if bodies:
        frames.append(_frame(sender, sequence + len(frames), bodies))
    return frames


# the frame's fixed headers: Ethernet, IPv4 (no options, DF, TTL 64) and UDP with no
# checksum (IPv4 allows none; the underlay's VXLAN carries it), lengths filled per frame
_ETH = STATE_DST_MAC + STATE_SRC_MAC + b"\x08\x00"
_IP = struct.Struct("!BBHHHBBH4s4s")
_UDP = struct.Struct("!HHHH")
_L3, _L4, _BODY = 14, 34, 42


def _frame(sender: uuid.UUID, sequence: int, bodies: list[bytes]) -> bytes:
    payload = _HEADER.pack(MAGIC, VERSION, 0, sender.bytes, sequence & 0xFFFFFFFF, len(bodies))
    payload += b"".join(bodies)
    udp_len = 8 + len(payload)
    fields = [0x45, 0, 20 + udp_len, 0, 0x4000, 64, 17, 0, STATE_SRC_IP.packed]
    header = _IP.pack(*fields, STATE_DST_IP.packed)
    header = header[:10] + internet_checksum(header).to_bytes(2, "big") + header[12:]
    return _ETH + header + _UDP.pack(STATE_PORT, STATE_PORT, udp_len, 0) + payload


def _encode_group(op: int, group: Group, timeouts: Timeouts, now: float, *, local: bool) -> bytes:
    left = _plain_left(group, timeouts, now)
    ttl_ms = int(min(max(left, 0.0), 0xFFFFFFFF / 1000) * 1000)
    keys = list(group.keys.items())
    out = [
        _GROUP.pack(
            op,
            int(local),
            ttl_ms,
            group.forward_flags & 0xFFFF,
            group.return_flags & 0xFFFF,
            len(keys),
        )
    ]
    for key, direction in keys:
        family = 4 if isinstance(key.src, IPv4Address) else 6
        out.append(
            _KEY.pack(
                0 if direction is Direction.FORWARD else 1,
                family,
                key.proto,
                key.zone.bytes,
                key.src_port,
                key.dst_port,
            )
        )
        out.append(key.src.packed + key.dst.packed)
    return b"".join(out)


def _plain_left(group: Group, timeouts: Timeouts, now: float) -> float:
    return group.last_used + group.timeout(timeouts) - now


def decode(frame: bytes) -> Message:
    """A state frame's message; PacketError for anything that is not one."""
    if len(frame) < _BODY or frame[12:14] != b"\x08\x00" or frame[_L3] != 0x45:
        raise PacketError("flow state: not an IPv4 frame without options")
    if frame[_L3 + 9] != 17 or int.from_bytes(frame[_L4 + 2 : _L4 + 4], "big") != STATE_PORT:
        raise PacketError("flow state: not a state frame (UDP port)")
    udp_len = int.from_bytes(frame[_L4 + 4 : _L4 + 6], "big")
    if udp_len < 8 or _L4 + udp_len > len(frame):
        raise PacketError("flow state: bad UDP length")
    payload = frame[_BODY : _L4 + udp_len]
    if len(payload) < _HEADER.size:
        raise PacketError("flow state: short header")
    magic, version, _flags, sender, sequence, count = _HEADER.unpack_from(payload, 0)
    if magic != MAGIC or version != VERSION:
        raise PacketError(f"flow state: bad magic or version {version}")
    groups = tuple(
        (op, entries, ttl, fwd, ret)
        for op, entries, ttl, fwd, ret, _local in _decode_groups(payload[_HEADER.size :], count)
    )
    return Message(uuid.UUID(bytes=sender), sequence, groups)


def _decode_groups(
    data: bytes, count: int
) -> Iterator[tuple[int, tuple[Connection, ...], float, int, int, bool]]:
    """Groups off ``data``: ``count`` of them, or (-1) as many as it holds exactly."""
    offset = 0
    seen = 0
    while (count < 0 and offset < len(data)) or seen < count:
        if offset + _GROUP.size > len(data):
            raise PacketError("flow state: truncated group")
        op, local, ttl_ms, fwd, ret, nkeys = _GROUP.unpack_from(data, offset)
        if op not in (OP_UPSERT, OP_DELETE):
            raise PacketError(f"flow state: unknown operation {op}")
        offset += _GROUP.size
        entries: list[Connection] = []
        for _ in range(nkeys):
            if offset + _KEY.size > len(data):
                raise PacketError("flow state: truncated key")
            way, family, proto, zone, sport, dport = _KEY.unpack_from(data, offset)
            offset += _KEY.size
            width = {4: 4, 6: 16}.get(family)
            if width is None or way not in (0, 1):
                raise PacketError("flow state: bad key")
            if offset + 2 * width > len(data):
                raise PacketError("flow state: truncated addresses")
            src: IPAddress = _address(data[offset : offset + width])
            dst: IPAddress = _address(data[offset + width : offset + 2 * width])
            offset += 2 * width
            key = ConnectionKey(uuid.UUID(bytes=zone), proto, src, sport, dst, dport)
            entries.append(Connection(key, Direction.FORWARD if way == 0 else Direction.RETURN))
        seen += 1
        yield op, tuple(entries), ttl_ms / 1000, fwd, ret, bool(local)
    if count >= 0 and offset != len(data):
        raise PacketError("flow state: trailing bytes")


def _address(raw: bytes) -> IPv4Address | IPv6Address:
    return ip_address(raw)


class WithFlowState:
    """A StateView whose connections come from a :class:`FlowStateTable`."""

    def __init__(self, inner: StateView, table: FlowStateTable) -> None:
        self.inner = inner
        self.table = table

    def mac_port(self, bridge_id: uuid.UUID, mac: bytes) -> uuid.UUID | None:
        return self.inner.mac_port(bridge_id, mac)

    def arp_mac(self, router_id: uuid.UUID, ip: IPAddress) -> bytes | None:
        return self.inner.arp_mac(router_id, ip)

    def arp_failed(self, router_id: uuid.UUID, ip: IPAddress) -> bool:
        return self.inner.arp_failed(router_id, ip)

    def connection(self, key: ConnectionKey) -> Connection | None:
        return self.table.connection(key)

    def nat_mapping(self, key: NatKey) -> NatBinding | None:
        return self.inner.nat_mapping(key)
