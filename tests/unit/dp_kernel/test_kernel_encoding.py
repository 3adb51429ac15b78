"""The kernel datapath's map encodings: keys round-trip; what it cannot apply stays in Python.

(The layouts themselves are checked against the compiled program in test_kernel_layout.)
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address
from typing import Any

import pytest

from tenet.datapath.base import Output, Tunnel
from tenet.datapath.kernel import (
    F_ETH_DST,
    F_IP_SRC,
    F_L4_DST,
    F_USERSPACE,
    MAX_OUT,
    OUT,
    VALUE_HEAD,
    VALUE_SIZE,
    complete_checksum,
    kernel_key,
    kernel_value,
    match_of_key,
    value_stats,
)
from tenet.datapath.kernel.layout import FLAGS_SEEN_AT, U64
from tenet.packets import TCP, UDP, Ethernet, FlowMatch, IPv4, IPv6, Packet, extract_match
from tenet.packets.actions import DecTtl, SetEthDst, SetIpSrc, SetL4Dst
from tenet.packets.synth import frame_of

TCP_MATCH = FlowMatch(
    7, 0, b"\x02" * 6, b"\x04" * 6, 0, 0, 0x0800, bytes([10, 0, 0, 1]), bytes([10, 0, 1, 2]),
    6, 0, 64, 0, 40000, 80, 0x18,
)  # fmt: skip


def test_a_key_round_trips_to_its_match() -> None:
    key = kernel_key(TCP_MATCH)
    assert key is not None
    assert match_of_key(key) == TCP_MATCH
    frame = frame_of(TCP_MATCH)
    assert frame is not None
    assert match_of_key(key) == extract_match(frame, 7)


def test_an_ipv6_key_round_trips() -> None:
    v6 = TCP_MATCH._replace(eth_type=0x86DD, ip_src=bytes(range(16)), ip_dst=bytes(range(1, 17)))
    key = kernel_key(v6)
    assert key is not None
    assert match_of_key(key) == v6


def test_a_loose_key_leaves_out_the_tcp_flags_and_the_ttl() -> None:
    """Every packet of a TCP connection, whatever its flags and TTL, has the same loose
    key; read back with no owner (after a restart) it stands for a frame with TTL 255."""
    key = kernel_key(TCP_MATCH, loose=True)
    assert key is not None
    assert key != kernel_key(TCP_MATCH)
    assert kernel_key(TCP_MATCH._replace(tcp_flags=0x02, ip_ttl=3), loose=True) == key
    back = match_of_key(key)
    assert back == TCP_MATCH._replace(tcp_flags=0, ip_ttl=255)
    assert kernel_key(back, loose=True) == key
    value = kernel_value([DecTtl(2), Output(9)], vxlan_ifindex=3, now_ns=0, ttl_above=2)
    assert VALUE_HEAD.unpack_from(value)[10] == 2  # the floor the program checks


PING = FlowMatch(
    7, 0, b"\x02" * 6, b"\x04" * 6, 0, 0, 0x0800, bytes([10, 0, 0, 1]), bytes([10, 0, 1, 2]),
    1, 0, 64, 0, 8, 0, 0, icmp_id=1,
)  # fmt: skip


@pytest.mark.parametrize("loose", [False, True])
def test_an_echo_identifier_is_part_of_the_key(loose: bool) -> None:
    """Two pings between the same hosts with other identifiers have other keys, exact
    or loose (a loose key leaves out only the TCP flags and the TTL)."""
    one, two = kernel_key(PING, loose=loose), kernel_key(PING._replace(icmp_id=2), loose=loose)
    assert one is not None
    assert two is not None
    assert one != two
    back = match_of_key(one)
    assert back.icmp_id == 1
    assert back == (PING._replace(ip_ttl=255) if loose else PING)
    v6 = PING._replace(eth_type=0x86DD, ip_src=bytes(range(16)), ip_dst=bytes(range(1, 17)),
                       ip_proto=58, l4_src=128, icmp_id=0xBEEF)  # fmt: skip
    key6 = kernel_key(v6)
    assert key6 is not None
    assert match_of_key(key6) == v6
    frame = frame_of(PING)  # what an adopting agent re-simulates: the same identifier
    assert frame is not None
    assert extract_match(frame, 7) == PING


def test_the_tcp_flags_a_flow_saw_are_read_back() -> None:
    value = bytearray(kernel_value([Output(9)], vxlan_ifindex=3, now_ns=0))
    U64.pack_into(value, FLAGS_SEEN_AT, 0x02 | 0x10 | 0x01)  # as the program ORs them in
    assert value_stats(bytes(value))[3] == 0x13


def test_frames_the_program_does_not_read_have_no_key() -> None:
    assert kernel_key(FlowMatch(1, eth_type=0x0806)) is None
    assert kernel_key(TCP_MATCH._replace(vlan=0x1001)) is None
    assert kernel_key(TCP_MATCH._replace(ip_src=bytes(16), ip_dst=bytes(16))) is None  # not IPv4
    nd = FlowMatch(1, eth_type=0x86DD, ip_src=bytes(16), ip_dst=bytes(16), ip_proto=58,
                   l4_src=135)  # fmt: skip
    assert kernel_key(nd) is None  # neighbor discovery goes to the agent
    fragment = TCP_MATCH._replace(eth_type=0x86DD, ip_src=bytes(16), ip_dst=bytes(16), ip_frag=1)
    assert kernel_key(fragment) is None


def test_actions_are_encoded_for_the_program() -> None:
    actions = [
        SetEthDst(b"\x06" * 6),
        SetIpSrc(IPv4Address("192.0.2.1")),
        SetL4Dst(8080),
        DecTtl(1),
        Output(9),
        Tunnel(IPv4Address("10.250.0.2"), 77),
    ]
    value = kernel_value(actions, vxlan_ifindex=3, now_ns=5_000_000_000)
    assert len(value) == VALUE_SIZE
    fields = VALUE_HEAD.unpack_from(value)
    flags, dec_ttl, n_out, _l4_src, l4_dst = fields[3:8]
    assert flags == F_ETH_DST | F_IP_SRC | F_L4_DST
    assert (dec_ttl, n_out, l4_dst) == (1, 2, 8080)
    assert fields[9] == b"\x06" * 6
    assert fields[11] == bytes([192, 0, 2, 1])
    outs = [OUT.unpack_from(value, VALUE_HEAD.size + i * OUT.size) for i in range(2)]
    assert outs == [(9, 0, 0), (3, int(IPv4Address("10.250.0.2")), 77)]
    assert value_stats(value) == (0, 0, 5.0, 0)  # no TCP flags seen yet


def test_what_the_program_cannot_apply_is_left_to_userspace() -> None:
    flood = [Output(n) for n in range(MAX_OUT + 1)]
    assert VALUE_HEAD.unpack_from(kernel_value(flood, 3, 0))[3] & F_USERSPACE
    v6 = [SetIpSrc(IPv6Address("2001:db8::1")), Output(1)]
    assert VALUE_HEAD.unpack_from(kernel_value(v6, 3, 0))[3] & F_USERSPACE
    assert VALUE_HEAD.unpack_from(kernel_value([], 3, 0))[3:6] == (0, 0, 0)  # a drop
    # the program rewrites once, before every output: a copy sent before a rewrite
    # (as interpret sends it) is the agent's to make
    after = [Output(1), SetEthDst(b"\x06" * 6), Output(2)]
    assert VALUE_HEAD.unpack_from(kernel_value(after, 3, 0))[3] & F_USERSPACE
    before = [SetEthDst(b"\x06" * 6), Output(1), Output(2)]
    assert not VALUE_HEAD.unpack_from(kernel_value(before, 3, 0))[3] & F_USERSPACE


@pytest.mark.parametrize("version", [4, 6])
@pytest.mark.parametrize("proto", ["tcp", "udp"])
def test_a_partial_checksum_is_completed(version: int, proto: str) -> None:
    """As a VM with checksum offload sends it: only the pseudo-header's sum in the field."""
    if version == 4:
        net: Any = IPv4(
            IPv4Address("10.0.0.1"), IPv4Address("10.0.0.2"), 6 if proto == "tcp" else 17
        )
        eth = Ethernet(b"\x02" * 6, b"\x04" * 6, 0x0800)
    else:
        net = IPv6(
            IPv6Address("2001:db8::1"), IPv6Address("2001:db8::2"), 6 if proto == "tcp" else 17
        )
        eth = Ethernet(b"\x02" * 6, b"\x04" * 6, 0x86DD)
    l4: Any = TCP(40000, 80, flags=0x18) if proto == "tcp" else UDP(40000, 53)
    whole = Packet(eth, net, l4, b"payload bytes").build()
    start = 14 + (20 if version == 4 else 40)
    field = start + (16 if proto == "tcp" else 6)
    partial = whole[:field] + b"\x12\x34" + whole[field + 2 :]
    match = extract_match(partial, 3)
    assert complete_checksum(partial, match) == whole
    assert complete_checksum(whole, match) == whole  # a whole one stays as it is
