"""Ethernet (with VLAN tags), MAC helpers and ARP: golden bytes and round trips."""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest
from hypothesis import given
from packets_strategies import FAST, arps, ethernets, payloads

from tenet.errors import PacketError
from tenet.packets.arp import ARP, ARP_REPLY, ARP_REQUEST
from tenet.packets.ethernet import (
    BROADCAST_MAC,
    Ethernet,
    Vlan,
    is_broadcast,
    is_multicast,
    mac_from_str,
    mac_to_str,
)

MAC1 = bytes.fromhex("020000000001")
MAC2 = bytes.fromhex("020000000002")


def test_mac_text_forms() -> None:
    assert mac_to_str(MAC1) == "02:00:00:00:00:01"
    assert mac_from_str("02:00:00:00:00:01") == MAC1
    assert mac_from_str("02-00-00-00-00-01") == MAC1
    assert mac_from_str("0200000000Ab") == bytes.fromhex("0200000000ab")
    assert mac_to_str(mac_from_str("AA:BB:CC:DD:EE:FF")) == "aa:bb:cc:dd:ee:ff"


@pytest.mark.parametrize(
    "text", ["", "02:00:00:00:00", "02:00:00:00:00:01:02", "02:00-00:00:00:01", "zz:00:00:00:00:01"]
)
def test_bad_mac_text_is_a_packet_error(text: str) -> None:
    with pytest.raises(PacketError):
        mac_from_str(text)


def test_mac_to_str_wants_six_bytes() -> None:
    with pytest.raises(PacketError):
        mac_to_str(b"\x01\x02")


def test_multicast_and_broadcast() -> None:
    assert is_broadcast(BROADCAST_MAC)
    assert is_multicast(BROADCAST_MAC)
    assert is_multicast(bytes.fromhex("01005e000001"))
    assert not is_multicast(MAC1)


def test_untagged_golden() -> None:
    frame = bytes.fromhex("020000000002 020000000001 0800") + b"payload"
    eth, payload = Ethernet.parse(frame)
    assert eth == Ethernet(MAC2, MAC1, 0x0800)
    assert payload == b"payload"
    assert eth.build(payload) == frame
    assert eth.header_length == 14


def test_single_and_double_tag_golden() -> None:
    one = bytes.fromhex("020000000002 020000000001 8100 a064 86dd")
    eth, rest = Ethernet.parse(one)
    assert eth == Ethernet(MAC2, MAC1, 0x86DD, (Vlan(100, pcp=5, dei=False),))
    assert rest == b""
    assert eth.build() == one

    two = bytes.fromhex("020000000002 020000000001 88a8 100a 8100 0014 0806")
    eth, _ = Ethernet.parse(two)
    assert eth.vlans == (Vlan(10, 0, True, 0x88A8), Vlan(20, 0, False, 0x8100))
    assert eth.eth_type == 0x0806
    assert eth.header_length == 22
    assert eth.build() == two


def test_third_tag_stays_in_the_payload() -> None:
    three = bytes.fromhex("020000000002 020000000001" + "8100000a" * 3 + "0800")
    eth, rest = Ethernet.parse(three)
    assert len(eth.vlans) == 2
    assert eth.eth_type == 0x8100
    assert rest == bytes.fromhex("000a0800")
    assert eth.build(rest) == three


@pytest.mark.parametrize(
    "header",
    [
        Ethernet(MAC1[:5], MAC2, 0x0800),
        Ethernet(MAC1, MAC2, 0x8100),
        Ethernet(MAC1, MAC2, 0x0800, (Vlan(4096),)),
        Ethernet(MAC1, MAC2, 0x0800, (Vlan(1, tpid=0x0800),)),
        Ethernet(MAC1, MAC2, 0x10000),
    ],
)
def test_build_refuses_what_does_not_fit(header: Ethernet) -> None:
    with pytest.raises(PacketError):
        header.build()


def test_arp_request_golden() -> None:
    body = bytes.fromhex(
        "0001 0800 06 04 0001"
        "020000000001 0a000001"
        "000000000000 0a000002"
    )  # fmt: skip
    request = ARP.request(MAC1, IPv4Address("10.0.0.1"), IPv4Address("10.0.0.2"))
    assert request.build() == body
    frame = Ethernet(BROADCAST_MAC, MAC1, 0x0806).build(body + bytes(18))
    assert len(frame) == 60
    _eth, rest = Ethernet.parse(frame)
    arp, padding = ARP.parse(rest)
    assert arp == request
    assert arp.op == ARP_REQUEST
    assert padding == bytes(18)


def test_arp_build_refuses_non_ipv4_addresses() -> None:
    from ipaddress import IPv6Address

    with pytest.raises(PacketError):
        ARP.request(MAC1, IPv6Address(1), IPv4Address(2)).build()  # type: ignore[arg-type]


def test_arp_reply_swaps_addresses() -> None:
    request = ARP.request(MAC1, IPv4Address("10.0.0.1"), IPv4Address("10.0.0.2"))
    reply = request.reply(MAC2)
    assert reply == ARP(ARP_REPLY, MAC2, IPv4Address("10.0.0.2"), MAC1, IPv4Address("10.0.0.1"))
    assert reply.build()[6:8] == b"\x00\x02"


@pytest.mark.parametrize(
    "body",
    [
        "0006 0800 06 04 0001" + "00" * 20,  # IEEE 802 hardware type
        "0001 86dd 06 04 0001" + "00" * 20,  # not IPv4
        "0001 0800 06 10 0001" + "00" * 20,  # protocol length 16
        "0001 0800 06 04 0001" + "00" * 19,  # truncated
    ],
)
def test_arp_parse_rejects(body: str) -> None:
    with pytest.raises(PacketError):
        ARP.parse(bytes.fromhex(body))


@FAST
@given(ethernets(), payloads)
def test_ethernet_round_trip(header: Ethernet, payload: bytes) -> None:
    wire = header.build(payload)
    assert Ethernet.parse(wire) == (header, payload)
    parsed, rest = Ethernet.parse(wire)
    assert parsed.build(rest) == wire
    assert Ethernet.parse(memoryview(wire)) == (header, payload)


@FAST
@given(arps)
def test_arp_round_trip(arp: ARP) -> None:
    wire = arp.build()
    assert ARP.parse(wire) == (arp, b"")
    assert ARP.parse(bytearray(wire))[0].build() == wire
