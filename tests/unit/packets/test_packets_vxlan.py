"""VXLAN: golden bytes, the I flag, round trips, and a whole encapsulated frame."""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest
from hypothesis import given
from packets_strategies import FAST, payloads, vxlans

from tenet.errors import PacketError
from tenet.packets.ethernet import Ethernet
from tenet.packets.ipv4 import IPv4
from tenet.packets.l4 import UDP
from tenet.packets.match import extract_match
from tenet.packets.packet import Packet
from tenet.packets.vxlan import VXLAN, VXLAN_PORT


def test_golden() -> None:
    assert VXLAN(0x123456).build(b"inner") == bytes.fromhex("08000000 12345600") + b"inner"
    assert VXLAN.parse(bytes.fromhex("08ffffff 000001ff") + b"x") == (VXLAN(1), b"x")


def test_parse_requires_the_i_flag_and_8_bytes() -> None:
    with pytest.raises(PacketError, match="I flag"):
        VXLAN.parse(bytes.fromhex("00000000 00000100"))
    with pytest.raises(PacketError, match="truncated"):
        VXLAN.parse(bytes.fromhex("08000000 000001"))


@pytest.mark.parametrize("vni", [-1, 1 << 24])
def test_build_refuses_vni_out_of_range(vni: int) -> None:
    with pytest.raises(PacketError):
        VXLAN(vni).build()


def test_encapsulated_frame() -> None:
    inner = bytes.fromhex("020000000002 020000000001 88b5") + b"hello"
    outer_ip = IPv4(IPv4Address("192.0.2.1"), IPv4Address("192.0.2.2"), 17)
    udp = UDP(49152, VXLAN_PORT).build(VXLAN(42).build(inner))  # checksum 0, as tunnels do
    frame = Ethernet(bytes(6), bytes(6), 0x0800).build(outer_ip.build(udp))
    packet = Packet.parse(frame)
    assert packet.transport == UDP(49152, VXLAN_PORT)
    header, decapsulated = VXLAN.parse(packet.payload)
    assert header.vni == 42
    assert decapsulated == inner
    assert extract_match(decapsulated, in_port=7, tunnel_key=header.vni).tunnel_key == 42


@FAST
@given(vxlans, payloads)
def test_round_trip(header: VXLAN, inner: bytes) -> None:
    wire = header.build(inner)
    assert VXLAN.parse(wire) == (header, inner)
    assert VXLAN.parse(memoryview(wire))[0].build(inner) == wire
