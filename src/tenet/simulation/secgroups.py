"""Security groups on an exterior port: may this packet go to or come from the VM?

:func:`allowed` is what the engine asks at an exterior port whose
``security_group_ids`` are set: for a packet entering tenet through the port
(from the VM: Neutron's **egress**), right after port security; for one leaving
through it (to the VM: **ingress**), after the port's outbound chain. The order:

1. not IP (ARP...): allowed; security groups filter IPv4 and IPv6 only;
2. a reply of a tracked connection (``ct_state`` RETURN, the conntrack seam,
   read through the rule condition :class:`~tenet.model.Condition` has for it)
   when a group of the port is ``stateful``: allowed;
3. each group's chain for the direction, in the port's order
   (:func:`~tenet.simulation.chains.run_chain`): a group rule that matches
   ACCEPTs; the chain's last rule drops what none of its rules allows. The first
   group whose chain accepts allows the packet;
4. what Neutron lets through without rules: DHCPv4 client traffic (egress
   68 -> 67, ingress 67 -> 68) and IPv6 neighbour discovery and MLD (router
   solicitations out, router advertisements in). Checked last: it reads the
   ports, and a packet the rules allow must not depend on them (its megaflow
   then holds for any port); none: dropped.

A group missing from the view allows nothing (an inconsistent view never opens a
hole). Tags: every group consulted (its ``stateful`` and chains); the chains,
rules and address groups tag themselves. Trace: a line naming the group and the
rule that decided, or the groups that allowed nothing.
"""

from __future__ import annotations

from tenet.model import Condition, CtState, Direction, Port
from tenet.packets import ETH_TYPE_IPV4, ETH_TYPE_IPV6
from tenet.simulation import tags
from tenet.simulation.chains import ChainVerdict, compile_condition, run_chain
from tenet.simulation.context import Ctx
from tenet.simulation.result import STEP_PORT, STEP_RULE
from tenet.simulation.view import TopologyView

IPPROTO_UDP = 17
IPPROTO_ICMPV6 = 58
DHCP_CLIENT, DHCP_SERVER = 68, 67
# ICMPv6 types a port sends and receives without a rule (Neutron's firewall drivers):
# MLD query/report/done (130-132, 143), neighbour solicitation and advertisement
_ND_BOTH = frozenset({130, 131, 132, 135, 136, 143})
_ND = {
    Direction.EGRESS: _ND_BOTH | {133},  # router solicitation (a VM sends no RA)
    Direction.INGRESS: _ND_BOTH | {134},  # router advertisement
}
_REPLY = compile_condition(Condition(ct_state=CtState.RETURN))


def allowed(ctx: Ctx, view: TopologyView, port: Port, direction: Direction) -> bool:
    """Whether ``port``'s security groups let the packet in ``ctx`` go ``direction``."""
    label = port.name or str(port.id)
    eth_type = ctx.get("eth_type")
    if eth_type not in (ETH_TYPE_IPV4, ETH_TYPE_IPV6):
        return True
    groups = []
    for group_id in port.security_group_ids:
        ctx.tag(tags.of_id(group_id))
        group = view.security_groups.get(group_id)
        if group is None:
            ctx.note(STEP_PORT, port.id, label, f"security group {group_id} is not in the view")
            continue
        groups.append(group)
    if any(g.stateful for g in groups) and all(check(ctx, view) for check in _REPLY):
        detail = f"security groups: {direction} reply of a tracked connection: allowed"
        ctx.note(STEP_PORT, port.id, label, detail)
        return True
    for group in groups:
        name = group.name or str(group.id)
        start = len(ctx.trace)
        chain_id = group.chain_for(direction)
        if chain_id is None:
            continue
        verdict = run_chain(ctx, view, chain_id, f"security group {name} {direction}")
        if verdict is ChainVerdict.ACCEPT:
            ctx.note(
                STEP_PORT,
                port.id,
                label,
                f"security group {name}: {direction} allowed by {_decider(ctx, start)}",
            )
            return True
    # last, so that what a rule allows does not depend on the ports this reads (its
    # megaflow then holds for any port)
    free = _without_rules(ctx, eth_type, direction)
    if free:
        ctx.note(STEP_PORT, port.id, label, f"security groups: {direction} {free}: allowed")
        return True
    names = ", ".join(g.name or str(g.id) for g in groups) or "none in the view"
    detail = f"security groups ({names}): no rule allows this {direction} packet: drop"
    ctx.note(STEP_PORT, port.id, label, detail)
    return False


def _without_rules(ctx: Ctx, eth_type: int, direction: Direction) -> str | None:
    """What Neutron lets through whatever the rules say, or None."""
    proto = ctx.get("ip_proto")
    if eth_type == ETH_TYPE_IPV4 and proto == IPPROTO_UDP:
        src, dst = ctx.get("l4_src"), ctx.get("l4_dst")
        client = (
            (DHCP_CLIENT, DHCP_SERVER)
            if direction is Direction.EGRESS
            else (DHCP_SERVER, DHCP_CLIENT)
        )
        if (src, dst) == client:
            return "DHCP"
    elif (
        eth_type == ETH_TYPE_IPV6
        and proto == IPPROTO_ICMPV6
        and ctx.get("l4_src") in _ND[direction]
    ):
        return "neighbour discovery"  # l4_src: the ICMPv6 type
    return None


def _decider(ctx: Ctx, start: int) -> str:
    """The rule that accepted, from the trace lines the chain walk left."""
    for step in reversed(ctx.trace[start:]):
        if step.kind is STEP_RULE and step.detail == "accept":
            return f"rule {step.name} ({step.ident})"
    return "the end of its chain"
