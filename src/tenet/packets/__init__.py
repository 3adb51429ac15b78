"""Wire formats and flow-match extraction: bytes in, values out, values in, bytes out.

Owns every packet format tenet reads or writes, and the flow match. Pure: it
imports only the standard library (no clock, no I/O) and ``tenet.errors``.

=====================  ====================================================
module                 what it owns
=====================  ====================================================
``wire``               the buffer type and length guards shared by codecs
``checksum``           Internet checksum, pseudo-headers, RFC 1624 updates
``ethernet``           MAC helpers, Ethernet II with 0..2 VLAN tags
``arp``                ARP for IPv4 over Ethernet
``ipv4`` / ``ipv6``    IP headers (options, fragments, extension headers)
``icmp`` / ``icmpv6``  ICMP echo and errors; ICMPv6 and neighbor discovery
``l4``                 UDP and TCP
``dhcp``               DHCP (BOOTP header and options)
``vxlan``              the VXLAN header
``packet``             a whole frame as its parsed layers
``match``              FlowMatch, extract_match (the upcall hot path), masked
``rewrite``            in-place header rewrites with incremental checksums
=====================  ====================================================

Invariants shared by every codec:

* headers are frozen, slotted dataclasses; ``parse(data)`` returns
  ``(header, payload)`` and ``build(payload, ...)`` returns ``bytes``. Lengths
  and checksums are derived: ``build`` computes them and the records do not
  hold them, so ``parse(build(h)) == h``;
* MACs are 6-byte ``bytes``, IP addresses ``ipaddress`` objects (in
  :class:`~tenet.packets.match.FlowMatch`, packed ``bytes``);
* parsing raises :class:`~tenet.errors.PacketError` and nothing else, whatever
  the bytes; building raises it for a field that does not fit the wire.
"""

from tenet.packets.arp import ARP, ARP_REPLY, ARP_REQUEST
from tenet.packets.dhcp import DHCP
from tenet.packets.ethernet import (
    BROADCAST_MAC,
    ETH_TYPE_ARP,
    ETH_TYPE_IPV4,
    ETH_TYPE_IPV6,
    ETH_TYPE_VLAN,
    ZERO_MAC,
    Ethernet,
    Vlan,
    mac_from_str,
    mac_to_str,
)
from tenet.packets.icmp import ICMP
from tenet.packets.icmpv6 import ICMPv6, NeighborDiscovery
from tenet.packets.ipv4 import IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP, IPv4
from tenet.packets.ipv6 import IPv6, IPv6Ext, IPv6Fragment
from tenet.packets.l4 import TCP, UDP
from tenet.packets.match import FIELDS, FlowMatch, extract_match, masked
from tenet.packets.packet import Packet
from tenet.packets.vxlan import VXLAN

__all__ = [
    "ARP",
    "ARP_REPLY",
    "ARP_REQUEST",
    "BROADCAST_MAC",
    "DHCP",
    "ETH_TYPE_ARP",
    "ETH_TYPE_IPV4",
    "ETH_TYPE_IPV6",
    "ETH_TYPE_VLAN",
    "FIELDS",
    "ICMP",
    "IPPROTO_ICMP",
    "IPPROTO_ICMPV6",
    "IPPROTO_TCP",
    "IPPROTO_UDP",
    "TCP",
    "UDP",
    "VXLAN",
    "ZERO_MAC",
    "Ethernet",
    "FlowMatch",
    "ICMPv6",
    "IPv4",
    "IPv6",
    "IPv6Ext",
    "IPv6Fragment",
    "NeighborDiscovery",
    "Packet",
    "Vlan",
    "extract_match",
    "mac_from_str",
    "mac_to_str",
    "masked",
]
