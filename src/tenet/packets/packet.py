"""A whole frame as its parsed layers: what the simulation reads and what responders build.

Owns :class:`Packet`: Ethernet, then ARP or IPv4/IPv6, then TCP, UDP, ICMP or
ICMPv6, then the rest as ``payload``. (DHCP and VXLAN ride in UDP payloads:
decode them with :mod:`tenet.packets.dhcp` and :mod:`tenet.packets.vxlan`.)

Invariants:

* ``Packet.parse`` accepts exactly the frames that
  :func:`tenet.packets.match.extract_match` accepts, except that it does not
  look into the transport header of a fragment: for any IP fragment (first or
  later) ``transport`` is ``None`` and ``payload`` is the fragment's IP
  payload (``extract_match`` does read the transport header of a first
  fragment, and requires it). A transport protocol it does not know leaves
  ``transport`` None. The body of a neighbor solicitation/advertisement is
  validated (see :attr:`Packet.nd`);
* ``build`` recomputes every length and checksum, and raises PacketError when
  the layers disagree (a transport header under an IP header with another
  protocol number, or under a fragment), so ``Packet.parse(p.build()) == p``
  for every packet ``build`` accepts;
* bytes after the IP datagram (Ethernet padding) are not kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Self

from tenet.errors import PacketError
from tenet.packets.arp import ARP
from tenet.packets.ethernet import ETH_TYPE_ARP, ETH_TYPE_IPV4, ETH_TYPE_IPV6, Ethernet
from tenet.packets.icmp import ICMP
from tenet.packets.icmpv6 import ICMPv6, NeighborDiscovery
from tenet.packets.ipv4 import IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP, IPv4
from tenet.packets.ipv6 import IPv6
from tenet.packets.l4 import TCP, UDP
from tenet.packets.wire import Buffer, check

Network = ARP | IPv4 | IPv6
Transport = TCP | UDP | ICMP | ICMPv6


@dataclass(frozen=True, slots=True)
class Packet:
    """A frame's layers. ``net`` and ``transport`` are None when absent or unknown."""

    eth: Ethernet
    net: Network | None = None
    transport: Transport | None = None
    payload: bytes = b""

    @property
    def ip(self) -> IPv4 | IPv6 | None:
        return self.net if isinstance(self.net, IPv4 | IPv6) else None

    @property
    def arp(self) -> ARP | None:
        return self.net if isinstance(self.net, ARP) else None

    @property
    def nd(self) -> NeighborDiscovery | None:
        """The body of a neighbor solicitation or advertisement."""
        t = self.transport
        if isinstance(t, ICMPv6) and t.is_neighbor_discovery:
            return NeighborDiscovery.parse(self.payload)
        return None

    @classmethod
    def parse(cls, frame: Buffer) -> Self:
        eth, rest = Ethernet.parse(frame)
        if eth.eth_type == ETH_TYPE_ARP:
            arp, rest = ARP.parse(rest)
            return cls(eth, arp, None, rest)
        ip: IPv4 | IPv6
        if eth.eth_type == ETH_TYPE_IPV4:
            ip, rest = IPv4.parse(rest)
        elif eth.eth_type == ETH_TYPE_IPV6:
            ip, rest = IPv6.parse(rest)
        else:
            return cls(eth, None, None, rest)
        if ip.is_fragment:
            return cls(eth, ip, None, rest)
        transport: Transport
        if ip.proto == IPPROTO_TCP:
            transport, rest = TCP.parse(rest)
        elif ip.proto == IPPROTO_UDP:
            transport, rest = UDP.parse(rest)
        elif ip.proto == IPPROTO_ICMP and isinstance(ip, IPv4):
            transport, rest = ICMP.parse(rest)
        elif ip.proto == IPPROTO_ICMPV6 and isinstance(ip, IPv6):
            transport, rest = ICMPv6.parse(rest)
            if transport.is_neighbor_discovery:
                NeighborDiscovery.parse(rest)  # a malformed body is a malformed frame
        else:
            return cls(eth, ip, None, rest)
        return cls(eth, ip, transport, rest)

    def build(self) -> bytes:
        """The frame, every length and checksum computed."""
        net = self.net
        if net is None:
            check(self.transport is None, "Packet: a transport header needs an IP header")
            return self.eth.build(self.payload)
        expected = {ARP: ETH_TYPE_ARP, IPv4: ETH_TYPE_IPV4, IPv6: ETH_TYPE_IPV6}[type(net)]
        check(self.eth.eth_type == expected, f"Packet: eth_type is not {expected:#06x}")
        if isinstance(net, ARP):
            check(self.transport is None, "Packet: ARP carries no transport header")
            return self.eth.build(net.build() + self.payload)
        return self.eth.build(net.build(self._segment(net)))

    def _segment(self, ip: IPv4 | IPv6) -> bytes:
        t = self.transport
        if t is None:
            known = {IPPROTO_TCP, IPPROTO_UDP}
            known.add(IPPROTO_ICMP if isinstance(ip, IPv4) else IPPROTO_ICMPV6)
            check(
                ip.is_fragment or ip.proto not in known,
                f"Packet: protocol {ip.proto} needs its transport header",
            )
            return self.payload
        check(not ip.is_fragment, "Packet: a fragment carries no parsed transport header")
        if isinstance(t, TCP | UDP):
            proto = IPPROTO_TCP if isinstance(t, TCP) else IPPROTO_UDP
            check(ip.proto == proto, f"Packet: IP proto {ip.proto} under {type(t).__name__}")
            return t.build(self.payload, ip.src, ip.dst)
        if isinstance(t, ICMP):
            check(isinstance(ip, IPv4) and ip.proto == IPPROTO_ICMP, "Packet: ICMP needs IPv4")
            return t.build(self.payload)
        if not isinstance(ip, IPv6) or ip.proto != IPPROTO_ICMPV6:
            raise PacketError("Packet: ICMPv6 needs IPv6 with proto 58")
        return t.build(self.payload, ip.src, ip.dst)
