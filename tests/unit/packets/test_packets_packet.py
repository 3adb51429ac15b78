"""Whole frames: Packet parse/build round trips and the rules that keep layers consistent."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

import pytest
from hypothesis import given
from packets_strategies import FAST, packets

from tenet.errors import PacketError
from tenet.packets.arp import ARP
from tenet.packets.ethernet import Ethernet
from tenet.packets.icmp import ICMP
from tenet.packets.icmpv6 import ICMPv6, neighbor_solicit
from tenet.packets.ipv4 import FLAG_MF, IPv4
from tenet.packets.ipv6 import IPv6
from tenet.packets.l4 import TCP, UDP
from tenet.packets.packet import Packet

MAC1 = bytes.fromhex("020000000001")
MAC2 = bytes.fromhex("020000000002")
A4, B4 = IPv4Address("10.0.0.1"), IPv4Address("10.0.0.2")
A6, B6 = IPv6Address("2001:db8::1"), IPv6Address("2001:db8::2")


def test_ping_frame() -> None:
    packet = Packet(Ethernet(MAC2, MAC1, 0x0800), IPv4(A4, B4, 1), ICMP.echo_request(1, 1), b"data")
    frame = packet.build()
    assert len(frame) == 14 + 20 + 8 + 4
    parsed = Packet.parse(frame)
    assert parsed == packet
    assert parsed.ip == IPv4(A4, B4, 1)
    assert parsed.arp is None
    assert parsed.nd is None


def test_arp_frame_keeps_padding() -> None:
    arp = ARP.request(MAC1, A4, B4)
    frame = Packet(Ethernet(MAC2, MAC1, 0x0806), arp, None, bytes(18)).build()
    parsed = Packet.parse(frame)
    assert parsed.arp == arp
    assert parsed.ip is None
    assert parsed.payload == bytes(18)


def test_fragments_have_no_transport() -> None:
    ip = IPv4(A4, B4, 17, flags=FLAG_MF)
    frame = Packet(Ethernet(MAC2, MAC1, 0x0800), ip, None, b"udp header and more").build()
    parsed = Packet.parse(frame)
    assert parsed.transport is None
    assert parsed.payload == b"udp header and more"


def test_neighbor_solicitation_frame() -> None:
    header, body = neighbor_solicit(B6, MAC1)
    packet = Packet(Ethernet(MAC2, MAC1, 0x86DD), IPv6(A6, B6, 58, hop_limit=255), header, body)
    parsed = Packet.parse(packet.build())
    assert parsed == packet
    assert parsed.nd is not None
    assert parsed.nd.target == B6


def test_malformed_nd_body_is_a_malformed_frame() -> None:
    header = ICMPv6(135)
    packet = Packet(Ethernet(MAC2, MAC1, 0x86DD), IPv6(A6, B6, 58), header, bytes(16) + b"\x01\x00")
    with pytest.raises(PacketError):
        Packet.parse(packet.build())


@pytest.mark.parametrize(
    "packet",
    [
        Packet(Ethernet(MAC2, MAC1, 0x0806), None, UDP(1, 2)),
        Packet(Ethernet(MAC2, MAC1, 0x0800), ARP.request(MAC1, A4, B4)),
        Packet(Ethernet(MAC2, MAC1, 0x0806), ARP.request(MAC1, A4, B4), UDP(1, 2)),
        Packet(Ethernet(MAC2, MAC1, 0x0800), IPv4(A4, B4, 6), UDP(1, 2)),
        Packet(Ethernet(MAC2, MAC1, 0x0800), IPv4(A4, B4, 17)),
        Packet(Ethernet(MAC2, MAC1, 0x0800), IPv4(A4, B4, 17, frag_offset=1), UDP(1, 2)),
        Packet(Ethernet(MAC2, MAC1, 0x0800), IPv4(A4, B4, 58), ICMPv6(128)),
        Packet(Ethernet(MAC2, MAC1, 0x86DD), IPv6(A6, B6, 1), ICMP(8)),
        Packet(Ethernet(MAC2, MAC1, 0x86DD), IPv6(A6, B6, 6), TCP(1, 2, options=b"x")),
    ],
)
def test_build_refuses_inconsistent_layers(packet: Packet) -> None:
    with pytest.raises(PacketError):
        packet.build()


@FAST
@given(packets())
def test_packet_round_trip(packet: Packet) -> None:
    frame = packet.build()
    assert Packet.parse(frame) == packet
    assert Packet.parse(memoryview(frame)).build() == frame
