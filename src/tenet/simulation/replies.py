"""Frames the simulation generates: ARP replies and requests, ICMP echo replies and
errors, TCP resets.

Each builder takes what it answers (the flow match and, where the reply quotes
it, the raw frame) and the addresses to answer from, and returns the whole
Ethernet frame. ICMP errors quote the offending IP header and 8 bytes of its
payload (RFC 792); a reset follows RFC 793's rules for a segment that opened
no connection.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

from tenet.errors import PacketError
from tenet.packets import (
    ARP,
    ARP_REPLY,
    BROADCAST_MAC,
    ETH_TYPE_ARP,
    ETH_TYPE_IPV4,
    ETH_TYPE_IPV6,
    ICMP,
    IPPROTO_ICMP,
    IPPROTO_ICMPV6,
    IPPROTO_TCP,
    TCP,
    Ethernet,
    FlowMatch,
    ICMPv6,
    IPv4,
    IPv6,
)
from tenet.packets.ipv4 import quote_datagram
from tenet.packets.ipv6 import quote_datagram as quote_ipv6

TCP_RST = 0x04
TCP_ACK = 0x10
TCP_SYN = 0x02
TCP_FIN = 0x01

ICMP_NET_UNREACHABLE = 0
ICMP_HOST_UNREACHABLE = 1
ICMP_PORT_UNREACHABLE = 3
ICMP_ADMIN_PROHIBITED = 13


def arp_reply(request: FlowMatch, mac: bytes) -> bytes:
    """The answer to an ARP request: its target address is at ``mac``."""
    arp = ARP(
        ARP_REPLY, mac, IPv4Address(request.arp_tpa), request.arp_sha, IPv4Address(request.arp_spa)
    )
    return Ethernet(request.eth_src, mac, ETH_TYPE_ARP).build(arp.build())


def arp_request(mac: bytes, ip: IPv4Address, target: IPv4Address) -> bytes:
    return Ethernet(BROADCAST_MAC, mac, ETH_TYPE_ARP).build(ARP.request(mac, ip, target).build())


def _l3_offset(frame: bytes) -> int:
    eth, _ = Ethernet.parse(frame[:22])
    return eth.header_length


def echo_reply(frame: bytes, match: FlowMatch, eth_src: bytes, eth_dst: bytes) -> bytes:
    """Answer an ICMP echo request in ``frame`` (an IPv4 frame) from its destination."""
    ip, payload = IPv4.parse(frame[_l3_offset(frame) :])
    request, data = ICMP.parse(payload)
    reply = ICMP.echo_reply(request.ident, request.seq).build(data)
    header = IPv4(ip.dst, ip.src, IPPROTO_ICMP, ttl=64)
    return Ethernet(eth_dst, eth_src, ETH_TYPE_IPV4).build(header.build(reply))


def icmp_error(
    frame: bytes, icmp: ICMP, src: IPv4Address, eth_src: bytes, eth_dst: bytes
) -> bytes | None:
    """An ICMP error about the IPv4 datagram in ``frame``, from ``src`` to its sender.

    None where RFC 1122 forbids an error: about an ICMP error, a non-first fragment,
    or a datagram from a broadcast, multicast or unspecified source.
    """
    try:
        datagram = frame[_l3_offset(frame) :]
        ip, payload = IPv4.parse(datagram)
        if ip.frag_offset or ip.src.is_multicast or ip.src.is_unspecified:
            return None
        if ip.src == IPv4Address("255.255.255.255"):
            return None
        if ip.proto == IPPROTO_ICMP and ICMP.parse(payload)[0].is_error:
            return None
        body = icmp.build(quote_datagram(datagram))
    except PacketError:
        return None
    header = IPv4(src, ip.src, IPPROTO_ICMP, ttl=64)
    return Ethernet(eth_dst, eth_src, ETH_TYPE_IPV4).build(header.build(body))


def tcp_reset(frame: bytes, eth_src: bytes, eth_dst: bytes) -> bytes | None:
    """The RST answering the TCP segment in ``frame`` (IPv4), from its destination."""
    try:
        ip, payload = IPv4.parse(frame[_l3_offset(frame) :])
        if ip.proto != IPPROTO_TCP:
            return None
        seg, data = TCP.parse(payload)
    except PacketError:
        return None
    if seg.flags & TCP_RST:
        return None
    if seg.flags & TCP_ACK:
        rst = TCP(seg.dst_port, seg.src_port, seq=seg.ack, flags=TCP_RST, window=0)
    else:
        length = len(data) + (1 if seg.flags & TCP_SYN else 0) + (1 if seg.flags & TCP_FIN else 0)
        ack = (seg.seq + length) & 0xFFFFFFFF
        rst = TCP(seg.dst_port, seg.src_port, ack=ack, flags=TCP_RST | TCP_ACK, window=0)
    header = IPv4(ip.dst, ip.src, IPPROTO_TCP, ttl=64)
    return Ethernet(eth_dst, eth_src, ETH_TYPE_IPV4).build(
        header.build(rst.build(b"", ip.dst, ip.src))
    )


def icmpv6_error(
    frame: bytes, icmp: ICMPv6, src: IPv6Address, eth_src: bytes, eth_dst: bytes
) -> bytes | None:
    """An ICMPv6 error about the IPv6 packet in ``frame``, from ``src`` to its sender.

    None where RFC 4443 2.4(e) forbids one: about an ICMPv6 error, or from a
    multicast or unspecified source.
    """
    try:
        datagram = frame[_l3_offset(frame) :]
        ip, payload = IPv6.parse(datagram)
        if ip.src.is_multicast or ip.src.is_unspecified:
            return None
        if ip.proto == IPPROTO_ICMPV6 and ICMPv6.parse(payload)[0].is_error:
            return None
        body = icmp.build(quote_ipv6(datagram), src, ip.src)
    except PacketError:
        return None
    header = IPv6(src, ip.src, IPPROTO_ICMPV6, hop_limit=64)
    return Ethernet(eth_dst, eth_src, ETH_TYPE_IPV6).build(header.build(body))


def echo6_reply(frame: bytes, eth_src: bytes, eth_dst: bytes) -> bytes | None:
    """Answer an ICMPv6 echo request in ``frame`` from its destination."""
    try:
        ip, payload = IPv6.parse(frame[_l3_offset(frame) :])
        request, data = ICMPv6.parse(payload)
    except PacketError:
        return None
    reply = ICMPv6.echo_reply(request.ident, request.seq).build(data, ip.dst, ip.src)
    header = IPv6(ip.dst, ip.src, IPPROTO_ICMPV6, hop_limit=64)
    return Ethernet(eth_dst, eth_src, ETH_TYPE_IPV6).build(header.build(reply))
