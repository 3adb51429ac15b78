"""Hypothesis strategies for the packet codecs: every header, and whole consistent frames."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network, IPv6Address

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from tenet.packets.arp import ARP
from tenet.packets.dhcp import DHCP
from tenet.packets.ethernet import VLAN_TPIDS, Ethernet, Vlan
from tenet.packets.icmp import ICMP
from tenet.packets.icmpv6 import (
    ICMPV6_NEIGHBOR_ADVERT,
    ICMPV6_NEIGHBOR_SOLICIT,
    ICMPv6,
    NeighborDiscovery,
)
from tenet.packets.ipv4 import IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP, IPv4
from tenet.packets.ipv6 import EXT_HEADERS, IPPROTO_AH, IPv6, IPv6Ext, IPv6Fragment
from tenet.packets.l4 import TCP, UDP
from tenet.packets.packet import Packet
from tenet.packets.vxlan import VXLAN

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
"""Bounded settings for codec properties (the packet tests stay well under 30 s)."""
THOROUGH = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
"""For the properties that guard the hot path (extract_match, fuzzing)."""


def naive_checksum(data: bytes) -> int:
    """RFC 1071 the slow, obvious way: the oracle the fast implementation is tested against."""
    if len(data) % 2:
        data += b"\0"
    total = 0
    for i in range(0, len(data), 2):
        total += (data[i] << 8) | data[i + 1]
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
macs = st.binary(min_size=6, max_size=6)
ipv4s = st.builds(IPv4Address, u32)
ipv6s = st.builds(IPv6Address, st.integers(0, 2**128 - 1))
payloads = st.binary(max_size=64)


def _padded(multiple: int, max_size: int, remainder: int = 0) -> st.SearchStrategy[bytes]:
    """Byte strings whose length is ``remainder`` modulo ``multiple``."""
    return st.integers(0, (max_size - remainder) // multiple).flatmap(
        lambda n: st.binary(min_size=n * multiple + remainder, max_size=n * multiple + remainder)
    )


vlans = st.builds(
    Vlan,
    st.integers(0, 0xFFF),
    st.integers(0, 7),
    st.booleans(),
    st.sampled_from(sorted(VLAN_TPIDS)),
)
vlan_stacks = st.lists(vlans, max_size=2).map(tuple)
plain_eth_types = u16.filter(lambda t: t not in VLAN_TPIDS)


@st.composite
def ethernets(draw: st.DrawFn, eth_type: int | None = None) -> Ethernet:
    stack = draw(vlan_stacks)
    if eth_type is None:
        eth_type = draw(u16 if len(stack) == 2 else plain_eth_types)
    return Ethernet(draw(macs), draw(macs), eth_type, stack)


arps = st.builds(ARP, u16, macs, ipv4s, macs, ipv4s)

ipv4_flags = st.integers(0, 7)


@st.composite
def ipv4_headers(
    draw: st.DrawFn, proto: st.SearchStrategy[int] = u8, fragment: bool | None = None
) -> IPv4:
    """``fragment``: None any, True a fragment (first or later), False not a fragment."""
    if fragment is None:
        fragment = draw(st.booleans())
    if fragment:
        offset = draw(st.just(0) | st.integers(1, 0x1FFF))
        flags = draw(ipv4_flags) | (1 if offset == 0 else 0)
    else:
        offset, flags = 0, draw(st.sampled_from([0, 2, 4, 6]))
    return IPv4(
        draw(ipv4s),
        draw(ipv4s),
        draw(proto),
        ttl=draw(u8),
        tos=draw(u8),
        ident=draw(u16),
        flags=flags,
        frag_offset=offset,
        options=draw(_padded(4, 40)),
    )


ipv6_opaque = st.one_of(
    st.builds(IPv6Ext, st.sampled_from([0, 43, 60]), _padded(8, 30, 6)),
    st.builds(IPv6Ext, st.just(IPPROTO_AH), _padded(4, 30, 6)),
)
ipv6_first_frag = st.builds(IPv6Fragment, st.just(0), st.booleans(), u32)
ipv6_later_frag = st.builds(IPv6Fragment, st.integers(1, 0x1FFF), st.booleans(), u32)


@st.composite
def ipv6_headers(
    draw: st.DrawFn, proto: st.SearchStrategy[int] | None = None, fragment: bool | None = None
) -> IPv6:
    ext: list[IPv6Ext | IPv6Fragment] = draw(st.lists(ipv6_opaque, max_size=2))
    if fragment is None:
        fragment = draw(st.booleans())
    later = False
    if fragment:
        later = draw(st.booleans())
        ext.append(draw(ipv6_later_frag if later else ipv6_first_frag))
        if not later:
            ext.extend(draw(st.lists(ipv6_opaque, max_size=1)))
    if proto is None:
        proto = u8 if later else u8.filter(lambda p: p not in EXT_HEADERS)
    return IPv6(
        draw(ipv6s),
        draw(ipv6s),
        draw(proto),
        draw(u8),
        draw(u8),
        draw(st.integers(0, 0xFFFFF)),
        tuple(ext),
    )


udps = st.builds(UDP, u16, u16)
tcps = st.builds(TCP, u16, u16, u32, u32, st.integers(0, 0x1FF), u16, u16, _padded(4, 40))
icmps = st.builds(ICMP, u8, u8, u32)
icmpv6s = st.builds(ICMPv6, u8, u8, u32)
nd_options = st.lists(st.tuples(u8, _padded(8, 22, 6)), max_size=3).map(tuple)
nds = st.builds(NeighborDiscovery, ipv6s, nd_options)
vxlans = st.builds(VXLAN, st.integers(0, 2**24 - 1))

_nets = st.integers(0, 32).flatmap(
    lambda w: st.builds(
        lambda a: IPv4Network((a & ((0xFFFFFFFF << (32 - w)) & 0xFFFFFFFF), w)), u32
    )
)
_typed_codes = {1, 3, 6, 12, 15, 26, 28, 50, 51, 53, 54, 55, 58, 59, 61, 121}
_raw_options = st.lists(
    st.tuples(st.integers(1, 254).filter(lambda c: c not in _typed_codes), st.binary(max_size=300)),
    max_size=3,
    unique_by=lambda o: o[0],
).map(tuple)


def _opt(strategy: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    return st.none() | strategy


_text = st.text(max_size=20)
dhcps = st.builds(
    DHCP,
    op=st.sampled_from([1, 2]),
    xid=u32,
    chaddr=st.binary(max_size=16),
    htype=u8,
    hops=u8,
    secs=u16,
    flags=u16,
    ciaddr=ipv4s,
    yiaddr=ipv4s,
    siaddr=ipv4s,
    giaddr=ipv4s,
    sname=st.binary(max_size=64).map(lambda b: b.replace(b"\0", b"x")),
    file=st.binary(max_size=128).map(lambda b: b.replace(b"\0", b"x")),
    message_type=_opt(st.integers(1, 8)),
    server_id=_opt(ipv4s),
    lease_time=_opt(u32),
    renewal_time=_opt(u32),
    rebinding_time=_opt(u32),
    subnet_mask=_opt(ipv4s),
    routers=st.lists(ipv4s, max_size=3).map(tuple),
    dns_servers=st.lists(ipv4s, max_size=70).map(tuple),
    hostname=_opt(_text),
    domain_name=_opt(_text),
    mtu=_opt(u16),
    broadcast_address=_opt(ipv4s),
    requested_ip=_opt(ipv4s),
    parameter_request_list=_opt(st.binary(max_size=20)),
    client_id=_opt(st.binary(max_size=20)),
    classless_routes=st.lists(st.tuples(_nets, ipv4s), max_size=4).map(tuple),
    options=_raw_options,
)


@st.composite
def packets(draw: st.DrawFn) -> Packet:
    """A consistent packet: whatever ``Packet.build`` accepts."""
    kind = draw(st.sampled_from(["arp", "ipv4", "ipv6", "other"]))
    if kind == "arp":
        return Packet(draw(ethernets(0x0806)), draw(arps), None, draw(payloads))
    if kind == "other":
        eth = draw(ethernets())
        if eth.eth_type in (0x0800, 0x0806, 0x86DD):
            eth = Ethernet(eth.dst, eth.src, 0x88B5, eth.vlans)
        return Packet(eth, None, None, draw(payloads))
    transport = draw(st.sampled_from(["tcp", "udp", "icmp", "none", "fragment"]))
    protos = {"tcp": IPPROTO_TCP, "udp": IPPROTO_UDP}
    protos["icmp"] = IPPROTO_ICMP if kind == "ipv4" else IPPROTO_ICMPV6
    ip: IPv4 | IPv6
    known = {*protos.values()}
    if transport == "fragment":
        ip = draw(ipv4_headers(u8, True) if kind == "ipv4" else ipv6_headers(None, True))
        return Packet(
            draw(ethernets(0x0800 if kind == "ipv4" else 0x86DD)), ip, None, draw(payloads)
        )
    if transport == "none":
        protos_other = u8.filter(lambda p: p not in known and p not in EXT_HEADERS)
        proto: st.SearchStrategy[int] = protos_other
    else:
        proto = st.just(protos[transport])
    if kind == "ipv4":
        ip = draw(ipv4_headers(proto, False))
        eth = draw(ethernets(0x0800))
    else:
        ip = draw(ipv6_headers(proto, False))
        eth = draw(ethernets(0x86DD))
    body = draw(payloads)
    if transport == "none":
        return Packet(eth, ip, None, body)
    if transport == "tcp":
        return Packet(eth, ip, draw(tcps), body)
    if transport == "udp":
        return Packet(eth, ip, draw(udps), body)
    if kind == "ipv4":
        return Packet(eth, ip, draw(icmps), body)
    icmp6 = draw(icmpv6s)
    if icmp6.type in (ICMPV6_NEIGHBOR_SOLICIT, ICMPV6_NEIGHBOR_ADVERT):
        body = draw(nds).build()
    return Packet(eth, ip, icmp6, body)


frames = packets().map(lambda p: p.build())
