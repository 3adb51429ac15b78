"""No bytes make a parser raise anything but PacketError: random, truncated, flipped."""

from __future__ import annotations

from collections.abc import Callable
from ipaddress import IPv4Address, IPv6Address

import pytest
from hypothesis import given
from hypothesis import strategies as st
from packets_strategies import THOROUGH, frames

from tenet.errors import PacketError
from tenet.packets import rewrite
from tenet.packets.arp import ARP
from tenet.packets.dhcp import DHCP
from tenet.packets.ethernet import Ethernet
from tenet.packets.icmp import ICMP
from tenet.packets.icmpv6 import ICMPv6, NeighborDiscovery
from tenet.packets.ipv4 import IPv4
from tenet.packets.ipv6 import IPv6
from tenet.packets.l4 import TCP, UDP
from tenet.packets.match import extract_match
from tenet.packets.packet import Packet
from tenet.packets.vxlan import VXLAN


def _rewrites(data: bytes) -> None:
    frame = bytearray(data)
    rewrite.set_ip_src(frame, bytes(4) if len(frame) < 60 else bytes(16))
    rewrite.set_l4_dst(frame, 80)
    rewrite.dec_ttl(frame)


PARSERS: dict[str, Callable[[bytes], object]] = {
    "extract_match": lambda b: extract_match(b, 1, 2),
    "Packet": Packet.parse,
    "Ethernet": Ethernet.parse,
    "ARP": ARP.parse,
    "IPv4": IPv4.parse,
    "IPv4 quoted": lambda b: IPv4.parse(b, quoted=True),
    "IPv6": IPv6.parse,
    "IPv6 quoted": lambda b: IPv6.parse(b, quoted=True),
    "ICMP": ICMP.parse,
    "ICMPv6": ICMPv6.parse,
    "ND": NeighborDiscovery.parse,
    "UDP": UDP.parse,
    "UDP partial": lambda b: UDP.parse(b, partial=True),
    "TCP": TCP.parse,
    "DHCP": DHCP.parse,
    "VXLAN": VXLAN.parse,
    "layout": lambda b: rewrite.layout(bytearray(b)),
    "rewrites": _rewrites,
}


def _only_packet_errors(data: bytes) -> None:
    for name, parse in PARSERS.items():
        try:
            parse(data)
        except PacketError:
            pass
        except Exception as exc:  # pragma: no cover - the failure being tested for
            raise AssertionError(f"{name} raised {exc!r} on {data.hex()}") from exc


@THOROUGH
@given(st.binary(max_size=128))
def test_random_bytes(data: bytes) -> None:
    _only_packet_errors(data)


@THOROUGH
@given(frames, st.data())
def test_flipped_and_truncated_frames(frame: bytes, data: st.DataObject) -> None:
    damaged = bytearray(frame)
    for _ in range(data.draw(st.integers(1, 4))):
        damaged[data.draw(st.integers(0, len(damaged) - 1))] = data.draw(st.integers(0, 255))
    _only_packet_errors(bytes(damaged))
    _only_packet_errors(bytes(damaged[: data.draw(st.integers(0, len(damaged)))]))
    _only_packet_errors(frame[14:])  # the codecs of inner layers see frames too


def _samples() -> list[bytes]:
    mac1, mac2 = bytes.fromhex("020000000001"), bytes.fromhex("020000000002")
    a4, b4 = IPv4Address("10.0.0.1"), IPv4Address("10.0.0.2")
    a6, b6 = IPv6Address("fe80::1"), IPv6Address("fe80::2")
    dhcp = DHCP(message_type=1, hostname="h", dns_servers=(a4,)).build()
    return [
        Packet(Ethernet(mac2, mac1, 0x0800), IPv4(a4, b4, 17), UDP(68, 67), dhcp).build(),
        Packet(Ethernet(mac2, mac1, 0x0800), IPv4(a4, b4, 6, options=bytes(4)), TCP(1, 2)).build(),
        Packet(Ethernet(mac2, mac1, 0x0806), ARP.request(mac1, a4, b4)).build(),
        Packet(Ethernet(mac2, mac1, 0x86DD), IPv6(a6, b6, 58), ICMPv6(135), bytes(24)).build(),
        dhcp,
    ]


@pytest.mark.parametrize("frame", _samples(), ids=["dhcp", "tcp", "arp", "ns", "bare-dhcp"])
def test_every_truncation_of_sample_frames(frame: bytes) -> None:
    for end in range(len(frame)):
        _only_packet_errors(frame[:end])
