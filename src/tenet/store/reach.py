"""What an agent loads: the part of the topology its local ports can reach.

An agent does not mirror the whole store. It starts from its host: the host's
bindings (its local ports) and tunnel-zone memberships, and follows references
from there, fetching each record by key when it is first needed:

* every reference a record holds (a port's device, peer and chains; a rule's
  jump chain and groups; a binding's host...), except those its kind's spec says
  not to follow (the tenant; the port lists inside rule conditions: ids are all
  a condition needs);
* the children that matter for forwarding (:attr:`KindSpec.children`), read from
  the reference index: a device's ports, a router's routes, a chain's rules, a
  port's binding, a host's tunnel-zone memberships, a bridge's DHCP subnets.

Kinds no agent acts on yet (:attr:`KindSpec.held` False) are never loaded. So an
agent holds its tenants' devices and whatever they link to (a provider router,
other tenants behind it), and nothing of tenants it never carries. Changes arrive
on the agent's store watch; :meth:`Reach.accept` keeps those about held records,
or about new children of held records, and fetches what they newly reach. The
trace service starts from one port the same way (:meth:`Reach.load_from`).
"""

from __future__ import annotations

import uuid
from collections import deque

from tenet.model import Host, PortBinding, Record, TunnelZoneMember
from tenet.model.kinds import REFS_FROM, SPECS
from tenet.store.objects import ObjectEvent, ObjectStore


class Reach:
    def __init__(self, objects: ObjectStore, host_id: uuid.UUID | None) -> None:
        self.objects = objects
        self.host_id = host_id
        self.records: dict[uuid.UUID, Record] = {}
        self._pending: deque[Record] = deque()

    def load(self) -> dict[uuid.UUID, Record]:
        """Fetch everything reachable from this host's ports, afresh."""
        self.records = {}
        if self.host_id is not None:
            self._visit(Host, self.host_id)
            for kind, ident in self.objects.children(self.host_id, (PortBinding, TunnelZoneMember)):
                self._visit(kind, ident)
        self._expand()
        return self.records

    def load_from(self, kind: type[Record], ident: uuid.UUID) -> dict[uuid.UUID, Record]:
        """Fetch everything reachable from one record (and this host, if any)."""
        self.load()
        self._visit(kind, ident)
        self._expand()
        return self.records

    def accept(self, event: ObjectEvent) -> list[Record] | None:
        """None if this agent does not hold the changed record; otherwise the other
        records it holds now because of the change (fetched from the store)."""
        record = event.record
        if event.id in self.records:
            if record is None:
                del self.records[event.id]
                return []
        elif record is None or not self._wanted(record):
            return None
        assert record is not None
        self.records[record.id] = record
        before = set(self.records)
        self._pending.append(record)
        self._expand()
        return [self.records[i] for i in sorted(set(self.records) - before)]

    def _wanted(self, record: Record) -> bool:
        """A new record this agent must hold: a child of a held record, or its own binding."""
        if not SPECS[type(record)].held:
            return False
        if isinstance(record, PortBinding | TunnelZoneMember) and record.host_id == self.host_id:
            return True
        for ref in REFS_FROM.get(type(record), ()):
            if not ref.cascades:
                continue
            for parent_id in ref.ids(record):
                parent = self.records.get(parent_id)
                if parent is not None and type(record) in SPECS[type(parent)].children:
                    return True
        return False

    def _visit(self, kind: type[Record], ident: uuid.UUID) -> None:
        if ident in self.records or not SPECS[kind].held:
            return
        found = self.objects.find(kind, ident)
        if found is not None:
            self.records[ident] = found.record
            self._pending.append(found.record)

    def _expand(self) -> None:
        while self._pending:
            record = self._pending.popleft()
            for ref in REFS_FROM.get(type(record), ()):
                if ref.follow:
                    for ident in ref.ids(record):
                        self._visit(ref.target, ident)
            kinds = SPECS[type(record)].children
            if kinds:
                for kind, ident in self.objects.children(record.id, kinds):
                    self._visit(kind, ident)
