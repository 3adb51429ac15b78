"""The agent's logic, without threads or sockets: what to do with each event.

:class:`AgentCore` keeps the host's picture of the world and turns events into
datapath operations:

* **topology**: every model record (from a store snapshot, then object events),
  and a :class:`~tenet.simulation.view.TopologyView` of them that each event
  updates in place (only the indexes the changed record touches);
* **learned state**: the MAC and ARP tables every agent writes to the store;
* **bindings**: the ports bound to this host become datapath ports once their
  interface exists, and their tunnel keys map straight to them (the egress host
  never simulates); :mod:`tenet.agent.bindings` decides, and says why not;
* **upcalls**: a packet that missed the flow table is served from the megaflow
  cache or simulated; the result's flow is installed, the packet itself executed,
  generated packets sent (simulating those that leave a device), and learned
  state returned for the shell to write under the host's lease;
* **flow state**: connections a simulation committed are written to the host's
  :class:`~tenet.agent.flowstate.FlowStateTable` and sent to the peer hosts that
  need them before the packet goes; state frames from peers (tunnel key
  ``STATE_VNI``) are checked and merged; flows carry the keys they keep alive, and
  the expiry pass refreshes, expires and tells peers (:mod:`tenet.agent.flowstate`);
* **next hops**: a packet that waits for a router's ARP is queued and sent on
  once the next hop is learned, or answered with host unreachable when it never
  is (:mod:`tenet.agent.nexthops`, ticked by the shell);
* **invalidation**: each change maps to tags (:func:`touched`, built with the
  simulation's own constructors, :mod:`tenet.simulation.tags`), and exactly the
  flows that carry them are removed from the table and the datapath.

It is driven by the process shell (``tenet.agent.daemon``), which owns the
store, the datapath's threads and the clock, and passes ``now`` in.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, IPv6Network, ip_network

from tenet.agent import flowstate
from tenet.agent.bindings import Bindings
from tenet.agent.flowstate import FlowStateTable, Group, WithFlowState
from tenet.agent.nexthops import NextHops, Waiting, WithNextHops
from tenet.datapath.base import STATE_VNI, Datapath, DpAction, Output, Tunnel, Upcall
from tenet.errors import PacketError
from tenet.flows import FlowTable
from tenet.model import DeviceType, Port, PortBinding, Record, Route
from tenet.model.kinds import SPECS
from tenet.packets import extract_match
from tenet.packets.actions import OutputLocal, OutputTunnel
from tenet.packets.synth import frame_of
from tenet.simulation import (
    Emit,
    SimulationResult,
    TopologyView,
    Verdict,
    conntrack,
    simulate,
    simulate_emit,
    tags,
)
from tenet.simulation.result import StateWrite
from tenet.simulation.state import StateView
from tenet.simulation.tags import Tag
from tenet.store.objects import ObjectEvent

MAX_EMIT_DEPTH = 4


@dataclass
class Counters:
    upcalls: int = 0
    simulations: int = 0
    megaflow_hits: int = 0
    flows_installed: int = 0
    flows_invalidated: int = 0
    emitted: int = 0
    unknown_port: int = 0
    tunnel_misses: int = 0
    unsendable: int = 0  # outputs no datapath can send (a tunnel to an IPv6 underlay)
    # simulations that met a record the store's picture lacks (a route's next-hop port,
    # a chain, a rule, a group): what depended on it dropped or was skipped, with a trace line
    unusable_input: int = 0
    ct_new_flows: int = 0  # forwarded packets that committed a new connection
    ct_rechecks: int = 0  # first packets whose flow was not installed (NEW vs ESTABLISHED)
    ct_unflowed: int = 0  # ICMP errors sent without a flow (related by their quote)
    simulated_drops: int = 0  # upcalls whose outcome (simulated or recalled) was DROP


@dataclass
class AgentCore:
    host_id: uuid.UUID
    datapath: Datapath
    state: StateView
    flows: FlowTable = field(default_factory=FlowTable)
    counters: Counters = field(default_factory=Counters)
    drops: dict[str, int] = field(default_factory=dict)  # DROP outcomes by where (drop_site)
    records: dict[uuid.UUID, Record] = field(default_factory=dict)
    _view: TopologyView = field(init=False)
    # local virtual port id <-> datapath port number, and the tunnel keys mapped
    port_no: dict[uuid.UUID, int] = field(default_factory=dict)
    port_id: dict[int, uuid.UUID] = field(default_factory=dict)
    _keys: dict[uuid.UUID, int] = field(default_factory=dict)
    nexthops: NextHops = field(default_factory=NextHops)
    flowstate: FlowStateTable = field(default_factory=FlowStateTable)
    _state: WithNextHops = field(init=False)
    _sequence: int = 0
    bindings: Bindings = field(init=False)

    def __post_init__(self) -> None:
        self._view = TopologyView.build(self.records.values(), self.host_id)
        self._state = WithNextHops(WithFlowState(self.state, self.flowstate), self.nexthops)
        self.bindings = Bindings(
            self.host_id, self.datapath, self.invalidate, self.port_no, self.port_id, self._keys
        )

    # -- topology ---------------------------------------------------------------------
    @property
    def view(self) -> TopologyView:
        return self._view

    def load(self, records: Iterable[Record]) -> None:
        """Replace the whole picture (start, or a resync after a compacted watch)."""
        self.records = {r.id: r for r in records}
        self._view = TopologyView.build(self.records.values(), self.host_id)
        self._drop_all_flows()
        self.sync_ports()

    def apply(self, event: ObjectEvent) -> set[Tag]:
        """Apply one object change; returns the tags it touched (flows already removed)."""
        old = self.records.get(event.id)
        if event.record is None:
            self.records.pop(event.id, None)
        else:
            self.records[event.id] = event.record
        self._view.apply(event.id, event.record)
        changed = touched(old, event.record, self.flows)
        self.invalidate(changed)
        if isinstance(old, PortBinding | Port) or isinstance(event.record, PortBinding | Port):
            self.sync_ports()
        return changed

    def hold(self, records: Iterable[Record]) -> None:
        """Records newly reachable (fetched on demand): part of the picture from now on."""
        added = False
        for record in records:
            self.records[record.id] = record
            self._view.apply(record.id, record)
            added = True
        if added:
            self.sync_ports()

    def invalidate(self, tags: set[Tag]) -> int:
        gone = self.flows.invalidate(tags)
        for flow in gone:
            self.datapath.delete(flow.match)
        self.counters.flows_invalidated += len(gone)
        return len(gone)

    def _drop_all_flows(self) -> None:
        for flow in self.flows.flows():
            self.flows.remove(flow.match)
            self.datapath.delete(flow.match)
        self.flows = FlowTable(self.flows.max_flows, self.flows.max_megaflows)

    # -- bindings -----------------------------------------------------------------------
    def sync_ports(self) -> None:
        """Make the datapath's ports the interfaces bound to this host, keys mapped
        (those that exist and may be bound: :mod:`tenet.agent.bindings`)."""
        self.bindings.sync(self.records)

    # -- upcalls ------------------------------------------------------------------------
    def handle(self, upcall: Upcall, now: float) -> list[StateWrite]:
        """Serve one upcall; returns the learned state to write to the store."""
        self.counters.upcalls += 1
        if upcall.tunnel_key == STATE_VNI:
            self.receive_state(upcall, now)
            return []
        if upcall.tunnel_key:
            self.counters.tunnel_misses += 1  # a key with no local port: nothing to do
            return []
        port_id = self.port_id.get(upcall.port_no)
        if port_id is None:
            self.counters.unknown_port += 1
            return []
        result = self.flows.recall(upcall.match)
        if result is not None and result.ct is not None:
            # a tracked outcome: for this packet's connection, if its state agrees
            result = conntrack.retrack(result, upcall.match, self._state)
        if result is not None:
            self.counters.megaflow_hits += 1
        else:
            result = simulate(upcall.frame, port_id, self.view, self._state, now)
            self.counters.simulations += 1
            self.counters.unusable_input += any(step.unusable for step in result.trace)
            self.flows.remember(upcall.match, result)
        if result.verdict is Verdict.DROP:
            self.counters.simulated_drops += 1
            site = drop_site(result)
            self.drops[site] = self.drops.get(site, 0) + 1
        actions = self.translate(result)
        install = self._flow_state(result, now)
        if install and result.verdict in (Verdict.FORWARD, Verdict.DROP):
            for evicted in self.flows.install(upcall.match, result, now):
                self.datapath.delete(evicted.match)
            self.datapath.install(upcall.match, actions, ttl_above=result.loose_floor)
            self.counters.flows_installed += 1
        if actions and not upcall.truncated:
            self.datapath.execute(upcall.frame, upcall.port_no, actions)
        packet = None if upcall.truncated else Waiting(upcall.port_no, upcall.frame)
        self._emit(self._waits(result, packet, now), now, depth=0)
        return list(result.state)

    # -- flow state -------------------------------------------------------------------
    def _flow_state(self, result: SimulationResult, now: float) -> bool:
        """Commit or delete what ``result`` says, telling peers first; whether its flow
        may be installed."""
        ct = result.ct
        if ct is None:
            return True
        table = self.flowstate
        if ct.delete:
            gone = table.delete(ct.delete)
            self._forget(gone)
            self._send([(flowstate.OP_DELETE, g) for g in gone], now)
            # the outcome was decided with the state just forgotten: the next packet is
            # simulated again without it (and installs what holds then)
            return False
        if ct.commit:
            known = set()
            group = table.group_of(ct.commit[0].key)
            if group is not None:
                known = set(group.peers)
            group, changed = table.commit(ct.commit, ct.peers, now)
            if changed or not group.peers <= known:
                self.counters.ct_new_flows += bool(changed)
                self.invalidate({tags.connection(k) for k in changed})
                self._send([(flowstate.OP_UPSERT, group)], now)
        if ct.no_flow:
            self.counters.ct_unflowed += 1
            return False
        if ct.recheck:
            self.counters.ct_rechecks += 1
            return False
        return True

    def _send(self, groups: list[tuple[int, Group]], now: float) -> None:
        """Send groups to each one's peers (one message per peer, split to fit)."""
        by_peer: dict[uuid.UUID, list[tuple[int, Group]]] = {}
        for op, group in groups:
            group.last_sent = now
            for peer in group.peers:
                by_peer.setdefault(peer, []).append((op, group))
        for peer, items in by_peer.items():
            address = self._view.host_addresses.get(peer)
            if not isinstance(address, IPv4Address):
                continue
            frames = flowstate.encode(
                self.host_id, self._sequence, items, self.flowstate.timeouts, now
            )
            self._sequence += len(frames)
            for frame in frames:
                self.datapath.execute(frame, 0, [Tunnel(address, STATE_VNI)])
                self.flowstate.counters.state_sent += 1

    def _forget(self, groups: Iterable[Group]) -> None:
        self.invalidate({tags.connection(k) for g in groups for k in g.keys})

    def receive_state(self, upcall: Upcall, now: float) -> None:
        """A flow-state frame from a peer: merged if it comes from the host it names,
        at that host's underlay address, a member of a tunnel zone; else counted."""
        counters = self.flowstate.counters
        sender = self._host_at(upcall.tunnel_src)
        if sender is None:
            counters.state_rejected += 1
            return
        try:
            message = flowstate.decode(upcall.frame)
        except PacketError:
            counters.state_malformed += 1
            return
        if message.sender != sender:
            counters.state_rejected += 1
            return
        counters.state_received += 1
        forgotten: set[Tag] = set()
        learned: set[Tag] = set()
        for op, entries, ttl, forward_flags, return_flags in message.groups:
            if not entries:
                continue
            if op == flowstate.OP_DELETE:
                gone = self.flowstate.delete(c.key for c in entries)
                forgotten |= {tags.connection(k) for g in gone for k in g.keys}
            else:
                keys = self.flowstate.upsert(entries, sender, ttl, forward_flags, return_flags, now)
                learned |= {tags.connection(k) for k in keys}
        if forgotten:
            self.invalidate(forgotten)
        if learned:
            # flows that already depended on these keys were simulated without them: a
            # reply that arrived before its state (the race the ordering should avoid)
            counters.state_late += self.invalidate(learned)

    def _host_at(self, address: IPv4Address | None) -> uuid.UUID | None:
        if address is None:
            return None
        for host, host_address in self._view.host_addresses.items():
            if host_address == address and host != self.host_id:
                return host
        return None

    def _waits(
        self, result: SimulationResult, packet: Waiting | None, now: float
    ) -> Sequence[Emit]:
        """What of ``result.emit`` to send: for a packet that waits for a next hop, it is
        queued, and the ARP request goes out unless one did less than a second ago."""
        if result.waiting_for is None:
            return result.emit
        router_id, ip = result.waiting_for
        request = result.emit[-1] if result.emit else None  # the router's, made last
        if self.nexthops.wait(router_id, ip, packet, request, now):
            return result.emit
        return result.emit[:-1]

    def release(self, tag: Tag, now: float) -> list[StateWrite]:
        """A learned entry changed (its flow tag): the packets waiting for that next hop
        are simulated again and go their way; the learned state they produce."""
        writes: list[StateWrite] = []
        for waiting in self.nexthops.learned_tag(tag):
            writes += self._again(waiting, now)
        return writes

    def tick(self, now: float) -> list[StateWrite]:
        """Once a second: ARP requests sent again, and the packets of next hops that
        never answered simulated again (ICMP host unreachable goes to their senders)."""
        resend, failed = self.nexthops.tick(now)
        self._emit(resend, now, depth=0)
        writes: list[StateWrite] = []
        for waiting in failed:
            writes += self._again(waiting, now)
        return writes

    def _again(self, waiting: Waiting, now: float) -> list[StateWrite]:
        try:
            match = extract_match(waiting.frame, waiting.port_no)
        except PacketError:
            return []
        return self.handle(Upcall(waiting.port_no, waiting.frame, match), now)

    def translate(self, result: SimulationResult) -> list[DpAction]:
        """The simulation's actions in datapath terms (port numbers, tunnel endpoints)."""
        out: list[DpAction] = []
        for action in result.actions if result.verdict is Verdict.FORWARD else ():
            if isinstance(action, OutputLocal):
                number = self.port_no.get(action.port_id)
                if number is not None:
                    out.append(Output(number))
            elif isinstance(action, OutputTunnel):
                if isinstance(action.address, IPv4Address):
                    out.append(Tunnel(action.address, action.key))
                else:  # the datapaths tunnel over an IPv4 underlay only
                    self.counters.unsendable += 1
            else:
                out.append(action)
        return out

    def _emit(self, emits: Sequence[Emit], now: float, depth: int) -> None:
        for emit in emits:
            self.counters.emitted += 1
            if not emit.from_device:
                number = self.port_no.get(emit.port_id)
                if number is not None:
                    self.datapath.execute(emit.frame, number, [Output(number)])
                continue
            if depth >= MAX_EMIT_DEPTH:
                continue
            result = simulate_emit(emit, self.view, self._state, now)
            actions = self.translate(result)
            if actions:
                self.datapath.execute(emit.frame, 0, actions)
            self._emit(self._waits(result, None, now), now, depth + 1)

    # -- a restart --------------------------------------------------------------------
    def adopt(self, now: float) -> tuple[int, int, list[StateWrite]]:
        """Take over the flows a previous run left forwarding in the datapath.

        Each one is re-simulated, against the store as it is now, on a frame rebuilt
        from its match: a flow whose outcome still installs a flow is kept (its
        actions rewritten if the outcome changed) and tagged like a new one; the
        rest (a port gone, a frame that cannot be rebuilt) are removed. Connection
        state must be restored before (``flowstate.restore``): a flow is re-simulated
        with the connections it had. Returns how many were kept and removed, and the
        learned state to write.
        """
        kept = removed = 0
        writes: list[StateWrite] = []
        for stats in self.datapath.dump():
            match = stats.match
            if match in self.flows:
                continue
            port_id = self.port_id.get(match.in_port)
            frame = frame_of(match) if port_id is not None and not match.tunnel_key else None
            result = None
            if frame is not None and port_id is not None:
                try:
                    result = simulate(frame, port_id, self.view, self._state, now)
                except PacketError:
                    result = None
            if (
                result is None
                or result.verdict not in (Verdict.FORWARD, Verdict.DROP)
                or not self._flow_state(result, now)
            ):
                self.datapath.delete(match)
                removed += 1
                continue
            self.counters.simulations += 1
            for evicted in self.flows.install(match, result, now):
                self.datapath.delete(evicted.match)
            self.datapath.install(match, self.translate(result), ttl_above=result.loose_floor)
            writes += result.state
            kept += 1
        return kept, removed, writes

    # -- expiry -------------------------------------------------------------------------
    def expire(self, now: float) -> int:
        """Read the datapath's counters, then remove flows idle or past their hard
        timeout. Connections whose flows carried packets are kept alive (and their
        peers refreshed when due); connections past their timeout are forgotten, their
        flows removed and their peers told."""
        table = self.flowstate
        for stats in self.datapath.dump():
            flow = self.flows.used(stats.match, stats.packets, stats.bytes, stats.last_used)
            if flow is not None and flow.ct_refs:
                table.touch(flow.ct_refs[0], now, stats.tcp_flags)
        gone = self.flows.expire(now)
        for flow in gone:
            self.datapath.delete(flow.match)
        self._send([(flowstate.OP_UPSERT, g) for g in table.due(now)], now)
        ended = table.expire(now)
        self._forget(ended)
        self._send([(flowstate.OP_DELETE, g) for g in ended if g.local], now)
        return len(gone)


def drop_site(result: SimulationResult) -> str:
    """Where a DROP was decided, for the drop counters: the kind of the trace's last step
    before the verdict (``rule``, ``chain``, ``router``, ``bridge``, ``port``, ...), or
    ``verdict`` when the simulation decided before any device (a malformed frame)."""
    for step in reversed(result.trace):
        if step.kind != "verdict":
            return str(step.kind)
    return "verdict"


def touched(old: Record | None, new: Record | None, flows: FlowTable) -> set[Tag]:
    """The flow tags a change of one record from ``old`` to ``new`` touches."""
    out: set[Tag] = set()
    for record in (old, new):
        if record is not None:
            out |= tags_of(record)
    device = _changed_device(old, new)
    if device is not None:
        out.add(tags.of_id(device))
    lookups = _lookups_changed(old, new)
    if lookups is not None:
        router_id, networks = lookups
        out |= tags.lookups_within(flows.scoped(tags.route_scope(router_id)), networks)
    return out


def tags_of(record: Record) -> set[Tag]:
    """The flow tags a change to ``record`` touches by itself: its id, the records its
    kind's spec says it ``touches`` (a rule its chain, a binding its port...), and a
    binding's output tag."""
    out = {tags.of_id(record.id)}
    for name in SPECS[type(record)].touches:
        target = getattr(record, name)
        if target is not None:
            out.add(tags.of_id(target))
    if isinstance(record, PortBinding):
        out.add(tags.binding(record.port_id))
    return out


def _changed_device(old: Record | None, new: Record | None) -> uuid.UUID | None:
    """The device of a port that came, went, or changed what its device floods to or
    answers ARP with (its MAC, addresses or peer)."""
    if not isinstance(old, Port) and not isinstance(new, Port):
        return None
    if not isinstance(old, Port) or not isinstance(new, Port):
        port = old if isinstance(old, Port) else new
        assert isinstance(port, Port)
        return port.device_id  # a port came or went
    if (old.mac, old.fixed_ips, old.peer_id) != (new.mac, new.fixed_ips, new.peer_id):
        return new.device_id
    return None


Networks = list[IPv4Network | IPv6Network]


def _lookups_changed(old: Record | None, new: Record | None) -> tuple[uuid.UUID, Networks] | None:
    """The router whose lookups of some destinations a change alters, and the prefixes
    holding those destinations: a route's old and new ``dst``; a router port's old and
    new subnet (its connected route) and address (delivered locally), when one of
    them or whether the port is up changed. None for every other change."""
    if isinstance(old, Route) or isinstance(new, Route):
        routes = [r for r in (old, new) if isinstance(r, Route)]
        return routes[0].router_id, [r.dst for r in routes]
    ports = [p for p in (old, new) if isinstance(p, Port) and p.device_type is DeviceType.ROUTER]
    if not ports:
        return None
    if len(ports) == 2 and _routing(ports[0]) == _routing(ports[1]):
        return None
    networks: Networks = []
    for port in ports:
        if port.subnet is not None:
            networks.append(port.subnet)
        if port.address is not None:
            networks.append(ip_network(port.address))
    return ports[0].device_id, networks


def _routing(port: Port) -> tuple[object, ...]:
    return (port.subnet, port.address, port.admin_state_up)
