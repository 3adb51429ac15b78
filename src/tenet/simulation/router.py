"""The virtual router: ARP for its ports, local delivery, TTL, routing, next-hop MACs.

A frame entering router R by port P:

* ARP: a request for P's address is answered; a reply or request addressed to R
  teaches R the sender's MAC (``ArpLearned``); other ARP is dropped;
* other frames must be addressed to P's MAC; IPv4 and IPv6 are routed, the rest
  dropped. R's inbound chain runs first;
* a packet to one of R's own addresses: an ICMP echo request is answered, UDP gets
  port unreachable, anything else is dropped;
* TTL (hop limit) 1 or less: ICMP time exceeded to the sender;
* the route: longest destination prefix, then longest source prefix, then lowest
  weight; equal candidates form an ECMP group chosen by a stable hash of the
  5-tuple (crc32, the same in every process). Each port's subnet is an implicit
  route out of that port. No route: ICMP net unreachable; blackhole: drop;
  reject: ICMP administratively prohibited;
* the next-hop MAC: a peer router port's MAC, else a MAC the next bridge knows
  for the next hop (configured), else one R learned; else R sends an ARP request
  and the packet waits;
* R's outbound chain runs, the Ethernet addresses are rewritten and the TTL
  decrement counted; the packet leaves by the route's port.

Tags: R, the ingress port, and, for a routed or locally delivered IP packet, the
lookup of its destination at R (:func:`~tenet.simulation.tags.route_lookup`: a
route or port address added, changed or removed under a prefix holding it
invalidates it) plus the id of every member of the ECMP group chosen from (a
member removed changes the hash pick; a connected route's id is its port's), the
egress port, its peer, and the ARP entry looked up.

R's candidates (routes and connected routes, per IP version) are a memo of the
view filed under R, dropped when R, one of its routes or one of its ports changes.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Network, ip_address
from uuid import UUID

from tenet.model import IPAddress, IPNetwork, Port, Router, RouteType
from tenet.packets import ETH_TYPE_ARP, ETH_TYPE_IPV4, ETH_TYPE_IPV6, ICMP, ICMPv6, mac_to_str
from tenet.packets.arp import ARP_REPLY, ARP_REQUEST
from tenet.packets.icmpv6 import ICMPV6_ECHO_REQUEST
from tenet.packets.ipv4 import IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_UDP
from tenet.simulation import replies, tags
from tenet.simulation.chains import ChainVerdict, run_chain
from tenet.simulation.context import Ctx
from tenet.simulation.decision import Consumed, Decision, Drop, Forward, Wait, from_chain
from tenet.simulation.memo import Slot
from tenet.simulation.result import STEP_PORT, STEP_ROUTER, ArpLearned, Emit
from tenet.simulation.state import StateView
from tenet.simulation.tags import Tag
from tenet.simulation.view import TopologyView, mac_bytes

ICMP_ECHO_REQUEST = 8
_PORTS = struct.Struct("!BHH")
ANY4 = IPv4Network("0.0.0.0/0")
ANY6 = IPv6Network("::/0")


@dataclass(frozen=True, slots=True)
class Candidate:
    dst: IPNetwork
    src: IPNetwork
    weight: int
    type: RouteType
    port_id: UUID | None
    gateway: IPAddress | None
    tag: Tag  # the route's id, or the port's for a connected route; orders ECMP
    label: str


CANDIDATES: Slot[list[Candidate]] = Slot("router candidates")


def process(ctx: Ctx, view: TopologyView, state: StateView, router: Router, port: Port) -> Decision:
    ctx.tag(tags.of_id(router.id))
    label = router.name or str(router.id)
    if not router.admin_state_up:
        ctx.note(STEP_ROUTER, router.id, label, "administratively down: drop")
        return Drop("router down")
    eth_type = ctx.get("eth_type")
    if eth_type == ETH_TYPE_ARP:
        return _arp(ctx, router, port)
    assert port.mac is not None
    if ctx.get("eth_dst") != mac_bytes(port.mac):
        ctx.note(STEP_ROUTER, router.id, label, "frame not addressed to the router port: drop")
        return Drop("not for the router")
    if eth_type not in (ETH_TYPE_IPV4, ETH_TYPE_IPV6):
        ctx.note(STEP_ROUTER, router.id, label, f"ethertype {eth_type:#06x} is not routed: drop")
        return Drop("not IP")
    verdict = run_chain(ctx, view, router.inbound_chain_id, f"router {label} inbound")
    if verdict is not ChainVerdict.ACCEPT:
        return from_chain(verdict, f"router {label} inbound chain")
    raw_dst = ctx.get("ip_dst")
    dst = ip_address(raw_dst)
    # whether dst is R's own or which route it takes: a change of either under a
    # prefix holding dst invalidates this
    ctx.tag(tags.route_lookup(router.id, raw_dst))
    own = [p for p in view.device_ports.get(router.id, ()) if p.address == dst]
    if own:
        return _local(ctx, view, router, port, own[0])
    if ctx.ttl_expires():
        ttl = ctx.get("ip_ttl") - ctx.routers_crossed
        ctx.note(STEP_ROUTER, router.id, label, f"TTL {ttl} expires here: ICMP time exceeded")
        _icmp_error(ctx, view, port, "time-exceeded")
        return Consumed("TTL expired")
    return _route(ctx, view, state, router, port, dst)


def _arp(ctx: Ctx, router: Router, port: Port) -> Decision:
    label = router.name or str(router.id)
    op = ctx.get("arp_op")
    target = IPv4Address(ctx.get("arp_tpa"))
    sender = IPv4Address(ctx.get("arp_spa"))
    if port.address != target or port.mac is None:
        ctx.note(STEP_ROUTER, router.id, label, f"ARP for {target}, not port {port.address}: drop")
        return Drop("ARP not for the router")
    sha = ctx.get("arp_sha")
    if port.subnet is not None and sender in port.subnet:
        ctx.state.append(ArpLearned(router.id, sender, sha, ctx.now))
    if op == ARP_REQUEST:
        ctx.note(STEP_ROUTER, router.id, label, f"ARP: {target} is at {port.mac} (answered)")
        ctx.emit.append(Emit(port.id, replies.arp_reply(ctx.match, mac_bytes(port.mac)), True))
        return Consumed("ARP answered by the router")
    if op == ARP_REPLY:
        ctx.note(STEP_ROUTER, router.id, label, f"ARP: learned {sender} at {mac_to_str(sha)}")
        return Consumed("ARP reply learned")
    return Drop("ARP operation")


def _local(ctx: Ctx, view: TopologyView, router: Router, port: Port, own: Port) -> Decision:
    label = router.name or str(router.id)
    proto = ctx.get("ip_proto")
    assert port.mac is not None
    if proto == IPPROTO_ICMPV6 and ctx.get("l4_src") == ICMPV6_ECHO_REQUEST:
        frame6 = replies.echo6_reply(ctx.frame, mac_bytes(port.mac), _back_mac(ctx))
        if frame6 is not None:
            ctx.emit.append(Emit(port.id, frame6, from_device=True))
            ctx.note(STEP_ROUTER, router.id, label, f"echo request to {own.address}: echo reply")
            return Consumed("echo reply")
    is_v4_icmp = ctx.get("eth_type") == ETH_TYPE_IPV4 and proto == IPPROTO_ICMP
    if is_v4_icmp and ctx.get("l4_src") == ICMP_ECHO_REQUEST:
        frame = replies.echo_reply(ctx.frame, ctx.match, mac_bytes(port.mac), _back_mac(ctx))
        ctx.emit.append(Emit(port.id, frame, from_device=True))
        ctx.note(STEP_ROUTER, router.id, label, f"echo request to {own.address}: echo reply")
        return Consumed("echo reply")
    if proto == IPPROTO_UDP:
        ctx.note(STEP_ROUTER, router.id, label, f"UDP to {own.address}: ICMP port unreachable")
        _icmp_error(ctx, view, port, "port-unreachable")
        return Consumed("port unreachable")
    ctx.note(STEP_ROUTER, router.id, label, f"protocol {proto} to {own.address}: drop")
    return Drop("to the router")


def _back_mac(ctx: Ctx) -> bytes:
    """The MAC a reply to the current packet goes to: its current source."""
    src: bytes = ctx.get("eth_src")
    return src


# ICMP errors by kind: (ICMPv4 type, code), (ICMPv6 type, code)
ERRORS = {
    "time-exceeded": ((11, 0), (3, 0)),
    "net-unreachable": ((3, replies.ICMP_NET_UNREACHABLE), (1, 0)),
    "host-unreachable": ((3, replies.ICMP_HOST_UNREACHABLE), (1, 3)),
    "admin-prohibited": ((3, replies.ICMP_ADMIN_PROHIBITED), (1, 1)),
    "port-unreachable": ((3, replies.ICMP_PORT_UNREACHABLE), (1, 4)),
}


def _icmp_error(ctx: Ctx, view: TopologyView, port: Port, kind: str) -> None:
    """Send the ICMP (or ICMPv6) error ``kind`` about the current packet to its sender."""
    if port.mac is None:
        return
    v4, v6 = ERRORS[kind]
    version = 4 if ctx.get("eth_type") == ETH_TYPE_IPV4 else 6
    # whether an error is sent at all depends on the sender's address (never to a
    # multicast or unspecified one) and on the packet not being an ICMP error itself
    for name in ("ip_src", "ip_proto", "l4_src"):
        ctx.get(name)
    source = _source_address(view, port, version)
    if source is None:
        ctx.note(STEP_PORT, port.id, port.name, f"no IPv{version} address to send {kind} from")
        return
    if isinstance(source, IPv4Address):
        icmp = ICMP(*v4)
        frame = replies.icmp_error(ctx.frame, icmp, source, mac_bytes(port.mac), _back_mac(ctx))
    else:
        frame = replies.icmpv6_error(
            ctx.frame, ICMPv6(*v6), source, mac_bytes(port.mac), _back_mac(ctx)
        )
    if frame is not None:
        ctx.emit.append(Emit(port.id, frame, from_device=True))


def _source_address(view: TopologyView, port: Port, version: int) -> IPAddress | None:
    """The port's address if of ``version``, else the router's first such address."""
    if port.address is not None and port.address.version == version:
        return port.address
    for other in view.device_ports.get(port.device_id, ()):
        if other.address is not None and other.address.version == version:
            return other.address
    return None


def candidates(view: TopologyView, router: Router, version: int) -> list[Candidate]:
    """The router's routes of one IP version, with a connected route per port subnet."""
    key = (router.id, version)
    cached = view.memos.get(CANDIDATES, key)
    if cached is None:  # filed under R: its routes and ports are its children
        cached = view.memos.put(CANDIDATES, key, _candidates(view, router, version), (router.id,))
    return cached


def _candidates(view: TopologyView, router: Router, version: int) -> list[Candidate]:
    out = []
    for route in view.routes.get(router.id, ()):
        if route.dst.version != version:
            continue
        out.append(
            Candidate(
                route.dst,
                route.src_network,
                route.weight,
                route.type,
                route.next_hop_port_id,
                route.next_hop_gateway,
                tags.of_id(route.id),
                f"route {route.name or route.id} {route.dst}",
            )
        )
    for port in view.device_ports.get(router.id, ()):
        if port.subnet is not None and port.subnet.version == version and port.admin_state_up:
            any_src = ANY4 if version == 4 else ANY6
            out.append(
                Candidate(
                    port.subnet,
                    any_src,
                    0,
                    RouteType.NORMAL,
                    port.id,
                    None,
                    tags.of_id(port.id),
                    f"connected {port.subnet} via port {port.name or port.id}",
                )
            )
    return out


def lookup(ctx: Ctx, view: TopologyView, router: Router, dst: IPAddress) -> list[Candidate]:
    """The best-matching routes (an ECMP group; empty when nothing matches)."""
    src_raw = ctx.get("ip_src")
    src = ip_address(src_raw)
    matching = [c for c in candidates(view, router, dst.version) if dst in c.dst and src in c.src]
    if not matching:
        return []
    best = max((c.dst.prefixlen, c.src.prefixlen, -c.weight) for c in matching)
    group = [c for c in matching if (c.dst.prefixlen, c.src.prefixlen, -c.weight) == best]
    return sorted(group, key=lambda c: c.tag)


def ecmp_pick(ctx: Ctx, group: list[Candidate]) -> Candidate:
    if len(group) == 1:
        return group[0]
    ports = _PORTS.pack(ctx.get("ip_proto"), ctx.get("l4_src"), ctx.get("l4_dst"))
    digest = zlib.crc32(ctx.get("ip_src") + ctx.get("ip_dst") + ports)
    return group[digest % len(group)]


def _route(
    ctx: Ctx, view: TopologyView, state: StateView, router: Router, port: Port, dst: IPAddress
) -> Decision:
    label = router.name or str(router.id)
    group = lookup(ctx, view, router, dst)
    if not group:
        ctx.note(STEP_ROUTER, router.id, label, f"no route to {dst}: ICMP net unreachable")
        _icmp_error(ctx, view, port, "net-unreachable")
        return Consumed("no route")
    route = ecmp_pick(ctx, group)
    ctx.tag(*[c.tag for c in group])  # every member: one removed changes the pick
    ecmp = f" (ECMP {group.index(route) + 1} of {len(group)})" if len(group) > 1 else ""
    if route.type is RouteType.BLACKHOLE:
        ctx.note(STEP_ROUTER, router.id, label, f"{route.label}: blackhole, drop{ecmp}")
        return Drop("blackhole route")
    if route.type is not RouteType.NORMAL or route.port_id is None:
        ctx.note(STEP_ROUTER, router.id, label, f"{route.label}: reject, ICMP prohibited{ecmp}")
        _icmp_error(ctx, view, port, "admin-prohibited")
        return Consumed("reject route")
    out = view.ports.get(route.port_id)
    if out is None or out.mac is None:
        missing = f"{route.label}: port {route.port_id} not in the view: drop"
        ctx.note(STEP_ROUTER, router.id, label, missing)
        return Drop("next-hop port missing")
    ctx.tag(tags.of_id(out.id))
    next_hop = route.gateway or dst
    ctx.note(
        STEP_ROUTER,
        router.id,
        label,
        f"{route.label} -> port {out.name or out.id}, next hop {next_hop}{ecmp}",
    )
    ctx.out_port_id = out.id
    verdict = run_chain(ctx, view, router.outbound_chain_id, f"router {label} outbound")
    if verdict is not ChainVerdict.ACCEPT:
        return from_chain(verdict, f"router {label} outbound chain")
    mac = _next_hop_mac(ctx, view, state, router, out, next_hop)
    if mac is None and state.arp_failed(router.id, next_hop):
        ctx.note(
            STEP_ROUTER,
            router.id,
            label,
            f"next hop {next_hop} does not answer ARP: ICMP host unreachable",
        )
        _icmp_error(ctx, view, port, "host-unreachable")
        return Consumed("host unreachable")
    if mac is None:
        return _resolve(ctx, router, out, next_hop)
    ctx.set("eth_src", mac_bytes(out.mac))
    ctx.set("eth_dst", mac)
    ctx.routers_crossed += 1
    return Forward((out,))


def _next_hop_mac(
    ctx: Ctx, view: TopologyView, state: StateView, router: Router, out: Port, hop: IPAddress
) -> bytes | None:
    peer = view.peer(out)
    if peer is not None:
        ctx.tag(tags.of_id(peer.id))
        if peer.mac is not None and peer.address is not None:
            return mac_bytes(peer.mac)  # router to router
        known = view.known_ips.get(peer.device_id, {}).get(hop)
        if known is not None:
            return known
    ctx.tag(tags.arp(router.id, hop))
    return state.arp_mac(router.id, hop)


def _resolve(ctx: Ctx, router: Router, out: Port, hop: IPAddress) -> Decision:
    label = router.name or str(router.id)
    if not isinstance(hop, IPv4Address) or not isinstance(out.address, IPv4Address):
        ctx.note(STEP_ROUTER, router.id, label, f"next hop {hop} unknown (no NDP yet): drop")
        return Drop("next hop unresolved")
    assert out.mac is not None
    ctx.note(STEP_ROUTER, router.id, label, f"next hop {hop} unknown: ARP request, packet waits")
    frame = replies.arp_request(mac_bytes(out.mac), out.address, hop)
    ctx.emit.append(Emit(out.id, frame, from_device=True))
    return Wait(f"ARP for {hop}", router.id, hop)
