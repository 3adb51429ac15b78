"""The virtual bridge: MAC learning, unicast, flooding, and ARP answered locally.

A frame entering bridge B by port P:

1. B's inbound chain runs;
2. the source MAC, if unicast and not already known on P, is learned
   (``MacLearned`` state; tagged with the learned entry, ``tags.mac(B, mac)``);
3. an ARP request whose target address B knows (``view.known_ips``: static
   entries, VM ports' addresses, router ports peered to B) is answered out of P,
   and nothing is flooded;
4. a unicast destination is looked up: configured MACs (``view.known_macs``) first,
   then learned ones (``state.mac_port``); found on P: dropped (hairpin); found
   elsewhere: forwarded there; not found: flooded. Broadcast and multicast are
   flooded to every other port;
5. B's outbound chain runs before the frame leaves.

Every MAC looked up is tagged (``tags.mac(B, mac)``), found or not, so learning
it later invalidates the flood flow.
"""

from __future__ import annotations

from ipaddress import IPv4Address

from tenet.model import Bridge, Port
from tenet.packets import ETH_TYPE_ARP, mac_to_str
from tenet.packets.arp import ARP_REQUEST
from tenet.simulation import tags
from tenet.simulation.chains import ChainVerdict, run_chain
from tenet.simulation.context import Ctx
from tenet.simulation.decision import Consumed, Decision, Drop, Forward, from_chain
from tenet.simulation.replies import arp_reply
from tenet.simulation.result import STEP_BRIDGE, Emit, MacLearned
from tenet.simulation.state import StateView
from tenet.simulation.view import TopologyView


def process(ctx: Ctx, view: TopologyView, state: StateView, bridge: Bridge, port: Port) -> Decision:
    ctx.tag(tags.of_id(bridge.id))
    label = bridge.name or str(bridge.id)
    if not bridge.admin_state_up:
        ctx.note(STEP_BRIDGE, bridge.id, label, "administratively down: drop")
        return Drop("bridge down")
    verdict = run_chain(ctx, view, bridge.inbound_chain_id, f"bridge {label} inbound")
    if verdict is not ChainVerdict.ACCEPT:
        return from_chain(verdict, f"bridge {label} inbound chain")
    _learn(ctx, state, bridge, port)
    if ctx.get("eth_type") == ETH_TYPE_ARP and ctx.get("arp_op") == ARP_REQUEST:
        answered = _answer_arp(ctx, view, bridge, port)
        if answered is not None:
            return answered
    dst = ctx.get("eth_dst")
    if dst[0] & 1:
        return _flood(ctx, view, bridge, port, "broadcast" if dst == b"\xff" * 6 else "multicast")
    ctx.tag(tags.mac(bridge.id, dst))
    out_id = view.known_macs.get(bridge.id, {}).get(dst) or state.mac_port(bridge.id, dst)
    out = view.ports.get(out_id) if out_id is not None else None
    if out is None or out.device_id != bridge.id:
        return _flood(ctx, view, bridge, port, f"unknown unicast {mac_to_str(dst)}")
    if out.id == port.id:
        ctx.note(
            STEP_BRIDGE, bridge.id, label, f"{mac_to_str(dst)} is behind the ingress port: drop"
        )
        return Drop("hairpin")
    ctx.tag(tags.of_id(out.id))
    ctx.note(
        STEP_BRIDGE, bridge.id, label, f"{mac_to_str(dst)} is behind port {out.name or out.id}"
    )
    return _egress(ctx, view, bridge, (out,))


def _learn(ctx: Ctx, state: StateView, bridge: Bridge, port: Port) -> None:
    src = ctx.get("eth_src")
    if src[0] & 1:
        return
    ctx.tag(tags.mac(bridge.id, src))
    if state.mac_port(bridge.id, src) != port.id:
        ctx.state.append(MacLearned(bridge.id, src, port.id, ctx.now))


def _answer_arp(ctx: Ctx, view: TopologyView, bridge: Bridge, port: Port) -> Decision | None:
    target = IPv4Address(ctx.get("arp_tpa"))
    mac = view.known_ips.get(bridge.id, {}).get(target)
    if mac is None:
        return None
    label = bridge.name or str(bridge.id)
    ctx.note(STEP_BRIDGE, bridge.id, label, f"ARP: {target} is at {mac_to_str(mac)} (answered)")
    ctx.emit.append(Emit(port.id, arp_reply(ctx.match, mac), from_device=port.interior))
    return Consumed("ARP answered by the bridge")


def _flood(ctx: Ctx, view: TopologyView, bridge: Bridge, port: Port, why: str) -> Decision:
    ports = tuple(p for p in view.device_ports.get(bridge.id, ()) if p.id != port.id)
    label = bridge.name or str(bridge.id)
    ctx.note(STEP_BRIDGE, bridge.id, label, f"{why}: flood to {len(ports)} ports")
    return _egress(ctx, view, bridge, ports)


def _egress(ctx: Ctx, view: TopologyView, bridge: Bridge, ports: tuple[Port, ...]) -> Decision:
    if bridge.outbound_chain_id is None:
        return Forward(ports)
    kept = []
    label = bridge.name or str(bridge.id)
    for out in ports:
        ctx.out_port_id = out.id
        verdict = run_chain(ctx, view, bridge.outbound_chain_id, f"bridge {label} outbound")
        if verdict is ChainVerdict.ACCEPT:
            kept.append(out)
    ctx.out_port_id = None
    if not kept:
        return Drop("bridge outbound chain")
    return Forward(tuple(kept))
