"""DHCP: the Wireshark sample DISCOVER, hand-checked builds, RFC 3442 routes, round trips."""

from __future__ import annotations

import contextlib
from ipaddress import IPv4Address, IPv4Network, IPv6Address

import pytest
from hypothesis import given
from hypothesis import strategies as st
from packets_strategies import FAST, dhcps, naive_checksum

from tenet.errors import PacketError
from tenet.packets import dhcp as d
from tenet.packets.dhcp import DHCP
from tenet.packets.match import extract_match
from tenet.packets.packet import Packet

CLIENT = bytes.fromhex("000b8201fc42")
BOOTP_ZEROS = bytes(10 + 64 + 128)  # chaddr padding, sname, file

# dhcp.pcap (Wireshark sample captures), frame 1: the client's DHCPDISCOVER.
DISCOVER_PAYLOAD = (
    bytes.fromhex("0101060000003d1d" + "00" * 20) + CLIENT + BOOTP_ZEROS
    + bytes.fromhex("63825363 350101 3d0701000b8201fc42 320400000000 3704010306 2a ff")
    + bytes(7)
)  # fmt: skip
DISCOVER_FRAME = (
    bytes.fromhex("ffffffffffff 000b8201fc42 0800")
    + bytes.fromhex("4500012ca8360000fa11178b00000000ffffffff")
    + bytes.fromhex("004400430118591f")
    + DISCOVER_PAYLOAD
)  # fmt: skip


def test_wireshark_discover_parses() -> None:
    message = DHCP.parse(DISCOVER_PAYLOAD)
    assert message == DHCP(
        op=d.BOOTREQUEST,
        xid=0x3D1D,
        chaddr=CLIENT,
        message_type=d.DHCPDISCOVER,
        client_id=b"\x01" + CLIENT,
        requested_ip=IPv4Address(0),
        parameter_request_list=bytes([1, 3, 6, 42]),
    )


def test_wireshark_discover_frame_checksums_and_match() -> None:
    assert naive_checksum(DISCOVER_FRAME[14:34]) == 0
    pseudo = bytes.fromhex("00000000ffffffff00110118")
    assert naive_checksum(pseudo + DISCOVER_FRAME[34:]) == 0
    packet = Packet.parse(DISCOVER_FRAME)
    assert packet.build() == DISCOVER_FRAME  # our IP and UDP checksums equal the capture's
    match = extract_match(DISCOVER_FRAME, in_port=1)
    assert (match.ip_proto, match.l4_src, match.l4_dst) == (17, 68, 67)
    assert match.ip_dst == b"\xff\xff\xff\xff"
    assert match.ip_ttl == 250


def test_discover_build_golden() -> None:
    message = DHCP(
        xid=0x3D1D,
        chaddr=CLIENT,
        flags=d.FLAG_BROADCAST,
        message_type=d.DHCPDISCOVER,
        hostname="host",
        parameter_request_list=bytes([1, 3, 6, 42]),
        client_id=b"\x01" + CLIENT,
    )
    options = bytes.fromhex(
        "350101"  # message type: discover
        "0c04686f7374"  # hostname "host"
        "3704010306 2a"  # parameter request list
        "3d0701000b8201fc42"  # client identifier: type 1 + MAC
        "ff"
    )  # fmt: skip
    header = bytes.fromhex("0101060000003d1d 00008000" + "00" * 16) + CLIENT + BOOTP_ZEROS
    expected = header + d.MAGIC_COOKIE + options
    wire = message.build()
    assert wire == expected + bytes(300 - len(expected))
    assert DHCP.parse(wire) == message


def test_ack_build_golden_with_routes() -> None:
    request = DHCP.parse(DISCOVER_PAYLOAD)
    ack = request.reply(
        d.DHCPACK,
        yiaddr=IPv4Address("192.168.0.10"),
        server_id=IPv4Address("192.168.0.1"),
        lease_time=3600,
        subnet_mask=IPv4Address("255.255.255.0"),
        routers=(IPv4Address("192.168.0.1"),),
        dns_servers=(IPv4Address("8.8.8.8"), IPv4Address("1.1.1.1")),
        mtu=1450,
        classless_routes=(
            (IPv4Network("0.0.0.0/0"), IPv4Address("192.168.0.1")),
            (IPv4Network("10.17.0.0/16"), IPv4Address("192.168.0.2")),
            (IPv4Network("10.229.0.128/25"), IPv4Address("192.168.0.3")),
        ),
    )
    wire = ack.build()
    assert wire[:8] == bytes.fromhex("0201060000003d1d")
    assert wire[16:20] == bytes([192, 168, 0, 10])
    options = bytes.fromhex(
        "350105"
        "3604c0a80001"
        "330400000e10"  # 3600 s
        "0104ffffff00"
        "0304c0a80001"
        "06080808080801010101"
        "1a0205aa"  # MTU 1450
        "7915 00c0a80001 100a11c0a80002 190ae50080c0a80003"  # RFC 3442 encodings
        "ff"
    )  # fmt: skip
    start = d.BOOTP_HEADER_LEN + 4
    assert wire[start : start + len(options)] == options
    assert DHCP.parse(wire) == ack


@pytest.mark.parametrize(
    ("encoded", "routes"),
    [
        ("00 0a000001", [("0.0.0.0/0", "10.0.0.1")]),
        ("080a 0a000001", [("10.0.0.0/8", "10.0.0.1")]),
        ("180a0000 0a000001", [("10.0.0.0/24", "10.0.0.1")]),
        ("180a1b81 0a000001", [("10.27.129.0/24", "10.0.0.1")]),
        ("200ac67a2f 0a000001", [("10.198.122.47/32", "10.0.0.1")]),
    ],
)
def test_classless_route_encodings_of_rfc3442(encoded: str, routes: list[tuple[str, str]]) -> None:
    wire = DHCP().build()  # a message to splice the option into
    value = bytes.fromhex(encoded)
    start = d.BOOTP_HEADER_LEN + 4
    spliced = wire[:start] + bytes([121, len(value)]) + value + b"\xff"
    parsed = DHCP.parse(spliced)
    assert parsed.classless_routes == tuple(
        (IPv4Network(net), IPv4Address(router)) for net, router in routes
    )
    assert parsed.build()[start : start + 2 + len(value)] == bytes([121, len(value)]) + value


def test_long_options_are_split_and_joined() -> None:
    servers = tuple(IPv4Address(i) for i in range(1, 71))  # 280 bytes
    wire = DHCP(dns_servers=servers).build()
    start = d.BOOTP_HEADER_LEN + 4
    assert wire[start : start + 2] == b"\x06\xff"
    assert wire[start + 257 : start + 259] == b"\x06\x19"
    assert DHCP.parse(wire).dns_servers == servers


def test_unknown_options_are_kept_raw() -> None:
    message = DHCP(message_type=d.DHCPREQUEST, options=((60, b"vendor"), (82, b"\x01\x02ab")))
    assert DHCP.parse(message.build()) == message


@pytest.mark.parametrize(
    "option",
    [
        "3502 0101",  # message type of 2 bytes
        "3203 000000",  # requested IP of 3 bytes
        "0300",  # empty router list
        "0305 0000000000",  # router list not a multiple of 4
        "7905 21 0a000001",  # prefix length 33
        "7905 18 0a00 0001",  # route truncated
        "3304 0000",  # value past the end
    ],
)
def test_malformed_options_are_packet_errors(option: str) -> None:
    start = d.BOOTP_HEADER_LEN + 4
    base = DHCP().build()[:start]
    with pytest.raises(PacketError):
        DHCP.parse(base + bytes.fromhex(option.replace(" ", "")))


def test_header_checks() -> None:
    wire = DHCP().build()
    with pytest.raises(PacketError, match="cookie"):
        DHCP.parse(wire[:236] + b"\x00\x00\x00\x00" + wire[240:])
    with pytest.raises(PacketError, match="hlen"):
        DHCP.parse(wire[:2] + b"\x11" + wire[3:])
    with pytest.raises(PacketError):
        DHCP.parse(wire[:239])


@pytest.mark.parametrize(
    "message",
    [
        DHCP(sname=b"a\0b"),
        DHCP(chaddr=bytes(17)),
        DHCP(message_type=256),
        DHCP(options=((53, b"\x01"),)),
        DHCP(options=((60, b""), (60, b"x"))),
        DHCP(hostname="\ud800"),
        DHCP(giaddr=IPv6Address(1)),  # type: ignore[arg-type]
        DHCP(routers=(IPv6Address(1),)),  # type: ignore[arg-type]
        DHCP(server_id=IPv6Address(1)),  # type: ignore[arg-type]
    ],
)
def test_build_refuses(message: DHCP) -> None:
    with pytest.raises(PacketError):
        message.build()


def test_missing_end_option_and_padding_are_tolerated() -> None:
    wire = DHCP(message_type=d.DHCPINFORM).build()
    start = d.BOOTP_HEADER_LEN + 4
    assert DHCP.parse(wire[: start + 3]).message_type == d.DHCPINFORM
    assert DHCP.parse(wire[:start] + b"\x00\x00" + wire[start:]).message_type == d.DHCPINFORM


@FAST
@given(dhcps)
def test_dhcp_round_trip(message: DHCP) -> None:
    wire = message.build()
    assert len(wire) >= 300
    assert DHCP.parse(wire) == message
    assert DHCP.parse(memoryview(wire)).build() == wire


@FAST
@given(st.binary(max_size=400))
def test_dhcp_parse_raises_only_packet_error(data: bytes) -> None:
    candidates = [data, DHCP().build()[:240] + data]
    for candidate in candidates:
        with contextlib.suppress(PacketError):
            DHCP.parse(candidate)
