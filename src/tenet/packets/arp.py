"""ARP for IPv4 over Ethernet (RFC 826).

Owns the ARP codec. Invariants: only hardware type 1 (Ethernet) with 6-byte
addresses and protocol type 0x0800 with 4-byte addresses is accepted; anything
else is a PacketError (the virtual network answers and forwards no other kind).
The bytes after the 28-byte body (Ethernet padding) are returned as payload.

Wire format (28 bytes)::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-------------------------------+-------------------------------+
    |    hardware type = 1          |    protocol type = 0x0800     |
    +---------------+---------------+-------------------------------+
    | hw len = 6    | proto len = 4 |         operation             |
    +---------------+---------------+-------------------------------+
    |              sender hardware address (6 bytes)                |
    +                               +-------------------------------+
    |                               |  sender protocol address ...  |
    +-------------------------------+-------------------------------+
    |  ... (4 bytes)                |                               |
    +-------------------------------+                               +
    |              target hardware address (6 bytes)                |
    +---------------------------------------------------------------+
    |              target protocol address (4 bytes)                |
    +---------------------------------------------------------------+
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Self

from tenet.packets.ethernet import ZERO_MAC
from tenet.packets.wire import Buffer, check, check_ipv4, check_mac, need

ARP_REQUEST = 1
ARP_REPLY = 2
ARP_LEN = 28
HTYPE_ETHERNET = 1
PTYPE_IPV4 = 0x0800

_ARP = struct.Struct("!HHBBH6s4s6s4s")


@dataclass(frozen=True, slots=True)
class ARP:
    """An Ethernet/IPv4 ARP message: operation, sender and target addresses."""

    op: int
    sha: bytes
    spa: IPv4Address
    tha: bytes
    tpa: IPv4Address

    @classmethod
    def request(cls, sha: bytes, spa: IPv4Address, tpa: IPv4Address) -> Self:
        """Who has ``tpa``? Tell ``spa`` (``tha`` is zero)."""
        return cls(ARP_REQUEST, sha, spa, ZERO_MAC, tpa)

    def reply(self, mac: bytes) -> ARP:
        """The answer to this request: ``tpa`` is at ``mac``."""
        return ARP(ARP_REPLY, mac, self.tpa, self.sha, self.spa)

    @classmethod
    def parse(cls, data: Buffer) -> tuple[Self, bytes]:
        need(data, ARP_LEN, "ARP")
        htype, ptype, hlen, plen, op, sha, spa, tha, tpa = _ARP.unpack_from(data, 0)
        check(
            htype == HTYPE_ETHERNET and ptype == PTYPE_IPV4 and hlen == 6 and plen == 4,
            f"ARP: not Ethernet/IPv4 (htype {htype}, ptype {ptype:#06x}, lens {hlen}/{plen})",
        )
        arp = cls(op, sha, IPv4Address(spa), tha, IPv4Address(tpa))
        return arp, bytes(data[ARP_LEN:])

    def build(self) -> bytes:
        check_mac(self.sha, "ARP.sha")
        check_mac(self.tha, "ARP.tha")
        check(0 <= self.op <= 0xFFFF, "ARP: op is 16 bits")
        check_ipv4(self.spa, self.tpa, what="ARP")
        return _ARP.pack(
            HTYPE_ETHERNET,
            PTYPE_IPV4,
            6,
            4,
            self.op,
            self.sha,
            self.spa.packed,
            self.tha,
            self.tpa.packed,
        )
