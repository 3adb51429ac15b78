"""UDP (RFC 768) and TCP (RFC 9293) headers.

Owns the two transport codecs and the TCP flag bits.

Invariants:

* lengths and checksums are derived: ``build`` computes them from the payload
  and the IP addresses (IPv4 or IPv6 pseudo-header, chosen by the address
  type); the records do not store them. Parsers do not verify checksums (use
  :func:`checksum_ok`);
* UDP: ``parse`` checks 8 <= length and length <= the bytes available, and cuts
  the payload at the length. ``partial=True`` (the first fragment of a
  datagram) accepts a length beyond the bytes available. ``build`` without
  addresses writes checksum 0 ("none", allowed over IPv4 and for tunnels over
  IPv6, RFC 6935); a computed 0 is sent as 0xFFFF;
* TCP: ``flags`` holds the nine flag bits (NS..FIN) as on the wire;
  ``options`` are the raw option bytes, a multiple of 4 long, at most 40
  (parse checks the data offset: 5 <= offset and the header fits).

UDP wire format::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-------------------------------+-------------------------------+
    |          Source Port          |       Destination Port        |
    +-------------------------------+-------------------------------+
    |            Length             |           Checksum            |
    +-------------------------------+-------------------------------+

TCP wire format::

    +-------------------------------+-------------------------------+
    |          Source Port          |       Destination Port        |
    +-------------------------------+-------------------------------+
    |                        Sequence Number                        |
    +---------------------------------------------------------------+
    |                     Acknowledgment Number                     |
    +-------+-----+-+-+-+-+-+-+-+-+-+-------------------------------+
    | Data  | Res |N|C|E|U|A|P|R|S|F|                               |
    |Offset |     |S|W|C|R|C|S|S|Y|I|            Window             |
    |       |     | |R|E|G|K|H|T|N|N|                               |
    +-------+-----+-+-+-+-+-+-+-+-+-+-------------------------------+
    |           Checksum            |         Urgent Pointer        |
    +-------------------------------+-------------------------------+
    |                    Options (0..40 bytes)                      |
    +---------------------------------------------------------------+
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from typing import Self

from tenet.packets.checksum import l4_checksum, udp_fixup
from tenet.packets.ipv4 import IPPROTO_TCP, IPPROTO_UDP
from tenet.packets.wire import Buffer, check, guarded, need

UDP_HEADER_LEN = 8
TCP_HEADER_LEN = 20
TCP_MAX_OPTIONS = 40

TCP_FIN = 0x001
TCP_SYN = 0x002
TCP_RST = 0x004
TCP_PSH = 0x008
TCP_ACK = 0x010
TCP_URG = 0x020
TCP_ECE = 0x040
TCP_CWR = 0x080
TCP_NS = 0x100
TCP_FLAGS_MASK = 0x1FF

IPAddress = IPv4Address | IPv6Address

_UDP = struct.Struct("!HHHH")
_TCP = struct.Struct("!HHIIBBHHH")


def _check_pair(src: IPAddress | None, dst: IPAddress | None) -> None:
    check(
        (src is None and dst is None) or type(src) is type(dst),
        "src and dst must both be IPv4 or both IPv6 addresses",
    )


@dataclass(frozen=True, slots=True)
class UDP:
    """A UDP header: the two ports. Length and checksum are computed by ``build``."""

    src_port: int
    dst_port: int

    @classmethod
    def parse(cls, data: Buffer, *, partial: bool = False) -> tuple[Self, bytes]:
        need(data, UDP_HEADER_LEN, "UDP")
        src_port, dst_port, length, _csum = _UDP.unpack_from(data, 0)
        check(length >= UDP_HEADER_LEN, f"UDP: length {length} < 8")
        if not partial:
            need(data, length, "UDP datagram")
        return cls(src_port, dst_port), bytes(data[UDP_HEADER_LEN:length])

    def build(
        self, payload: Buffer = b"", src: IPAddress | None = None, dst: IPAddress | None = None
    ) -> bytes:
        """Header and ``payload``; checksummed when the IP addresses are given."""
        _check_pair(src, dst)
        length = UDP_HEADER_LEN + len(payload)
        check(length <= 0xFFFF, f"UDP: length {length} > 65535")
        with guarded("UDP"):
            datagram = _UDP.pack(self.src_port, self.dst_port, length, 0) + bytes(payload)
        if src is None or dst is None:
            return datagram
        csum = udp_fixup(l4_checksum(src.packed, dst.packed, IPPROTO_UDP, datagram))
        return datagram[:6] + csum.to_bytes(2, "big") + datagram[8:]


@dataclass(frozen=True, slots=True)
class TCP:
    """A TCP header. The data offset and checksum are computed by ``build``."""

    src_port: int
    dst_port: int
    seq: int = 0
    ack: int = 0
    flags: int = 0
    window: int = 65535
    urgent: int = 0
    options: bytes = b""

    @property
    def header_length(self) -> int:
        return TCP_HEADER_LEN + len(self.options)

    @classmethod
    def parse(cls, data: Buffer) -> tuple[Self, bytes]:
        need(data, TCP_HEADER_LEN, "TCP")
        sport, dport, seq, ack, off, flags, window, _csum, urgent = _TCP.unpack_from(data, 0)
        hlen = (off >> 4) * 4
        check(hlen >= TCP_HEADER_LEN, f"TCP: data offset {hlen} < 20")
        need(data, hlen, "TCP options")
        tcp = cls(
            sport,
            dport,
            seq,
            ack,
            ((off & 1) << 8) | flags,
            window,
            urgent,
            bytes(data[TCP_HEADER_LEN:hlen]),
        )
        return tcp, bytes(data[hlen:])

    def build(self, payload: Buffer, src: IPAddress, dst: IPAddress) -> bytes:
        """Header (offset and checksum computed for ``src``/``dst``) and ``payload``."""
        _check_pair(src, dst)
        n = len(self.options)
        check(n % 4 == 0 and n <= TCP_MAX_OPTIONS, f"TCP: options length {n}")
        check(0 <= self.flags <= TCP_FLAGS_MASK, "TCP: flags are 9 bits")
        hlen = TCP_HEADER_LEN + n
        off = ((hlen // 4) << 4) | (self.flags >> 8)
        with guarded("TCP"):
            header = _TCP.pack(
                self.src_port,
                self.dst_port,
                self.seq,
                self.ack,
                off,
                self.flags & 0xFF,
                self.window,
                0,
                self.urgent,
            )
        segment = header + self.options + bytes(payload)
        csum = l4_checksum(src.packed, dst.packed, IPPROTO_TCP, segment)
        return segment[:16] + csum.to_bytes(2, "big") + segment[18:]


def checksum_ok(proto: int, segment: Buffer, src: IPAddress, dst: IPAddress) -> bool:
    """True if the TCP or UDP ``segment`` has a correct checksum (UDP: or none, over IPv4)."""
    if proto == IPPROTO_UDP and len(segment) >= UDP_HEADER_LEN and segment[6:8] == b"\0\0":
        return isinstance(src, IPv4Address)
    return l4_checksum(src.packed, dst.packed, proto, segment) == 0
