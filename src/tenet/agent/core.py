"""The agent's logic, without threads or sockets: what to do with each event.

:class:`AgentCore` keeps the host's picture of the world and turns events into
datapath operations:

* **topology**: every model record (from a store snapshot, then object events),
  and a :class:`~tenet.simulation.view.TopologyView` of them that each event
  updates in place (only the indexes the changed record touches);
* **learned state**: the MAC and ARP tables every agent writes to the store;
* **bindings**: the ports bound to this host become datapath ports, and their
  tunnel keys map straight to them (the egress host never simulates);
* **upcalls**: a packet that missed the flow table is served from the megaflow
  cache or simulated; the result's flow is installed, the packet itself executed,
  generated packets sent (simulating those that leave a device), and learned
  state returned for the shell to write under the host's lease;
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

from tenet.agent.nexthops import NextHops, Waiting, WithNextHops
from tenet.datapath.base import Datapath, DpAction, Output, Tunnel, Upcall
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


@dataclass
class AgentCore:
    host_id: uuid.UUID
    datapath: Datapath
    state: StateView
    flows: FlowTable = field(default_factory=FlowTable)
    counters: Counters = field(default_factory=Counters)
    records: dict[uuid.UUID, Record] = field(default_factory=dict)
    _view: TopologyView = field(init=False)
    # local virtual port id <-> datapath port number, and the tunnel keys mapped
    port_no: dict[uuid.UUID, int] = field(default_factory=dict)
    port_id: dict[int, uuid.UUID] = field(default_factory=dict)
    _keys: dict[uuid.UUID, int] = field(default_factory=dict)
    nexthops: NextHops = field(default_factory=NextHops)
    _state: WithNextHops = field(init=False)

    def __post_init__(self) -> None:
        self._view = TopologyView.build(self.records.values(), self.host_id)
        self._state = WithNextHops(self.state, self.nexthops)

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
        """Make the datapath's ports the interfaces bound to this host, keys mapped."""
        wanted: dict[uuid.UUID, str] = {}
        for record in self.records.values():
            if isinstance(record, PortBinding) and record.host_id == self.host_id:
                wanted[record.port_id] = record.interface
        for port_id in list(self.port_no):
            if port_id not in wanted:
                self._unbind(port_id)
        for port_id, ifname in sorted(wanted.items()):
            if port_id not in self.port_no:
                number = self.datapath.add_port(ifname)
                self.port_no[port_id], self.port_id[number] = number, port_id
            port = self.records.get(port_id)
            key = port.tunnel_key if isinstance(port, Port) else 0
            if key and self._keys.get(port_id) != key:
                self.datapath.set_tunnel_port(key, self.port_no[port_id])
                self._keys[port_id] = key

    def _unbind(self, port_id: uuid.UUID) -> None:
        number = self.port_no.pop(port_id)
        self.port_id.pop(number, None)
        key = self._keys.pop(port_id, None)
        if key:
            self.datapath.clear_tunnel_port(key)
        self.datapath.remove_port(number)

    # -- upcalls ------------------------------------------------------------------------
    def handle(self, upcall: Upcall, now: float) -> list[StateWrite]:
        """Serve one upcall; returns the learned state to write to the store."""
        self.counters.upcalls += 1
        if upcall.tunnel_key:
            self.counters.tunnel_misses += 1  # a key with no local port: nothing to do
            return []
        port_id = self.port_id.get(upcall.port_no)
        if port_id is None:
            self.counters.unknown_port += 1
            return []
        result = self.flows.recall(upcall.match)
        if result is not None:
            self.counters.megaflow_hits += 1
        else:
            result = simulate(upcall.frame, port_id, self.view, self._state, now)
            self.counters.simulations += 1
            self.flows.remember(upcall.match, result)
        actions = self.translate(result)
        if result.verdict in (Verdict.FORWARD, Verdict.DROP):
            for evicted in self.flows.install(upcall.match, result, now):
                self.datapath.delete(evicted.match)
            self.datapath.install(upcall.match, actions, ttl_above=result.loose_floor)
            self.counters.flows_installed += 1
        if actions and not upcall.truncated:
            self.datapath.execute(upcall.frame, upcall.port_no, actions)
        packet = None if upcall.truncated else Waiting(upcall.port_no, upcall.frame)
        self._emit(self._waits(result, packet, now), now, depth=0)
        return list(result.state)

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
        rest (a port gone, a frame that cannot be rebuilt) are removed. Returns how
        many were kept and removed, and the learned state to write.
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
            if result is None or result.verdict not in (Verdict.FORWARD, Verdict.DROP):
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
        """Read the datapath's counters, then remove flows idle or past their hard timeout."""
        for stats in self.datapath.dump():
            self.flows.used(stats.match, stats.packets, stats.bytes, stats.last_used)
        gone = self.flows.expire(now)
        for flow in gone:
            self.datapath.delete(flow.match)
        return len(gone)


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
