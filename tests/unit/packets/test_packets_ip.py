"""IPv4 and IPv6 headers: golden bytes, fragments, extension headers, round trips."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

import pytest
from hypothesis import given
from packets_strategies import FAST, ipv4_headers, ipv6_headers, naive_checksum, payloads

from tenet.errors import PacketError
from tenet.packets.ipv4 import FLAG_DF, FLAG_MF, IPv4, header_checksum_ok, quote_datagram
from tenet.packets.ipv6 import IPv6, IPv6Ext, IPv6Fragment

# A real echo request captured on lo (ping 127.0.0.1): header checksum 0x870b.
LO_PING = bytes.fromhex("45000020f5cf00004001870b7f0000017f000001 0800c453b129000041414141")


def test_ipv4_golden_from_a_capture() -> None:
    ip, payload = IPv4.parse(LO_PING)
    assert ip == IPv4(IPv4Address("127.0.0.1"), IPv4Address("127.0.0.1"), 1, ttl=64, ident=0xF5CF)
    assert payload == LO_PING[20:]
    assert header_checksum_ok(LO_PING)
    assert ip.build(payload) == LO_PING


def test_ipv4_wikipedia_header() -> None:
    header = bytes.fromhex("45000073000040004011b861c0a80001c0a800c7")
    datagram = header + bytes(0x73 - 20)
    ip, payload = IPv4.parse(datagram)
    assert ip.dont_fragment
    assert not ip.is_fragment
    assert (ip.ttl, ip.proto, str(ip.src), str(ip.dst)) == (64, 17, "192.168.0.1", "192.168.0.199")
    assert ip.build(payload) == datagram


def test_ipv4_options_golden() -> None:
    # IGMP with the router alert option (RFC 2113): IHL 6, TOS 0xc0.
    ip = IPv4(
        IPv4Address("10.0.0.1"),
        IPv4Address("224.0.0.22"),
        2,
        ttl=1,
        tos=0xC0,
        flags=FLAG_DF,
        options=bytes.fromhex("94040000"),
    )
    igmp = bytes.fromhex("2200fa0100000000")
    wire = ip.build(igmp)
    expected = bytearray.fromhex("46c00020 00004000 01020000 0a000001 e0000016 94040000")
    expected[10:12] = naive_checksum(bytes(expected)).to_bytes(2, "big")
    assert wire == bytes(expected) + igmp
    assert IPv4.parse(wire) == (ip, igmp)
    assert ip.dscp == 48
    assert ip.ecn == 0
    assert ip.header_length == 24


def test_ipv4_fragment_fields() -> None:
    first = IPv4(IPv4Address("10.0.0.1"), IPv4Address("10.0.0.2"), 17, flags=FLAG_MF, ident=7)
    later = IPv4(IPv4Address("10.0.0.1"), IPv4Address("10.0.0.2"), 17, frag_offset=185, ident=7)
    assert first.is_fragment
    assert not first.is_later_fragment
    assert later.is_fragment
    assert later.is_later_fragment
    assert first.build()[6:8] == b"\x20\x00"
    assert later.build()[6:8] == (185).to_bytes(2, "big")


def test_ipv4_padding_after_total_length_is_dropped() -> None:
    _ip, payload = IPv4.parse(LO_PING + bytes(14))
    assert payload == LO_PING[20:]


@pytest.mark.parametrize(
    ("wire", "reason"),
    [
        (LO_PING[:19], "truncated"),
        (b"\x65" + LO_PING[1:], "version 6"),
        (b"\x44" + LO_PING[1:], "header length 16"),
        (LO_PING[:2] + b"\x00\x10" + LO_PING[4:], "total length 16"),
        (LO_PING[:2] + b"\x00\x30" + LO_PING[4:], "truncated"),
        (b"\x4f" + LO_PING[1:], "total length 32 < header length 60"),
    ],
)
def test_ipv4_parse_rejects(wire: bytes, reason: str) -> None:
    with pytest.raises(PacketError, match=reason):
        IPv4.parse(wire)


def test_ipv4_quoted_header_may_be_cut_short() -> None:
    quoted = quote_datagram(LO_PING[:20] + bytes(100))
    assert len(quoted) == 28
    ip, rest = IPv4.parse(quoted, quoted=True)
    assert ip.src == IPv4Address("127.0.0.1")
    assert rest == bytes(8)
    with pytest.raises(PacketError):
        IPv4.parse(quoted)


@pytest.mark.parametrize(
    "ip",
    [
        IPv4(IPv4Address(1), IPv4Address(2), 6, options=b"\x01"),
        IPv4(IPv4Address(1), IPv4Address(2), 6, options=bytes(44)),
        IPv4(IPv4Address(1), IPv4Address(2), 6, ttl=256),
        IPv4(IPv4Address(1), IPv4Address(2), 6, frag_offset=0x2000),
        IPv4(IPv4Address(1), IPv6Address(2), 6),  # type: ignore[arg-type]
    ],
)
def test_ipv4_build_refuses(ip: IPv4) -> None:
    with pytest.raises(PacketError):
        ip.build()


def test_ipv4_build_refuses_oversized_payload() -> None:
    with pytest.raises(PacketError):
        IPv4(IPv4Address(1), IPv4Address(2), 6).build(bytes(65516))


SRC6 = IPv6Address("fe80::1")
DST6 = IPv6Address("fe80::2")


def test_ipv6_golden_with_extension_headers() -> None:
    ip = IPv6(
        SRC6,
        DST6,
        17,
        hop_limit=64,
        traffic_class=0xB8,
        flow_label=0x12345,
        ext=(IPv6Ext(0, bytes.fromhex("010400000000")), IPv6Fragment(0, True, 0xCAFE)),
    )
    payload = b"12345678"
    wire = ip.build(payload)
    expected = bytes.fromhex(
        "6b812345 0018 00 40"
        "fe800000000000000000000000000001"
        "fe800000000000000000000000000002"
        "2c00 010400000000"  # hop-by-hop: next = fragment, PadN
        "11000001 0000cafe"  # fragment: next = UDP, offset 0, M
    )  # fmt: skip
    assert wire == expected + payload
    assert IPv6.parse(wire) == (ip, payload)
    assert ip.is_fragment
    assert not ip.is_later_fragment
    assert ip.header_length == 56


def test_ipv6_later_fragment_ends_the_chain() -> None:
    ip = IPv6(SRC6, DST6, 60, ext=(IPv6Fragment(100, False, 1),))
    wire = ip.build(b"\x06\x00" + bytes(6))  # looks like a dest-opts header; it is data
    parsed, rest = IPv6.parse(wire)
    assert parsed == ip
    assert parsed.is_later_fragment
    assert rest == b"\x06\x00" + bytes(6)


def test_ipv6_authentication_header_length_in_4_byte_units() -> None:
    ip = IPv6(SRC6, DST6, 6, ext=(IPv6Ext(51, bytes(10)),))  # 12 bytes: length field 1
    wire = ip.build()
    assert wire[40:42] == b"\x06\x01"
    assert IPv6.parse(wire) == (ip, b"")


@pytest.mark.parametrize(
    "ip",
    [
        IPv6(SRC6, DST6, 44),
        IPv6(SRC6, DST6, 6, ext=(IPv6Ext(0, bytes(5)),)),
        IPv6(SRC6, DST6, 6, ext=(IPv6Ext(51, bytes(8)),)),
        IPv6(SRC6, DST6, 6, ext=(IPv6Ext(6, bytes(6)),)),
        IPv6(SRC6, DST6, 6, ext=(IPv6Fragment(1), IPv6Ext(60, bytes(6)))),
        IPv6(SRC6, DST6, 6, flow_label=1 << 20),
        IPv6(SRC6, IPv4Address(1), 6),  # type: ignore[arg-type]
    ],
)
def test_ipv6_build_refuses(ip: IPv6) -> None:
    with pytest.raises(PacketError):
        ip.build()


def test_ipv6_parse_rejects() -> None:
    good = IPv6(SRC6, DST6, 6, ext=(IPv6Ext(60, bytes(6)),)).build(b"x")
    with pytest.raises(PacketError, match="version"):
        IPv6.parse(b"\x40" + good[1:])
    with pytest.raises(PacketError, match="truncated"):
        IPv6.parse(good[:-1])
    short_ext = good[:4] + b"\x00\x04" + good[6:44]  # payload length 4 < the 8-byte header
    with pytest.raises(PacketError, match="extension header truncated"):
        IPv6.parse(short_ext)


@FAST
@given(ipv4_headers(), payloads)
def test_ipv4_round_trip(ip: IPv4, payload: bytes) -> None:
    wire = ip.build(payload)
    assert header_checksum_ok(wire)
    assert naive_checksum(wire[: ip.header_length]) == 0
    assert IPv4.parse(wire) == (ip, payload)
    parsed, rest = IPv4.parse(memoryview(wire))
    assert parsed.build(rest) == wire


@FAST
@given(ipv6_headers(), payloads)
def test_ipv6_round_trip(ip: IPv6, payload: bytes) -> None:
    wire = ip.build(payload)
    assert IPv6.parse(wire) == (ip, payload)
    parsed, rest = IPv6.parse(bytearray(wire))
    assert parsed.build(rest) == wire
