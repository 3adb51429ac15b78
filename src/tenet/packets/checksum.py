"""The Internet checksum (RFC 1071) and its incremental update (RFC 1624).

Owns the ones' complement sum, the IPv4 and IPv6 pseudo-headers of TCP, UDP
and ICMPv6, and the update of a checksum when a 16-bit-aligned field is
rewritten (an IP address, a port, the TTL).

Invariants:

* values are 16-bit ``int``\\ s as they go on the wire (big-endian when packed);
* ``internet_checksum(data) == 0`` when ``data`` holds a header whose checksum
  field is right (that is how to verify one);
* :func:`update` and :func:`update16` (RFC 1624 equation 3) give the same
  value as recomputing the checksum from scratch, unless every covered byte
  ends up zero (then the sum is +0, which equation 3 writes as -0: 0 instead
  of 0xFFFF). That cannot happen to an IPv4 header (its version is 4) nor to
  a TCP/UDP/ICMPv6 checksum (the pseudo-header holds the protocol). The tests
  check the equality on random data;
* UDP transmits a computed 0 as 0xFFFF (0 means "no checksum" for UDP over
  IPv4); :func:`udp_fixup` applies that rule.

The ones' complement sum of 16-bit words equals the big-endian value of the
whole buffer modulo 0xFFFF (because 2**16 = 1 modulo 0xFFFF), except that a sum
of non-zero words is never +0 (0x0000) but -0 (0xFFFF). :func:`ones_sum` uses
that: one ``int.from_bytes`` and one modulo, both in C.

Pseudo-headers (the part of the IP header that TCP, UDP and ICMPv6 cover)::

    IPv4 (12 bytes)                          IPv6 (40 bytes)
    +--------------------------------+       +--------------------------------+
    |        source address          |       |   source address (16 bytes)    |
    +--------------------------------+       +--------------------------------+
    |      destination address       |       | destination address (16 bytes) |
    +--------+--------+--------------+       +--------------------------------+
    |  zero  | proto  | L4 length    |       |      upper-layer length (32)   |
    +--------+--------+--------------+       +-----------------------+--------+
                                             |      zero (24)        | next   |
                                             +-----------------------+--------+
"""

from __future__ import annotations

import struct

from tenet.packets.wire import Buffer

_PSEUDO4 = struct.Struct("!4s4sxBH")
_PSEUDO6 = struct.Struct("!16s16sI3xB")


def ones_sum(data: Buffer) -> int:
    """The 16-bit ones' complement sum of ``data`` (odd length: padded with a zero byte)."""
    value = int.from_bytes(data, "big")
    if len(data) & 1:
        value <<= 8
    if value == 0:
        return 0
    return value % 0xFFFF or 0xFFFF


def add(a: int, b: int) -> int:
    """Ones' complement addition of two 16-bit sums."""
    s = a + b
    return (s & 0xFFFF) + (s >> 16)


def internet_checksum(data: Buffer, initial: int = 0) -> int:
    """The checksum of ``data``: the complement of its ones' complement sum.

    ``initial`` is a ones' complement sum to add first (a pseudo-header's).
    """
    return ~add(initial, ones_sum(data)) & 0xFFFF


def pseudo_header(src: bytes, dst: bytes, proto: int, length: int) -> bytes:
    """The pseudo-header for packed addresses ``src`` and ``dst`` (4 or 16 bytes each)."""
    if len(src) == 4:
        return _PSEUDO4.pack(src, dst, proto, length)
    return _PSEUDO6.pack(src, dst, length, proto)


def l4_checksum(src: bytes, dst: bytes, proto: int, segment: Buffer) -> int:
    """The TCP/UDP/ICMPv6 checksum of ``segment`` (checksum field zeroed) for these addresses."""
    return internet_checksum(segment, ones_sum(pseudo_header(src, dst, proto, len(segment))))


def udp_fixup(checksum: int) -> int:
    """UDP sends a computed checksum of 0 as 0xFFFF (RFC 768)."""
    return checksum or 0xFFFF


def update16(checksum: int, old: int, new: int) -> int:
    """The checksum after one 16-bit word of the covered data changed from ``old`` to ``new``.

    RFC 1624 equation 3: ``HC' = ~(~HC + ~m + m')``.
    """
    s = add(add(~checksum & 0xFFFF, ~old & 0xFFFF), new)
    return ~s & 0xFFFF


def update(checksum: int, old: bytes, new: bytes) -> int:
    """The checksum after the bytes ``old`` of the covered data became ``new``.

    ``old`` and ``new`` have the same even length and start at an even offset
    of the covered data (true of IP addresses and ports). A pseudo-header field
    (an IP address seen by TCP/UDP) is updated the same way.
    """
    if len(old) != len(new) or len(old) & 1:
        raise ValueError("update needs two values of the same even length")
    inverted = int.from_bytes(old, "big") ^ ((1 << (8 * len(old))) - 1)
    inv_sum = 0 if inverted == 0 else inverted % 0xFFFF or 0xFFFF
    s = add(add(~checksum & 0xFFFF, inv_sum), ones_sum(new))
    return ~s & 0xFFFF
