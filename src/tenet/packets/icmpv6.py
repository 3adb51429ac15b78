"""ICMPv6 (RFC 4443) and the neighbor solicitation/advertisement bodies (RFC 4861).

Owns the ICMPv6 codec and the neighbor discovery (ND) body codec. Like ICMPv4,
one record fits every message: type, code and the 32-bit word after the
checksum (``rest``: identifier and sequence for echo, MTU for "packet too
big", pointer for "parameter problem", the R/S/O flags of a neighbor
advertisement, reserved otherwise). The checksum covers an IPv6
pseudo-header, so ``build`` needs the source and destination addresses.

Invariants: ``parse`` needs the 8-byte header and does not verify the
checksum (use :func:`checksum_ok`). :class:`NeighborDiscovery` is the body of
an NS (135) or NA (136) after those 8 bytes: the target address and the
options, each kept raw; an option whose length is 0 or runs past the end is a
PacketError. The link-layer address of an ND message is the first option of
the right type (1 source, in an NS; 2 target, in an NA) holding 6 bytes.

Wire format::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +---------------+---------------+-------------------------------+
    |     Type      |     Code      |           Checksum            |
    +---------------+---------------+-------------------------------+
    |   rest: Identifier | Sequence / MTU / pointer / R|S|O flags    |
    +---------------------------------------------------------------+
    |   body ...  (NS/NA: the ND body below)                        |

    ND body of NS and NA:
    +---------------------------------------------------------------+
    |                  Target Address (16 bytes)                    |
    +---------------+---------------+-------------------------------+
    |  Option type  | Length (x8 B) |  option data ...              |
    +---------------+---------------+-------------------------------+
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from ipaddress import IPv6Address
from typing import Self

from tenet.packets.checksum import l4_checksum
from tenet.packets.ipv4 import IPPROTO_ICMPV6
from tenet.packets.ipv6 import quote_datagram
from tenet.packets.wire import Buffer, check, guarded, need

ICMPV6_DEST_UNREACH = 1
ICMPV6_PACKET_TOO_BIG = 2
ICMPV6_TIME_EXCEEDED = 3
ICMPV6_PARAM_PROBLEM = 4
ICMPV6_ECHO_REQUEST = 128
ICMPV6_ECHO_REPLY = 129
ICMPV6_ROUTER_SOLICIT = 133
ICMPV6_ROUTER_ADVERT = 134
ICMPV6_NEIGHBOR_SOLICIT = 135
ICMPV6_NEIGHBOR_ADVERT = 136
ICMPV6_REDIRECT = 137

# codes of ICMPV6_DEST_UNREACH
UNREACH6_NO_ROUTE = 0
UNREACH6_ADMIN_PROHIBITED = 1
UNREACH6_ADDRESS = 3
UNREACH6_PORT = 4

ND_OPT_SOURCE_LLADDR = 1
ND_OPT_TARGET_LLADDR = 2
NA_FLAG_ROUTER = 0x8000_0000
NA_FLAG_SOLICITED = 0x4000_0000
NA_FLAG_OVERRIDE = 0x2000_0000

ICMPV6_HEADER_LEN = 8
ND_TARGET_LEN = 16

_HEADER = struct.Struct("!BBHI")
_OPTION = struct.Struct("!BB")


@dataclass(frozen=True, slots=True)
class ICMPv6:
    """An ICMPv6 header: type, code and the type-specific 32-bit word."""

    type: int
    code: int = 0
    rest: int = 0

    @classmethod
    def echo_request(cls, ident: int, seq: int) -> Self:
        return cls(ICMPV6_ECHO_REQUEST, 0, (ident << 16) | seq)

    @classmethod
    def echo_reply(cls, ident: int, seq: int) -> Self:
        return cls(ICMPV6_ECHO_REPLY, 0, (ident << 16) | seq)

    @classmethod
    def packet_too_big(cls, mtu: int) -> Self:
        return cls(ICMPV6_PACKET_TOO_BIG, 0, mtu)

    @property
    def is_error(self) -> bool:
        """Error messages have types 0..127 (RFC 4443 section 2.1)."""
        return self.type < 128

    @property
    def is_neighbor_discovery(self) -> bool:
        return self.type in (ICMPV6_NEIGHBOR_SOLICIT, ICMPV6_NEIGHBOR_ADVERT)

    @property
    def ident(self) -> int:
        return self.rest >> 16

    @property
    def seq(self) -> int:
        return self.rest & 0xFFFF

    @property
    def mtu(self) -> int:
        return self.rest

    @classmethod
    def parse(cls, data: Buffer) -> tuple[Self, bytes]:
        need(data, ICMPV6_HEADER_LEN, "ICMPv6")
        icmp_type, code, _csum, rest = _HEADER.unpack_from(data, 0)
        return cls(icmp_type, code, rest), bytes(data[ICMPV6_HEADER_LEN:])

    def build(self, body: Buffer, src: IPv6Address, dst: IPv6Address) -> bytes:
        """The header (checksum over the pseudo-header of ``src``/``dst``) and ``body``."""
        with guarded("ICMPv6"):
            header = _HEADER.pack(self.type, self.code, 0, self.rest)
        message = header + bytes(body)
        csum = l4_checksum(src.packed, dst.packed, IPPROTO_ICMPV6, message)
        return message[:2] + csum.to_bytes(2, "big") + message[4:]


@dataclass(frozen=True, slots=True)
class NeighborDiscovery:
    """The body of a neighbor solicitation or advertisement: target and raw options.

    ``options`` holds (type, data) pairs; data excludes the 2-byte option
    header and is 6, 14, 22, ... bytes long.
    """

    target: IPv6Address
    options: tuple[tuple[int, bytes], ...] = ()

    @classmethod
    def with_lladdr(cls, target: IPv6Address, option: int, mac: bytes) -> Self:
        """A body with one link-layer address option (1: source, 2: target)."""
        return cls(target, ((option, mac),))

    def lladdr(self, option: int) -> bytes | None:
        """The first 6-byte link-layer address in an option of type ``option``."""
        for kind, data in self.options:
            if kind == option and len(data) == 6:
                return data
        return None

    @classmethod
    def parse(cls, body: Buffer) -> Self:
        need(body, ND_TARGET_LEN, "ND target")
        target = IPv6Address(bytes(body[:ND_TARGET_LEN]))
        options: list[tuple[int, bytes]] = []
        offset, end = ND_TARGET_LEN, len(body)
        while offset < end:
            need(body, offset + 2, "ND option")
            kind, units = _OPTION.unpack_from(body, offset)
            size = units * 8
            check(size != 0 and offset + size <= end, "ND option: bad length")
            options.append((kind, bytes(body[offset + 2 : offset + size])))
            offset += size
        return cls(target, tuple(options))

    def build(self) -> bytes:
        parts = [self.target.packed]
        for kind, data in self.options:
            size = len(data) + 2
            check(size % 8 == 0 and size <= 255 * 8, f"ND option: length {size}")
            with guarded("ND option"):
                parts.append(_OPTION.pack(kind, size // 8))
            parts.append(data)
        return b"".join(parts)


def neighbor_solicit(target: IPv6Address, mac: bytes | None) -> tuple[ICMPv6, bytes]:
    """An NS for ``target``, with the sender's MAC as source link-layer option if given."""
    body = NeighborDiscovery(target)
    if mac is not None:
        body = NeighborDiscovery.with_lladdr(target, ND_OPT_SOURCE_LLADDR, mac)
    return ICMPv6(ICMPV6_NEIGHBOR_SOLICIT), body.build()


def neighbor_advert(
    target: IPv6Address, mac: bytes, *, router: bool = False, solicited: bool = True
) -> tuple[ICMPv6, bytes]:
    """An NA saying ``target`` is at ``mac`` (override set)."""
    flags = NA_FLAG_OVERRIDE
    flags |= NA_FLAG_ROUTER if router else 0
    flags |= NA_FLAG_SOLICITED if solicited else 0
    body = NeighborDiscovery.with_lladdr(target, ND_OPT_TARGET_LLADDR, mac)
    return ICMPv6(ICMPV6_NEIGHBOR_ADVERT, 0, flags), body.build()


def checksum_ok(message: Buffer, src: IPv6Address, dst: IPv6Address) -> bool:
    """True if the ICMPv6 message has a correct checksum for ``src`` and ``dst``."""
    if len(message) < ICMPV6_HEADER_LEN:
        return False
    return l4_checksum(src.packed, dst.packed, IPPROTO_ICMPV6, message) == 0


def error_body(datagram: Buffer) -> bytes:
    """The body of an ICMPv6 error about ``datagram``: as much as fits in 1280 bytes."""
    return quote_datagram(datagram)
