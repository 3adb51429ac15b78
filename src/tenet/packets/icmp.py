"""ICMP for IPv4 (RFC 792, RFC 1191): echo and the error messages.

Owns the ICMPv4 codec. One record fits every message: type, code and the
32-bit word after the checksum (``rest``), whose meaning depends on the type
(identifier and sequence for echo, next-hop MTU for "fragmentation needed",
pointer for "parameter problem", gateway for redirect, unused otherwise).
The body (echo data, or the quoted offending datagram of an error) is the
payload.

Invariants: ``parse`` needs the 8-byte header and does not verify the
checksum (use :func:`checksum_ok`); ``build`` computes the checksum over the
header and the body.

Wire format::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +---------------+---------------+-------------------------------+
    |     Type      |     Code      |           Checksum            |
    +---------------+---------------+-------------------------------+
    |  rest: Identifier | Sequence  /  unused | MTU  /  pointer ...  |
    +---------------------------------------------------------------+
    |  body: echo data, or the offending IP header + 8 bytes        |
    +---------------------------------------------------------------+
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Self

from tenet.packets.checksum import internet_checksum, ones_sum
from tenet.packets.ipv4 import quote_datagram
from tenet.packets.wire import Buffer, guarded, need

ICMP_ECHO_REPLY = 0
ICMP_DEST_UNREACH = 3
ICMP_SOURCE_QUENCH = 4
ICMP_REDIRECT = 5
ICMP_ECHO_REQUEST = 8
ICMP_TIME_EXCEEDED = 11
ICMP_PARAM_PROBLEM = 12
ICMP_ERRORS = frozenset(
    {ICMP_DEST_UNREACH, ICMP_SOURCE_QUENCH, ICMP_REDIRECT, ICMP_TIME_EXCEEDED, ICMP_PARAM_PROBLEM}
)

# codes of ICMP_DEST_UNREACH
UNREACH_NET = 0
UNREACH_HOST = 1
UNREACH_PROTOCOL = 2
UNREACH_PORT = 3
UNREACH_FRAG_NEEDED = 4
UNREACH_NET_PROHIBITED = 9
UNREACH_HOST_PROHIBITED = 10
UNREACH_ADMIN_PROHIBITED = 13
# codes of ICMP_TIME_EXCEEDED
EXCEEDED_TTL = 0
EXCEEDED_REASSEMBLY = 1

ICMP_HEADER_LEN = 8

_HEADER = struct.Struct("!BBHI")


@dataclass(frozen=True, slots=True)
class ICMP:
    """An ICMPv4 header: type, code and the type-specific 32-bit word."""

    type: int
    code: int = 0
    rest: int = 0

    @classmethod
    def echo_request(cls, ident: int, seq: int) -> Self:
        return cls(ICMP_ECHO_REQUEST, 0, (ident << 16) | seq)

    @classmethod
    def echo_reply(cls, ident: int, seq: int) -> Self:
        return cls(ICMP_ECHO_REPLY, 0, (ident << 16) | seq)

    @classmethod
    def dest_unreachable(cls, code: int, mtu: int = 0) -> Self:
        """``mtu`` is the next-hop MTU, for code 4 (fragmentation needed and DF set)."""
        return cls(ICMP_DEST_UNREACH, code, mtu & 0xFFFF)

    @classmethod
    def time_exceeded(cls, code: int = EXCEEDED_TTL) -> Self:
        return cls(ICMP_TIME_EXCEEDED, code, 0)

    @property
    def is_error(self) -> bool:
        return self.type in ICMP_ERRORS

    @property
    def is_echo(self) -> bool:
        return self.type in (ICMP_ECHO_REQUEST, ICMP_ECHO_REPLY)

    @property
    def ident(self) -> int:
        """Echo identifier."""
        return self.rest >> 16

    @property
    def seq(self) -> int:
        """Echo sequence number."""
        return self.rest & 0xFFFF

    @property
    def mtu(self) -> int:
        """Next-hop MTU of "fragmentation needed" (RFC 1191)."""
        return self.rest & 0xFFFF

    @property
    def pointer(self) -> int:
        """Offending octet of "parameter problem"."""
        return self.rest >> 24

    @property
    def gateway(self) -> IPv4Address:
        """Gateway of a redirect."""
        return IPv4Address(self.rest)

    @classmethod
    def parse(cls, data: Buffer) -> tuple[Self, bytes]:
        need(data, ICMP_HEADER_LEN, "ICMP")
        icmp_type, code, _csum, rest = _HEADER.unpack_from(data, 0)
        return cls(icmp_type, code, rest), bytes(data[ICMP_HEADER_LEN:])

    def build(self, body: Buffer = b"") -> bytes:
        """The header (checksum computed) followed by ``body``."""
        with guarded("ICMP"):
            header = _HEADER.pack(self.type, self.code, 0, self.rest)
        csum = internet_checksum(body, ones_sum(header))
        return header[:2] + csum.to_bytes(2, "big") + header[4:] + bytes(body)


def checksum_ok(message: Buffer) -> bool:
    """True if the ICMP message (header and body) has a correct checksum."""
    return len(message) >= ICMP_HEADER_LEN and internet_checksum(message) == 0


def error_body(datagram: Buffer) -> bytes:
    """The body of an ICMP error about ``datagram``: its IP header and 8 bytes of payload."""
    return quote_datagram(datagram)
