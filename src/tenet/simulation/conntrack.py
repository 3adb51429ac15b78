"""Connection tracking in the simulation: what a rule's ``ct_state`` condition sees.

A packet is *tracked* the first time a chain asks about its connection
(:func:`ct_state`); packets no chain asks about are never looked up and leave no
state (MidoNet's lazy ``isForwardFlow``). The answer comes from the
:class:`~tenet.simulation.state.StateView` (the agent's flow-state table) and is:

* RETURN: the packet is the reverse of a tracked connection (a return key exists
  in the zone the packet entered), or it is RELATED: an ICMP error whose embedded
  header is the reverse of such a connection. Rules have no RELATED state: it
  reads as RETURN. A frame tenet generates itself (an ICMP error, a TCP reset from
  REJECT, an ARP request) is RETURN too, without a lookup: tenet's own answers are
  never blocked by a "replies only" rule;
* ESTABLISHED: a forward key exists (the connection's first packet was seen);
* NEW: neither.

Keys (:class:`~tenet.simulation.state.ConnectionKey`): the zone is the id of the
device the packet entered the virtual topology at (the first device of its walk),
so tenants with overlapping addresses never share an entry. The forward key is
the packet as it entered; a return key is the packet as it leaves an exterior
port (after every rewrite), reversed, in the zone of that port's device: the
reply enters there. TCP, UDP and SCTP are keyed by their ports; ICMP and ICMPv6
echo by their identifier (both ports); everything else (other protocols, non-first
fragments, non-IP) is untracked, and reads as NEW.

What a tracked simulation hands the agent is a :class:`CtOutcome` (in the result):
the entries to commit (a NEW connection that was forwarded: the forward key and a
return key per exterior egress), the keys the flow keeps alive while it is used,
the keys to delete (a packet of an ESTABLISHED connection that is now dropped:
the policy changed; OVN blocks the entry, Cilium re-evaluates: tenet forgets it,
and the reply direction with it), and the hosts that must know (the hosts of the
egress ports, plus the members of the stateful port groups of the ingress and
egress ports). Every key looked up is tagged, found or not (``tags.connection``),
so state that arrives after a reply invalidates the flow the reply installed.

Reads: the key reads ``eth_type``, ``ip_proto``, ``ip_frag``, the addresses and
the ports (or ICMP type and ``icmp_id``), so a tracked flow is specific to its
connection. A result that is tracked is never reused by the agent's megaflow
cache (``SimulationResult.stateful``): its outcome depends on state the flow
match does not hold.
"""

from __future__ import annotations

import dataclasses
import uuid
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Any, Literal

from tenet.model import CtState, IPAddress, Port
from tenet.packets import FlowMatch
from tenet.packets.actions import SetIpDst, SetIpSrc, SetL4Dst, SetL4Src
from tenet.packets.match import FRAG_LATER
from tenet.simulation import tags
from tenet.simulation.context import Ctx
from tenet.simulation.result import STEP_CONNTRACK, CtOutcome, SimulationResult, Verdict
from tenet.simulation.state import Connection, ConnectionKey, Direction, StateView
from tenet.simulation.tags import CT_TAG
from tenet.simulation.view import TopologyView

PROTO_ICMP = 1
PROTO_TCP = 6
PROTO_UDP = 17
PROTO_ICMPV6 = 58
PROTO_SCTP = 132
_PORT_PROTOS = frozenset({PROTO_TCP, PROTO_UDP, PROTO_SCTP})
_IP_ETH_TYPES = frozenset({0x0800, 0x86DD})

# ICMP echo request/reply (v4, v6): keyed by identifier; a request's reply is the
# reverse key, whatever the type
ECHO_TYPES = {PROTO_ICMP: frozenset({8, 0}), PROTO_ICMPV6: frozenset({128, 129})}
# ICMP errors, whose body quotes the packet they are about
ERROR_TYPES = {PROTO_ICMP: frozenset({3, 4, 5, 11, 12}), PROTO_ICMPV6: frozenset({1, 2, 3, 4})}


class Tracking:
    """One packet's conntrack, kept in the context (``ctx.ct``) once a chain asks."""

    __slots__ = ("error", "forward", "found", "related", "state", "zone")

    def __init__(
        self,
        zone: uuid.UUID,
        forward: ConnectionKey | None,
        state: CtState,
        found: Connection | None = None,
        *,
        error: bool = False,
        related: bool = False,
    ) -> None:
        self.zone = zone
        self.forward = forward  # None: untracked protocol (or an ICMP error)
        self.state = state
        self.found = found
        self.error = error  # an ICMP error: its state came from the quoted header
        self.related = related


def ct_state(ctx: Ctx) -> CtState:
    """The packet's connection state, looked up the first time a chain asks."""
    tracking = ctx.ct
    if tracking is None:
        tracking = ctx.ct = _track(ctx)
        ctx.note(STEP_CONNTRACK, tracking.zone, "", _describe(tracking))
    return tracking.state


def _describe(tracking: Tracking) -> str:
    if tracking.related:
        return "ICMP error about a tracked connection: related (return)"
    if tracking.error:
        return "ICMP error about no connection this zone tracks: new"
    if tracking.forward is None:
        if tracking.state is CtState.RETURN:
            return "generated by tenet: return traffic"
        return "untracked protocol: new"
    found = "entry found" if tracking.found is not None else "no entry"
    return f"{_key_text(tracking.forward)}: {found}: {tracking.state}"


def _key_text(key: ConnectionKey) -> str:
    return f"proto {key.proto} {key.src}:{key.src_port} -> {key.dst}:{key.dst_port}"


def _track(ctx: Ctx) -> Tracking:
    zone = ctx.ingress_device or ctx.in_port_id
    if ctx.generated:
        return Tracking(zone, None, CtState.RETURN)
    state = ctx.state_view
    key = packet_key(ctx, zone, current=False)
    if key is None:
        if not _is_error(ctx):
            return Tracking(zone, None, CtState.NEW)
        related = _related(ctx, zone, state)
        if related is None:
            return Tracking(zone, None, CtState.NEW, error=True)
        return Tracking(zone, None, CtState.RETURN, related, error=True, related=True)
    ctx.tag(tags.connection(key))
    found = state.connection(key) if state is not None else None
    if found is None:
        return Tracking(zone, key, CtState.NEW)
    if found.direction is Direction.RETURN:
        return Tracking(zone, key, CtState.RETURN, found)
    return Tracking(zone, key, CtState.ESTABLISHED, found)


def packet_key(ctx: Ctx, zone: uuid.UUID, *, current: bool) -> ConnectionKey | None:
    """The packet's key in ``zone``: as it entered (``current`` False) or as it is now,
    rewrites applied; None if its protocol is not tracked. What it reads is the
    connection's (``ctx.peek``), not the decision's."""
    if ctx.peek("eth_type") not in _IP_ETH_TYPES:
        return None
    proto = ctx.peek("ip_proto")
    if proto in _PORT_PROTOS:
        if ctx.peek("ip_frag") == FRAG_LATER:
            return None  # no ports: cannot be told apart (fails closed: NEW)
        sport, dport = _field(ctx, "l4_src", current), _field(ctx, "l4_dst", current)
    elif proto in ECHO_TYPES and ctx.peek("l4_src") in ECHO_TYPES[proto]:
        sport = dport = ctx.peek("icmp_id")
    else:
        return None
    src = _address(_field(ctx, "ip_src", current))
    dst = _address(_field(ctx, "ip_dst", current))
    return ConnectionKey(zone, proto, src, sport, dst, dport)


def _field(ctx: Ctx, name: Literal["ip_src", "ip_dst", "l4_src", "l4_dst"], current: bool) -> Any:
    value = ctx.peek(name)
    return value if current else getattr(ctx.match, name)


def match_key(match: FlowMatch, zone: uuid.UUID) -> ConnectionKey | None:
    """:func:`packet_key` of a flow match as it entered (no rewrites)."""
    if match.eth_type not in _IP_ETH_TYPES:
        return None
    proto = match.ip_proto
    if proto in _PORT_PROTOS:
        if match.ip_frag == FRAG_LATER:
            return None
        sport, dport = match.l4_src, match.l4_dst
    elif proto in ECHO_TYPES and match.l4_src in ECHO_TYPES[proto]:
        sport = dport = match.icmp_id
    else:
        return None
    return ConnectionKey(zone, proto, _address(match.ip_src), sport, _address(match.ip_dst), dport)


def _address(raw: bytes) -> IPAddress:
    return IPv4Address(raw) if len(raw) == 4 else IPv6Address(raw)


def _is_error(ctx: Ctx) -> bool:
    if ctx.peek("eth_type") not in _IP_ETH_TYPES:
        return False
    proto = ctx.peek("ip_proto")
    return proto in ERROR_TYPES and ctx.peek("l4_src") in ERROR_TYPES[proto]


def _related(ctx: Ctx, zone: uuid.UUID, state: StateView | None) -> Connection | None:
    """The connection an ICMP error is about, if this zone tracks its reverse.

    The error answers a packet that went the other way: the quoted header, reversed,
    is the direction the error travels; a return key for it says the quoted packet
    belonged to a connection that went out through this zone."""
    quoted = quoted_key(ctx.frame, zone)
    if quoted is None or state is None:
        return None
    key = quoted.reversed()
    ctx.tag(tags.connection(key))
    found = state.connection(key)
    return found if found is not None and found.direction is Direction.RETURN else None


def quoted_key(frame: bytes, zone: uuid.UUID) -> ConnectionKey | None:
    """The key of the packet an ICMP (v4 or v6) error quotes; None if unreadable or
    untracked. Reads the frame's bytes: a flow match cannot hold them."""
    l3 = _l3_offset(frame)
    if l3 is None or l3 + 1 > len(frame):
        return None
    version = frame[l3] >> 4
    if version == 4:
        ihl = (frame[l3] & 0x0F) * 4
        body = l3 + ihl + 8  # ICMP header
    elif version == 6:
        body = l3 + 40 + 8
    else:
        return None
    inner = frame[body:]
    if len(inner) < 1:
        return None
    if inner[0] >> 4 == 4 and len(inner) >= 20:
        ihl = (inner[0] & 0x0F) * 4
        proto, src, dst = inner[9], inner[12:16], inner[16:20]
        l4 = inner[ihl : ihl + 8]
        icmp = PROTO_ICMP
    elif inner[0] >> 4 == 6 and len(inner) >= 40:
        proto, src, dst = inner[6], inner[8:24], inner[24:40]
        l4 = inner[40:48]
        icmp = PROTO_ICMPV6
    else:
        return None
    if len(l4) < 8 and not (proto in _PORT_PROTOS and len(l4) >= 4):
        return None
    if proto in _PORT_PROTOS:
        sport, dport = int.from_bytes(l4[0:2], "big"), int.from_bytes(l4[2:4], "big")
    elif proto == icmp and l4[0] in ECHO_TYPES[icmp]:
        sport = dport = int.from_bytes(l4[4:6], "big")
    else:
        return None
    return ConnectionKey(zone, proto, ip_address(src), sport, ip_address(dst), dport)


def _l3_offset(frame: bytes) -> int | None:
    offset = 12
    while offset + 2 <= len(frame):
        eth_type = int.from_bytes(frame[offset : offset + 2], "big")
        if eth_type in (0x8100, 0x88A8):
            offset += 4
            continue
        return offset + 2 if eth_type in _IP_ETH_TYPES else None
    return None


def distinguishes(state: CtState) -> bool:
    """Whether a condition on ``state`` tells NEW from ESTABLISHED."""
    return state is not CtState.RETURN


def outcome(
    ctx: Ctx,
    view: TopologyView,
    egress: tuple[Port, ...],
    verdict: Verdict,
    hosts: set[uuid.UUID],
) -> CtOutcome | None:
    """What the agent does with flow state for this packet (None: no chain asked).

    ``egress``: the exterior ports the packet leaves through; ``verdict``: the
    simulation's; ``hosts``: the hosts its outputs tunnel to."""
    tracking = ctx.ct
    if tracking is None:
        return None
    state, forward = tracking.state, tracking.forward
    if tracking.error:
        return CtOutcome(state, no_flow=True)
    if forward is None:
        return CtOutcome(state)
    if verdict is not Verdict.FORWARD:
        # a packet of a known connection that the policy now drops or rejects: forget
        # it (and the reply direction with it: the agent deletes what was committed
        # with it). Waiting for ARP or answered locally is no reason to.
        if state is CtState.ESTABLISHED and verdict is Verdict.DROP:
            return CtOutcome(state, delete=(forward,))
        return CtOutcome(state)
    if state is CtState.RETURN:
        return CtOutcome(state, refs=(forward,))
    returns: list[Connection] = []
    for port in egress:
        leaving = packet_key(ctx, port.device_id, current=True)
        if leaving is not None:
            reply = leaving.reversed()
            ctx.tag(tags.connection(reply))
            returns.append(Connection(reply, Direction.RETURN))
    commit = (Connection(forward, Direction.FORWARD), *returns)
    peers = set(hosts)
    in_port = view.ports.get(ctx.in_port_id)
    for port in (*([in_port] if in_port is not None else []), *egress):
        peers |= _stateful_group_hosts(ctx, view, port)
    if view.local_host_id is not None:
        peers.discard(view.local_host_id)
    return CtOutcome(
        state,
        commit=commit,
        refs=tuple(c.key for c in commit),
        peers=frozenset(peers),
        recheck=ctx.ct_split and state is CtState.NEW,
    )


def _stateful_group_hosts(ctx: Ctx, view: TopologyView, port: Port) -> set[uuid.UUID]:
    """The hosts of the members of ``port``'s stateful port groups (a reply may enter
    at any of them: two uplinks of one router, say)."""
    out: set[uuid.UUID] = set()
    for group_id in port.port_group_ids:
        group = view.port_groups.get(group_id)
        ctx.tag(tags.of_id(group_id))
        if group is None or not group.stateful:
            continue
        for member in view.ports.values():
            if group_id in member.port_group_ids:
                ctx.tag(tags.binding(member.id))
                host = view.port_host(member.id)
                if host is not None:
                    out.add(host)
    return out


_REWRITES = (SetIpSrc, SetIpDst, SetL4Src, SetL4Dst)


def reusable(result: SimulationResult) -> bool:
    """Whether a tracked result may serve another connection (re-tracked for it): its
    outcome followed only the connection's state, not a quoted header, a NEW/ESTABLISHED
    split or a deletion, and no rewrite moved the connection's addresses or ports."""
    ct = result.ct
    if ct is None:
        return True
    if ct.no_flow or ct.recheck or ct.delete or not ct.refs:
        return False
    if ct.state is not CtState.RETURN and not ct.commit:
        return False
    return not any(isinstance(a, _REWRITES) for a in result.actions)


def retrack(
    result: SimulationResult, match: FlowMatch, state: StateView
) -> SimulationResult | None:
    """``result`` (a megaflow's, :func:`reusable`) for the connection of ``match``, or
    None if that connection's state is not the state the result was decided in (then
    the packet is simulated)."""
    ct = result.ct
    if ct is None:
        return result
    first = ct.commit[0].key if ct.commit else ct.refs[0]
    key = match_key(match, first.zone)
    if key is None:
        return None
    found = state.connection(key)
    now = CtState.NEW
    if found is not None:
        now = CtState.RETURN if found.direction is Direction.RETURN else CtState.ESTABLISHED
    if now is not ct.state:
        return None
    new_tags = {t for t in result.tags if not t.startswith(CT_TAG)}
    new_tags.add(tags.connection(key))
    if now is CtState.RETURN:
        outcome = dataclasses.replace(ct, refs=(key,))
    else:
        commit = [Connection(key, Direction.FORWARD)]
        for other in ct.commit[1:]:
            leaving = ConnectionKey(other.key.zone, key.proto, key.src, key.src_port, key.dst,
                                    key.dst_port)  # fmt: skip
            commit.append(Connection(leaving.reversed(), Direction.RETURN))
            new_tags.add(tags.connection(commit[-1].key))
        outcome = dataclasses.replace(ct, commit=tuple(commit), refs=tuple(c.key for c in commit))
    return dataclasses.replace(result, ct=outcome, tags=frozenset(new_tags))
