"""The simulation's entry points: a packet's whole trip through the virtual topology.

``simulate(frame, in_port_id, view, state, now)`` walks a frame that entered an
exterior port of this host; ``simulate_emit(emit, ...)`` walks a generated frame
that leaves a device through one of its ports. Both return one
:class:`~tenet.simulation.result.SimulationResult` and never raise for bad input:
a malformed frame, an unknown port or a loop end in DROP with a trace line.

The walk, per device hop (at most ``MAX_DEVICE_HOPS``)::

    ingress port: admin state, port security and security groups (exterior), inbound chain
    device: bridge.process / router.process -> Forward(ports) | Drop | Consumed | Reject | Wait
    each egress port: outbound chain; interior -> the peer port's device;
        exterior -> security groups, output

All header rewrites are decided along the way in the context and turned into
datapath actions once, at the end: the difference between the frame as it
entered and as it leaves, then one output per exterior egress port (a local
port, or a tunnel to the host that owns it, keyed by the port's tunnel key).
"""

from __future__ import annotations

import uuid
from ipaddress import IPv4Address, ip_address

from tenet.errors import PacketError
from tenet.model import DeviceType, Direction, IPAddress, Port
from tenet.packets import ETH_TYPE_ARP, ETH_TYPE_IPV4, ICMP, extract_match
from tenet.packets.actions import (
    DecTtl,
    OutputLocal,
    OutputTunnel,
    SetEthDst,
    SetEthSrc,
    SetIpDst,
    SetIpSrc,
    SetL4Dst,
    SetL4Src,
    SimAction,
)
from tenet.packets.ipv4 import IPPROTO_TCP
from tenet.simulation import bridge, conntrack, replies, router, secgroups, tags
from tenet.simulation.chains import ChainVerdict, run_chain
from tenet.simulation.context import MAX_DEVICE_HOPS, Ctx
from tenet.simulation.decision import Consumed, Decision, Drop, Forward, Reject, Wait, from_chain
from tenet.simulation.portsec import allowed
from tenet.simulation.result import (
    STEP_PORT,
    STEP_VERDICT,
    Emit,
    SimulationResult,
    TraceStep,
    Verdict,
)
from tenet.simulation.state import StateView
from tenet.simulation.view import TopologyView, mac_bytes


def simulate(
    frame: bytes, in_port_id: uuid.UUID, view: TopologyView, state: StateView, now: float
) -> SimulationResult:
    """The outcome for ``frame``, entering exterior port ``in_port_id`` on this host."""
    try:
        match = extract_match(frame, 0)
    except PacketError as exc:
        step = TraceStep(STEP_VERDICT, None, "", f"malformed frame: {exc}: drop")
        return SimulationResult(Verdict.DROP, trace=(step,))
    ctx = Ctx(match, frame, in_port_id, now, state)
    port = view.ports.get(in_port_id)
    if port is None:
        ctx.tag(tags.of_id(in_port_id))
        ctx.note(STEP_PORT, in_port_id, "", "unknown port: drop")
        return _finish(ctx, view, Drop("unknown port"), ())
    ctx.ingress_device = port.device_id
    decision = _enter(ctx, view, state, port)
    return _finish(ctx, view, decision, (port.id,))


def simulate_emit(emit: Emit, view: TopologyView, state: StateView, now: float) -> SimulationResult:
    """The outcome for a generated frame leaving its device through ``emit.port_id``."""
    try:
        match = extract_match(emit.frame, 0)
    except PacketError as exc:
        step = TraceStep(STEP_VERDICT, None, "", f"malformed generated frame: {exc}: drop")
        return SimulationResult(Verdict.DROP, trace=(step,))
    ctx = Ctx(match, emit.frame, emit.port_id, now, state, generated=True)
    port = view.ports.get(emit.port_id)
    if port is None:
        ctx.tag(tags.of_id(emit.port_id))
        ctx.note(STEP_PORT, emit.port_id, "", "unknown port: drop")
        return _finish(ctx, view, Drop("unknown port"), ())
    ctx.note(STEP_PORT, port.id, port.name, "generated frame leaves the device here")
    return _finish(ctx, view, _leave(ctx, view, state, (port,)), ())


def _enter(ctx: Ctx, view: TopologyView, state: StateView, port: Port) -> Decision:
    """The packet enters ``port``'s device through ``port``."""
    ctx.hops += 1
    ctx.tag(tags.of_id(port.id))
    label = port.name or str(port.id)
    if ctx.hops > MAX_DEVICE_HOPS:
        ctx.note(STEP_PORT, port.id, label, f"more than {MAX_DEVICE_HOPS} device hops: loop, drop")
        return Drop("loop")
    ctx.note(STEP_PORT, port.id, label, "ingress")
    if not port.admin_state_up:
        ctx.note(STEP_PORT, port.id, label, "administratively down: drop")
        return Drop("port down")
    if not port.interior and port.port_security:
        problem = allowed(ctx, port)
        if problem:
            ctx.note(STEP_PORT, port.id, label, f"port security: {problem}: drop")
            return Drop("port security")
    ctx.in_port_id, ctx.out_port_id = port.id, None
    # from the VM: its security groups' egress rules
    egress = Direction.EGRESS
    if (
        not port.interior
        and port.security_group_ids
        and not secgroups.allowed(ctx, view, port, egress)
    ):
        return Drop("security group")
    verdict = run_chain(ctx, view, port.inbound_chain_id, f"port {label} inbound")
    if verdict is not ChainVerdict.ACCEPT:
        return from_chain(verdict, f"port {label} inbound chain")
    if port.device_type is DeviceType.BRIDGE:
        device = view.bridges.get(port.device_id)
        decision = bridge.process(ctx, view, state, device, port) if device else None
    else:
        rdevice = view.routers.get(port.device_id)
        decision = router.process(ctx, view, state, rdevice, port) if rdevice else None
    if decision is None:
        ctx.tag(tags.of_id(port.device_id))
        ctx.note(STEP_PORT, port.id, label, f"device {port.device_id} is not in the view: drop")
        return Drop("device missing")
    if isinstance(decision, Forward):
        return _leave(ctx, view, state, decision.ports)
    return decision


def _leave(ctx: Ctx, view: TopologyView, state: StateView, ports: tuple[Port, ...]) -> Decision:
    """The packet leaves its device through ``ports``: outbound chains, then peers."""
    exterior: list[Port] = []
    last: Decision = Drop("no egress port")
    for port in ports:
        ctx.tag(tags.of_id(port.id))
        label = port.name or str(port.id)
        ctx.out_port_id = port.id
        verdict = run_chain(ctx, view, port.outbound_chain_id, f"port {label} outbound")
        if verdict is not ChainVerdict.ACCEPT:
            last = from_chain(verdict, f"port {label} outbound chain")
            continue
        if not port.admin_state_up:
            ctx.note(STEP_PORT, port.id, label, "administratively down: not sent")
            continue
        peer = view.peer(port)
        if peer is None:
            # to the VM: its security groups' ingress rules
            if port.security_group_ids and not secgroups.allowed(
                ctx, view, port, Direction.INGRESS
            ):
                last = Drop("security group")
                continue
            exterior.append(port)
            continue
        if len(ports) > 1 and peer.device_type is DeviceType.ROUTER:
            if ctx.get("eth_type") == ETH_TYPE_ARP:
                _flood_to_router(ctx, view, state, peer)
            continue  # routers do not forward L2 floods
        last = _enter(ctx, view, state, peer)
        if isinstance(last, Forward):
            exterior.extend(last.ports)
    if exterior:
        return Forward(tuple(exterior))
    if len(ports) > 1 and ctx.emit:
        return Consumed("flood answered by a router")
    return last


def _flood_to_router(ctx: Ctx, view: TopologyView, state: StateView, peer: Port) -> None:
    """A flooded ARP reaches a router port: the router may answer or learn."""
    device = view.routers.get(peer.device_id)
    if device is not None and peer.address is not None:
        ctx.tag(tags.of_id(peer.id), tags.of_id(device.id))
        ctx.note(STEP_PORT, peer.id, peer.name or str(peer.id), "ingress (flooded ARP)")
        saved = ctx.in_port_id
        ctx.in_port_id = peer.id
        router.process(ctx, view, state, device, peer)
        ctx.in_port_id = saved


def _finish(
    ctx: Ctx, view: TopologyView, decision: Decision, ingress: tuple[uuid.UUID, ...]
) -> SimulationResult:
    rejected = isinstance(decision, Reject)
    if isinstance(decision, Reject):
        _reject(ctx, view, ingress)
        decision = Consumed(decision.reason)
    outputs: list[SimAction] = []
    if isinstance(decision, Forward):
        outputs = _outputs(ctx, view, decision.ports, ingress)
        if not outputs:
            decision = Drop("no reachable egress port")
    if isinstance(decision, Forward):
        verdict = Verdict.FORWARD
        ctx.note(STEP_VERDICT, None, "", f"forward to {len(outputs)} port(s)")
    elif isinstance(decision, Consumed):
        verdict = Verdict.CONSUMED
        ctx.note(STEP_VERDICT, None, "", f"consumed: {decision.reason}")
    elif isinstance(decision, Wait):
        verdict = Verdict.WAIT
        ctx.note(STEP_VERDICT, None, "", f"wait: {decision.reason}")
    else:
        verdict = Verdict.DROP
        ctx.note(STEP_VERDICT, None, "", f"drop: {decision.reason}")
    ct = None
    if ctx.ct is not None:
        egress = decision.ports if isinstance(decision, Forward) else ()
        egress = tuple(p for p in egress if p.id not in ingress)
        hosts = {a.host_id for a in outputs if isinstance(a, OutputTunnel)}
        ct_verdict = Verdict.DROP if rejected else verdict
        ct = conntrack.outcome(ctx, view, egress, ct_verdict, hosts)
    return SimulationResult(
        verdict,
        actions=(*_rewrites(ctx), *outputs) if verdict is Verdict.FORWARD else (),
        match_fields=frozenset(ctx.read),
        ttl_above=ctx.ttl_above,
        tags=ctx.tags,
        emit=tuple(ctx.emit),
        state=tuple(ctx.state),
        trace=tuple(ctx.trace),
        waiting_for=(decision.router_id, decision.ip) if isinstance(decision, Wait) else None,
        ct=ct,
    )


def _rewrites(ctx: Ctx) -> list[SimAction]:
    out: list[SimAction] = []
    cur = ctx.current
    if "eth_src" in cur:
        out.append(SetEthSrc(cur["eth_src"]))
    if "eth_dst" in cur:
        out.append(SetEthDst(cur["eth_dst"]))
    if "ip_src" in cur:
        out.append(SetIpSrc(_ip(cur["ip_src"])))
    if "ip_dst" in cur:
        out.append(SetIpDst(_ip(cur["ip_dst"])))
    if "l4_src" in cur:
        out.append(SetL4Src(cur["l4_src"]))
    if "l4_dst" in cur:
        out.append(SetL4Dst(cur["l4_dst"]))
    if ctx.routers_crossed:
        out.append(DecTtl(ctx.routers_crossed))
    return out


def _ip(raw: bytes) -> IPAddress:
    return ip_address(raw)


def _outputs(
    ctx: Ctx, view: TopologyView, ports: tuple[Port, ...], ingress: tuple[uuid.UUID, ...]
) -> list[SimAction]:
    outputs: list[SimAction] = []
    seen: set[uuid.UUID] = set()
    for port in ports:
        if port.id in ingress or port.id in seen:
            continue
        seen.add(port.id)
        label = port.name or str(port.id)
        ctx.tag(tags.binding(port.id))
        host = view.port_host(port.id)
        if host is None:
            ctx.note(STEP_PORT, port.id, label, "not bound to any host: not sent")
        elif host == view.local_host_id:
            outputs.append(OutputLocal(port.id))
            ctx.note(STEP_PORT, port.id, label, "egress: local interface")
        elif (address := view.host_addresses.get(host)) is not None:
            ctx.tag(tags.of_id(host))
            outputs.append(OutputTunnel(port.id, host, address, port.tunnel_key))
            ctx.note(
                STEP_PORT,
                port.id,
                label,
                f"egress: tunnel to host {host} at {address}, key {port.tunnel_key}",
            )
        else:
            ctx.tag(tags.of_id(host))
            ctx.note(STEP_PORT, port.id, label, f"host {host} has no tunnel address: not sent")
    return outputs


def _reject(ctx: Ctx, view: TopologyView, ingress: tuple[uuid.UUID, ...]) -> None:
    """Answer a rejected packet toward its sender: a TCP RST or ICMP prohibited."""
    match = ctx.match
    if ctx.get("eth_type") != ETH_TYPE_IPV4:
        ctx.note(STEP_VERDICT, None, "", "reject: no answer for a non-IPv4 packet (yet)")
        return
    # whether an answer goes out depends on these: never a RST to a RST, never ICMP
    # about a fragment, an ICMP error or from a multicast or unspecified source
    proto = ctx.get("ip_proto")
    if proto == IPPROTO_TCP:
        ctx.get("tcp_flags")
    else:
        ctx.get("ip_src"), ctx.get("ip_frag"), ctx.get("l4_src")
    back_to = ctx.in_port_id
    # to the previous hop as the packet is now: its source MAC may be a router's
    src = ctx.current.get("eth_dst", match.eth_dst)
    dst = ctx.current.get("eth_src", match.eth_src)
    port = view.ports.get(back_to)
    if port is not None and port.mac is not None and port.device_type is DeviceType.ROUTER:
        src = mac_bytes(port.mac)
    if proto == IPPROTO_TCP:
        frame = replies.tcp_reset(ctx.frame, src, dst)
        what = "TCP RST"
    else:
        icmp = ICMP.dest_unreachable(replies.ICMP_ADMIN_PROHIBITED)
        frame = replies.icmp_error(ctx.frame, icmp, IPv4Address(match.ip_dst), src, dst)
        what = "ICMP administratively prohibited"
    if frame is None:
        return
    from_device = back_to not in ingress
    ctx.emit.append(Emit(back_to, frame, from_device=from_device))
    ctx.note(STEP_VERDICT, None, "", f"reject: {what} sent back")
