"""IPv4 headers (RFC 791): options, fragmentation fields and the header checksum.

Owns the IPv4 codec and the IP protocol numbers shared by the other codecs.

Invariants:

* ``parse`` checks version 4, IHL >= 5, total length >= header length and
  total length <= the bytes available; the payload is cut at the total length
  (Ethernet padding is dropped). It does not verify the header checksum: call
  :func:`header_checksum_ok` for that. With ``quoted=True`` (the header quoted
  inside an ICMP error) the datagram may be shorter than its total length;
* the header length, total length and checksum are derived: ``build`` computes
  them, the dataclass does not store them;
* ``options`` are kept as raw bytes, a multiple of 4 long, at most 40;
* ``flags`` is the 3-bit field as on the wire (0b010 DF, 0b001 MF) and
  ``frag_offset`` counts 8-byte units.

Wire format::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-------+-------+---------------+-------------------------------+
    |Version|  IHL  |  TOS (DSCP|ECN)|         Total Length         |
    +-------+-------+---------------+-----+-------------------------+
    |         Identification        |Flags|     Fragment Offset     |
    +---------------+---------------+-----+-------------------------+
    |      TTL      |   Protocol    |        Header Checksum        |
    +---------------+---------------+-------------------------------+
    |                       Source Address                          |
    +---------------------------------------------------------------+
    |                    Destination Address                        |
    +---------------------------------------------------------------+
    |                 Options (0..40 bytes)                         |
    +---------------------------------------------------------------+
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Self

from tenet.packets.checksum import internet_checksum
from tenet.packets.wire import Buffer, check, check_ipv4, guarded, need

IPPROTO_HOPOPTS = 0
IPPROTO_ICMP = 1
IPPROTO_TCP = 6
IPPROTO_UDP = 17
IPPROTO_ICMPV6 = 58

IPV4_HEADER_LEN = 20
IPV4_MAX_OPTIONS = 40
FLAG_DF = 0b010
FLAG_MF = 0b001

_HEADER = struct.Struct("!BBHHHBBH4s4s")


@dataclass(frozen=True, slots=True)
class IPv4:
    """An IPv4 header. Lengths and the checksum are computed by ``build``."""

    src: IPv4Address
    dst: IPv4Address
    proto: int
    ttl: int = 64
    tos: int = 0
    ident: int = 0
    flags: int = 0
    frag_offset: int = 0
    options: bytes = b""

    @property
    def header_length(self) -> int:
        return IPV4_HEADER_LEN + len(self.options)

    @property
    def dscp(self) -> int:
        return self.tos >> 2

    @property
    def ecn(self) -> int:
        return self.tos & 0b11

    @property
    def dont_fragment(self) -> bool:
        return bool(self.flags & FLAG_DF)

    @property
    def more_fragments(self) -> bool:
        return bool(self.flags & FLAG_MF)

    @property
    def is_fragment(self) -> bool:
        """True for every fragment of a fragmented datagram, the first included."""
        return bool(self.flags & FLAG_MF) or self.frag_offset != 0

    @property
    def is_later_fragment(self) -> bool:
        """True for a fragment that does not carry the transport header."""
        return self.frag_offset != 0

    @classmethod
    def parse(cls, data: Buffer, *, quoted: bool = False) -> tuple[Self, bytes]:
        """Parse the header; return it and the payload up to the total length (a copy)."""
        need(data, IPV4_HEADER_LEN, "IPv4")
        vihl, tos, total, ident, frag, ttl, proto, _csum, src, dst = _HEADER.unpack_from(data, 0)
        ihl = (vihl & 0x0F) * 4
        check(vihl >> 4 == 4, f"IPv4: version {vihl >> 4}")
        check(ihl >= IPV4_HEADER_LEN, f"IPv4: header length {ihl}")
        check(total >= ihl, f"IPv4: total length {total} < header length {ihl}")
        if quoted:
            need(data, ihl, "IPv4 header")
            end = min(total, len(data))
        else:
            need(data, total, "IPv4 datagram")
            end = total
        header = cls(
            IPv4Address(src),
            IPv4Address(dst),
            proto,
            ttl,
            tos,
            ident,
            frag >> 13,
            frag & 0x1FFF,
            bytes(data[IPV4_HEADER_LEN:ihl]),
        )
        return header, bytes(data[ihl:end])

    def build(self, payload: Buffer = b"") -> bytes:
        """The header (lengths and checksum computed) followed by ``payload``."""
        check_ipv4(self.src, self.dst, what="IPv4")
        n = len(self.options)
        check(n % 4 == 0 and n <= IPV4_MAX_OPTIONS, f"IPv4: options length {n}")
        ihl = IPV4_HEADER_LEN + n
        total = ihl + len(payload)
        check(total <= 0xFFFF, f"IPv4: total length {total} > 65535")
        check(0 <= self.flags <= 0b111 and 0 <= self.frag_offset <= 0x1FFF, "IPv4: fragment")
        with guarded("IPv4"):
            fields = [
                0x40 | (ihl // 4),
                self.tos,
                total,
                self.ident,
                (self.flags << 13) | self.frag_offset,
                self.ttl,
                self.proto,
            ]
            header = bytearray(_HEADER.pack(*fields, 0, self.src.packed, self.dst.packed))
        header += self.options
        header[10:12] = internet_checksum(header).to_bytes(2, "big")
        return bytes(header) + bytes(payload)


def header_checksum_ok(data: Buffer) -> bool:
    """True if the IPv4 header at the start of ``data`` has a correct checksum."""
    need(data, IPV4_HEADER_LEN, "IPv4")
    ihl = (data[0] & 0x0F) * 4
    need(data, ihl, "IPv4 header")
    return internet_checksum(data[:ihl]) == 0


def quote_datagram(datagram: Buffer) -> bytes:
    """What an ICMPv4 error quotes: the offending IP header and 8 bytes of its payload."""
    need(datagram, IPV4_HEADER_LEN, "IPv4")
    ihl = (datagram[0] & 0x0F) * 4
    return bytes(datagram[: ihl + 8])
