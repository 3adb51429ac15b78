"""Ethernet II frames with zero, one or two 802.1Q/802.1ad tags, and MAC addresses.

Owns the MAC helpers (a MAC is six ``bytes``; its text form is the one
``tenet.model.types`` normalizes to: lower-case hex pairs joined by ``:``) and
the Ethernet header codec.

Invariants:

* ``Ethernet.vlans`` lists the tags outermost first, at most two;
* ``eth_type`` is the type after the tags (what the payload is). It may be a
  tag protocol id only when two tags are present (a third tag is not parsed;
  it stays in the payload);
* values below 0x0600 (802.3 length fields) are kept as they are: this codec
  does not decode LLC/SNAP.

Wire format (one tag shown; a second tag repeats the TPID/TCI pair)::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +---------------------------------------------------------------+
    |                destination MAC (6 bytes)                      |
    +                               +-------------------------------+
    |                               |                               |
    +-------------------------------+                               +
    |                   source MAC (6 bytes)                        |
    +-------------------------------+-------------------------------+
    |  TPID 0x8100 / 0x88a8 / 0x9100 | PCP |D|      VLAN id (12)     |   <- optional
    +-------------------------------+-------------------------------+
    |          EtherType            |  payload ...
    +-------------------------------+
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from typing import Self

from tenet.errors import PacketError
from tenet.packets.wire import Buffer, check, check_mac, need

ETH_TYPE_IPV4 = 0x0800
ETH_TYPE_ARP = 0x0806
ETH_TYPE_VLAN = 0x8100
ETH_TYPE_QINQ = 0x88A8
ETH_TYPE_QINQ_OLD = 0x9100
ETH_TYPE_IPV6 = 0x86DD
VLAN_TPIDS = frozenset({ETH_TYPE_VLAN, ETH_TYPE_QINQ, ETH_TYPE_QINQ_OLD})
"""EtherTypes that announce a VLAN tag."""

ETH_HEADER_LEN = 14
VLAN_TAG_LEN = 4
MAX_VLAN_TAGS = 2

BROADCAST_MAC = b"\xff" * 6
ZERO_MAC = bytes(6)

_HEADER = struct.Struct("!6s6sH")
_TAG = struct.Struct("!HH")
_MAC_TEXT = re.compile(r"[0-9A-Fa-f]{2}([:-]?)(?:[0-9A-Fa-f]{2}\1){4}[0-9A-Fa-f]{2}")


def mac_to_str(mac: bytes) -> str:
    """``b"\\x02\\x00\\x00\\x00\\x00\\x01"`` -> ``"02:00:00:00:00:01"``."""
    check_mac(mac, "mac_to_str")
    return mac.hex(":")


def mac_from_str(text: str) -> bytes:
    """``"02:00:00:00:00:01"`` (also ``-`` separated, or bare hex; any case) -> six bytes."""
    if not isinstance(text, str) or not _MAC_TEXT.fullmatch(text):
        raise PacketError(f"{text!r} is not a MAC address like 02:00:00:00:00:01")
    return bytes.fromhex(text.replace(":", "").replace("-", ""))


def is_multicast(mac: bytes) -> bool:
    """True for group addresses (the I/G bit), broadcast included."""
    return bool(mac[0] & 1)


def is_broadcast(mac: bytes) -> bool:
    return mac == BROADCAST_MAC


@dataclass(frozen=True, slots=True)
class Vlan:
    """One 802.1Q tag: 12-bit id, 3-bit priority, drop-eligible bit, and its TPID."""

    vid: int
    pcp: int = 0
    dei: bool = False
    tpid: int = ETH_TYPE_VLAN

    @property
    def tci(self) -> int:
        return (self.pcp << 13) | (int(self.dei) << 12) | self.vid


@dataclass(frozen=True, slots=True)
class Ethernet:
    """An Ethernet II header. ``dst`` and ``src`` are six bytes each."""

    dst: bytes
    src: bytes
    eth_type: int
    vlans: tuple[Vlan, ...] = ()

    @property
    def header_length(self) -> int:
        return ETH_HEADER_LEN + VLAN_TAG_LEN * len(self.vlans)

    @classmethod
    def parse(cls, data: Buffer) -> tuple[Self, bytes]:
        """Parse the header; return it and the payload (a copy)."""
        need(data, ETH_HEADER_LEN, "Ethernet")
        dst, src, eth_type = _HEADER.unpack_from(data, 0)
        offset = ETH_HEADER_LEN
        vlans: list[Vlan] = []
        while eth_type in VLAN_TPIDS and len(vlans) < MAX_VLAN_TAGS:
            need(data, offset + VLAN_TAG_LEN, "802.1Q tag")
            tci, next_type = _TAG.unpack_from(data, offset)
            vlans.append(Vlan(tci & 0x0FFF, tci >> 13, bool(tci & 0x1000), eth_type))
            eth_type = next_type
            offset += VLAN_TAG_LEN
        return cls(dst, src, eth_type, tuple(vlans)), bytes(data[offset:])

    def build(self, payload: Buffer = b"") -> bytes:
        """The header followed by ``payload``."""
        check_mac(self.dst, "Ethernet.dst")
        check_mac(self.src, "Ethernet.src")
        check(len(self.vlans) <= MAX_VLAN_TAGS, "Ethernet: at most two VLAN tags")
        check(0 <= self.eth_type <= 0xFFFF, "Ethernet: eth_type is 16 bits")
        check(
            self.eth_type not in VLAN_TPIDS or len(self.vlans) == MAX_VLAN_TAGS,
            "Ethernet: eth_type is a VLAN TPID; add the tag to vlans instead",
        )
        parts = [self.dst, self.src]
        for tag in self.vlans:
            check(tag.tpid in VLAN_TPIDS, f"Ethernet: {tag.tpid:#06x} is not a VLAN TPID")
            check(0 <= tag.vid <= 0x0FFF and 0 <= tag.pcp <= 7, "Ethernet: VLAN id or PCP range")
            parts.append(_TAG.pack(tag.tpid, tag.tci))
        parts.append(self.eth_type.to_bytes(2, "big"))
        parts.append(bytes(payload))
        return b"".join(parts)
