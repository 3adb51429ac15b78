"""frame_of rebuilds, from an IPv4 flow match, a frame that extracts to that same match."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tenet.packets import FlowMatch, extract_match
from tenet.packets.match import FRAG_FIRST, FRAG_LATER, FRAG_NONE
from tenet.packets.synth import frame_of

macs = st.binary(min_size=6, max_size=6)
ipv4 = st.binary(min_size=4, max_size=4)
u16 = st.integers(0, 0xFFFF)


@st.composite
def ipv4_matches(draw: st.DrawFn) -> FlowMatch:
    proto = draw(st.sampled_from([1, 6, 17, 47, 132]))
    frag = draw(st.sampled_from([FRAG_NONE, FRAG_FIRST, FRAG_LATER]))
    l4_src = l4_dst = flags = 0
    if frag != FRAG_LATER:
        if proto in (6, 17):
            l4_src, l4_dst = draw(u16), draw(u16)
        elif proto == 1:
            l4_src, l4_dst = draw(st.integers(0, 255)), draw(st.integers(0, 255))
        if proto == 6:
            flags = draw(st.integers(0, 0x1FF))
    if proto == 1 and frag != FRAG_LATER:
        l4_src = draw(st.sampled_from([0, 8, l4_src]))  # echoes often: they carry an id
    icmp_id = draw(u16) if proto == 1 and frag != FRAG_LATER and l4_src in (0, 8) else 0
    return FlowMatch(
        draw(st.integers(1, 2**31)),
        draw(st.integers(0, 2**24 - 1)),
        draw(macs),
        draw(macs),
        0,
        0,
        0x0800,
        draw(ipv4),
        draw(ipv4),
        proto,
        draw(st.integers(0, 255)),
        draw(st.integers(0, 255)),
        frag,
        l4_src,
        l4_dst,
        flags,
        icmp_id=icmp_id,
    )


@given(ipv4_matches())
def test_a_rebuilt_frame_extracts_to_its_match(match: FlowMatch) -> None:
    frame = frame_of(match)
    assert frame is not None
    assert extract_match(frame, match.in_port, match.tunnel_key) == match


@st.composite
def ipv6_matches(draw: st.DrawFn) -> FlowMatch:
    proto = draw(st.sampled_from([6, 17, 58, 132]))
    l4_src = l4_dst = flags = 0
    if proto in (6, 17):
        l4_src, l4_dst = draw(u16), draw(u16)
    elif proto == 58:
        l4_src = draw(st.sampled_from([128, 129, 1, 3]) | st.integers(0, 134))
        l4_dst = draw(st.integers(0, 255))
    if proto == 6:
        flags = draw(st.integers(0, 0x1FF))
    addr = st.binary(min_size=16, max_size=16)
    return FlowMatch(
        draw(st.integers(1, 2**31)), 0, draw(macs), draw(macs), 0, 0, 0x86DD, draw(addr),
        draw(addr), proto, draw(st.integers(0, 255)), draw(st.integers(0, 255)), 0, l4_src,
        l4_dst, flags, icmp_id=draw(u16) if proto == 58 and l4_src in (128, 129) else 0,
    )  # fmt: skip


@given(ipv6_matches())
def test_a_rebuilt_ipv6_frame_extracts_to_its_match(match: FlowMatch) -> None:
    frame = frame_of(match)
    assert frame is not None
    assert extract_match(frame, match.in_port) == match


def test_matches_it_does_not_rebuild() -> None:
    assert frame_of(FlowMatch(1, eth_type=0x0806)) is None
    nd = FlowMatch(1, eth_type=0x86DD, ip_src=bytes(16), ip_dst=bytes(16), ip_proto=58,
                   l4_src=135)  # fmt: skip
    assert frame_of(nd) is None
    assert frame_of(FlowMatch(1, vlan=0x1005, eth_type=0x0800, ip_src=bytes(4))) is None
