"""The flow match of a frame: the exact-match key of a flow, read straight off the bytes.

Owns :class:`FlowMatch`, :func:`extract_match` (runs on every upcall, so it is
written for speed) and the wildcard helpers a megaflow cache keys on
(:data:`FIELDS`, :func:`masked`).

Invariants:

* ``extract_match`` raises :class:`~tenet.errors.PacketError` and nothing else
  for any input bytes, and accepts exactly the frames
  :meth:`tenet.packets.packet.Packet.parse` accepts, reading the same values
  (the tests check both on random frames), except that it also requires the
  transport header of a first fragment, which ``Packet.parse`` does not read
  (a tiny first fragment is dropped, as RFC 1858 advises). It reads precompiled
  ``struct.Struct``\\ s off the buffer: no layer objects, no copies but the
  small ``bytes`` of the address fields. It does not verify checksums;
* a field the frame does not have is ``0`` (numbers) or ``b""`` (addresses);
* addresses are ``bytes`` as on the wire: MACs 6, IPv4 4, IPv6 16 bytes. Bytes
  hash and compare fast, are what ``struct`` gives without conversion, and
  serve IPv4 and IPv6 alike; the ``*_addr`` accessors give ``ipaddress``
  objects;
* ``FlowMatch`` is a ``NamedTuple``: immutable, hashable, slotted (no
  ``__dict__``), and built by one ``tuple.__new__`` call, the cheapest record
  Python has. As a tuple it compares equal to a plain tuple of its values.

Field values:

* ``vlan`` / ``vlan_inner``: 0 when there is no (second) tag, else the 12-bit
  VLAN id with :data:`VLAN_PRESENT` (0x1000) set, so VLAN 0 (priority tagged)
  differs from untagged. PCP and DEI are not part of the match. ``eth_type`` is
  the type after the tags;
* ``ip_tos``: the IPv4 TOS byte or IPv6 traffic class (DSCP << 2 | ECN);
  ``ip_ttl``: TTL or hop limit;
* ``ip_frag``: :data:`FRAG_NONE`, :data:`FRAG_FIRST` (offset 0 with more
  fragments, or any IPv6 fragment header with offset 0) or :data:`FRAG_LATER`
  (offset > 0: no transport header, ``l4_*`` are 0). ``ip_proto`` of IPv6 is
  the upper-layer protocol after the extension headers (for a later fragment,
  the fragment header's next header);
* ``l4_src`` / ``l4_dst``: TCP/UDP ports, or ICMP/ICMPv6 type and code (as
  OVS does); ``tcp_flags``: the nine TCP flag bits;
* ``arp_*``: the ARP operation, sender and target MAC and IPv4 address. For an
  IPv6 neighbor solicitation/advertisement, ``nd_target`` is the target
  address, and ``arp_sha`` / ``arp_tha`` hold the source / target link-layer
  address option (as OVS reuses them), ``b""`` if absent;
* ``icmp_id``: the identifier of an ICMP echo request or reply (IPv4 types 8
  and 0, ICMPv6 128 and 129), 0 for every other frame: two pings between the
  same hosts differ only there. It is the last field, so positional
  constructions of the older fields keep working.

Wildcards: a megaflow key is the values of only the fields a simulation read.
``masked(match, fields)`` returns them as a tuple in :data:`FIELDS` order, so
two matches that agree on ``fields`` give equal keys. A megaflow cache keeps
one table per field set (the key holds values only, not the field names).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from ipaddress import IPv4Address, IPv6Address, ip_address
from operator import itemgetter
from typing import Any, NamedTuple, cast

from tenet.errors import PacketError
from tenet.packets.ethernet import ZERO_MAC
from tenet.packets.wire import Buffer

FRAG_NONE = 0
FRAG_FIRST = 1
FRAG_LATER = 2
VLAN_PRESENT = 0x1000


class FlowMatch(NamedTuple):
    """The exact-match flow key of one frame (see the module docstring for the values)."""

    in_port: int
    tunnel_key: int = 0
    eth_src: bytes = ZERO_MAC
    eth_dst: bytes = ZERO_MAC
    vlan: int = 0
    vlan_inner: int = 0
    eth_type: int = 0
    ip_src: bytes = b""
    ip_dst: bytes = b""
    ip_proto: int = 0
    ip_tos: int = 0
    ip_ttl: int = 0
    ip_frag: int = FRAG_NONE
    l4_src: int = 0
    l4_dst: int = 0
    tcp_flags: int = 0
    arp_op: int = 0
    arp_sha: bytes = b""
    arp_spa: bytes = b""
    arp_tha: bytes = b""
    arp_tpa: bytes = b""
    nd_target: bytes = b""
    icmp_id: int = 0

    @property
    def ip_src_addr(self) -> IPv4Address | IPv6Address | None:
        return ip_address(self.ip_src) if self.ip_src else None

    @property
    def ip_dst_addr(self) -> IPv4Address | IPv6Address | None:
        return ip_address(self.ip_dst) if self.ip_dst else None

    @property
    def arp_spa_addr(self) -> IPv4Address | None:
        return IPv4Address(self.arp_spa) if self.arp_spa else None

    @property
    def arp_tpa_addr(self) -> IPv4Address | None:
        return IPv4Address(self.arp_tpa) if self.arp_tpa else None

    @property
    def nd_target_addr(self) -> IPv6Address | None:
        return IPv6Address(self.nd_target) if self.nd_target else None

    @property
    def vlan_id(self) -> int | None:
        """The outer VLAN id, None if untagged."""
        return self.vlan & 0x0FFF if self.vlan else None

    @property
    def dscp(self) -> int:
        return self.ip_tos >> 2


FIELDS: tuple[str, ...] = FlowMatch._fields
"""Every field of the match, in order: the names :func:`masked` takes."""
ALL_FIELDS = frozenset(FIELDS)

IN_PORT, TUNNEL_KEY, ETH_SRC, ETH_DST, VLAN, VLAN_INNER, ETH_TYPE = FIELDS[:7]
IP_SRC, IP_DST, IP_PROTO, IP_TOS, IP_TTL, IP_FRAG = FIELDS[7:13]
L4_SRC, L4_DST, TCP_FLAGS = FIELDS[13:16]
ARP_OP, ARP_SHA, ARP_SPA, ARP_THA, ARP_TPA, ND_TARGET = FIELDS[16:22]
ICMP_ID = FIELDS[22]

_INDEX = {name: i for i, name in enumerate(FIELDS)}
_GETTERS: dict[frozenset[str], Callable[[FlowMatch], tuple[Any, ...]]] = {}
_GETTERS_MAX = 4096


def masked(match: FlowMatch, fields: frozenset[str]) -> tuple[Any, ...]:
    """The values of ``fields`` in ``match``, in :data:`FIELDS` order (a megaflow key).

    Raises ValueError for a name that is not a field (a programming error).
    """
    getter = _GETTERS.get(fields)
    if getter is None:
        getter = _getter(fields)
    return getter(match)


def _getter(fields: frozenset[str]) -> Callable[[FlowMatch], tuple[Any, ...]]:
    unknown = fields - ALL_FIELDS
    if unknown:
        raise ValueError(f"not flow match fields: {sorted(unknown)}")
    indices = sorted(_INDEX[name] for name in fields)
    getter: Callable[[FlowMatch], tuple[Any, ...]]
    if len(indices) >= 2:
        getter = itemgetter(*indices)
    elif indices:
        only = indices[0]

        def getter(match: FlowMatch) -> tuple[Any, ...]:
            return (match[only],)
    else:

        def getter(match: FlowMatch) -> tuple[Any, ...]:
            return ()

    if len(_GETTERS) >= _GETTERS_MAX:  # a memo, not state: bounded, rebuilt on demand
        _GETTERS.clear()
    _GETTERS[fields] = getter
    return getter


# The hot path. Names are module globals bound once; every read is guarded by
# struct.error (a short buffer) or an explicit bounds check against the end of
# the IP datagram (struct only knows the end of the buffer).
_ETH = struct.Struct("!6s6sH").unpack_from
_TAG = struct.Struct("!HH").unpack_from
_IPV4 = struct.Struct("!BBHHHBB2x4s4s").unpack_from
_IPV6 = struct.Struct("!IHBB16s16s").unpack_from
_BB = struct.Struct("!BB").unpack_from
_ICMP = struct.Struct("!BB2xH").unpack_from  # type, code, identifier (of an echo)
_FRAG6 = struct.Struct("!BxH").unpack_from
_UDP = struct.Struct("!HHH").unpack_from
_TCP = struct.Struct("!HH8xBB").unpack_from
_ARP = struct.Struct("!HHBBH6s4s6s4s").unpack_from
_ND = struct.Struct("!BB2x4x16s").unpack_from
_MAC = struct.Struct("!6s").unpack_from
_new = cast("Callable[[type[FlowMatch], tuple[Any, ...]], FlowMatch]", tuple.__new__)

_TPIDS = frozenset({0x8100, 0x88A8, 0x9100})
_V6_EXT = frozenset({0, 43, 44, 51, 60})
_NON_IP_TAIL = (b"", b"", 0, 0, 0, 0, 0, 0, 0, 0, b"", b"", b"", b"", b"", 0)
_ECHO4 = frozenset({0, 8})  # ICMP echo reply, request
_ECHO6 = frozenset({128, 129})  # ICMPv6 echo request, reply


def extract_match(frame: Buffer, in_port: int, tunnel_key: int = 0) -> FlowMatch:
    """The flow match of ``frame`` received on ``in_port`` (and tunnel ``tunnel_key``).

    Raises PacketError, and nothing else, when the frame is truncated or malformed.
    """
    try:
        eth_dst, eth_src, eth_type = _ETH(frame, 0)
        vlan = vlan_inner = 0
        off = 14
        if eth_type >= 0x8100 and eth_type in _TPIDS:
            tci, eth_type = _TAG(frame, 14)
            vlan = (tci & 0x0FFF) | 0x1000
            off = 18
            if eth_type in _TPIDS:
                tci, eth_type = _TAG(frame, 18)
                vlan_inner = (tci & 0x0FFF) | 0x1000
                off = 22
        if eth_type == 0x0800:
            tail = _ipv4(frame, off)
        elif eth_type == 0x86DD:
            tail = _ipv6(frame, off)
        elif eth_type == 0x0806:
            tail = _arp(frame, off)
        else:
            tail = _NON_IP_TAIL
    except (struct.error, IndexError) as exc:
        raise PacketError(f"malformed frame: {exc}") from exc
    head = (in_port, tunnel_key, eth_src, eth_dst, vlan, vlan_inner, eth_type)
    return _new(FlowMatch, head + tail)


def _ipv4(frame: Buffer, off: int) -> tuple[Any, ...]:
    vihl, tos, total, _ident, frag, ttl, proto, src, dst = _IPV4(frame, off)
    ihl = (vihl & 0x0F) << 2
    end = off + total
    if vihl >> 4 != 4 or ihl < 20 or total < ihl or end > len(frame):
        raise PacketError("bad IPv4 header")
    if frag & 0x3FFF:
        if frag & 0x1FFF:
            return (src, dst, proto, tos, ttl, 2, 0, 0, 0, 0, b"", b"", b"", b"", b"", 0)
        ip_frag = FRAG_FIRST
    else:
        ip_frag = FRAG_NONE
    l4 = off + ihl
    if proto == 6:
        if l4 + 20 > end:
            raise PacketError("TCP header truncated")
        sport, dport, hlen, flags = _TCP(frame, l4)
        if hlen < 0x50 or l4 + ((hlen >> 4) << 2) > end:
            raise PacketError("bad TCP data offset")
        flags |= (hlen & 1) << 8
        ident = 0
    elif proto == 17:
        if l4 + 8 > end:
            raise PacketError("UDP header truncated")
        sport, dport, length = _UDP(frame, l4)
        if length < 8 or (l4 + length > end and not ip_frag):
            raise PacketError("bad UDP length")
        flags = ident = 0
    elif proto == 1:
        if l4 + 8 > end:
            raise PacketError("ICMP header truncated")
        sport, dport, ident = _ICMP(frame, l4)
        if sport not in _ECHO4:
            ident = 0
        flags = 0
    else:
        sport = dport = flags = ident = 0
    return (
        src, dst, proto, tos, ttl, ip_frag, sport, dport, flags, 0, b"", b"", b"", b"", b"", ident,
    )  # fmt: skip


def _ipv6(frame: Buffer, off: int) -> tuple[Any, ...]:
    vtf, plen, proto, hop_limit, src, dst = _IPV6(frame, off)
    end = off + 40 + plen
    if vtf >> 28 != 6 or end > len(frame):
        raise PacketError("bad IPv6 header")
    tos = (vtf >> 20) & 0xFF
    l4 = off + 40
    ip_frag = FRAG_NONE
    while proto in _V6_EXT:
        if l4 + 8 > end:
            raise PacketError("IPv6 extension header truncated")
        if proto == 44:
            proto, frag = _FRAG6(frame, l4)
            l4 += 8
            if frag & 0xFFF8:
                return (src, dst, proto, tos, hop_limit, 2, 0, 0, 0, 0, b"", b"", b"", b"", b"", 0)
            ip_frag = FRAG_FIRST
            continue
        nxt, hlen = _BB(frame, l4)
        l4 += (hlen + 2) << 2 if proto == 51 else (hlen + 1) << 3
        if l4 > end:
            raise PacketError("IPv6 extension header truncated")
        proto = nxt
    sha = tha = target = b""
    ident = 0
    if proto == 6:
        if l4 + 20 > end:
            raise PacketError("TCP header truncated")
        sport, dport, hlen, flags = _TCP(frame, l4)
        if hlen < 0x50 or l4 + ((hlen >> 4) << 2) > end:
            raise PacketError("bad TCP data offset")
        flags |= (hlen & 1) << 8
    elif proto == 17:
        if l4 + 8 > end:
            raise PacketError("UDP header truncated")
        sport, dport, length = _UDP(frame, l4)
        if length < 8 or (l4 + length > end and not ip_frag):
            raise PacketError("bad UDP length")
        flags = 0
    elif proto == 58:
        if l4 + 8 > end:
            raise PacketError("ICMPv6 header truncated")
        sport, dport, ident = _ICMP(frame, l4)
        if sport not in _ECHO6:
            ident = 0
        flags = 0
        if 135 <= sport <= 136 and not ip_frag:  # neighbor solicitation/advertisement
            sha, tha, target = _nd(frame, l4, end, sport)
    else:
        sport = dport = flags = 0
    return (
        src,
        dst,
        proto,
        tos,
        hop_limit,
        ip_frag,
        sport,
        dport,
        flags,
        0,
        sha,
        b"",
        tha,
        b"",
        target,
        ident,
    )


def _nd(frame: Buffer, l4: int, end: int, icmp_type: int) -> tuple[bytes, bytes, bytes]:
    """(source lladdr, target lladdr, target) of a neighbor solicitation/advertisement."""
    if l4 + 24 > end:
        raise PacketError("ND target truncated")
    target = _ND(frame, l4)[2]
    want = 1 if icmp_type == 135 else 2
    lladdr = b""
    opt = l4 + 24
    while opt < end:
        if opt + 2 > end:
            raise PacketError("ND option truncated")
        kind, units = _BB(frame, opt)
        if units == 0 or opt + (units << 3) > end:
            raise PacketError("bad ND option length")
        if kind == want and units == 1 and not lladdr:
            lladdr = _MAC(frame, opt + 2)[0]
        opt += units << 3
    if want == 1:
        return lladdr, b"", target
    return b"", lladdr, target


def _arp(frame: Buffer, off: int) -> tuple[Any, ...]:
    htype, ptype, hlen, plen, op, sha, spa, tha, tpa = _ARP(frame, off)
    if htype != 1 or ptype != 0x0800 or hlen != 6 or plen != 4:
        raise PacketError("not an Ethernet/IPv4 ARP")
    return (b"", b"", 0, 0, 0, 0, 0, 0, 0, op, sha, spa, tha, tpa, b"", 0)
