"""VXLAN (RFC 7348): the 8-byte header between the outer UDP and the inner frame.

Owns the VXLAN codec. In tenet the VNI carries the egress port's (or a flood
set's) 24-bit tunnel key. Invariants: ``parse`` requires the I flag (a valid
VNI) and ignores the reserved bits; ``build`` writes only the I flag.

Wire format (UDP destination port 4789)::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-+-+-+-+-----------------------------------------------+
    |R|R|R|R|I|R|R|R|                  Reserved                     |
    +-+-+-+-+-+-+-+-+-------------------------------+---------------+
    |          VXLAN Network Identifier (VNI)       |   Reserved    |
    +-----------------------------------------------+---------------+
    |  inner Ethernet frame ...
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Self

from tenet.packets.wire import Buffer, check, need

VXLAN_PORT = 4789
VXLAN_HEADER_LEN = 8
VXLAN_FLAG_VNI = 0x08
VNI_MAX = (1 << 24) - 1

_HEADER = struct.Struct("!B3xI")


@dataclass(frozen=True, slots=True)
class VXLAN:
    """A VXLAN header: the 24-bit network identifier."""

    vni: int

    @classmethod
    def parse(cls, data: Buffer) -> tuple[Self, bytes]:
        """Parse the header; return it and the inner frame (a copy)."""
        need(data, VXLAN_HEADER_LEN, "VXLAN")
        flags, word = _HEADER.unpack_from(data, 0)
        check(bool(flags & VXLAN_FLAG_VNI), "VXLAN: I flag not set (no valid VNI)")
        return cls(word >> 8), bytes(data[VXLAN_HEADER_LEN:])

    def build(self, inner: Buffer = b"") -> bytes:
        check(0 <= self.vni <= VNI_MAX, f"VXLAN: VNI {self.vni} is not 24 bits")
        return _HEADER.pack(VXLAN_FLAG_VNI, self.vni << 8) + bytes(inner)
