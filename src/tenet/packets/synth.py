"""A frame rebuilt from a flow match: what a restarted agent re-simulates a flow with.

``frame_of(match)`` returns the smallest well-formed frame whose
:func:`~tenet.packets.match.extract_match` is ``match`` (for untagged IPv4 and
IPv6 without extension headers or neighbor discovery: the frames the kernel
datapath holds flows for), or None for matches it does not rebuild. Payloads are
empty, so a simulation that reads past the transport header (DHCP) sees a short
packet and does not install a flow from it.
"""

from __future__ import annotations

import struct

from tenet.packets.checksum import internet_checksum
from tenet.packets.match import FRAG_FIRST, FRAG_LATER, FlowMatch

_IPV4 = struct.Struct("!BBHHHBBH4s4s")
_IPV6 = struct.Struct("!IHBB16s16s")
_V6_EXT = frozenset({0, 43, 44, 51, 60})


def frame_of(match: FlowMatch) -> bytes | None:
    if match.vlan:
        return None
    if match.eth_type == 0x86DD and len(match.ip_src) == 16 and not match.ip_frag:
        return _ipv6_frame(match)
    if match.eth_type != 0x0800 or len(match.ip_src) != 4:
        return None
    if match.ip_frag == FRAG_LATER:
        l4 = bytes(8)
        frag = 1  # offset 8 bytes: no transport header
    else:
        frag = 0x2000 if match.ip_frag == FRAG_FIRST else 0
        l4 = _transport(match, icmp=1)
    header = _IPV4.pack(0x45, match.ip_tos, 20 + len(l4), 0, frag, match.ip_ttl,
                        match.ip_proto, 0, match.ip_src, match.ip_dst)  # fmt: skip
    checksum = internet_checksum(header).to_bytes(2, "big")
    ip = header[:10] + checksum + header[12:]
    return match.eth_dst + match.eth_src + b"\x08\x00" + ip + l4


def _ipv6_frame(match: FlowMatch) -> bytes | None:
    if match.ip_proto == 58 and match.l4_src in (135, 136):
        return None  # neighbor discovery: its match holds options we do not rebuild
    if match.ip_proto in _V6_EXT:
        return None
    l4 = _transport(match, icmp=58)
    header = _IPV6.pack((6 << 28) | (match.ip_tos << 20), len(l4), match.ip_proto,
                        match.ip_ttl, match.ip_src, match.ip_dst)  # fmt: skip
    return match.eth_dst + match.eth_src + b"\x86\xdd" + header + l4


def _transport(match: FlowMatch, icmp: int) -> bytes:
    """The smallest transport header that extracts to ``match``'s L4 fields."""
    if match.ip_proto == 6:
        offset = 0x50 | (match.tcp_flags >> 8 & 1)
        return struct.pack("!HHIIBBHHH", match.l4_src, match.l4_dst, 0, 0, offset,
                           match.tcp_flags & 0xFF, 65535, 0, 0)  # fmt: skip
    if match.ip_proto == 17:
        return struct.pack("!HHHH", match.l4_src, match.l4_dst, 8, 0)
    if match.ip_proto == icmp:  # an echo's identifier (0 for the rest), sequence 0
        l4 = struct.pack("!BBHHH", match.l4_src, match.l4_dst, 0, match.icmp_id, 0)
        return l4[:2] + internet_checksum(l4).to_bytes(2, "big") + l4[4:]
    return b""
