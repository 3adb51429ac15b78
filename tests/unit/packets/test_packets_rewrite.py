"""In-place rewrites: incremental checksum updates equal a full rebuild of the frame."""

from __future__ import annotations

import dataclasses
from ipaddress import IPv4Address, IPv6Address

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from packets_strategies import FAST, ipv4s, ipv6s, packets, u16

from tenet.errors import PacketError
from tenet.packets import rewrite
from tenet.packets.checksum import l4_checksum
from tenet.packets.ethernet import Ethernet, Vlan
from tenet.packets.icmp import ICMP
from tenet.packets.ipv4 import FLAG_MF, IPv4
from tenet.packets.ipv6 import IPv6, IPv6Fragment
from tenet.packets.l4 import TCP, UDP
from tenet.packets.packet import Packet

MAC1 = bytes.fromhex("020000000001")
MAC2 = bytes.fromhex("020000000002")
A4, B4 = IPv4Address("10.0.0.1"), IPv4Address("10.0.0.2")

whole_ip_packets = packets().filter(
    lambda p: isinstance(p.net, IPv4 | IPv6) and not p.net.is_fragment
)


def _with_address(packet: Packet, which: str, addr: IPv4Address | IPv6Address) -> Packet:
    return dataclasses.replace(packet, net=dataclasses.replace(packet.net, **{which: addr}))  # type: ignore[arg-type]


@FAST
@given(whole_ip_packets, st.data())
def test_address_rewrites_equal_a_rebuild(packet: Packet, data: st.DataObject) -> None:
    ip = packet.net
    assert isinstance(ip, IPv4 | IPv6)
    new = data.draw(ipv4s if isinstance(ip, IPv4) else ipv6s)
    which = data.draw(st.sampled_from(["src", "dst"]))
    frame = bytearray(packet.build())
    setter = rewrite.set_ip_src if which == "src" else rewrite.set_ip_dst
    setter(frame, new.packed)
    assert bytes(frame) == _with_address(packet, which, new).build()


@FAST
@given(whole_ip_packets, u16, st.booleans())
def test_port_rewrites_equal_a_rebuild(packet: Packet, port: int, source: bool) -> None:
    transport = packet.transport
    assume(isinstance(transport, TCP | UDP))
    frame = bytearray(packet.build())
    where = rewrite.layout(frame)
    if source:
        rewrite.set_l4_src(frame, port, where)
        changed = dataclasses.replace(transport, src_port=port)  # type: ignore[type-var]
    else:
        rewrite.set_l4_dst(frame, port, where)
        changed = dataclasses.replace(transport, dst_port=port)  # type: ignore[type-var]
    assert bytes(frame) == dataclasses.replace(packet, transport=changed).build()


@FAST
@given(whole_ip_packets)
def test_dec_ttl_equals_a_rebuild(packet: Packet) -> None:
    ip = packet.net
    assert isinstance(ip, IPv4 | IPv6)
    ttl = ip.ttl if isinstance(ip, IPv4) else ip.hop_limit
    frame = bytearray(packet.build())
    if ttl == 0:
        with pytest.raises(PacketError):
            rewrite.dec_ttl(frame)
        assert bytes(frame) == packet.build()
        return
    assert rewrite.dec_ttl(frame) == ttl - 1
    field = "ttl" if isinstance(ip, IPv4) else "hop_limit"
    expected = dataclasses.replace(packet, net=dataclasses.replace(ip, **{field: ttl - 1}))  # type: ignore[arg-type]
    assert bytes(frame) == expected.build()


def test_eth_rewrites() -> None:
    frame = bytearray(Ethernet(MAC2, MAC1, 0x0800).build(b"x"))
    rewrite.set_eth_src(frame, MAC2)
    rewrite.set_eth_dst(frame, MAC1)
    assert bytes(frame) == Ethernet(MAC1, MAC2, 0x0800).build(b"x")
    with pytest.raises(PacketError):
        rewrite.set_eth_src(frame, b"short")


def test_udp_without_checksum_stays_without() -> None:
    datagram = UDP(1, 2).build(b"payload")  # checksum 0: none
    frame = bytearray(Ethernet(MAC2, MAC1, 0x0800).build(IPv4(A4, B4, 17).build(datagram)))
    rewrite.set_ip_dst(frame, IPv4Address("192.0.2.1").packed)
    rewrite.set_l4_dst(frame, 53)
    assert frame[-len(datagram) + 6 :][:2] == b"\0\0"
    assert IPv4.parse(frame[14:])[0].dst == IPv4Address("192.0.2.1")


def test_first_fragment_checksum_covers_the_whole_datagram() -> None:
    datagram = UDP(1000, 2000).build(bytes(range(200)), A4, B4)
    first = IPv4(A4, B4, 17, flags=FLAG_MF, ident=5).build(datagram[:96])
    frame = bytearray(Ethernet(MAC2, MAC1, 0x0800, (Vlan(7),)).build(first))
    new = IPv4Address("203.0.113.9")
    rewrite.set_ip_src(frame, new.packed)
    rewrite.set_l4_src(frame, 4000)
    reassembled = bytes(frame[18 + 20 :]) + datagram[96:]
    assert l4_checksum(new.packed, B4.packed, 17, reassembled) == 0


def test_later_fragment_has_no_ports() -> None:
    later = IPv6(IPv6Address("::1"), IPv6Address("::2"), 6, ext=(IPv6Fragment(8),))
    frame = bytearray(Ethernet(MAC2, MAC1, 0x86DD).build(later.build(b"tcp data")))
    with pytest.raises(PacketError):
        rewrite.set_l4_src(frame, 1)
    rewrite.set_ip_src(frame, IPv6Address("::3").packed)  # the address itself is fine
    assert IPv6.parse(frame[14:])[0].src == IPv6Address("::3")


@pytest.mark.parametrize(
    ("frame", "action"),
    [
        (Ethernet(MAC2, MAC1, 0x0806).build(bytes(28)), rewrite.dec_ttl),
        (Ethernet(MAC2, MAC1, 0x88B5).build(b"x"), lambda f: rewrite.set_ip_src(f, bytes(4))),
        (
            Packet(Ethernet(MAC2, MAC1, 0x0800), IPv4(A4, B4, 1), ICMP(8)).build(),
            lambda f: rewrite.set_l4_src(f, 1),
        ),
        (
            Packet(Ethernet(MAC2, MAC1, 0x0800), IPv4(A4, B4, 6), TCP(1, 2)).build(),
            lambda f: rewrite.set_ip_src(f, bytes(16)),
        ),
        (
            Packet(Ethernet(MAC2, MAC1, 0x0800), IPv4(A4, B4, 6), TCP(1, 2)).build(),
            lambda f: rewrite.set_l4_dst(f, 65536),
        ),
        (
            Ethernet(MAC2, MAC1, 0x0800).build(IPv4(A4, B4, 6).build(b"short")),
            lambda f: rewrite.set_ip_src(f, bytes(4)),
        ),
    ],
)
def test_refusals_leave_the_frame_unchanged(frame: bytes, action: object) -> None:
    buffer = bytearray(frame)
    with pytest.raises(PacketError):
        action(buffer)  # type: ignore[operator]
    assert bytes(buffer) == frame


def test_udp_checksum_that_updates_to_zero_is_sent_as_ffff() -> None:
    from tenet.packets.checksum import ones_sum, pseudo_header

    datagram = UDP(1, 2).build(b"data")  # checksum field 0, for the sums below
    old = B4.packed
    total = ones_sum(pseudo_header(A4.packed, old, 17, len(datagram)) + datagram)
    # choose the new address's low word so that the new sum is 0xFFFF: checksum 0
    low = (int.from_bytes(old[2:], "big") - total) % 0xFFFF
    new = old[:2] + low.to_bytes(2, "big")
    frame = bytearray(
        Packet(Ethernet(MAC2, MAC1, 0x0800), IPv4(A4, B4, 17), UDP(1, 2), b"data").build()
    )
    rewrite.set_ip_dst(frame, new)
    assert frame[14 + 20 + 6 : 14 + 20 + 8] == b"\xff\xff"
    assert (
        bytes(frame)
        == Packet(
            Ethernet(MAC2, MAC1, 0x0800), IPv4(A4, IPv4Address(new), 17), UDP(1, 2), b"data"
        ).build()
    )
