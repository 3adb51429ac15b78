"""extract_match: golden matches, agreement with the codecs on random frames, masked keys."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

import pytest
from hypothesis import given
from hypothesis import strategies as st
from packets_strategies import THOROUGH, frames, packets

from tenet.errors import PacketError
from tenet.packets import match as m
from tenet.packets.arp import ARP
from tenet.packets.ethernet import BROADCAST_MAC, Ethernet, Vlan
from tenet.packets.icmp import ICMP
from tenet.packets.icmpv6 import ICMPv6, neighbor_advert, neighbor_solicit
from tenet.packets.ipv4 import FLAG_MF, IPv4
from tenet.packets.ipv6 import IPv6, IPv6Ext, IPv6Fragment
from tenet.packets.l4 import TCP, TCP_ACK, TCP_NS, TCP_SYN, UDP
from tenet.packets.match import FIELDS, FlowMatch, extract_match, masked
from tenet.packets.packet import Packet

MAC1 = bytes.fromhex("020000000001")
MAC2 = bytes.fromhex("020000000002")
A4, B4 = IPv4Address("10.0.0.1"), IPv4Address("10.0.0.2")
A6, B6 = IPv6Address("2001:db8::1"), IPv6Address("2001:db8::2")


def _frame(net: object, transport: object = None, payload: bytes = b"", **eth: object) -> bytes:
    eth_type = {ARP: 0x0806, IPv4: 0x0800, IPv6: 0x86DD}[type(net)]
    vlans = eth.get("vlans", ())
    header = Ethernet(MAC2, MAC1, eth_type, vlans)  # type: ignore[arg-type]
    return Packet(header, net, transport, payload).build()  # type: ignore[arg-type]


def test_tcp_ipv4_golden() -> None:
    frame = _frame(IPv4(A4, B4, 6, ttl=63, tos=0xB8), TCP(40000, 443, flags=TCP_SYN | TCP_NS))
    assert extract_match(frame, in_port=5, tunnel_key=77) == FlowMatch(
        in_port=5,
        tunnel_key=77,
        eth_src=MAC1,
        eth_dst=MAC2,
        eth_type=0x0800,
        ip_src=A4.packed,
        ip_dst=B4.packed,
        ip_proto=6,
        ip_tos=0xB8,
        ip_ttl=63,
        l4_src=40000,
        l4_dst=443,
        tcp_flags=TCP_SYN | TCP_NS,
    )


def test_udp_ipv6_with_extension_headers_golden() -> None:
    ip = IPv6(A6, B6, 17, hop_limit=9, traffic_class=0x28, ext=(IPv6Ext(0, bytes(6)),))
    match = extract_match(_frame(ip, UDP(5353, 53), b"q"), in_port=1)
    assert match == FlowMatch(
        in_port=1,
        eth_src=MAC1,
        eth_dst=MAC2,
        eth_type=0x86DD,
        ip_src=A6.packed,
        ip_dst=B6.packed,
        ip_proto=17,
        ip_tos=0x28,
        ip_ttl=9,
        l4_src=5353,
        l4_dst=53,
    )
    assert match.ip_src_addr == A6
    assert match.ip_dst_addr == B6
    assert match.dscp == 10


def test_arp_golden_in_qinq() -> None:
    arp = ARP.request(MAC1, A4, B4)
    frame = Packet(
        Ethernet(BROADCAST_MAC, MAC1, 0x0806, (Vlan(100, tpid=0x88A8), Vlan(200, pcp=3))), arp
    ).build()
    match = extract_match(frame, in_port=2)
    assert match == FlowMatch(
        in_port=2,
        eth_src=MAC1,
        eth_dst=BROADCAST_MAC,
        vlan=0x1000 | 100,
        vlan_inner=0x1000 | 200,
        eth_type=0x0806,
        arp_op=1,
        arp_sha=MAC1,
        arp_spa=A4.packed,
        arp_tha=bytes(6),
        arp_tpa=B4.packed,
    )
    assert match.vlan_id == 100
    assert match.arp_spa_addr == A4
    assert match.arp_tpa_addr == B4
    assert match.ip_src_addr is None
    assert match.nd_target_addr is None


def test_vlan_zero_differs_from_untagged() -> None:
    tagged = Packet(Ethernet(MAC2, MAC1, 0x88B5, (Vlan(0),)), payload=b"x").build()
    untagged = Packet(Ethernet(MAC2, MAC1, 0x88B5), payload=b"x").build()
    assert extract_match(tagged, 1).vlan == 0x1000
    assert extract_match(untagged, 1).vlan == 0
    assert extract_match(untagged, 1).vlan_id is None


def test_icmp_type_and_code_in_the_port_fields() -> None:
    frame = _frame(IPv4(A4, B4, 1), ICMP.dest_unreachable(3), bytes(28))
    match = extract_match(frame, 1)
    assert (match.ip_proto, match.l4_src, match.l4_dst) == (1, 3, 3)
    frame6 = _frame(IPv6(A6, B6, 58), ICMPv6.echo_request(1, 1))
    assert extract_match(frame6, 1)[m.FIELDS.index("l4_src")] == 128


@pytest.mark.parametrize(
    ("frame", "icmp_id"),
    [
        (_frame(IPv4(A4, B4, 1), ICMP.echo_request(0x1234, 7), b"ping"), 0x1234),
        (_frame(IPv4(B4, A4, 1), ICMP.echo_reply(0xBEEF, 7), b"ping"), 0xBEEF),
        (_frame(IPv6(A6, B6, 58), ICMPv6.echo_request(0x4321, 1), b"ping"), 0x4321),
        (_frame(IPv6(B6, A6, 58), ICMPv6.echo_reply(0xFEED, 1), b"ping"), 0xFEED),
        # not echoes: the identifier's bytes mean something else (or nothing), and are not read
        (_frame(IPv4(A4, B4, 1), ICMP(ICMP.echo_request(1, 1).type + 5, 0, 0x12345678)), 0),
        (_frame(IPv4(A4, B4, 1), ICMP.dest_unreachable(4, mtu=1400), bytes(28)), 0),
        (_frame(IPv6(A6, B6, 58), ICMPv6(2, 0, 0x0000_0500), bytes(48)), 0),
        (_frame(IPv4(A4, B4, 17), UDP(0x1234, 0x1234), b"udp"), 0),
    ],
)
def test_icmp_echo_identifier(frame: bytes, icmp_id: int) -> None:
    match = extract_match(frame, 1)
    assert match.icmp_id == icmp_id
    assert match == reference_match(frame, 1, 0)


def test_pings_with_other_identifiers_are_other_flows() -> None:
    one = extract_match(_frame(IPv4(A4, B4, 1), ICMP.echo_request(1, 1)), 1)
    two = extract_match(_frame(IPv4(A4, B4, 1), ICMP.echo_request(2, 1)), 1)
    again = extract_match(_frame(IPv4(A4, B4, 1), ICMP.echo_request(1, 99), b"later"), 1)
    assert one != two
    assert one == again  # the sequence number and the data are not part of the match
    assert masked(one, frozenset({m.ICMP_ID})) == (1,)
    read = frozenset({m.IP_DST, m.L4_SRC})  # a megaflow that did not read it holds both
    assert masked(one, read) == masked(two, read)


def test_neighbor_discovery_fields() -> None:
    header, body = neighbor_solicit(B6, MAC1)
    ns = extract_match(_frame(IPv6(A6, B6, 58, hop_limit=255), header, body), 1)
    assert (ns.l4_src, ns.nd_target_addr, ns.arp_sha, ns.arp_tha) == (135, B6, MAC1, b"")
    header, body = neighbor_advert(B6, MAC2)
    na = extract_match(_frame(IPv6(B6, A6, 58, hop_limit=255), header, body), 1)
    assert (na.l4_src, na.nd_target, na.arp_sha, na.arp_tha) == (136, B6.packed, b"", MAC2)
    bare, body = neighbor_solicit(B6, None)
    assert extract_match(_frame(IPv6(A6, B6, 58), bare, body), 1).arp_sha == b""


def test_fragments() -> None:
    first = _frame(IPv4(A4, B4, 17, flags=FLAG_MF), None, UDP(1, 2).build(bytes(100))[:40])
    match = extract_match(first, 1)
    assert (match.ip_frag, match.l4_src, match.l4_dst) == (m.FRAG_FIRST, 1, 2)
    later = _frame(IPv4(A4, B4, 17, frag_offset=5), None, b"whatever")
    match = extract_match(later, 1)
    assert (match.ip_frag, match.ip_proto, match.l4_src) == (m.FRAG_LATER, 17, 0)
    later6 = _frame(IPv6(A6, B6, 6, ext=(IPv6Fragment(3, True, 9),)), None, b"tcp data")
    match = extract_match(later6, 1)
    assert (match.ip_frag, match.ip_proto, match.l4_dst) == (m.FRAG_LATER, 6, 0)
    first6 = _frame(
        IPv6(A6, B6, 6, ext=(IPv6Fragment(0, True, 9),)), None, TCP(7, 8).build(b"", A6, B6)
    )
    assert extract_match(first6, 1)[13:16] == (7, 8, 0)


def test_other_ethertypes_have_l2_fields_only() -> None:
    frame = Packet(Ethernet(MAC2, MAC1, 0x88CC), payload=b"lldp").build()
    assert extract_match(frame, 9) == FlowMatch(9, 0, MAC1, MAC2, 0, 0, 0x88CC)


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (bytes(13), "malformed"),
        (bytes.fromhex("020000000002020000000001 8100 00"), "malformed"),
        (bytes.fromhex("020000000002020000000001 0800 45"), "malformed"),
        (bytes.fromhex("020000000002020000000001 0800") + b"\x46" + bytes(19), "IPv4"),
        (bytes.fromhex("020000000002020000000001 0806") + bytes(28), "ARP"),
    ],
)
def test_malformed_frames(frame: bytes, reason: str) -> None:
    with pytest.raises(PacketError, match=reason):
        extract_match(frame, 1)


def test_flow_match_is_a_hashable_slotted_record() -> None:
    frame = _frame(IPv4(A4, B4, 6), TCP(1, 2, flags=TCP_ACK))
    a, b = extract_match(frame, 1), extract_match(bytearray(frame), 1)
    assert a == b
    assert hash(a) == hash(b)
    assert {a: 1}[b] == 1
    assert extract_match(memoryview(frame), 1) == a
    assert not hasattr(a, "__dict__")
    with pytest.raises(AttributeError):
        a.in_port = 2  # type: ignore[misc]
    assert a != extract_match(frame, 2)


def test_masked_keys() -> None:
    base = extract_match(_frame(IPv4(A4, B4, 6), TCP(1000, 80)), 1)
    other = extract_match(_frame(IPv4(A4, B4, 6), TCP(2000, 80)), 1)
    fields = frozenset({m.IP_DST, m.ETH_TYPE, m.IN_PORT})
    assert masked(base, fields) == (1, 0x0800, B4.packed)  # FIELDS order
    assert masked(base, fields) == masked(other, fields)
    with_ports = fields | {m.L4_SRC}
    assert masked(base, with_ports) != masked(other, with_ports)
    assert masked(base, frozenset({m.L4_DST})) == (80,)
    assert masked(base, frozenset()) == ()
    assert masked(base, m.ALL_FIELDS) == tuple(base)
    with pytest.raises(ValueError, match="nonsense"):
        masked(base, frozenset({"nonsense"}))


def test_field_names() -> None:
    assert FIELDS[0] == m.IN_PORT == "in_port"
    assert FIELDS[21] == m.ND_TARGET == "nd_target"
    assert FIELDS[-1] == m.ICMP_ID == "icmp_id"  # last: positional constructions still hold
    assert len(FIELDS) == 23
    assert len(set(FIELDS)) == 23


def reference_match(frame: bytes, in_port: int, tunnel_key: int) -> FlowMatch | None:
    """The match as the codecs see it; None if they find the frame malformed."""
    try:
        packet = Packet.parse(frame)
    except PacketError:
        return None
    eth = packet.eth
    tags = [0x1000 | v.vid for v in eth.vlans] + [0, 0]
    values: dict[str, object] = {
        "in_port": in_port,
        "tunnel_key": tunnel_key,
        "eth_src": eth.src,
        "eth_dst": eth.dst,
        "vlan": tags[0],
        "vlan_inner": tags[1],
        "eth_type": eth.eth_type,
    }
    net, transport = packet.net, packet.transport
    if isinstance(net, ARP):
        values.update(
            arp_op=net.op, arp_sha=net.sha, arp_spa=net.spa.packed, arp_tha=net.tha,
            arp_tpa=net.tpa.packed,
        )  # fmt: skip
        return FlowMatch(**values)  # type: ignore[arg-type]
    if not isinstance(net, IPv4 | IPv6):
        return FlowMatch(**values)  # type: ignore[arg-type]
    tos = net.tos if isinstance(net, IPv4) else net.traffic_class
    ttl = net.ttl if isinstance(net, IPv4) else net.hop_limit
    frag = m.FRAG_LATER if net.is_later_fragment else int(net.is_fragment)
    values.update(
        ip_src=net.src.packed, ip_dst=net.dst.packed, ip_proto=net.proto, ip_tos=tos,
        ip_ttl=ttl, ip_frag=frag,
    )  # fmt: skip
    if frag == m.FRAG_FIRST:  # the codecs leave a fragment's transport to the caller
        try:
            if net.proto == 6:
                transport = TCP.parse(packet.payload)[0]
            elif net.proto == 17:
                transport = UDP.parse(packet.payload, partial=True)[0]
            elif net.proto == 1 and isinstance(net, IPv4):
                transport = ICMP.parse(packet.payload)[0]
            elif net.proto == 58 and isinstance(net, IPv6):
                transport = ICMPv6.parse(packet.payload)[0]
        except PacketError:
            return None
    if isinstance(transport, TCP):
        values.update(l4_src=transport.src_port, l4_dst=transport.dst_port)
        values.update(tcp_flags=transport.flags)
    elif isinstance(transport, UDP):
        values.update(l4_src=transport.src_port, l4_dst=transport.dst_port)
    elif isinstance(transport, ICMP | ICMPv6):
        values.update(l4_src=transport.type, l4_dst=transport.code)
        if transport.type in ((0, 8) if isinstance(transport, ICMP) else (128, 129)):
            values.update(icmp_id=transport.ident)
    nd = packet.nd
    if nd is not None:
        assert isinstance(transport, ICMPv6)
        key = "arp_sha" if transport.type == 135 else "arp_tha"
        values[key] = nd.lladdr(1 if transport.type == 135 else 2) or b""
        values["nd_target"] = nd.target.packed
    return FlowMatch(**values)  # type: ignore[arg-type]


def _agrees(frame: bytes) -> None:
    expected = reference_match(frame, 3, 99)
    if expected is None:
        with pytest.raises(PacketError):
            extract_match(frame, 3, 99)
    else:
        assert extract_match(frame, 3, 99) == expected


@THOROUGH
@given(frames)
def test_agrees_with_the_codecs_on_valid_frames(frame: bytes) -> None:
    ip = Packet.parse(frame).ip
    if ip is None or not ip.is_fragment or ip.is_later_fragment:
        # a first fragment may be too short for its transport header: extract_match refuses it
        assert reference_match(frame, 3, 99) is not None
    _agrees(frame)


@THOROUGH
@given(frames, st.data())
def test_agrees_with_the_codecs_on_damaged_frames(frame: bytes, data: st.DataObject) -> None:
    damaged = bytearray(frame)
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(damaged) - 1))
        damaged[at] ^= data.draw(st.integers(1, 255))
    _agrees(bytes(damaged))
    _agrees(frame[: data.draw(st.integers(0, len(frame)))])


@THOROUGH
@given(packets())
def test_every_truncation_agrees(packet: Packet) -> None:
    frame = packet.build()
    for end in range(0, len(frame), 3):
        _agrees(frame[:end])


def _ipv4_frame(proto: int, segment: bytes, flags: int = 0) -> bytes:
    return Ethernet(MAC2, MAC1, 0x0800).build(IPv4(A4, B4, proto, flags=flags).build(segment))


@pytest.mark.parametrize(
    ("proto", "segment", "reason"),
    [
        (17, bytes.fromhex("0001000200090000") + b"x" * 0, "UDP length"),  # length 9 > 8 there
        (17, bytes.fromhex("0001000200070000") + b"xx", "UDP length"),  # length 7 < 8
        (17, bytes.fromhex("00010002"), "UDP header truncated"),
        (6, TCP(1, 2).build(b"", A4, B4)[:12] + b"\x40" + bytes(7), "TCP data offset"),
        (6, TCP(1, 2).build(b"", A4, B4)[:12] + b"\x60" + bytes(7), "TCP data offset"),
        (6, bytes(19), "TCP header truncated"),
        (1, bytes(7), "ICMP header truncated"),
    ],
)
def test_malformed_transport_headers(proto: int, segment: bytes, reason: str) -> None:
    frame = _ipv4_frame(proto, segment)
    with pytest.raises(PacketError, match=reason):
        extract_match(frame + bytes(32), 1)  # padding after the datagram does not help
    with pytest.raises(PacketError):
        Packet.parse(frame)


def test_first_fragment_udp_length_may_exceed_the_fragment() -> None:
    segment = bytes.fromhex("0001000205dc0000") + bytes(32)  # UDP length 1500
    match = extract_match(_ipv4_frame(17, segment, flags=FLAG_MF), 1)
    assert (match.ip_frag, match.l4_src, match.l4_dst) == (m.FRAG_FIRST, 1, 2)
    with pytest.raises(PacketError, match="UDP length"):
        extract_match(_ipv4_frame(17, segment), 1)


@pytest.mark.parametrize(
    "options",
    ["01", "0100" + "00" * 6, "0102" + "00" * 6, "0101020000000001 02"],
)
def test_malformed_nd_options(options: str) -> None:
    body = B6.packed + bytes.fromhex(options)
    frame = _frame(IPv6(A6, B6, 58), ICMPv6(135), body)
    with pytest.raises(PacketError, match="ND option"):
        extract_match(frame, 1)
    with pytest.raises(PacketError):
        Packet.parse(frame)


def test_nd_truncated_target_and_first_lladdr_wins() -> None:
    with pytest.raises(PacketError, match="ND target"):
        extract_match(_frame(IPv6(A6, B6, 58), ICMPv6(136), bytes(15)), 1)
    options = bytes.fromhex("0201020000000001 0201020000000002 0202" + "00" * 14)
    match = extract_match(_frame(IPv6(A6, B6, 58), ICMPv6(136), B6.packed + options), 1)
    assert match.arp_tha == MAC1
