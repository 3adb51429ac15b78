"""UDP and TCP: golden bytes from captures, checksum rules, round trips over IPv4 and IPv6."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

import pytest
from hypothesis import given
from hypothesis import strategies as st
from packets_strategies import FAST, ipv4s, ipv6s, naive_checksum, payloads, tcps, udps

from tenet.errors import PacketError
from tenet.packets import checksum
from tenet.packets.ipv4 import IPv4
from tenet.packets.l4 import TCP, TCP_SYN, UDP, checksum_ok

# A real TCP SYN with MSS, SACK-permitted, timestamps and window scale options:
# IPv4 checksum 0x7430, TCP checksum 0xd502.
SYN_IP = bytes.fromhex("4500003c4867400040067430c0a8fe67c0a8fe6b")
SYN_TCP = bytes.fromhex(
    "e6b222b860a0e96f00000000a002ffffd5020000020405b40402080a0055a1080000000001030307"
)
SRC4 = IPv4Address("192.168.254.103")
DST4 = IPv4Address("192.168.254.107")


def test_tcp_syn_golden_from_a_capture() -> None:
    ip, segment = IPv4.parse(SYN_IP + SYN_TCP)
    assert (ip.src, ip.dst) == (SRC4, DST4)
    tcp, data = TCP.parse(segment)
    assert tcp == TCP(
        59058, 8888, 0x60A0E96F, 0, TCP_SYN, 65535, 0, bytes.fromhex(SYN_TCP[20:].hex())
    )
    assert data == b""
    assert tcp.header_length == 40
    assert checksum_ok(6, segment, SRC4, DST4)
    assert tcp.build(b"", SRC4, DST4) == SYN_TCP
    assert ip.build(tcp.build(b"", ip.src, ip.dst)) == SYN_IP + SYN_TCP


def test_udp_golden_from_the_wireshark_dhcp_capture() -> None:
    # dhcp.pcap frame 1: 0.0.0.0:68 -> 255.255.255.255:67, 272 bytes of DHCP, checksum 0x591f.
    dhcp = bytes(272)  # only the checksum depends on it; see test_packets_dhcp for the bytes
    datagram = UDP(68, 67).build(dhcp, IPv4Address(0), IPv4Address("255.255.255.255"))
    assert datagram[:6] == bytes.fromhex("004400430118")
    pseudo = bytes.fromhex("00000000ffffffff00110118")
    assert naive_checksum(pseudo + datagram) == 0


def test_udp_zero_checksum_rules() -> None:
    assert UDP(1, 2).build(b"x")[6:8] == b"\0\0"  # no addresses: no checksum
    assert checksum_ok(17, UDP(1, 2).build(b"x"), SRC4, DST4)
    v6a, v6b = IPv6Address("::1"), IPv6Address("::2")
    assert not checksum_ok(17, UDP(1, 2).build(b"x"), v6a, v6b)
    # find a payload whose checksum computes to 0: it must go out as 0xFFFF
    base = UDP(1, 2).build(b"\0\0", SRC4, DST4)
    value = int.from_bytes(base[6:8], "big")
    payload = value.to_bytes(2, "big")  # adding the old checksum makes the sum 0xFFFF
    wire = UDP(1, 2).build(payload, SRC4, DST4)
    assert wire[6:8] == b"\xff\xff"
    assert checksum_ok(17, wire, SRC4, DST4)


def test_udp_parse_checks_the_length() -> None:
    wire = UDP(5, 6).build(b"abcd")
    assert UDP.parse(wire + b"pad") == (UDP(5, 6), b"abcd")
    with pytest.raises(PacketError, match="length 7"):
        UDP.parse(wire[:4] + b"\x00\x07" + wire[6:])
    with pytest.raises(PacketError, match="truncated"):
        UDP.parse(wire[:-1])
    assert UDP.parse(wire[:-1], partial=True) == (UDP(5, 6), b"abc")


def test_tcp_parse_checks_the_data_offset() -> None:
    with pytest.raises(PacketError, match="data offset 16"):
        TCP.parse(SYN_TCP[:12] + b"\x40" + SYN_TCP[13:])
    with pytest.raises(PacketError, match="truncated"):
        TCP.parse(SYN_TCP[:39])


@pytest.mark.parametrize(
    "tcp",
    [TCP(1, 2, options=b"\x01"), TCP(1, 2, options=bytes(44)), TCP(1, 2, flags=0x200), TCP(-1, 2)],
)
def test_tcp_build_refuses(tcp: TCP) -> None:
    with pytest.raises(PacketError):
        tcp.build(b"", SRC4, DST4)


def test_mixed_address_families_are_refused() -> None:
    with pytest.raises(PacketError):
        UDP(1, 2).build(b"", SRC4, IPv6Address("::1"))
    with pytest.raises(PacketError):
        UDP(1, 2).build(b"", SRC4, None)


addresses = st.one_of(st.tuples(ipv4s, ipv4s), st.tuples(ipv6s, ipv6s))


def _pseudo_sum_ok(
    src: IPv4Address | IPv6Address, dst: IPv4Address | IPv6Address, proto: int, wire: bytes
) -> bool:
    pseudo = checksum.pseudo_header(src.packed, dst.packed, proto, len(wire))
    return naive_checksum(pseudo + wire) == 0


@FAST
@given(udps, payloads, addresses)
def test_udp_round_trip(udp: UDP, payload: bytes, pair: tuple[IPv4Address, IPv4Address]) -> None:
    src, dst = pair
    wire = udp.build(payload, src, dst)
    assert _pseudo_sum_ok(src, dst, 17, wire)
    assert checksum_ok(17, wire, src, dst)
    assert UDP.parse(wire) == (udp, payload)
    assert UDP.parse(memoryview(wire))[0].build(payload, src, dst) == wire


@FAST
@given(tcps, payloads, addresses)
def test_tcp_round_trip(tcp: TCP, payload: bytes, pair: tuple[IPv4Address, IPv4Address]) -> None:
    src, dst = pair
    wire = tcp.build(payload, src, dst)
    assert _pseudo_sum_ok(src, dst, 6, wire)
    assert checksum_ok(6, wire, src, dst)
    assert TCP.parse(wire) == (tcp, payload)
    parsed, rest = TCP.parse(bytearray(wire))
    assert parsed.build(rest, src, dst) == wire
