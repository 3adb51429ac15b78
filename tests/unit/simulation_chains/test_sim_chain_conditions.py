"""Rule conditions: every field matched and not matched, each inverted, and what each reads."""

from __future__ import annotations

import dataclasses
from ipaddress import ip_network
from typing import Any

import pytest
from chains_helpers import (
    G1,
    G2,
    MAC_A_STR,
    MAC_B_STR,
    MAC_C,
    P1,
    P2,
    P3,
    TENANT,
    arp,
    icmp,
    icmp6,
    ipv4_proto_0,
    one_rule,
    tcp,
    udp,
    uid,
)

from tenet.model import Condition, CtState, IPAddrGroup, PortRange
from tenet.simulation.chains import ChainVerdict, compile_condition

ACCEPT, DROP = ChainVerdict.ACCEPT, ChainVerdict.DROP
GROUP = IPAddrGroup(
    id=uid(31),
    tenant_id=TENANT,
    name="sg-members",
    addresses=(
        ip_network("10.0.0.1/32"),
        ip_network("192.168.0.0/16"),
        ip_network("2001:db8::/64"),
    ),
)

# (name, condition, its inv_ flag, ctx arguments that match, ctx arguments that do not)
Case = tuple[str, Condition, str, dict[str, Any], dict[str, Any]]
CASES: list[Case] = [
    ("in_ports", Condition(in_port_ids=(P1, P3)), "inv_in_ports", {}, {"in_port": P2}),
    (
        "out_ports",
        Condition(out_port_ids=(P2,)),
        "inv_out_ports",
        {"out_port": P2},
        {"out_port": P3},
    ),
    (
        "out_ports_unset",
        Condition(out_port_ids=(P2,)),
        "inv_out_ports",
        {"out_port": P2},
        {"out_port": None},
    ),
    ("in_port_group", Condition(in_port_group_id=G1), "inv_in_port_group", {}, {"in_port": P2}),
    (
        "out_port_group",
        Condition(out_port_group_id=G1),
        "inv_out_port_group",
        {"out_port": P1},
        {"out_port": P2},
    ),
    (
        "out_port_group_unset",
        Condition(out_port_group_id=G1),
        "inv_out_port_group",
        {"out_port": P1},
        {},
    ),
    (
        "ct_state",
        Condition(ct_state=CtState.NEW),
        "inv_ct_state",
        {},
        {"ct_state": CtState.ESTABLISHED},
    ),
    ("eth_type", Condition(eth_type=0x0800), "inv_eth_type", {}, {"frame": arp()}),
    ("eth_type_v6", Condition(eth_type=0x0800), "inv_eth_type", {}, {"frame": icmp6()}),
    (
        "eth_src",
        Condition(eth_src=MAC_A_STR),
        "inv_eth_src",
        {},
        {"frame": tcp(eth_src=MAC_C)},
    ),
    (
        "eth_dst",
        Condition(eth_dst=MAC_B_STR),
        "inv_eth_dst",
        {},
        {"frame": tcp(eth_dst=MAC_C)},
    ),
    (
        "nw_src",
        Condition(nw_src=ip_network("10.0.0.0/24")),
        "inv_nw_src",
        {},
        {"frame": tcp(src="10.0.1.1")},
    ),
    (
        "nw_dst",
        Condition(nw_dst=ip_network("10.0.0.2/32")),
        "inv_nw_dst",
        {},
        {"frame": tcp(dst="10.0.0.3")},
    ),
    (
        "nw_src_family",
        Condition(nw_src=ip_network("0.0.0.0/0")),
        "inv_nw_src",
        {},
        {"frame": icmp6()},
    ),
    (
        "nw_src_v6",
        Condition(nw_src=ip_network("2001:db8::/64")),
        "inv_nw_src",
        {"frame": icmp6()},
        {"frame": tcp()},
    ),
    (
        "nw_src_not_ip",
        Condition(nw_src=ip_network("10.0.0.0/8")),
        "inv_nw_src",
        {},
        {"frame": arp()},
    ),
    (
        "group_src_host",
        Condition(ip_addr_group_src_id=GROUP.id),
        "inv_ip_addr_group_src",
        {},
        {"frame": tcp(src="10.0.0.9")},
    ),
    (
        "group_src_prefix",
        Condition(ip_addr_group_src_id=GROUP.id),
        "inv_ip_addr_group_src",
        {"frame": tcp(src="192.168.7.9")},
        {"frame": tcp(src="192.169.0.1")},
    ),
    (
        "group_src_v6",
        Condition(ip_addr_group_src_id=GROUP.id),
        "inv_ip_addr_group_src",
        {"frame": icmp6()},
        {"frame": arp()},
    ),
    (
        "group_dst",
        Condition(ip_addr_group_dst_id=GROUP.id),
        "inv_ip_addr_group_dst",
        {"frame": tcp(dst="10.0.0.1")},
        {"frame": tcp(dst="10.0.0.9")},
    ),
    ("nw_proto", Condition(nw_proto=6), "inv_nw_proto", {}, {"frame": udp()}),
    (
        "nw_proto_0_not_ip",
        Condition(nw_proto=0),
        "inv_nw_proto",
        {"frame": ipv4_proto_0()},
        {"frame": arp()},
    ),
    (
        "tp_src",
        Condition(nw_proto=6, tp_src=PortRange(start=40000, end=40010)),
        "inv_tp_src",
        {"frame": tcp(sport=40010)},
        {"frame": tcp(sport=40011)},
    ),
    (
        "tp_dst",
        Condition(nw_proto=17, tp_dst=PortRange(start=53, end=53)),
        "inv_tp_dst",
        {"frame": udp()},
        {"frame": udp(dport=54)},
    ),
    (
        "icmp_type",
        Condition(nw_proto=1, icmp_type=8),
        "inv_icmp_type",
        {"frame": icmp(8)},
        {"frame": icmp(0)},
    ),
    (
        "icmp_code",
        Condition(nw_proto=1, icmp_type=3, icmp_code=1),
        "inv_icmp_code",
        {"frame": icmp(3, 1)},
        {"frame": icmp(3, 3)},
    ),
    (
        "icmpv6_type",
        Condition(nw_proto=58, icmp_type=128),
        "inv_icmp_type",
        {"frame": icmp6(128)},
        {"frame": icmp6(129)},
    ),
]
# the default frame is tcp(): 10.0.0.1:40000 -> 10.0.0.2:22, MAC_A -> MAC_B, in on P1


def _run(condition: Condition, args: dict[str, Any]) -> ChainVerdict:
    args = dict(args)
    frame = args.pop("frame", tcp())
    verdict, _ = one_rule(condition, frame, GROUP, **args)
    return verdict


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_condition_matches_and_inverts(case: Case) -> None:
    _, condition, inv, yes, no = case
    inverted = dataclasses.replace(condition, **{inv: True})
    assert _run(condition, yes) is DROP, "should match"
    assert _run(condition, no) is ACCEPT, "should not match"
    assert _run(inverted, yes) is ACCEPT, "inverted: should not match"
    assert _run(inverted, no) is DROP, "inverted: should match"


def test_every_condition_field_is_covered() -> None:
    tested = {f for _, c, _, _, _ in CASES for f in _set_fields(c)}
    every = {f.name for f in dataclasses.fields(Condition) if not f.name.startswith("inv_")}
    assert every - tested == set()


def _set_fields(c: Condition) -> set[str]:
    empty = Condition()
    return {
        f.name
        for f in dataclasses.fields(Condition)
        if not f.name.startswith("inv_") and getattr(c, f.name) != getattr(empty, f.name)
    }


@pytest.mark.parametrize(
    "inv", [f.name for f in dataclasses.fields(Condition) if f.name.startswith("inv_")]
)
def test_inversion_of_an_unset_field_does_nothing(inv: str) -> None:
    condition = Condition(**{inv: True})
    assert compile_condition(condition) == ()
    verdict, ctx = one_rule(condition, tcp())
    assert verdict is DROP
    assert ctx.read == {"in_port"}


def test_condition_fields_combine_with_and() -> None:
    condition = Condition(nw_proto=6, nw_src=ip_network("10.0.0.0/24"), in_port_ids=(P1,))
    assert _run(condition, {}) is DROP
    assert _run(condition, {"in_port": P2}) is ACCEPT
    assert _run(condition, {"frame": udp()}) is ACCEPT
    assert _run(condition, {"frame": tcp(src="10.9.0.1")}) is ACCEPT


def test_port_ranges_need_a_port_protocol_even_with_nw_proto_inverted() -> None:
    # "not TCP, source port 8": an ICMP echo request carries type 8 in l4_src, not a port
    condition = Condition(nw_proto=6, inv_nw_proto=True, tp_src=PortRange(start=8, end=8))
    assert _run(condition, {"frame": udp(sport=8)}) is DROP
    assert _run(condition, {"frame": icmp(8)}) is ACCEPT


def test_icmp_type_needs_icmp_even_with_nw_proto_inverted() -> None:
    # "not ICMPv6, ICMP type 8": a UDP packet from port 8 is not an ICMP type 8
    condition = Condition(nw_proto=58, inv_nw_proto=True, icmp_type=8)
    assert _run(condition, {"frame": icmp(8)}) is DROP
    assert _run(condition, {"frame": udp(sport=8)}) is ACCEPT


def test_port_group_membership_comes_from_the_port() -> None:
    # G2 has no PortGroup record and no member: no match, and the group is tagged
    verdict, ctx = one_rule(Condition(in_port_group_id=G2), tcp())
    assert verdict is ACCEPT
    assert {str(G2), str(P1)} <= ctx.tags
    verdict, ctx = one_rule(Condition(in_port_group_id=G1), tcp())
    assert verdict is DROP
    assert {str(G1), str(P1)} <= ctx.tags


# -- the wildcard: exactly the fields read ------------------------------------------------


@pytest.mark.parametrize(
    ("condition", "frame", "read"),
    [
        pytest.param(Condition(), tcp(), set(), id="empty"),
        # nw_proto reads ip_proto alone: its value already tells IP from non-IP
        pytest.param(Condition(nw_proto=6), tcp(), {"ip_proto"}, id="nw_proto"),
        pytest.param(Condition(nw_proto=6), arp(), {"ip_proto"}, id="nw_proto_arp"),
        # ...except protocol 0 against ip_proto 0 (every non-IP frame has it)
        pytest.param(Condition(nw_proto=0), arp(), {"ip_proto", "eth_type"}, id="nw_proto_0"),
        pytest.param(Condition(in_port_ids=(P1,)), tcp(), set(), id="in_ports"),
        pytest.param(Condition(out_port_group_id=G1), tcp(), set(), id="port_group"),
        pytest.param(Condition(ct_state=CtState.NEW), tcp(), set(), id="ct_state"),
        pytest.param(Condition(nw_dst=ip_network("10.0.0.0/8")), tcp(), {"ip_dst"}, id="nw_dst"),
        pytest.param(
            Condition(nw_dst=ip_network("10.0.0.0/8")), arp(), {"ip_dst"}, id="nw_dst_arp"
        ),
        pytest.param(
            Condition(ip_addr_group_src_id=GROUP.id), tcp(), {"ip_src"}, id="ip_addr_group"
        ),
        # a failed condition ends the rule: later fields are not read
        pytest.param(
            Condition(eth_type=0x0800, nw_src=ip_network("10.0.0.0/8")),
            arp(),
            {"eth_type"},
            id="short_circuit",
        ),
        pytest.param(
            Condition(in_port_ids=(P2,), nw_src=ip_network("10.0.0.0/8")),
            tcp(),
            set(),
            id="short_circuit_port",
        ),
        pytest.param(
            Condition(nw_proto=6, tp_dst=PortRange(start=22, end=22)),
            udp(),
            {"ip_proto"},
            id="tcp_rule_udp_packet",
        ),
        pytest.param(
            Condition(nw_proto=6, tp_dst=PortRange(start=22, end=22)),
            tcp(),
            {"ip_proto", "l4_dst"},
            id="tcp_rule_tcp_packet",
        ),
        pytest.param(
            Condition(nw_proto=1, icmp_type=3, icmp_code=1),
            icmp(3, 1),
            {"ip_proto", "l4_src", "l4_dst"},
            id="icmp_code",
        ),
        pytest.param(
            Condition(eth_src=MAC_A_STR, eth_dst=MAC_B_STR),
            tcp(),
            {"eth_src", "eth_dst"},
            id="macs",
        ),
    ],
)
def test_reads_exactly_the_fields_needed(
    condition: Condition, frame: bytes, read: set[str]
) -> None:
    _, ctx = one_rule(condition, frame, GROUP)
    assert ctx.read == {"in_port", *read}
