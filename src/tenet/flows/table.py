"""The agent's flow table: installed flows, their tags, expiry, eviction, megaflows.

Owns, for one datapath:

* **flows** by exact match (a :class:`~tenet.packets.FlowMatch`), each with the
  actions and the tags of the simulation that made it, timeouts and counters;
* a **tag index** (tag -> flows): a change to any object invalidates exactly the
  flows whose simulation depended on it;
* a **scope index** (scope -> tags) for scoped tags
  (:func:`tenet.simulation.tags.scope_of`: a router's route lookups), so a route
  change finds the lookups of its router without scanning every tag;
* **idle and hard expiry** driven by ``now`` and the datapath's last-used times;
* a **hard limit** on the number of flows: installing past it evicts the least
  recently used;
* a **megaflow cache**: simulation results keyed by the values of only the fields
  the simulation read, so a new microflow that agrees on them (and whose TTL is
  above the result's floor) is installed with no new simulation. Entries share
  the tag index and are invalidated with flows.

Invariants: every flow and megaflow entry is in the tag index under each of its
tags, and nowhere else; removing one removes it from every index. A tag is in
the scope index exactly while the tag index holds it. Pure logic: no
I/O, no clock (``now`` is passed in); the agent applies what it returns to the
datapath.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from tenet.packets import FlowMatch, masked
from tenet.packets.actions import SimAction
from tenet.simulation.conntrack import reusable
from tenet.simulation.result import SimulationResult, Verdict
from tenet.simulation.state import ConnectionKey
from tenet.simulation.tags import Tag, scope_of, untracked

_Entry = FlowMatch | tuple[frozenset[str], tuple[object, ...]]  # a flow, or a megaflow


@dataclass(slots=True)
class Flow:
    match: FlowMatch
    actions: tuple[SimAction, ...]
    tags: frozenset[Tag]
    idle_timeout: float
    hard_timeout: float
    installed_at: float
    last_used: float
    packets: int = 0
    bytes: int = 0
    # the conntrack entries this flow keeps alive while it carries packets
    ct_refs: tuple[ConnectionKey, ...] = ()

    @property
    def drops(self) -> bool:
        return not self.actions

    def expired(self, now: float) -> bool:
        if self.hard_timeout and now - self.installed_at >= self.hard_timeout:
            return True
        return bool(self.idle_timeout) and now - self.last_used >= self.idle_timeout


@dataclass(slots=True)
class Megaflow:
    fields: frozenset[str]
    key: tuple[object, ...]
    result: SimulationResult
    hits: int = 0


def cacheable(result: SimulationResult) -> bool:
    """A result any agreeing microflow may reuse: forward or drop, nothing to emit or
    learn; a tracked one only if it can be re-tracked for another connection
    (:func:`tenet.simulation.conntrack.reusable`: the agent does so on each hit)."""
    return (
        result.verdict in (Verdict.FORWARD, Verdict.DROP)
        and not result.emit
        and not result.state
        and reusable(result)
    )


@dataclass
class FlowTable:
    max_flows: int = 100_000
    max_megaflows: int = 100_000
    _flows: OrderedDict[FlowMatch, Flow] = field(default_factory=OrderedDict)
    _by_tag: dict[Tag, set[_Entry]] = field(default_factory=dict)
    _by_scope: dict[str, set[Tag]] = field(default_factory=dict)
    _megaflows: dict[frozenset[str], dict[tuple[object, ...], Megaflow]] = field(
        default_factory=dict
    )
    _megaflow_count: int = 0
    evictions: int = 0

    def __len__(self) -> int:
        return len(self._flows)

    def __contains__(self, match: object) -> bool:
        return match in self._flows

    def get(self, match: FlowMatch) -> Flow | None:
        return self._flows.get(match)

    def flows(self) -> list[Flow]:
        return list(self._flows.values())

    # -- flows ---------------------------------------------------------------------
    def install(self, match: FlowMatch, result: SimulationResult, now: float) -> list[Flow]:
        """Add (or replace) the flow for ``match``; returns flows evicted to make room."""
        self.remove(match)
        flow = Flow(
            match,
            result.actions if result.verdict is Verdict.FORWARD else (),
            result.tags,
            result.idle_timeout,
            result.hard_timeout,
            now,
            now,
            ct_refs=result.ct.refs if result.ct is not None else (),
        )
        self._flows[match] = flow
        self._tag(flow.tags, match)
        evicted = []
        while len(self._flows) > self.max_flows:
            oldest = next(iter(self._flows))
            removed = self.remove(oldest)
            assert removed is not None
            evicted.append(removed)
            self.evictions += 1
        return evicted

    def remove(self, match: FlowMatch) -> Flow | None:
        flow = self._flows.pop(match, None)
        if flow is not None:
            self._untag(flow.tags, match)
        return flow

    def used(self, match: FlowMatch, packets: int, nbytes: int, last_used: float) -> Flow | None:
        """Counters read from the datapath: totals for the flow, and when it last hit.
        Returns the flow if it carried packets since the last reading."""
        flow = self._flows.get(match)
        if flow is None:
            return None
        if last_used > flow.last_used:
            flow.last_used = last_used
            self._flows.move_to_end(match)
        moved = packets > flow.packets
        flow.packets, flow.bytes = packets, nbytes
        return flow if moved else None

    def expire(self, now: float) -> list[Flow]:
        """Remove and return the flows whose idle or hard timeout has passed."""
        gone = [m for m, f in self._flows.items() if f.expired(now)]
        return [f for m in gone if (f := self.remove(m)) is not None]

    def scoped(self, scope: str) -> tuple[Tag, ...]:
        """The tags of ``scope`` that some flow or megaflow carries."""
        return tuple(self._by_scope.get(scope, ()))

    def invalidate(self, tags: set[Tag] | frozenset[Tag]) -> list[Flow]:
        """Remove every flow and megaflow that depended on any of ``tags``."""
        flows: list[Flow] = []
        for tag in tags:
            for entry in list(self._by_tag.get(tag, ())):
                if isinstance(entry, FlowMatch):
                    flow = self.remove(entry)
                    if flow is not None:
                        flows.append(flow)
                else:
                    self._drop_megaflow(*entry)
        return flows

    # -- megaflows -------------------------------------------------------------------
    def remember(self, match: FlowMatch, result: SimulationResult) -> bool:
        """Keep ``result`` for microflows agreeing with ``match`` on what it read."""
        if not cacheable(result):
            return False
        fields = result.match_fields
        key = masked(match, fields)
        table = self._megaflows.setdefault(fields, {})
        if key in table:
            self._drop_megaflow(fields, key)
        if self._megaflow_count >= self.max_megaflows:
            return False
        table[key] = Megaflow(fields, key, result)
        self._megaflow_count += 1
        # a tracked result holds whatever one connection's entry does (each hit is
        # re-tracked): it is not filed under the connection it was simulated for
        kept = result.tags if result.ct is None else untracked(result.tags)
        self._tag(kept, (fields, key))
        return True

    def recall(self, match: FlowMatch) -> SimulationResult | None:
        """A remembered result that serves ``match``, if any."""
        for fields, table in self._megaflows.items():
            entry = table.get(masked(match, fields))
            if entry is not None and entry.result.holds_for_ttl(match.ip_ttl):
                entry.hits += 1
                return entry.result
        return None

    @property
    def megaflow_count(self) -> int:
        return self._megaflow_count

    def _drop_megaflow(self, fields: frozenset[str], key: tuple[object, ...]) -> None:
        table = self._megaflows.get(fields)
        if table is None or key not in table:
            return
        entry = table.pop(key)
        self._megaflow_count -= 1
        if not table:
            del self._megaflows[fields]
        self._untag(entry.result.tags, (fields, key))

    def _tag(self, tags: frozenset[Tag], entry: _Entry) -> None:
        by_tag = self._by_tag
        for tag in tags:
            members = by_tag.get(tag)
            if members is None:
                members = by_tag[tag] = set()
                scope = scope_of(tag)
                if scope is not None:
                    self._by_scope.setdefault(scope, set()).add(tag)
            members.add(entry)

    def _untag(self, tags: frozenset[Tag], entry: _Entry) -> None:
        for tag in tags:
            members = self._by_tag.get(tag)
            if members is not None:
                members.discard(entry)
                if not members:
                    del self._by_tag[tag]
                    scope = scope_of(tag)
                    if scope is not None:
                        self._unscope(scope, tag)

    def _unscope(self, scope: str, tag: Tag) -> None:
        scoped = self._by_scope.get(scope)
        if scoped is not None:
            scoped.discard(tag)
            if not scoped:
                del self._by_scope[scope]
