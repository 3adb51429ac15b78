"""Chain walks: actions, jump and return, limits, an inconsistent view, tags and trace."""

from __future__ import annotations

import uuid
from ipaddress import IPv4Address, ip_network

import pytest
from chains_helpers import (
    TENANT,
    TOP,
    chain,
    lines,
    make_ctx,
    one_rule,
    records,
    rule,
    tcp,
    udp,
    uid,
    walk,
)

from tenet.model import Chain, Condition, IPAddrGroup, NatTarget, Record, Rule
from tenet.model import RuleAction as A
from tenet.simulation.chains import MAX_JUMP_DEPTH, ChainVerdict, run_chain
from tenet.simulation.view import TopologyView

ACCEPT, DROP, REJECT = ChainVerdict.ACCEPT, ChainVerdict.DROP, ChainVerdict.REJECT
TCP = Condition(nw_proto=6)
UDP = Condition(nw_proto=17)
SUB = uid(101)
SUB2 = uid(102)


def test_no_chain_accepts_without_a_trace() -> None:
    verdict, ctx = walk(records([], []), None, tcp())
    assert verdict is ACCEPT
    assert ctx.trace == []
    assert ctx.tags == set()
    assert ctx.read == {"in_port"}


def test_empty_chain_accepts() -> None:
    verdict, ctx = walk(records([chain(TOP, [], "empty")], []), TOP, tcp())
    assert verdict is ACCEPT
    assert lines(ctx) == [
        "chain empty: enter (port vm1 inbound)",
        "chain empty: accept (0 rules evaluated)",
    ]
    assert ctx.tags == {str(TOP)}


@pytest.mark.parametrize(
    ("action", "verdict"), [(A.ACCEPT, ACCEPT), (A.DROP, DROP), (A.REJECT, REJECT)]
)
def test_final_actions_end_the_walk(action: A, verdict: ChainVerdict) -> None:
    first = rule(TOP, 1, action, TCP)
    later = rule(TOP, 2, A.ACCEPT if action is A.DROP else A.DROP)
    recs = records([chain(TOP, [first, later], "in")], [first, later])
    got, ctx = walk(recs, TOP, tcp())
    assert got is verdict
    assert lines(ctx) == [
        "chain in: enter (port vm1 inbound)",
        f"rule r1 #1: {verdict.value}",
        f"chain in: {verdict.value} (1 rules evaluated)",
    ]
    assert str(later.id) not in ctx.tags  # never evaluated
    # a packet the rule does not match goes on to the next rule
    got, ctx = walk(recs, TOP, udp())
    assert got is (ACCEPT if action is A.DROP else DROP)
    assert "chain in: " + got.value + " (2 rules evaluated)" in lines(ctx)


def test_continue_goes_on_to_the_next_rule() -> None:
    r1 = rule(TOP, 1, A.CONTINUE, TCP)
    r2 = rule(TOP, 2, A.DROP, TCP)
    verdict, ctx = walk(records([chain(TOP, [r1, r2])], [r1, r2]), TOP, tcp())
    assert verdict is DROP
    assert lines(ctx)[1:] == ["rule r2 #2: drop", f"chain {TOP}: drop (2 rules evaluated)"]


def test_end_of_chain_accepts() -> None:
    r1 = rule(TOP, 1, A.DROP, UDP)
    verdict, _ = walk(records([chain(TOP, [r1])], [r1]), TOP, tcp())
    assert verdict is ACCEPT


def test_return_at_top_level_accepts() -> None:
    r1 = rule(TOP, 1, A.RETURN, TCP)
    r2 = rule(TOP, 2, A.DROP)
    verdict, ctx = walk(records([chain(TOP, [r1, r2], "in")], [r1, r2]), TOP, tcp())
    assert verdict is ACCEPT
    assert lines(ctx)[1:] == [
        "rule r1 #1: return from the top-level chain: accept",
        "chain in: accept (1 rules evaluated)",
    ]
    verdict, _ = walk(records([chain(TOP, [r1, r2], "in")], [r1, r2]), TOP, udp())
    assert verdict is DROP


def _jump_topology(sub_rules: list[tuple[int, A, Condition]]) -> list[Record]:
    """TOP: r1 jump to SUB; r2 drop udp. SUB: the given rules."""
    r1 = rule(TOP, 1, A.JUMP, jump_chain_id=SUB)
    r2 = rule(TOP, 2, A.DROP, UDP)
    subs = [rule(SUB, n, action, cond) for n, action, cond in sub_rules]
    return records([chain(TOP, [r1, r2], "in"), chain(SUB, subs, "sg")], [r1, r2, *subs])


def test_jump_decides_in_the_target_chain() -> None:
    recs = _jump_topology([(10, A.ACCEPT, UDP)])
    verdict, ctx = walk(recs, TOP, udp())
    assert verdict is ACCEPT  # r2 (drop udp) is never reached
    assert lines(ctx) == [
        "chain in: enter (port vm1 inbound)",
        "rule r1 #1: jump to chain sg",
        "chain sg: enter (jump from chain in rule #1)",
        "rule r10 #1: accept",
        "chain in: accept (2 rules evaluated)",
    ]
    assert {str(TOP), str(SUB), str(uid(1)), str(uid(10))} == ctx.tags


def test_jump_target_ending_without_decision_continues_after_the_jump() -> None:
    recs = _jump_topology([(10, A.ACCEPT, TCP)])
    verdict, ctx = walk(recs, TOP, udp())
    assert verdict is DROP
    assert lines(ctx) == [
        "chain in: enter (port vm1 inbound)",
        "rule r1 #1: jump to chain sg",
        "chain sg: enter (jump from chain in rule #1)",
        "chain sg: end: back to the calling chain",
        "rule r2 #2: drop",
        "chain in: drop (3 rules evaluated)",
    ]


def test_return_leaves_the_target_chain() -> None:
    recs = _jump_topology([(10, A.RETURN, UDP), (11, A.ACCEPT, Condition())])
    verdict, ctx = walk(recs, TOP, udp())
    assert verdict is DROP
    assert "rule r10 #1: return" in lines(ctx)
    assert str(uid(11)) not in ctx.tags
    verdict, _ = walk(recs, TOP, tcp())
    assert verdict is ACCEPT  # r11 accepts


def test_nested_jumps_and_returns() -> None:
    # TOP -> SUB -> SUB2; SUB2 returns, SUB continues and rejects
    r1 = rule(TOP, 1, A.JUMP, jump_chain_id=SUB)
    r10 = rule(SUB, 10, A.JUMP, jump_chain_id=SUB2)
    r11 = rule(SUB, 11, A.REJECT, TCP)
    r20 = rule(SUB2, 20, A.RETURN)
    r21 = rule(SUB2, 21, A.ACCEPT)
    recs = records(
        [chain(TOP, [r1]), chain(SUB, [r10, r11]), chain(SUB2, [r20, r21])],
        [r1, r10, r11, r20, r21],
    )
    verdict, ctx = walk(recs, TOP, tcp())
    assert verdict is REJECT
    assert str(uid(21)) not in ctx.tags
    assert lines(ctx)[-1] == f"chain {TOP}: reject (4 rules evaluated)"


def _jump_ladder(jumps: int) -> tuple[list[Record], list[uuid.UUID]]:
    """Chains 0..jumps, each jumping to the next; the last one drops."""
    ids = [uid(500 + i) for i in range(jumps + 1)]
    chains: list[Chain] = []
    rules: list[Rule] = []
    for i, chain_id in enumerate(ids):
        if i < jumps:
            r = rule(chain_id, 600 + i, A.JUMP, jump_chain_id=ids[i + 1])
        else:
            r = rule(chain_id, 600 + i, A.DROP)
        rules.append(r)
        chains.append(chain(chain_id, [r], f"c{i}"))
    return records(chains, rules), ids


def test_depth_limit() -> None:
    recs, ids = _jump_ladder(MAX_JUMP_DEPTH)
    verdict, ctx = walk(recs, ids[0], tcp())
    assert verdict is DROP
    assert f"rule r{600 + MAX_JUMP_DEPTH} #1: drop" in lines(ctx)  # the deepest chain decided
    recs, ids = _jump_ladder(MAX_JUMP_DEPTH + 1)
    verdict, ctx = walk(recs, ids[0], tcp())
    assert verdict is DROP
    text = lines(ctx)
    assert (
        f"rule r{600 + MAX_JUMP_DEPTH} #1: jump to chain c{MAX_JUMP_DEPTH + 1} "
        f"exceeds {MAX_JUMP_DEPTH} nested jumps: drop"
    ) in text
    assert str(ids[-1]) in ctx.tags
    assert f"chain c{MAX_JUMP_DEPTH + 1}: enter" not in "\n".join(text)


def test_cycle_in_an_inconsistent_view_drops() -> None:
    # the object layer refuses cycles; a view caught mid-update may still hold one
    r1 = rule(TOP, 1, A.JUMP, jump_chain_id=SUB)
    r10 = rule(SUB, 10, A.JUMP, jump_chain_id=TOP)
    recs = records([chain(TOP, [r1], "a"), chain(SUB, [r10], "b")], [r1, r10])
    verdict, ctx = walk(recs, TOP, tcp())
    assert verdict is DROP
    assert lines(ctx)[-2:] == [
        "rule r10 #1: jump to chain a, already being walked: drop",
        "chain a: drop (2 rules evaluated)",
    ]


def test_missing_rule_is_skipped() -> None:
    ghost = uid(999)
    r2 = rule(TOP, 2, A.DROP, TCP)
    verdict, ctx = walk(records([chain(TOP, [ghost, r2], "in")], [r2]), TOP, tcp())
    assert verdict is DROP
    assert lines(ctx) == [
        "chain in: enter (port vm1 inbound)",
        f"rule {ghost} #1: not in the view: skipped",
        "rule r2 #2: drop",
        "chain in: drop (1 rules evaluated)",
    ]
    assert str(ghost) in ctx.tags  # its arrival must invalidate the flow


@pytest.mark.parametrize("inverted", [False, True])
def test_missing_ip_addr_group_never_matches(inverted: bool) -> None:
    group_id = uid(77)
    condition = Condition(ip_addr_group_src_id=group_id, inv_ip_addr_group_src=inverted)
    verdict, ctx = one_rule(condition, tcp())
    assert verdict is ACCEPT
    assert f"ip address group {group_id} is not in the view: the rule does not match" in (
        "\n".join(lines(ctx))
    )
    assert str(group_id) in ctx.tags
    present = IPAddrGroup(id=group_id, tenant_id=TENANT, addresses=(ip_network("10.0.0.1/32"),))
    verdict, _ = one_rule(condition, tcp(), present)
    assert verdict is (ACCEPT if inverted else DROP)


def test_missing_top_chain_drops() -> None:
    verdict, ctx = walk(records([], []), TOP, tcp())
    assert verdict is DROP
    assert lines(ctx) == [
        f"chain {TOP}: enter (port vm1 inbound): not in the view: drop",
        f"chain {TOP}: drop (0 rules evaluated)",
    ]
    assert ctx.tags == {str(TOP)}


def test_missing_jump_target_drops() -> None:
    r1 = rule(TOP, 1, A.JUMP, jump_chain_id=SUB)
    verdict, ctx = walk(records([chain(TOP, [r1], "in")], [r1]), TOP, tcp())
    assert verdict is DROP
    assert f"chain {SUB}: enter (jump from chain in rule #1): not in the view: drop" in lines(ctx)
    assert str(SUB) in ctx.tags


PUBLIC = IPv4Address("192.0.2.1")
NAT_TARGET = (NatTarget(start=PUBLIC, end=PUBLIC),)


@pytest.mark.parametrize(
    ("action", "targets"),
    [
        (A.SNAT, NAT_TARGET),
        (A.DNAT, NAT_TARGET),
        (A.MASQUERADE, ()),
        (A.REV_SNAT, ()),
        (A.REV_DNAT, ()),
    ],
)
def test_nat_actions_fail_closed(action: A, targets: tuple[NatTarget, ...]) -> None:
    r1 = rule(TOP, 1, action, TCP, nat_targets=targets)
    r2 = rule(TOP, 2, A.ACCEPT)
    recs = records([chain(TOP, [r1, r2], "nat")], [r1, r2])
    verdict, ctx = walk(recs, TOP, tcp())
    assert verdict is DROP
    assert lines(ctx)[1:] == [
        f"nat r1: {action}: NAT actions are not implemented yet: drop",
        f"rule r1 #1: {action}: drop",
        "chain nat: drop (1 rules evaluated)",
    ]
    verdict, _ = walk(recs, TOP, udp())  # a NAT rule that does not match does nothing
    assert verdict is ACCEPT


def test_tags_are_the_chains_and_rules_evaluated() -> None:
    r1 = rule(TOP, 1, A.DROP, UDP)
    r2 = rule(TOP, 2, A.JUMP, jump_chain_id=SUB)
    r3 = rule(TOP, 3, A.ACCEPT)
    r10 = rule(SUB, 10, A.DROP, TCP)
    r11 = rule(SUB, 11, A.ACCEPT)
    recs = records([chain(TOP, [r1, r2, r3]), chain(SUB, [r10, r11])], [r1, r2, r3, r10, r11])
    _, ctx = walk(recs, TOP, tcp())
    assert ctx.tags == {str(x) for x in (TOP, SUB, uid(1), uid(2), uid(10))}


def test_deterministic_and_memo_follows_new_records() -> None:
    r1 = rule(TOP, 1, A.DROP, TCP)
    recs = records([chain(TOP, [r1])], [r1])
    first = walk(recs, TOP, tcp())
    again = walk(recs, TOP, tcp())
    assert first[0] is again[0] is DROP
    assert (first[1].read, first[1].tags, first[1].trace) == (
        again[1].read,
        again[1].tags,
        again[1].trace,
    )
    # the same rule id with a new condition, in a new view: the new condition counts
    changed = r1.replace(condition=UDP)
    verdict, _ = walk(records([chain(TOP, [changed])], [changed]), TOP, tcp())
    assert verdict is ACCEPT
    # the same chain id with its rules reordered, in a new view
    accept, drop = rule(TOP, 3, A.ACCEPT), rule(TOP, 4, A.DROP)
    assert walk(records([chain(TOP, [accept, drop])], [accept, drop]), TOP, tcp())[0] is ACCEPT
    assert walk(records([chain(TOP, [drop, accept])], [accept, drop]), TOP, tcp())[0] is DROP
    # the same group id with new addresses
    gid = uid(78)
    cond = Condition(ip_addr_group_dst_id=gid)
    g1 = IPAddrGroup(id=gid, tenant_id=TENANT, addresses=(ip_network("10.0.0.2/32"),))
    g2 = g1.replace(addresses=(ip_network("10.9.0.0/16"),))
    assert one_rule(cond, tcp(), g1)[0] is DROP
    assert one_rule(cond, tcp(), g2)[0] is ACCEPT


def test_run_chain_twice_on_one_ctx_accumulates() -> None:
    # the engine runs several chains (port, bridge, router) on one context
    r1 = rule(TOP, 1, A.ACCEPT, TCP)
    r10 = rule(SUB, 10, A.ACCEPT, Condition(nw_src=ip_network("10.0.0.0/8")))
    view = TopologyView.build(records([chain(TOP, [r1]), chain(SUB, [r10])], [r1, r10]))
    ctx = make_ctx(tcp())
    assert run_chain(ctx, view, TOP, "port vm1 inbound") is ACCEPT
    assert run_chain(ctx, view, SUB, "bridge b1 inbound") is ACCEPT
    assert ctx.read == {"in_port", "ip_proto", "ip_src"}
    assert f"chain {SUB}: enter (bridge b1 inbound)" in lines(ctx)


def test_one_view_follows_changes_applied_to_it() -> None:
    """The agent keeps one view and applies each change: the walk sees the change at once
    (a rule's new condition, a chain's new order, a group's new addresses, a rule come)."""
    r1 = rule(TOP, 1, A.DROP, TCP)
    gid = uid(79)
    group = IPAddrGroup(id=gid, tenant_id=TENANT, addresses=(ip_network("10.0.0.2/32"),))
    r2 = rule(TOP, 2, A.REJECT, Condition(ip_addr_group_dst_id=gid))
    view = TopologyView.build(records([chain(TOP, [r1, r2])], [r1, r2], group))

    def verdict() -> ChainVerdict:
        return run_chain(make_ctx(tcp()), view, TOP, "port vm1 inbound")

    assert verdict() is DROP
    view.apply(r1.id, r1.replace(condition=UDP))
    assert verdict() is REJECT  # r1 no longer matches; the group holds 10.0.0.2
    view.apply(gid, group.replace(addresses=(ip_network("10.9.0.0/16"),)))
    assert verdict() is ACCEPT
    r3 = rule(TOP, 3, A.DROP)
    view.apply(TOP, chain(TOP, [r3, r1, r2]))
    assert verdict() is ACCEPT  # r3 is listed but not in the view yet: skipped
    view.apply(r3.id, r3)
    assert verdict() is DROP
    view.apply(r3.id, None)
    assert verdict() is ACCEPT
