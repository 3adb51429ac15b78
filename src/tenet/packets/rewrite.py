"""Header rewrites in place, with incremental checksum updates (RFC 1624).

Owns the set-field actions a datapath applies to a frame: Ethernet addresses,
IP addresses, TCP/UDP ports, and the TTL / hop limit. Each works on a
``bytearray`` holding the whole frame and keeps every checksum right by
updating it (:mod:`tenet.packets.checksum`), not by recomputing it: the IPv4
header checksum, and the TCP, UDP and ICMPv6 checksums whose pseudo-header
covers the IP addresses.

Invariants:

* after any rewrite, the frame's checksums are exactly what a full
  recomputation would give, if they were right before (the tests check it);
* a UDP-over-IPv4 checksum of 0 means "none" and stays 0; a UDP checksum that
  updates to 0 is written 0xFFFF;
* the transport header of a later fragment is not in the frame, so an address
  rewrite leaves it alone (its checksum lives in the first fragment), and a
  port rewrite raises PacketError;
* every function raises PacketError, and nothing else, for a frame it cannot
  rewrite (malformed, or not of the right kind); the frame is then unchanged.

:func:`layout` finds the offsets once; pass its result to several rewrites of
the same frame to walk the headers only once.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from tenet.errors import PacketError
from tenet.packets.checksum import update, update16
from tenet.packets.ethernet import ETH_TYPE_IPV4, ETH_TYPE_IPV6, VLAN_TPIDS
from tenet.packets.ipv4 import IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP
from tenet.packets.ipv6 import EXT_HEADERS, IPPROTO_AH, IPPROTO_FRAGMENT
from tenet.packets.wire import check_mac

_H = struct.Struct("!H")
_TAG = struct.Struct("!HH")
_BB = struct.Struct("!BB")

# where each transport protocol keeps its checksum, from the start of its header
_CSUM_AT = {IPPROTO_TCP: 16, IPPROTO_UDP: 6, IPPROTO_ICMPV6: 2}


class Layout(NamedTuple):
    """Where the headers of a frame start. ``l4`` is -1 when there is no transport header."""

    eth_type: int
    l3: int
    proto: int
    l4: int


def layout(frame: bytes | bytearray) -> Layout:
    """The offsets of the IP and transport headers of ``frame``."""
    try:
        (eth_type,) = _H.unpack_from(frame, 12)
        l3 = 14
        for _ in range(2):
            if eth_type not in VLAN_TPIDS:
                break
            _, eth_type = _TAG.unpack_from(frame, l3)
            l3 += 4
        if eth_type == ETH_TYPE_IPV4:
            return _layout4(frame, l3)
        if eth_type == ETH_TYPE_IPV6:
            return _layout6(frame, l3)
    except (struct.error, IndexError) as exc:
        raise PacketError(f"malformed frame: {exc}") from exc
    return Layout(eth_type, l3, 0, -1)


def _layout4(frame: bytes | bytearray, l3: int) -> Layout:
    vihl = frame[l3]
    ihl = (vihl & 0x0F) * 4
    (total,) = _H.unpack_from(frame, l3 + 2)
    (frag,) = _H.unpack_from(frame, l3 + 6)
    if vihl >> 4 != 4 or ihl < 20 or total < ihl or l3 + total > len(frame):
        raise PacketError("bad IPv4 header")
    proto = frame[l3 + 9]
    l4 = -1 if frag & 0x1FFF else l3 + ihl
    return Layout(ETH_TYPE_IPV4, l3, proto, l4)


def _layout6(frame: bytes | bytearray, l3: int) -> Layout:
    if frame[l3] >> 4 != 6:
        raise PacketError("bad IPv6 header")
    (plen,) = _H.unpack_from(frame, l3 + 4)
    end = l3 + 40 + plen
    if end > len(frame):
        raise PacketError("IPv6 datagram truncated")
    proto, l4 = frame[l3 + 6], l3 + 40
    while proto in EXT_HEADERS:
        if l4 + 8 > end:
            raise PacketError("IPv6 extension header truncated")
        nxt, hlen = _BB.unpack_from(frame, l4)
        if proto == IPPROTO_FRAGMENT:
            (frag,) = _H.unpack_from(frame, l4 + 2)
            if frag & 0xFFF8:
                return Layout(ETH_TYPE_IPV6, l3, nxt, -1)
            size = 8
        else:
            size = (hlen + 2) * 4 if proto == IPPROTO_AH else (hlen + 1) * 8
        proto, l4 = nxt, l4 + size
    if l4 > end:
        raise PacketError("IPv6 extension header truncated")
    return Layout(ETH_TYPE_IPV6, l3, proto, l4)


def set_eth_src(frame: bytearray, mac: bytes) -> None:
    check_mac(mac, "set_eth_src")
    _need(frame, 14)
    frame[6:12] = mac


def set_eth_dst(frame: bytearray, mac: bytes) -> None:
    check_mac(mac, "set_eth_dst")
    _need(frame, 14)
    frame[0:6] = mac


def set_ip_src(frame: bytearray, addr: bytes, where: Layout | None = None) -> None:
    """Rewrite the source address (``addr``: 4 packed bytes for IPv4, 16 for IPv6)."""
    _set_ip(frame, addr, 0, where or layout(frame))


def set_ip_dst(frame: bytearray, addr: bytes, where: Layout | None = None) -> None:
    """Rewrite the destination address (``addr``: 4 packed bytes for IPv4, 16 for IPv6)."""
    _set_ip(frame, addr, 1, where or layout(frame))


def set_l4_src(frame: bytearray, port: int, where: Layout | None = None) -> None:
    """Rewrite the TCP or UDP source port."""
    _set_port(frame, port, 0, where or layout(frame))


def set_l4_dst(frame: bytearray, port: int, where: Layout | None = None) -> None:
    """Rewrite the TCP or UDP destination port."""
    _set_port(frame, port, 2, where or layout(frame))


def dec_ttl(frame: bytearray, where: Layout | None = None) -> int:
    """Decrement the IPv4 TTL or IPv6 hop limit; return the new value.

    Raises PacketError if it is already 0 (the caller sends "time exceeded"
    before it gets there) or if the frame is not IP.
    """
    lay = where or layout(frame)
    if lay.eth_type == ETH_TYPE_IPV6:
        _need(frame, lay.l3 + 40)
        ttl = frame[lay.l3 + 7]
        if ttl == 0:
            raise PacketError("hop limit is already 0")
        frame[lay.l3 + 7] = ttl - 1
        return ttl - 1
    if lay.eth_type != ETH_TYPE_IPV4:
        raise PacketError(f"dec_ttl: eth_type {lay.eth_type:#06x} is not IP")
    _need(frame, lay.l3 + 20)
    ttl = frame[lay.l3 + 8]
    if ttl == 0:
        raise PacketError("TTL is already 0")
    csum_at = lay.l3 + 10
    (csum,) = _H.unpack_from(frame, csum_at)
    frame[lay.l3 + 8] = ttl - 1
    _H.pack_into(frame, csum_at, update16(csum, ttl << 8, (ttl - 1) << 8))
    return ttl - 1


def _need(frame: bytearray, length: int) -> None:
    if len(frame) < length:
        raise PacketError(f"frame truncated ({len(frame)} bytes, needs {length})")


def _set_ip(frame: bytearray, addr: bytes, which: int, lay: Layout) -> None:
    if lay.eth_type == ETH_TYPE_IPV4:
        size, at = 4, lay.l3 + 12 + 4 * which
    elif lay.eth_type == ETH_TYPE_IPV6:
        size, at = 16, lay.l3 + 8 + 16 * which
    else:
        raise PacketError(f"set IP address: eth_type {lay.eth_type:#06x} is not IP")
    if not isinstance(addr, bytes) or len(addr) != size:
        raise PacketError(f"set IP address: expected {size} packed bytes, got {addr!r}")
    _need(frame, at + size)
    csum_at = _l4_csum_at(frame, lay)
    old = bytes(frame[at : at + size])
    frame[at : at + size] = addr
    if lay.eth_type == ETH_TYPE_IPV4:
        _update_at(frame, lay.l3 + 10, old, addr)
    if csum_at >= 0:
        _update_l4_at(frame, csum_at, lay, old, addr)


def _set_port(frame: bytearray, port: int, at: int, lay: Layout) -> None:
    if lay.proto not in (IPPROTO_TCP, IPPROTO_UDP) or lay.l4 < 0:
        raise PacketError("set port: not the first fragment of a TCP or UDP datagram")
    if not 0 <= port <= 0xFFFF:
        raise PacketError(f"set port: {port} is not a port")
    csum_at = _l4_csum_at(frame, lay)
    pos = lay.l4 + at
    old = bytes(frame[pos : pos + 2])
    new = _H.pack(port)
    frame[pos : pos + 2] = new
    _update_l4_at(frame, csum_at, lay, old, new)


def _l4_csum_at(frame: bytearray, lay: Layout) -> int:
    """Offset of the checksum that covers the IP addresses, -1 if none; checks it fits."""
    offset = _CSUM_AT.get(lay.proto)
    if (
        offset is None
        or lay.l4 < 0
        or (lay.proto == IPPROTO_ICMPV6 and lay.eth_type != ETH_TYPE_IPV6)
    ):
        return -1
    _need(frame, lay.l4 + offset + 2)
    return lay.l4 + offset


def _update_at(frame: bytearray, at: int, old: bytes, new: bytes) -> None:
    (csum,) = _H.unpack_from(frame, at)
    _H.pack_into(frame, at, update(csum, old, new))


def _update_l4_at(frame: bytearray, at: int, lay: Layout, old: bytes, new: bytes) -> None:
    (csum,) = _H.unpack_from(frame, at)
    if lay.proto == IPPROTO_UDP:
        if csum == 0 and lay.eth_type == ETH_TYPE_IPV4:
            return
        _H.pack_into(frame, at, update(csum, old, new) or 0xFFFF)
        return
    _H.pack_into(frame, at, update(csum, old, new))
