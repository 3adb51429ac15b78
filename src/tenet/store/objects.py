"""The object layer: model records in the store, with references kept whole.

``ObjectStore`` creates, reads, updates, deletes, lists and watches records by
type, in the spirit of MidoNet's object mapper. Every change is one store
transaction (a :class:`~tenet.store.unit_of_work.UnitOfWork`), retried from
fresh reads when a concurrent writer got there first, so a change is applied
whole or not at all:

* references (``tenet.store.relations.REFS``) must name existing records of the
  same tenant; deleting a record cascades, clears or is refused as its Refs say;
* linking two ports (``peer_id``) sets both sides; unlinking clears both;
* the cross-record rules of ``tenet.model.consistency`` hold;
* each port and bridge gets a unique 24-bit ``tunnel_key`` (claimed under an
  index key, so no two objects ever share one);
* a port is bound to at most one host interface, and an interface holds one port.

``update(..., expected_revision=N)`` is the API's optimistic concurrency: if the
record changed since revision N it raises TxnConflict and writes nothing.
"""

from __future__ import annotations

import dataclasses
import random
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from tenet.clock import Clock, SystemClock
from tenet.errors import (
    AlreadyExists,
    NotFoundError,
    ReferenceConflict,
    TxnConflict,
    ValidationError,
)
from tenet.model import (
    KINDS,
    Bridge,
    Chain,
    Port,
    PortBinding,
    Record,
    Route,
    Rule,
    RuleAction,
    Tenant,
    TenantRecord,
    TunnelZoneMember,
    loads,
)
from tenet.model.consistency import (
    check_dhcp_host,
    check_peering,
    check_route_next_hop,
    check_router_port_subnets,
    find_jump_cycle,
)
from tenet.model.services import DhcpHost, DhcpSubnet
from tenet.model.types import TUNNEL_KEY_MAX
from tenet.store.base import Event, EventType, Store
from tenet.store.relations import REFS_FROM, REFS_TO, OnDelete, Ref
from tenet.store.unit_of_work import INDEX, META, OBJECTS, UnitOfWork, object_key

R = TypeVar("R", bound=Record)
T = TypeVar("T")

ATTEMPTS = 32
BACKOFF = 0.002  # seconds; doubled per attempt up to BACKOFF_MAX, with jitter
BACKOFF_MAX = 0.1
TUNNEL_KEY_NEXT = META + "tunnel_key_next"
CHILDREN = INDEX + "children/"
IMMUTABLE = ("tenant_id", "device_id", "device_type", "chain_id", "router_id")


def _label(kind: type[Record] | Record) -> str:
    cls = kind if isinstance(kind, type) else type(kind)
    return cls.KIND.removesuffix("s").replace("_", " ")


@dataclass(frozen=True, slots=True)
class Stored(Generic[R]):
    """A record as stored, with the revision that last changed it."""

    record: R
    revision: int


@dataclass(frozen=True, slots=True)
class ObjectEvent:
    """A record created or changed (``record`` set) or deleted (``record`` None)."""

    kind: type[Record]
    id: uuid.UUID
    record: Record | None
    revision: int


def decode_event(event: Event) -> ObjectEvent | None:
    """The object change a store event is, or None for index and meta keys."""
    if not event.key.startswith(OBJECTS):
        return None
    kind_name, _, ident = event.key.removeprefix(OBJECTS).partition("/")
    kind = KINDS[kind_name]
    record = loads(kind, event.kv.value) if event.type is EventType.PUT else None
    return ObjectEvent(kind, uuid.UUID(ident), record, event.revision)


class ObjectStore:
    def __init__(self, store: Store, clock: Clock | None = None) -> None:
        self.store = store
        self._clock = clock or SystemClock()
        self._jitter = random.Random()

    # -- reads -----------------------------------------------------------------
    def find(self, kind: type[R], ident: uuid.UUID) -> Stored[R] | None:
        kv = self.store.get(object_key(kind, ident))
        return None if kv is None else Stored(loads(kind, kv.value), kv.mod_revision)

    def get(self, kind: type[R], ident: uuid.UUID) -> Stored[R]:
        found = self.find(kind, ident)
        if found is None:
            raise NotFoundError(_label(kind), ident)
        return found

    def list(self, kind: type[R], **filters: object) -> list[Stored[R]]:
        """Records of ``kind`` whose fields equal ``filters``, in id order."""
        names = {f.name for f in dataclasses.fields(kind)}
        for name in filters:
            if name not in names:
                raise ValidationError(name, f"{_label(kind)} has no such field to filter on")
        result = self.store.list(f"{OBJECTS}{kind.KIND}/")
        out = []
        for kv in result.items:
            record = loads(kind, kv.value)
            if all(getattr(record, k) == v for k, v in filters.items()):
                out.append(Stored(record, kv.mod_revision))
        return out

    def snapshot(self) -> tuple[Sequence[Record], int]:
        """Every record in the store, read at one revision (what a topology view is
        built from), and that revision: watch from it + 1 to follow changes."""
        result = self.store.list(OBJECTS)
        records = []
        for kv in result.items:
            kind_name = kv.key.removeprefix(OBJECTS).partition("/")[0]
            records.append(loads(KINDS[kind_name], kv.value))
        return records, result.revision

    # -- writes ----------------------------------------------------------------
    def create(self, record: R, *, position: int | None = None) -> Stored[R]:
        """Store a new record. ``position`` places a rule in its chain (default: last)."""

        def change(work: UnitOfWork) -> R:
            if work.get(type(record), record.id) is not None:
                raise AlreadyExists(f"{_label(record)} {record.id} already exists")
            now = self._clock.time()
            new = record.replace(created_at=now, updated_at=now)
            new = self._prepare(work, None, new, position)
            work.put(new)
            return new

        return Stored(*self._run(change))

    def update(self, record: R, *, expected_revision: int | None = None) -> Stored[R]:
        """Replace a stored record; refuses changes to identity and ownership fields."""

        def change(work: UnitOfWork) -> R:
            old = self._current(work, type(record), record.id, expected_revision)
            for name in IMMUTABLE:
                if hasattr(old, name) and getattr(old, name) != getattr(record, name):
                    raise ValidationError(name, "cannot be changed; create a new object")
            new = record.replace(created_at=old.created_at, updated_at=self._clock.time())
            new = self._prepare(work, old, new, None)
            work.put(new)
            return new

        return Stored(*self._run(change))

    def delete(
        self, kind: type[Record], ident: uuid.UUID, *, expected_revision: int | None = None
    ) -> None:
        """Delete a record and, as its relations say, cascade or clear its referrers."""

        def change(work: UnitOfWork) -> None:
            self._delete(work, self._current(work, kind, ident, expected_revision))

        self._run(change)

    def link(self, port_id: uuid.UUID, peer_id: uuid.UUID) -> Stored[Port]:
        """Peer two ports (both sides, one transaction)."""
        port = self.get(Port, port_id)
        return self.update(port.record.replace(peer_id=peer_id), expected_revision=port.revision)

    def unlink(self, port_id: uuid.UUID) -> Stored[Port]:
        port = self.get(Port, port_id)
        return self.update(port.record.replace(peer_id=None), expected_revision=port.revision)

    # -- machinery -------------------------------------------------------------
    def _run(self, change: Callable[[UnitOfWork], T]) -> tuple[T, int]:
        """Apply ``change`` in one transaction, redoing it if a concurrent write raced it."""
        for attempt in range(ATTEMPTS):
            work = UnitOfWork(self.store)
            result = change(work)
            try:
                return result, work.commit()
            except TxnConflict:
                if attempt == ATTEMPTS - 1:
                    raise
                ceiling = min(BACKOFF_MAX, BACKOFF * 2**attempt)
                self._clock.sleep(self._jitter.uniform(0, ceiling))
        raise AssertionError("unreachable")

    def _current(
        self, work: UnitOfWork, kind: type[R], ident: uuid.UUID, expected: int | None
    ) -> R:
        current = work.get(kind, ident)
        if current is None:
            raise NotFoundError(_label(kind), ident)
        if expected is not None and work.revision_of(object_key(kind, ident)) != expected:
            raise TxnConflict(
                (object_key(kind, ident),),
                f"{_label(kind)} {ident} changed since revision {expected}; read it again",
            )
        return current

    def _prepare(self, work: UnitOfWork, old: R | None, new: R, position: int | None) -> R:
        self._check_refs(work, new)
        hook = _PREPARE.get(type(new))
        if hook is not None:
            new = hook(work, old, new, position)
        _index_children(work, old, new)
        return new

    def children(self, parent: uuid.UUID) -> Sequence[tuple[type[Record], uuid.UUID]]:
        """The records that name ``parent`` in a cascading reference (a device's ports,
        a router's routes, a chain's rules, a host's bindings...), read by key."""
        out = []
        for kv in self.store.list(f"{CHILDREN}{parent}/").items:
            kind_name, _, ident = kv.key.removeprefix(f"{CHILDREN}{parent}/").partition("/")
            out.append((KINDS[kind_name], uuid.UUID(ident)))
        return out

    def _check_refs(self, work: UnitOfWork, new: Record) -> None:
        if isinstance(new, TenantRecord) and work.get(Tenant, new.tenant_id) is None:
            raise ValidationError("tenant_id", f"tenant {new.tenant_id} does not exist")
        for ref in REFS_FROM.get(type(new), ()):
            for ident in ref.ids(new):
                if ref.target is type(new) and ident == new.id:
                    continue
                target = work.get(ref.target, ident)
                if target is None:
                    raise ValidationError(ref.field, f"{_label(ref.target)} {ident} does not exist")
                if (
                    ref.same_tenant
                    and isinstance(new, TenantRecord)
                    and isinstance(target, TenantRecord)
                    and target.tenant_id != new.tenant_id
                ):
                    raise ValidationError(
                        ref.field, f"{_label(ref.target)} {ident} belongs to another tenant"
                    )

    def _delete(self, work: UnitOfWork, record: Record) -> None:
        if work.is_deleted(record):
            return
        if isinstance(record, Tenant):
            _refuse_if_owning(work, record)
        work.delete(record)
        _index_children(work, record, None)
        for ref in REFS_TO.get(type(record), ()):
            for referrer in work.list(ref.source):
                if record.id not in ref.ids(referrer) or work.is_deleted(referrer):
                    continue
                if ref.on_delete is OnDelete.CASCADE:
                    self._delete(work, referrer)
                elif ref.on_delete is OnDelete.CLEAR:
                    work.put(_cleared(referrer, ref, record.id))
                else:
                    raise ReferenceConflict(
                        f"{_label(record)} {record.id} is used by {_label(referrer)} "
                        f"{referrer.id} ({ref.field}); remove that reference first"
                    )
        hook = _DELETE.get(type(record))
        if hook is not None:
            hook(work, record)


def _cleared(record: R, ref: Ref, ident: uuid.UUID) -> R:
    """``record`` with ``ident`` removed from the field ``ref`` names."""
    cleared: R = _set_path(record, ref.field.split("."), ident, ref.many)
    return cleared


def _set_path(obj: Any, path: list[str], ident: uuid.UUID, many: bool) -> Any:
    name = path[0]
    value = getattr(obj, name)
    if len(path) > 1:
        new_value = _set_path(value, path[1:], ident, many)
    elif many:
        new_value = tuple(v for v in value if v != ident)
    else:
        new_value = None
    return dataclasses.replace(obj, **{name: new_value})


def _refuse_if_owning(work: UnitOfWork, tenant: Tenant) -> None:
    for kind in KINDS.values():
        if not issubclass(kind, TenantRecord):
            continue
        owned = [r for r in work.list(kind) if r.tenant_id == tenant.id]
        if owned:
            raise ReferenceConflict(
                f"tenant {tenant.id} still owns {len(owned)} {kind.KIND.replace('_', ' ')}; "
                "delete them first"
            )


def _child_keys(record: Record | None) -> set[str]:
    """The index keys that list ``record`` under each parent it cascades from."""
    if record is None:
        return set()
    return {
        f"{CHILDREN}{parent}/{record.KIND}/{record.id}"
        for ref in REFS_FROM.get(type(record), ())
        if ref.on_delete is OnDelete.CASCADE and not ref.many
        for parent in ref.ids(record)
    }


def _index_children(work: UnitOfWork, old: Record | None, new: Record | None) -> None:
    before, after = _child_keys(old), _child_keys(new)
    for key in before - after:
        work.write_raw(key, None)
    for key in after - before:
        work.write_raw(key, b"")


# -- per-kind rules ------------------------------------------------------------


def _tunnel_key(work: UnitOfWork, record: Port | Bridge, old: Port | Bridge | None) -> int:
    owner = object_key(type(record), record.id)
    if old is not None and old.tunnel_key:
        if record.tunnel_key not in (0, old.tunnel_key):
            raise ValidationError("tunnel_key", "cannot be changed once allocated")
        return old.tunnel_key
    if record.tunnel_key:
        if not work.claim(f"{INDEX}tunnel_key/{record.tunnel_key}", owner):
            raise AlreadyExists(f"tunnel_key {record.tunnel_key} is already in use")
        return record.tunnel_key
    raw = work.read_raw(TUNNEL_KEY_NEXT)
    start = int(raw) if raw else 1
    for offset in range(TUNNEL_KEY_MAX):
        key = (start - 1 + offset) % TUNNEL_KEY_MAX + 1
        if work.claim(f"{INDEX}tunnel_key/{key}", owner):
            work.write_raw(TUNNEL_KEY_NEXT, str(key % TUNNEL_KEY_MAX + 1).encode())
            return key
    raise AlreadyExists("every 24-bit tunnel key is in use")


def _release_tunnel_key(work: UnitOfWork, record: Record) -> None:
    assert isinstance(record, Port | Bridge)
    if record.tunnel_key:
        work.release(f"{INDEX}tunnel_key/{record.tunnel_key}", object_key(type(record), record.id))


def _prepare_bridge(work: UnitOfWork, old: Any, new: Any, position: int | None) -> Any:
    return new.replace(tunnel_key=_tunnel_key(work, new, old))


def _binding_key(port_id: uuid.UUID) -> str:
    return f"{INDEX}binding/port/{port_id}"


def _prepare_port(work: UnitOfWork, old: Port | None, new: Port, position: int | None) -> Port:
    new = new.replace(tunnel_key=_tunnel_key(work, new, old))
    if new.subnet is not None and (old is None or old.subnet != new.subnet):
        siblings = [p for p in work.list(Port) if p.device_id == new.device_id]
        check_router_port_subnets(new, siblings)
    old_peer = old.peer_id if old is not None else None
    if new.peer_id == old_peer:
        return new
    if old_peer is not None:
        former = work.get(Port, old_peer)
        if former is not None and former.peer_id == new.id:
            work.put(former.replace(peer_id=None))
    if new.peer_id is not None:
        peer = work.get(Port, new.peer_id)
        assert peer is not None  # checked with the references
        check_peering(new, peer)
        if peer.peer_id not in (None, new.id):
            raise ReferenceConflict(f"port {peer.id} is already linked to port {peer.peer_id}")
        for side in (new, peer):
            if work.read_raw(_binding_key(side.id)) is not None:
                raise ReferenceConflict(
                    f"port {side.id} is bound to a host interface; an interior port cannot be"
                )
        work.put(peer.replace(peer_id=new.id))
    return new


def _prepare_route(work: UnitOfWork, old: Route | None, new: Route, position: int | None) -> Route:
    port = work.get(Port, new.next_hop_port_id) if new.next_hop_port_id else None
    check_route_next_hop(new, port)
    return new


def _prepare_chain(work: UnitOfWork, old: Chain | None, new: Chain, position: int | None) -> Chain:
    before = set(old.rule_ids) if old is not None else set()
    if set(new.rule_ids) != before:
        raise ValidationError(
            "rule_ids", "can only be reordered here; add and delete rules through the rules"
        )
    return new


def _prepare_rule(work: UnitOfWork, old: Rule | None, new: Rule, position: int | None) -> Rule:
    chain = work.get(Chain, new.chain_id)
    assert chain is not None
    if old is None:
        ids = list(chain.rule_ids)
        where = len(ids) if position is None else position
        if not 0 <= where <= len(ids):
            raise ValidationError("position", f"{position} is outside 0..{len(ids)}")
        ids.insert(where, new.id)
        work.put(chain.replace(rule_ids=tuple(ids)))
    if new.action is RuleAction.JUMP:
        jumps: dict[uuid.UUID, set[uuid.UUID]] = {}
        for rule in [*work.list(Rule), new]:
            if rule.action is RuleAction.JUMP and rule.jump_chain_id and rule.id != new.id:
                jumps.setdefault(rule.chain_id, set()).add(rule.jump_chain_id)
        assert new.jump_chain_id is not None
        jumps.setdefault(new.chain_id, set()).add(new.jump_chain_id)
        cycle = find_jump_cycle(new.chain_id, jumps)
        if cycle:
            path = " -> ".join(str(c) for c in cycle)
            raise ValidationError("jump_chain_id", f"the jump makes a loop of chains: {path}")
    return new


def _delete_rule(work: UnitOfWork, record: Record) -> None:
    assert isinstance(record, Rule)
    chain = work.get(Chain, record.chain_id)
    if chain is not None and record.id in chain.rule_ids:
        work.put(chain.replace(rule_ids=tuple(r for r in chain.rule_ids if r != record.id)))


def _prepare_binding(
    work: UnitOfWork,
    old: PortBinding | None,
    new: PortBinding,
    position: int | None,
) -> PortBinding:
    port = work.get(Port, new.port_id)
    assert port is not None
    if port.peer_id is not None:
        raise ValidationError(
            "port_id", f"port {port.id} is an interior port (linked to {port.peer_id})"
        )
    owner = object_key(PortBinding, new.id)
    if old is not None:
        _release_binding(work, old)
    if not work.claim(_binding_key(new.port_id), owner):
        raise AlreadyExists(f"port {new.port_id} is already bound")
    if not work.claim(f"{INDEX}binding/iface/{new.host_id}/{new.interface}", owner):
        raise AlreadyExists(f"interface {new.interface} of host {new.host_id} is already bound")
    return new


def _release_binding(work: UnitOfWork, record: Record) -> None:
    assert isinstance(record, PortBinding)
    owner = object_key(PortBinding, record.id)
    work.release(_binding_key(record.port_id), owner)
    work.release(f"{INDEX}binding/iface/{record.host_id}/{record.interface}", owner)


def _prepare_member(
    work: UnitOfWork,
    old: TunnelZoneMember | None,
    new: TunnelZoneMember,
    position: int | None,
) -> TunnelZoneMember:
    if old is not None:
        _release_member(work, old)
    key = f"{INDEX}tz_member/{new.tunnel_zone_id}/{new.host_id}"
    if not work.claim(key, object_key(TunnelZoneMember, new.id)):
        raise AlreadyExists(f"host {new.host_id} is already in tunnel zone {new.tunnel_zone_id}")
    return new


def _release_member(work: UnitOfWork, record: Record) -> None:
    assert isinstance(record, TunnelZoneMember)
    key = f"{INDEX}tz_member/{record.tunnel_zone_id}/{record.host_id}"
    work.release(key, object_key(TunnelZoneMember, record.id))


def _prepare_dhcp_host(
    work: UnitOfWork,
    old: DhcpHost | None,
    new: DhcpHost,
    position: int | None,
) -> DhcpHost:
    subnet = work.get(DhcpSubnet, new.subnet_id)
    assert subnet is not None
    check_dhcp_host(new, subnet)
    return new


_PREPARE: dict[type[Record], Callable[..., Any]] = {
    Bridge: _prepare_bridge,
    Port: _prepare_port,
    Route: _prepare_route,
    Chain: _prepare_chain,
    Rule: _prepare_rule,
    PortBinding: _prepare_binding,
    TunnelZoneMember: _prepare_member,
    DhcpHost: _prepare_dhcp_host,
}

_DELETE: dict[type[Record], Callable[[UnitOfWork, Record], None]] = {
    Bridge: _release_tunnel_key,
    Port: _release_tunnel_key,
    Rule: _delete_rule,
    PortBinding: _release_binding,
    TunnelZoneMember: _release_member,
}
