"""Rule chains: the verdict of a chain of rules on the packet being simulated.

Owns :func:`run_chain` (what the engine calls at every place the model has a
chain: port, bridge and router, inbound and outbound), :class:`ChainVerdict`,
and the compilation of a rule's :class:`~tenet.model.Condition` into checks.

The walk (MidoNet's semantics):

* rules run in ``chain.rule_ids`` order. A rule whose condition matches acts:
  ACCEPT, DROP and REJECT end the walk with that verdict; CONTINUE goes on to
  the next rule; JUMP walks ``jump_chain_id`` and, when that chain ends or
  RETURNs without a decision, goes on after the jump rule; RETURN leaves the
  current chain (at the top level: ACCEPT). The end of the top-level chain
  without a decision is ACCEPT. NAT actions go to :func:`tenet.simulation.nat.apply_nat`
  (the plug-in point of the stateful issue; until then it fails closed: DROP);
* the view may be mid-update. A rule missing from the view is skipped; a rule
  naming an IP address group missing from the view does not match (inverted or
  not); a chain missing from the view (the top-level one or a jump target), a
  jump to a chain already being walked (a cycle), and more than
  :data:`MAX_JUMP_DEPTH` nested jumps all DROP: an inconsistent view never
  opens a hole. Every case leaves a trace line saying why.

Invariants:

* packet fields are read only through ``ctx.get``, only the fields a condition
  needs, in a fixed order with short-circuit (port and conntrack conditions
  first, then ``eth_type``, ``eth_src``, ``eth_dst``, ``ip_proto``, ``ip_src``,
  ``ip_dst``, the address groups, ports, ICMP type and code), so the megaflow
  wildcard is minimal and deterministic. ``nw_proto`` reads ``ip_proto`` only
  (plus ``eth_type`` for the one ambiguous case, a rule for protocol 0 against a
  packet whose ``ip_proto`` is 0, which every non-IP frame has). CIDR and
  address group conditions read only the address: its length (4 or 16 bytes,
  empty for non-IP) carries the family, and a family mismatch does not match.
  Port ranges and ICMP type/code match only a packet of a port protocol (TCP,
  UDP, SCTP) or of ICMP/ICMPv6, which reads ``ip_proto`` (the model requires
  ``nw_proto`` with them, so it has been read already);
* tags: every chain walked or looked up, every rule evaluated or looked up, and
  every port group, port (for its group membership) and IP address group
  consulted, by id (:func:`tenet.simulation.tags.of_id`);
* trace: one line per chain entered, the rule that decided, jumps and returns,
  rules skipped because the view lacks something, and the final verdict with the
  number of rules evaluated. Rules that do not match leave no line. Rules are
  numbered from 1 in the chain's order;
* pure: the memos below (a chain's plan, a rule's compiled condition, an
  address group's index) belong to the view (:mod:`tenet.simulation.memo`),
  filed under the records they were built from (a plan under its chain and the
  rules it lists; a condition under its rule; an index under its group), and
  dropped when one of those changes: they never change a result, only its cost.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Callable
from ipaddress import IPv4Network, IPv6Network

from tenet.model import Chain, Condition, CtState, IPAddrGroup, PortRange, Rule, RuleAction
from tenet.simulation import conntrack, tags
from tenet.simulation.context import BytesField, Ctx, IntField
from tenet.simulation.memo import Slot
from tenet.simulation.result import STEP_CHAIN, STEP_RULE
from tenet.simulation.view import TopologyView, mac_bytes

MAX_JUMP_DEPTH = 16
"""The most nested jumps a walk follows (the top-level chain is depth 0)."""

_IP_ETH_TYPES = frozenset({0x0800, 0x86DD})
_PORT_PROTOS = frozenset({6, 17, 132})  # TCP, UDP, SCTP
_ICMP_PROTOS = frozenset({1, 58})  # ICMP, ICMPv6


class ChainVerdict(enum.Enum):
    ACCEPT = "accept"  # go on processing the packet
    DROP = "drop"
    REJECT = "reject"  # drop, and the caller sends ICMP admin-prohibited (3/13) or TCP RST


_FINAL = {
    RuleAction.ACCEPT: ChainVerdict.ACCEPT,
    RuleAction.DROP: ChainVerdict.DROP,
    RuleAction.REJECT: ChainVerdict.REJECT,
}


class _Flow(enum.Enum):
    """Where the walk goes after a matching rule that did not decide."""

    NEXT = "next"  # the next rule of this chain
    RETURN = "return"  # back to the calling chain


class _Unresolved(Exception):
    """A condition names something the view lacks: the rule does not match."""


Check = Callable[[Ctx, TopologyView], bool]
"""One compiled condition field, inversion included: True if the packet matches."""


# -- the walk -------------------------------------------------------------------------


def run_chain(ctx: Ctx, view: TopologyView, chain_id: uuid.UUID | None, where: str) -> ChainVerdict:
    """The verdict of chain ``chain_id`` on the packet in ``ctx``.

    ``where`` labels the trace ("port vm1 inbound"). ``None`` (no chain) is
    ACCEPT and leaves no trace.
    """
    if chain_id is None:
        return ChainVerdict.ACCEPT
    walk = _Walk(ctx, view)
    verdict = walk.chain(chain_id, (), f"enter ({where})")
    if verdict is None:
        verdict = ChainVerdict.ACCEPT
    chain = view.chains.get(chain_id)
    ctx.note(
        STEP_CHAIN,
        chain_id,
        chain.name if chain is not None else "",
        f"{verdict.value} ({walk.evaluated} rules evaluated)",
    )
    return verdict


class _Walk:
    __slots__ = ("ctx", "evaluated", "view")

    def __init__(self, ctx: Ctx, view: TopologyView) -> None:
        self.ctx = ctx
        self.view = view
        self.evaluated = 0

    def chain(
        self, chain_id: uuid.UUID, stack: tuple[uuid.UUID, ...], entry: str
    ) -> ChainVerdict | None:
        """Walk one chain; None when it ends or returns without a decision."""
        ctx = self.ctx
        ctx.tag(tags.of_id(chain_id))
        chain = self.view.chains.get(chain_id)
        if chain is None:
            ctx.note(STEP_CHAIN, chain_id, "", f"{entry}: not in the view: drop")
            return ChainVerdict.DROP
        ctx.note(STEP_CHAIN, chain_id, chain.name, entry)
        stack = (*stack, chain_id)
        plan = _plan(self.view, chain)
        walked = len(plan.steps)
        outcome: ChainVerdict | None = None
        for index, rule, checks in plan.steps:
            if rule is None:
                rule_id = chain.rule_ids[index - 1]
                ctx.note(STEP_RULE, rule_id, f"{rule_id} #{index}", "not in the view: skipped")
                continue
            self.evaluated += 1
            try:
                matched = _matches(checks, ctx, self.view)
            except _Unresolved as exc:
                ctx.note(STEP_RULE, rule.id, _label(rule, index), f"{exc}: the rule does not match")
                continue
            if not matched:
                continue
            flow = self.act(rule, index, chain, stack)
            if flow is _Flow.NEXT:
                continue
            walked = index  # rules are numbered from 1
            if isinstance(flow, ChainVerdict):
                outcome = flow
            break
        else:
            if len(stack) > 1:
                ctx.note(STEP_CHAIN, chain_id, chain.name, "end: back to the calling chain")
        ctx.tag(*plan.tags[:walked])
        return outcome

    def act(
        self, rule: Rule, index: int, chain: Chain, stack: tuple[uuid.UUID, ...]
    ) -> ChainVerdict | _Flow:
        """What a matching rule does: a verdict, or where the walk goes on."""
        ctx = self.ctx
        action = rule.action
        final = _FINAL.get(action)
        if final is not None:
            ctx.note(STEP_RULE, rule.id, _label(rule, index), final.value)
            return final
        if action is RuleAction.CONTINUE:
            return _Flow.NEXT
        if action is RuleAction.RETURN:
            detail = "return" if len(stack) > 1 else "return from the top-level chain: accept"
            ctx.note(STEP_RULE, rule.id, _label(rule, index), detail)
            return _Flow.RETURN
        if action is RuleAction.JUMP:
            verdict = self.jump(rule, index, chain, stack)
        else:
            verdict = self.nat(rule, index)
        return _Flow.NEXT if verdict is None else verdict

    def jump(
        self, rule: Rule, index: int, chain: Chain, stack: tuple[uuid.UUID, ...]
    ) -> ChainVerdict | None:
        ctx = self.ctx
        label = _label(rule, index)
        target_id = rule.jump_chain_id
        if target_id is None:  # the model refuses it; a view may still hold one
            ctx.note(STEP_RULE, rule.id, label, "jump without a target chain: drop")
            return ChainVerdict.DROP
        target = self.view.chains.get(target_id)
        name = target.name if target is not None and target.name else str(target_id)
        if target_id in stack:
            ctx.tag(tags.of_id(target_id))
            ctx.note(STEP_RULE, rule.id, label, f"jump to chain {name}, already being walked: drop")
            return ChainVerdict.DROP
        if len(stack) > MAX_JUMP_DEPTH:
            ctx.tag(tags.of_id(target_id))
            detail = f"jump to chain {name} exceeds {MAX_JUMP_DEPTH} nested jumps: drop"
            ctx.note(STEP_RULE, rule.id, label, detail)
            return ChainVerdict.DROP
        ctx.note(STEP_RULE, rule.id, label, f"jump to chain {name}")
        caller = chain.name or str(chain.id)
        return self.chain(target_id, stack, f"enter (jump from chain {caller} rule #{index})")

    def nat(self, rule: Rule, index: int) -> ChainVerdict | None:
        # imported here: nat imports ChainVerdict from this module
        from tenet.simulation.nat import apply_nat

        verdict = apply_nat(self.ctx, self.view, rule)
        if verdict is not None:
            self.ctx.note(
                STEP_RULE, rule.id, _label(rule, index), f"{rule.action}: {verdict.value}"
            )
        return verdict


def _matches(checks: tuple[Check, ...], ctx: Ctx, view: TopologyView) -> bool:
    for check in checks:  # noqa: SIM110 (the hot path: no generator)
        if not check(ctx, view):
            return False
    return True


def _label(rule: Rule, index: int) -> str:
    return f"{rule.name or rule.id} #{index}"


# -- compiled conditions ---------------------------------------------------------------


class _Plan:
    """A chain ready to walk against its view: (index, rule, checks) per rule id.

    ``rule`` is None for a rule the view lacks; ``tags`` holds every rule id, in order.
    """

    __slots__ = ("steps", "tags")

    def __init__(self, view: TopologyView, chain: Chain) -> None:
        steps: list[tuple[int, Rule | None, tuple[Check, ...]]] = []
        for index, rule_id in enumerate(chain.rule_ids, 1):
            rule = view.rules.get(rule_id)
            steps.append((index, rule, _checks(view, rule) if rule is not None else ()))
        self.steps = tuple(steps)
        self.tags = tuple(map(tags.of_id, chain.rule_ids))


PLANS: Slot[_Plan] = Slot("chain plan")
CONDITIONS: Slot[tuple[Check, ...]] = Slot("compiled rule condition")


def _plan(view: TopologyView, chain: Chain) -> _Plan:
    plan = view.memos.get(PLANS, chain.id)
    if plan is None:
        sources = (chain.id, *chain.rule_ids)  # a listed rule may come, go or change
        plan = view.memos.put(PLANS, chain.id, _Plan(view, chain), sources)
    return plan


def _checks(view: TopologyView, rule: Rule) -> tuple[Check, ...]:
    """The compiled condition of ``rule``, kept while the rule is the same."""
    checks = view.memos.get(CONDITIONS, rule.id)
    if checks is None:
        checks = view.memos.put(CONDITIONS, rule.id, compile_condition(rule.condition), (rule.id,))
    return checks


def compile_condition(c: Condition) -> tuple[Check, ...]:
    """The checks of ``c`` in evaluation order; all must pass (none: matches anything)."""
    checks: list[Check] = []
    if c.in_port_ids:
        checks.append(_in_ports(frozenset(c.in_port_ids), c.inv_in_ports))
    if c.out_port_ids:
        checks.append(_out_ports(frozenset(c.out_port_ids), c.inv_out_ports))
    if c.in_port_group_id is not None:
        checks.append(_port_group(c.in_port_group_id, c.inv_in_port_group, out=False))
    if c.out_port_group_id is not None:
        checks.append(_port_group(c.out_port_group_id, c.inv_out_port_group, out=True))
    if c.ct_state is not None:
        checks.append(_ct_state(c.ct_state, c.inv_ct_state))
    if c.eth_type is not None:
        checks.append(_equals("eth_type", c.eth_type, c.inv_eth_type))
    if c.eth_src is not None:
        checks.append(_equals("eth_src", mac_bytes(c.eth_src), c.inv_eth_src))
    if c.eth_dst is not None:
        checks.append(_equals("eth_dst", mac_bytes(c.eth_dst), c.inv_eth_dst))
    if c.nw_proto is not None:
        checks.append(_nw_proto(c.nw_proto, c.inv_nw_proto))
    if c.nw_src is not None:
        checks.append(_cidr("ip_src", c.nw_src, c.inv_nw_src))
    if c.nw_dst is not None:
        checks.append(_cidr("ip_dst", c.nw_dst, c.inv_nw_dst))
    if c.ip_addr_group_src_id is not None:
        checks.append(_ip_group("ip_src", c.ip_addr_group_src_id, c.inv_ip_addr_group_src))
    if c.ip_addr_group_dst_id is not None:
        checks.append(_ip_group("ip_dst", c.ip_addr_group_dst_id, c.inv_ip_addr_group_dst))
    if c.tp_src is not None:
        checks.append(_port_range("l4_src", c.tp_src, c.inv_tp_src))
    if c.tp_dst is not None:
        checks.append(_port_range("l4_dst", c.tp_dst, c.inv_tp_dst))
    if c.icmp_type is not None:
        checks.append(_icmp("l4_src", c.icmp_type, c.inv_icmp_type))
    if c.icmp_code is not None:
        checks.append(_icmp("l4_dst", c.icmp_code, c.inv_icmp_code))
    return tuple(checks)


def _in_ports(ids: frozenset[uuid.UUID], inv: bool) -> Check:
    def check(ctx: Ctx, view: TopologyView) -> bool:
        return (ctx.in_port_id in ids) is not inv

    return check


def _out_ports(ids: frozenset[uuid.UUID], inv: bool) -> Check:
    def check(ctx: Ctx, view: TopologyView) -> bool:
        port_id = ctx.out_port_id
        return (port_id is not None and port_id in ids) is not inv

    return check


def _port_group(group_id: uuid.UUID, inv: bool, *, out: bool) -> Check:
    """Membership is the port's ``port_group_ids`` (the group record need not be seen)."""
    group_tag = tags.of_id(group_id)

    def check(ctx: Ctx, view: TopologyView) -> bool:
        port_id = ctx.out_port_id if out else ctx.in_port_id
        ctx.tag(group_tag)
        if port_id is None:
            return inv
        ctx.tag(tags.of_id(port_id))
        port = view.ports.get(port_id)
        return (port is not None and group_id in port.port_group_ids) is not inv

    return check


def _ct_state(state: CtState, inv: bool) -> Check:
    splits = conntrack.distinguishes(state)

    def check(ctx: Ctx, view: TopologyView) -> bool:
        if splits:
            ctx.ct_split = True
        return (conntrack.ct_state(ctx) is state) is not inv

    return check


def _equals(field: BytesField | IntField, value: object, inv: bool) -> Check:
    def check(ctx: Ctx, view: TopologyView) -> bool:
        return (ctx.get(field) == value) is not inv

    return check


def _nw_proto(proto: int, inv: bool) -> Check:
    def check(ctx: Ctx, view: TopologyView) -> bool:
        hit = ctx.get("ip_proto") == proto and (proto != 0 or ctx.get("eth_type") in _IP_ETH_TYPES)
        return hit is not inv

    return check


def _network(net: IPv4Network | IPv6Network) -> tuple[int, int, int]:
    """(address length in bytes, netmask, network) as integers."""
    return (4 if net.version == 4 else 16), int(net.netmask), int(net.network_address)


def _cidr(field: BytesField, net: IPv4Network | IPv6Network, inv: bool) -> Check:
    size, mask, base = _network(net)

    def check(ctx: Ctx, view: TopologyView) -> bool:
        ip: bytes = ctx.get(field)
        hit = len(ip) == size and int.from_bytes(ip, "big") & mask == base
        return hit is not inv

    return check


def _ip_group(field: BytesField, group_id: uuid.UUID, inv: bool) -> Check:
    group_tag = tags.of_id(group_id)

    def check(ctx: Ctx, view: TopologyView) -> bool:
        ctx.tag(group_tag)
        group = view.ip_addr_groups.get(group_id)
        if group is None:
            raise _Unresolved(f"ip address group {group_id} is not in the view")
        return _group_index(view, group).contains(ctx.get(field)) is not inv

    return check


def _port_range(field: IntField, ports: PortRange, inv: bool) -> Check:
    lo, hi = ports.start, ports.end

    def check(ctx: Ctx, view: TopologyView) -> bool:
        hit = ctx.get("ip_proto") in _PORT_PROTOS and lo <= ctx.get(field) <= hi
        return hit is not inv

    return check


def _icmp(field: IntField, value: int, inv: bool) -> Check:
    def check(ctx: Ctx, view: TopologyView) -> bool:
        hit = ctx.get("ip_proto") in _ICMP_PROTOS and ctx.get(field) == value
        return hit is not inv

    return check


# -- IP address groups ----------------------------------------------------------------


class _GroupIndex:
    """An address group for membership tests: host addresses in a set, prefixes by length."""

    __slots__ = ("hosts", "prefixes")

    def __init__(self, group: IPAddrGroup) -> None:
        hosts: set[bytes] = set()
        by_mask: dict[tuple[int, int], set[int]] = {}
        for net in group.addresses:
            if net.prefixlen == net.max_prefixlen:
                hosts.add(net.network_address.packed)
            else:
                size, mask, base = _network(net)
                by_mask.setdefault((size, mask), set()).add(base)
        self.hosts = frozenset(hosts)
        self.prefixes = tuple(
            (size, mask, frozenset(bases)) for (size, mask), bases in sorted(by_mask.items())
        )

    def contains(self, ip: bytes) -> bool:
        if ip in self.hosts:
            return True
        if not self.prefixes or not ip:
            return False
        value = int.from_bytes(ip, "big")
        size = len(ip)
        return any(s == size and value & mask in bases for s, mask, bases in self.prefixes)


GROUPS: Slot[_GroupIndex] = Slot("address group index")


def _group_index(view: TopologyView, group: IPAddrGroup) -> _GroupIndex:
    index = view.memos.get(GROUPS, group.id)
    if index is None:
        index = view.memos.put(GROUPS, group.id, _GroupIndex(group), (group.id,))
    return index
