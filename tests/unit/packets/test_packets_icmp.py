"""ICMP and ICMPv6 (with neighbor discovery): golden bytes, errors, round trips."""

from __future__ import annotations

import contextlib
from ipaddress import IPv4Address, IPv6Address

import pytest
from hypothesis import given
from hypothesis import strategies as st
from packets_strategies import FAST, icmps, icmpv6s, ipv6s, naive_checksum, nds, payloads

from tenet.errors import PacketError
from tenet.packets import icmp, icmpv6
from tenet.packets.icmp import ICMP
from tenet.packets.icmpv6 import ICMPv6, NeighborDiscovery
from tenet.packets.ipv4 import IPv4
from tenet.packets.ipv6 import IPv6

# The echo request of a real ping on lo: id 0xb129, seq 0, data "AAAA", checksum 0xc453.
LO_ECHO = bytes.fromhex("0800c453b129000041414141")


def test_echo_request_golden_from_a_capture() -> None:
    message, data = ICMP.parse(LO_ECHO)
    assert message == ICMP.echo_request(0xB129, 0)
    assert (message.ident, message.seq, data) == (0xB129, 0, b"AAAA")
    assert message.build(data) == LO_ECHO
    assert icmp.checksum_ok(LO_ECHO)


def test_echo_reply_golden() -> None:
    reply = ICMP.echo_reply(0x1234, 7).build(b"abc")
    expected = bytearray.fromhex("00000000 12340007") + b"abc"
    expected[2:4] = naive_checksum(bytes(expected)).to_bytes(2, "big")
    assert reply == bytes(expected)


def test_port_unreachable_quotes_header_and_8_bytes() -> None:
    offending = IPv4(IPv4Address("10.0.0.1"), IPv4Address("10.0.0.2"), 17).build(
        bytes.fromhex("d43100350020beef") + b"query data"
    )
    body = icmp.error_body(offending)
    assert body == offending[:28]
    error = ICMP.dest_unreachable(icmp.UNREACH_PORT)
    wire = error.build(body)
    assert icmp.checksum_ok(wire)
    parsed, quoted = ICMP.parse(wire)
    assert parsed.is_error
    assert not parsed.is_echo
    inner, first8 = IPv4.parse(quoted, quoted=True)
    assert inner.dst == IPv4Address("10.0.0.2")
    assert first8 == bytes.fromhex("d43100350020beef")


def test_frag_needed_carries_the_mtu_and_time_exceeded() -> None:
    message = ICMP.dest_unreachable(icmp.UNREACH_FRAG_NEEDED, mtu=1450)
    assert ICMP.parse(message.build())[0].mtu == 1450
    assert ICMP.time_exceeded().build()[:2] == b"\x0b\x00"
    assert ICMP(icmp.ICMP_PARAM_PROBLEM, 0, 20 << 24).pointer == 20
    assert ICMP(icmp.ICMP_REDIRECT, 1, 0x0A000001).gateway == IPv4Address("10.0.0.1")


def test_icmp_parse_needs_8_bytes() -> None:
    with pytest.raises(PacketError):
        ICMP.parse(LO_ECHO[:7])
    assert not icmp.checksum_ok(LO_ECHO[:7])


SRC = IPv6Address("fe80::200:ff:fe00:1")
DST = IPv6Address("ff02::1:ff00:2")
TARGET = IPv6Address("fe80::200:ff:fe00:2")
MAC = bytes.fromhex("020000000001")


def _pseudo(src: IPv6Address, dst: IPv6Address, length: int) -> bytes:
    return src.packed + dst.packed + length.to_bytes(4, "big") + b"\x00\x00\x00\x3a"


def test_neighbor_solicitation_golden() -> None:
    header, body = icmpv6.neighbor_solicit(TARGET, MAC)
    wire = header.build(body, SRC, DST)
    expected = bytearray.fromhex(
        "87000000 00000000"
        "fe800000000000000200 00fffe000002"
        "0101 020000000001"
    )  # fmt: skip
    csum = naive_checksum(_pseudo(SRC, DST, len(expected)) + bytes(expected))
    expected[2:4] = csum.to_bytes(2, "big")
    assert wire == bytes(expected)
    assert icmpv6.checksum_ok(wire, SRC, DST)
    parsed, rest = ICMPv6.parse(wire)
    assert parsed.is_neighbor_discovery
    assert not parsed.is_error
    nd = NeighborDiscovery.parse(rest)
    assert nd.target == TARGET
    assert nd.lladdr(icmpv6.ND_OPT_SOURCE_LLADDR) == MAC
    assert nd.lladdr(icmpv6.ND_OPT_TARGET_LLADDR) is None


def test_neighbor_advertisement_flags_and_option() -> None:
    header, body = icmpv6.neighbor_advert(TARGET, MAC, router=True)
    assert header.rest == icmpv6.NA_FLAG_ROUTER | icmpv6.NA_FLAG_SOLICITED | icmpv6.NA_FLAG_OVERRIDE
    wire = header.build(body, TARGET, SRC)
    assert wire[4:8] == bytes.fromhex("e0000000")
    assert wire[24:32] == bytes.fromhex("0201020000000001")
    assert NeighborDiscovery.parse(body).lladdr(icmpv6.ND_OPT_TARGET_LLADDR) == MAC


def test_echo_and_errors_v6() -> None:
    echo = ICMPv6.echo_request(1, 2)
    wire = echo.build(b"ping", SRC, TARGET)
    assert icmpv6.checksum_ok(wire, SRC, TARGET)
    assert not icmpv6.checksum_ok(wire, SRC, DST)
    assert ICMPv6.parse(wire) == (echo, b"ping")
    assert (echo.ident, echo.seq) == (1, 2)
    too_big = ICMPv6.packet_too_big(1280)
    assert too_big.is_error
    assert too_big.mtu == 1280
    offending = IPv6(SRC, TARGET, 17).build(bytes(2000))
    assert len(icmpv6.error_body(offending)) == 1280 - 48


@pytest.mark.parametrize(
    "body",
    [
        "fe80" + "00" * 13,  # target truncated
        "00" * 16 + "01",  # option header truncated
        "00" * 16 + "0100" + "00" * 6,  # option length 0
        "00" * 16 + "0102" + "00" * 6,  # option longer than the body
    ],
)
def test_nd_parse_rejects(body: str) -> None:
    with pytest.raises(PacketError):
        NeighborDiscovery.parse(bytes.fromhex(body))


def test_nd_build_refuses_unaligned_options() -> None:
    with pytest.raises(PacketError):
        NeighborDiscovery(TARGET, ((1, b"12345"),)).build()


@FAST
@given(icmps, payloads)
def test_icmp_round_trip(message: ICMP, body: bytes) -> None:
    wire = message.build(body)
    assert naive_checksum(wire) == 0
    assert ICMP.parse(wire) == (message, body)


@FAST
@given(icmpv6s, payloads, ipv6s, ipv6s)
def test_icmpv6_round_trip(
    message: ICMPv6, body: bytes, src: IPv6Address, dst: IPv6Address
) -> None:
    wire = message.build(body, src, dst)
    assert naive_checksum(_pseudo(src, dst, len(wire)) + wire) == 0
    assert ICMPv6.parse(wire) == (message, body)


@FAST
@given(nds)
def test_nd_round_trip(nd: NeighborDiscovery) -> None:
    wire = nd.build()
    assert NeighborDiscovery.parse(wire) == nd
    assert NeighborDiscovery.parse(wire).build() == wire


@FAST
@given(st.binary(max_size=64))
def test_nd_parse_raises_only_packet_error(data: bytes) -> None:
    with contextlib.suppress(PacketError):
        NeighborDiscovery.parse(data)
