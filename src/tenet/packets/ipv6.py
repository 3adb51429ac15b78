"""IPv6 headers (RFC 8200) and the extension headers needed to reach the upper layer.

Owns the IPv6 codec. Hop-by-hop options (0), routing (43), destination
options (60) and authentication (51) headers are kept opaque (their body as
bytes); the fragment header (44) is decoded. ESP (50) and "no next header"
(59) end the chain like an upper-layer protocol does.

Invariants:

* ``IPv6.proto`` is the upper-layer protocol: the next-header value that ends
  the chain; ``ext`` lists the extension headers in wire order. The next-header
  fields and the payload length are derived and computed by ``build``;
* a fragment with a non-zero offset ends the chain: what follows it is
  fragment data, not a header, so ``proto`` is that fragment header's next
  header. ``build`` refuses extension headers after such a fragment, and a
  ``proto`` that is an extension header type, so that build and parse agree;
* ``parse`` checks version 6 and that the payload length fits the bytes
  available; the payload is cut at the payload length. Jumbograms are not
  supported. With ``quoted=True`` (the header quoted in an ICMPv6 error) the
  datagram may be shorter than its payload length.

Wire format::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-------+---------------+---------------------------------------+
    |Version| Traffic Class |              Flow Label               |
    +-------+---------------+-------+---------------+---------------+
    |         Payload Length        |  Next Header  |   Hop Limit   |
    +-------------------------------+---------------+---------------+
    |                 Source Address (16 bytes)                     |
    +---------------------------------------------------------------+
    |               Destination Address (16 bytes)                  |
    +---------------------------------------------------------------+

    Extension header (0, 43, 60): length in 8-byte units, not counting the first 8
    +---------------+---------------+-------------------------------+
    |  Next Header  |  Hdr Ext Len  |  body (6 + 8 * len bytes) ... |
    +---------------+---------------+-------------------------------+
    Authentication header (51): length in 4-byte units, minus 2
    +---------------+---------------+-------------------------------+
    |  Next Header  |  Payload Len  |  body (4 * len + 6 bytes) ... |
    +---------------+---------------+-------------------------------+
    Fragment header (44, 8 bytes)
    +---------------+---------------+-------------------------+---+-+
    |  Next Header  |   Reserved    |    Fragment Offset      |Res|M|
    +---------------+---------------+-------------------------+---+-+
    |                        Identification                         |
    +---------------------------------------------------------------+
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from ipaddress import IPv6Address
from typing import ClassVar, Self

from tenet.packets.wire import Buffer, check, guarded, need

IPPROTO_ROUTING = 43
IPPROTO_FRAGMENT = 44
IPPROTO_ESP = 50
IPPROTO_AH = 51
IPPROTO_NONE = 59
IPPROTO_DSTOPTS = 60
IPPROTO_HOPOPTS = 0

OPAQUE_EXT = frozenset({IPPROTO_HOPOPTS, IPPROTO_ROUTING, IPPROTO_DSTOPTS, IPPROTO_AH})
"""Extension headers kept as opaque bodies."""
EXT_HEADERS = OPAQUE_EXT | {IPPROTO_FRAGMENT}
"""Every next-header value this codec walks past."""

IPV6_HEADER_LEN = 40
IPV6_MIN_MTU = 1280

_HEADER = struct.Struct("!IHBB16s16s")
_EXT = struct.Struct("!BB")
_FRAG = struct.Struct("!BxHI")


@dataclass(frozen=True, slots=True)
class IPv6Ext:
    """An opaque extension header: its type and the bytes after next-header and length."""

    kind: int
    body: bytes

    def wire_length(self) -> int:
        return len(self.body) + 2


@dataclass(frozen=True, slots=True)
class IPv6Fragment:
    """The fragment header: offset in 8-byte units, more-fragments bit, identification."""

    offset: int = 0
    more: bool = False
    ident: int = 0

    kind: ClassVar[int] = IPPROTO_FRAGMENT


ExtHeader = IPv6Ext | IPv6Fragment


@dataclass(frozen=True, slots=True)
class IPv6:
    """An IPv6 header with its extension headers. ``proto`` is the upper-layer protocol."""

    src: IPv6Address
    dst: IPv6Address
    proto: int
    hop_limit: int = 64
    traffic_class: int = 0
    flow_label: int = 0
    ext: tuple[ExtHeader, ...] = ()

    @property
    def fragment(self) -> IPv6Fragment | None:
        for header in self.ext:
            if isinstance(header, IPv6Fragment):
                return header
        return None

    @property
    def is_fragment(self) -> bool:
        return self.fragment is not None

    @property
    def is_later_fragment(self) -> bool:
        frag = self.fragment
        return frag is not None and frag.offset != 0

    @property
    def header_length(self) -> int:
        """The base header and every extension header."""
        return IPV6_HEADER_LEN + sum(
            8 if isinstance(h, IPv6Fragment) else h.wire_length() for h in self.ext
        )

    @classmethod
    def parse(cls, data: Buffer, *, quoted: bool = False) -> tuple[Self, bytes]:
        """Parse the header chain; return it and the upper-layer payload (a copy)."""
        need(data, IPV6_HEADER_LEN, "IPv6")
        vtf, plen, next_header, hop_limit, src, dst = _HEADER.unpack_from(data, 0)
        check(vtf >> 28 == 6, f"IPv6: version {vtf >> 28}")
        end = IPV6_HEADER_LEN + plen
        if quoted:
            end = min(end, len(data))
        else:
            need(data, end, "IPv6 datagram")
        offset = IPV6_HEADER_LEN
        ext: list[ExtHeader] = []
        while next_header in EXT_HEADERS:
            check(offset + 8 <= end, "IPv6: extension header truncated")
            if next_header == IPPROTO_FRAGMENT:
                nxt, frag, ident = _FRAG.unpack_from(data, offset)
                ext.append(IPv6Fragment(frag >> 3, bool(frag & 1), ident))
                offset += 8
                next_header = nxt
                if frag >> 3:
                    break
                continue
            nxt, hlen = _EXT.unpack_from(data, offset)
            size = (hlen + 2) * 4 if next_header == IPPROTO_AH else (hlen + 1) * 8
            check(offset + size <= end, "IPv6: extension header truncated")
            ext.append(IPv6Ext(next_header, bytes(data[offset + 2 : offset + size])))
            offset += size
            next_header = nxt
        header = cls(
            IPv6Address(src),
            IPv6Address(dst),
            next_header,
            hop_limit,
            (vtf >> 20) & 0xFF,
            vtf & 0xFFFFF,
            tuple(ext),
        )
        return header, bytes(data[offset:end])

    def build(self, payload: Buffer = b"") -> bytes:
        """The header chain (next headers and payload length computed) and ``payload``."""
        check(
            isinstance(self.src, IPv6Address) and isinstance(self.dst, IPv6Address),
            "IPv6: src and dst must be IPv6Address",
        )
        parts: list[bytes] = []
        kinds = [h.kind for h in self.ext] + [self.proto]
        for i, header in enumerate(self.ext):
            parts.append(_build_ext(header, kinds[i + 1], last=i == len(self.ext) - 1))
        last = self.ext[-1] if self.ext else None
        later = isinstance(last, IPv6Fragment) and last.offset != 0
        check(
            later or self.proto not in EXT_HEADERS,
            f"IPv6: proto {self.proto} is an extension header; put it in ext",
        )
        plen = sum(len(p) for p in parts) + len(payload)
        check(plen <= 0xFFFF, f"IPv6: payload length {plen} > 65535 (no jumbograms)")
        check(0 <= self.flow_label <= 0xFFFFF, "IPv6: flow label is 20 bits")
        check(0 <= self.traffic_class <= 0xFF, "IPv6: traffic class is 8 bits")
        vtf = (6 << 28) | (self.traffic_class << 20) | self.flow_label
        with guarded("IPv6"):
            base = _HEADER.pack(
                vtf, plen, kinds[0], self.hop_limit, self.src.packed, self.dst.packed
            )
        return b"".join([base, *parts, bytes(payload)])


def _build_ext(header: ExtHeader, next_header: int, *, last: bool) -> bytes:
    with guarded("IPv6 extension header"):
        if isinstance(header, IPv6Fragment):
            check(last or header.offset == 0, "IPv6: headers after a non-first fragment")
            check(0 <= header.offset <= 0x1FFF, "IPv6: fragment offset is 13 bits")
            return _FRAG.pack(next_header, (header.offset << 3) | header.more, header.ident)
        size = header.wire_length()
        check(header.kind in OPAQUE_EXT, f"IPv6: {header.kind} is not an extension header")
        if header.kind == IPPROTO_AH:
            check(size % 4 == 0 and size >= 8, f"IPv6: AH length {size}")
            hlen = size // 4 - 2
        else:
            check(size % 8 == 0, f"IPv6: extension header length {size}")
            hlen = size // 8 - 1
        return _EXT.pack(next_header, hlen) + header.body


def quote_datagram(datagram: Buffer) -> bytes:
    """What an ICMPv6 error quotes: as much of the datagram as fits the minimum MTU."""
    return bytes(datagram[: IPV6_MIN_MTU - IPV6_HEADER_LEN - 8])
