"""The object layer: model records in the store, with references kept whole.

``ObjectStore`` creates, reads, updates, deletes, lists and watches records by
type, in the spirit of MidoNet's object mapper. Every change is one store
transaction (a :class:`~tenet.store.unit_of_work.UnitOfWork`), redone from fresh
reads when a concurrent writer got there first, so a change is applied whole or
not at all:

* references (the kinds' :class:`~tenet.model.kinds.Ref`) must name existing
  records the writer may name (:mod:`tenet.store.boundary`); deleting a record
  cascades, clears or is refused as its referrers' Refs say, found through the
  reference index, never by a scan;
* linking two ports (``peer_id``) sets both sides; unlinking clears both;
* the per-kind rules of :mod:`tenet.store.kind_rules` and the cross-record rules
  of ``tenet.model.consistency`` hold;
* the writer (an :class:`~tenet.store.boundary.Actor`) changes nothing outside its
  tenant, side effects included.

Several changes can be one transaction: :meth:`ObjectStore.apply` takes a list of
:data:`Change` values, and ``with objects.transaction() as tx:`` collects them.

A transaction holds at most ``MAX_TXN_OPS`` compares and writes (etcd's limit).
The one change that can outgrow it by itself is a delete that cascades to many
records (a bridge with a thousand ports): it is then done in steps, each its own
transaction, deepest referrers first, so the store is whole after every step and
a concurrent create under the record being deleted is seen by the last step.

``expected_revision=N`` is the API's optimistic concurrency: if the record changed
since revision N the change raises TxnConflict and writes nothing.
"""

from __future__ import annotations

import builtins
import dataclasses
import random
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from tenet.clock import Clock, SystemClock
from tenet.errors import (
    AlreadyExists,
    NotFoundError,
    PermissionDenied,
    ReferenceConflict,
    TooLarge,
    TxnConflict,
    ValidationError,
)
from tenet.model import KINDS, Port, Record, Tenant, TenantRecord, from_dict, loads, to_dict
from tenet.model.kinds import REFS_FROM, SPECS, OnDelete, Ref
from tenet.store.base import Event, EventType, Store
from tenet.store.boundary import ADMIN, Actor, check_changes, check_reference, owns, visible
from tenet.store.keys import (
    OBJECTS,
    kind_prefix,
    object_key,
    parse_object_key,
    prefix_end,
    refs_prefix,
)
from tenet.store.kind_rules import DELETE, PREPARE
from tenet.store.unit_of_work import MAX_TXN_OPS, UnitOfWork

R = TypeVar("R", bound=Record)
T = TypeVar("T")

ATTEMPTS = 32
BACKOFF = 0.002  # seconds; doubled per attempt up to BACKOFF_MAX, with jitter
BACKOFF_MAX = 0.1
STAGES_MAX = 64  # rounds of a staged delete before it gives up (others keep adding)


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
    """The object change a store event is, or None for any other key."""
    parsed = parse_object_key(event.key)
    if parsed is None:
        return None
    kind = KINDS[parsed[0]]
    record = loads(kind, event.kv.value) if event.type is EventType.PUT else None
    return ObjectEvent(kind, parsed[1], record, event.revision)


# -- changes ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Create:
    record: Record
    position: int | None = None  # a rule's place in its chain (default: last)


@dataclass(frozen=True, slots=True)
class Update:
    """Replace a record; ``expected_revision``: fail if it changed since."""

    record: Record
    expected_revision: int | None = None


@dataclass(frozen=True, slots=True)
class Patch:
    """Change some fields of a record (JSON values, validated like an API body), read
    and written in the one transaction."""

    kind: type[Record]
    id: uuid.UUID
    fields: Mapping[str, Any]
    expected_revision: int | None = None


@dataclass(frozen=True, slots=True)
class Remove:
    kind: type[Record]
    id: uuid.UUID
    expected_revision: int | None = None


@dataclass(frozen=True, slots=True)
class Link:
    """Peer two ports (both sides)."""

    port_id: uuid.UUID
    peer_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class Unlink:
    port_id: uuid.UUID


Change = Create | Update | Patch | Remove | Link | Unlink


@dataclass
class Transaction:
    """Changes collected by ``with objects.transaction() as tx:``, applied together
    when the block ends (all or nothing); ``results`` then holds what each returned
    (the stored record, or None for a removal)."""

    changes: list[Change] = field(default_factory=list)
    results: list[Stored[Any] | None] = field(default_factory=list)

    def create(self, record: R, *, position: int | None = None) -> R:
        self.changes.append(Create(record, position))
        return record

    def update(self, record: R, *, expected_revision: int | None = None) -> R:
        self.changes.append(Update(record, expected_revision))
        return record

    def patch(self, kind: type[Record], ident: uuid.UUID, **fields: Any) -> None:
        self.changes.append(Patch(kind, ident, fields))

    def delete(
        self, kind: type[Record], ident: uuid.UUID, *, expected_revision: int | None = None
    ) -> None:
        self.changes.append(Remove(kind, ident, expected_revision))

    def link(self, port_id: uuid.UUID, peer_id: uuid.UUID) -> None:
        self.changes.append(Link(port_id, peer_id))

    def unlink(self, port_id: uuid.UUID) -> None:
        self.changes.append(Unlink(port_id))


# -- the object store --------------------------------------------------------------------


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
            raise NotFoundError(SPECS[kind].label, ident)
        return found

    def list(self, kind: type[R], **filters: object) -> builtins.list[Stored[R]]:
        """Every record of ``kind`` whose fields equal ``filters``, in id order."""
        _check_filters(kind, filters)
        out = []
        for kv in self.store.list(kind_prefix(kind)).items:
            record = loads(kind, kv.value)
            if _matches(record, filters):
                out.append(Stored(record, kv.mod_revision))
        return out

    def page(
        self,
        kind: type[R],
        *,
        actor: Actor = ADMIN,
        after: uuid.UUID | None = None,
        limit: int = 100,
        **filters: object,
    ) -> tuple[builtins.list[Stored[R]], uuid.UUID | None]:
        """Up to ``limit`` records of ``kind`` that ``actor`` may see and that match
        ``filters``, in id order after ``after``; and the cursor of the next page
        (None: this was the last). Read from the store a chunk at a time."""
        _check_filters(kind, filters)
        tenant = filters.get("tenant_id")
        if not actor.admin and not SPECS[kind].shareable:
            tenant = actor.tenant_id  # a member's own records: its tenant's index
        if isinstance(tenant, uuid.UUID) and issubclass(kind, TenantRecord):
            ids = self._ids_in_range(refs_prefix(tenant, kind), after)
        else:
            ids = self._ids_in_range(kind_prefix(kind), after)
        out: builtins.list[Stored[R]] = []
        for ident in ids:
            stored = self.find(kind, ident)
            if stored is None or not visible(actor, stored.record):
                continue
            if not _matches(stored.record, filters):
                continue
            if len(out) == limit:
                return out, out[-1].record.id
            out.append(stored)
        return out, None

    def _ids_in_range(self, prefix: str, after: uuid.UUID | None) -> Iterator[uuid.UUID]:
        start = f"{prefix}{after}\0" if after is not None else prefix
        end = prefix_end(prefix)
        while True:
            chunk = self.store.range(start, end, limit=256)
            for kv in chunk.items:
                yield uuid.UUID(kv.key.removeprefix(prefix))
            if not chunk.more:
                return
            start = chunk.items[-1].key + "\0"

    def referrers(
        self, target: uuid.UUID, kinds: Sequence[type[Record]] = ()
    ) -> builtins.list[tuple[type[Record], uuid.UUID, tuple[str, ...]]]:
        """The records that refer to ``target`` (of ``kinds``, if given), each with the
        fields that name it: read from the reference index, by key."""
        prefix = refs_prefix(target)
        out = []
        for kv in self.store.list(prefix).items:
            kind_name, _, ident = kv.key.removeprefix(prefix).partition("/")
            kind = KINDS[kind_name]
            if not kinds or kind in kinds:
                out.append((kind, uuid.UUID(ident), tuple(kv.value.decode().split(","))))
        return out

    def children(
        self, parent: uuid.UUID, kinds: Sequence[type[Record]] = ()
    ) -> builtins.list[tuple[type[Record], uuid.UUID]]:
        """The records that live and die with ``parent`` (a device's ports, a router's
        routes, a chain's rules, a host's bindings...), read by key."""
        out = []
        for kind, ident, fields in self.referrers(parent, kinds):
            if any(ref.cascades and ref.field in fields for ref in REFS_FROM.get(kind, ())):
                out.append((kind, ident))
        return out

    def snapshot(self) -> tuple[Sequence[Record], int]:
        """Every record in the store, read at one revision, and that revision: watch
        from it + 1 to follow changes. (Tests and tools; agents load what they reach.)"""
        result = self.store.list(OBJECTS)
        records = []
        for kv in result.items:
            kind_name = kv.key.removeprefix(OBJECTS).partition("/")[0]
            records.append(loads(KINDS[kind_name], kv.value))
        return records, result.revision

    # -- writes ----------------------------------------------------------------
    def create(self, record: R, *, position: int | None = None, actor: Actor = ADMIN) -> Stored[R]:
        """Store a new record. ``position`` places a rule in its chain (default: last)."""
        return self._one(Create(record, position), actor)

    def update(
        self, record: R, *, expected_revision: int | None = None, actor: Actor = ADMIN
    ) -> Stored[R]:
        """Replace a stored record; refuses changes to identity and ownership fields."""
        return self._one(Update(record, expected_revision), actor)

    def patch(
        self,
        kind: type[R],
        ident: uuid.UUID,
        fields: Mapping[str, Any],
        *,
        expected_revision: int | None = None,
        actor: Actor = ADMIN,
    ) -> Stored[R]:
        return self._one(Patch(kind, ident, fields, expected_revision), actor)

    def delete(
        self,
        kind: type[Record],
        ident: uuid.UUID,
        *,
        expected_revision: int | None = None,
        actor: Actor = ADMIN,
    ) -> None:
        """Delete a record and, as its referrers' Refs say, cascade or clear them."""
        try:
            self.apply([Remove(kind, ident, expected_revision)], actor=actor)
        except TooLarge:
            self._delete_in_steps(kind, ident, expected_revision, actor)

    def link(self, port_id: uuid.UUID, peer_id: uuid.UUID, *, actor: Actor = ADMIN) -> Stored[Port]:
        """Peer two ports (both sides, one transaction)."""
        return self._one(Link(port_id, peer_id), actor)

    def unlink(self, port_id: uuid.UUID, *, actor: Actor = ADMIN) -> Stored[Port]:
        return self._one(Unlink(port_id), actor)

    @contextmanager
    def transaction(self, *, actor: Actor = ADMIN) -> Iterator[Transaction]:
        """Collect changes in the block; apply them as one transaction when it ends
        (nothing, if the block raises)."""
        tx = Transaction()
        yield tx
        tx.results = self.apply(tx.changes, actor=actor)

    def apply(
        self, changes: Sequence[Change], *, actor: Actor = ADMIN
    ) -> builtins.list[Stored[Any] | None]:
        """Apply ``changes`` in order, all in one transaction, or none of them."""

        def change(work: UnitOfWork) -> builtins.list[Record | None]:
            return [self._change(work, c, actor) for c in changes]

        records, revision = self._run(change, actor)
        return [None if r is None else Stored(r, revision) for r in records]

    def _one(self, change: Change, actor: Actor) -> Stored[Any]:
        (result,) = self.apply([change], actor=actor)
        assert result is not None
        return result

    # -- machinery -------------------------------------------------------------
    def _run(self, change: Callable[[UnitOfWork], T], actor: Actor) -> tuple[T, int]:
        """Apply ``change`` in one transaction, redoing it if a concurrent write raced it."""
        for attempt in range(ATTEMPTS):
            work = UnitOfWork(self.store)
            result = change(work)
            check_changes(actor, work.changes())
            try:
                return result, work.commit()
            except TxnConflict:
                if attempt == ATTEMPTS - 1:
                    raise
                ceiling = min(BACKOFF_MAX, BACKOFF * 2**attempt)
                self._clock.sleep(self._jitter.uniform(0, ceiling))
        raise AssertionError("unreachable")

    def _change(self, work: UnitOfWork, change: Change, actor: Actor) -> Record | None:
        if isinstance(change, Create):
            return self._create(work, change.record, change.position, actor)
        if isinstance(change, Update):
            return self._update(work, change.record, change.expected_revision, actor)
        if isinstance(change, Patch):
            current = _current(work, change.kind, change.id, change.expected_revision, actor)
            data = {**to_dict(current), **change.fields}
            return self._update(work, from_dict(change.kind, data), None, actor)
        if isinstance(change, Remove):
            self._delete(
                work, _current(work, change.kind, change.id, change.expected_revision, actor), actor
            )
            return None
        if isinstance(change, Link):
            port = _current(work, Port, change.port_id, None, actor)
            return self._update(work, port.replace(peer_id=change.peer_id), None, actor)
        port = _current(work, Port, change.port_id, None, actor)
        return self._update(work, port.replace(peer_id=None), None, actor)

    def _create(self, work: UnitOfWork, record: R, position: int | None, actor: Actor) -> R:
        if work.get(type(record), record.id) is not None:
            raise AlreadyExists(f"{SPECS[type(record)].label} {record.id} already exists")
        now = self._clock.time()
        new = record.replace(created_at=now, updated_at=now)
        new = self._prepare(work, None, new, position, actor)
        work.put(new)
        return new

    def _update(self, work: UnitOfWork, record: R, expected: int | None, actor: Actor) -> R:
        old = _current(work, type(record), record.id, expected, actor)
        for name in SPECS[type(record)].immutable:
            if getattr(old, name) != getattr(record, name):
                raise ValidationError(name, "cannot be changed; create a new object")
        new = record.replace(created_at=old.created_at, updated_at=self._clock.time())
        new = self._prepare(work, old, new, None, actor)
        work.put(new)
        return new

    def _prepare(
        self, work: UnitOfWork, old: R | None, new: R, position: int | None, actor: Actor
    ) -> R:
        self._check_refs(work, old, new, actor)
        hook = PREPARE.get(type(new))
        if hook is not None:
            new = hook(work, old, new, position)
        return new

    def _check_refs(self, work: UnitOfWork, old: Record | None, new: Record, actor: Actor) -> None:
        """Every reference ``new`` adds names a record ``actor`` may name."""
        for ref in REFS_FROM.get(type(new), ()):
            before = set(ref.ids(old)) if old is not None else set()
            for ident in ref.ids(new):
                if ident in before or (ref.target is type(new) and ident == new.id):
                    continue
                check_reference(actor, ref, new, work.get(ref.target, ident), ident)

    def _delete(self, work: UnitOfWork, record: Record, actor: Actor) -> None:
        if work.is_deleted(record):
            return
        referrers = work.referrers(record.id)
        if isinstance(record, Tenant) and referrers:
            counts: dict[str, int] = {}
            for kind, _ in referrers:
                counts[kind.KIND.replace("_", " ")] = counts.get(kind.KIND.replace("_", " "), 0) + 1
            owned = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items()))
            raise ReferenceConflict(f"tenant {record.id} still owns {owned}; delete them first")
        work.delete(record)
        for kind, ident in referrers:
            referrer = work.get(kind, ident, compare=False)
            if referrer is None or work.is_deleted(referrer):
                continue
            for ref in _refs_between(referrer, record):
                if ref.on_delete is OnDelete.CASCADE:
                    self._delete(work, referrer, actor)
                    break
                if ref.on_delete is OnDelete.CLEAR:
                    referrer = _cleared(referrer, ref, record.id)
                    work.put(referrer)
                else:
                    raise ReferenceConflict(_in_use(record, referrer, ref, actor))
        hook = DELETE.get(type(record))
        if hook is not None:
            hook(work, record)

    # -- deletes too big for one transaction ------------------------------------
    def _delete_in_steps(
        self, kind: type[Record], ident: uuid.UUID, expected: int | None, actor: Actor
    ) -> None:
        """Delete the referrers one transaction each (themselves in steps if need be),
        then the record. A dry run first finds any referrer that refuses, so a delete
        that would be refused changes nothing."""
        self._dry_run(kind, ident, expected, actor)
        for _ in range(STAGES_MAX):
            try:
                self.apply([Remove(kind, ident, expected)], actor=actor)
            except TooLarge:
                self._delete_referrers(kind, ident, actor)
                continue
            return
        raise TooLarge(f"{SPECS[kind].label} {ident}: referrers keep being added while deleting")

    def _delete_referrers(self, kind: type[Record], ident: uuid.UUID, actor: Actor) -> None:
        """One step: each referrer deleted (a cascade) or cleared, in a transaction of its own."""
        record = self.get(kind, ident).record
        for child_kind, child_id, _ in self.referrers(ident):
            child = self.find(child_kind, child_id)
            if child is None:
                continue
            refs = _refs_between(child.record, record)
            if any(r.on_delete is OnDelete.CASCADE for r in refs):
                self.delete(child_kind, child_id, actor=actor)
            else:
                self.apply([_clearing(child.record, refs, ident)], actor=actor)

    def _dry_run(
        self, kind: type[Record], ident: uuid.UUID, expected: int | None, actor: Actor
    ) -> None:
        work = UnitOfWork(self.store, budget=1 << 30)
        self._delete(work, _current(work, kind, ident, expected, actor), actor)
        check_changes(actor, work.changes())


def _current(
    work: UnitOfWork, kind: type[R], ident: uuid.UUID, expected: int | None, actor: Actor
) -> R:
    """The record a change starts from: NotFoundError when there is none the actor may
    see, PermissionDenied when it may see but not change it."""
    current = work.get(kind, ident)
    if current is None or not visible(actor, current):
        raise NotFoundError(SPECS[kind].label, ident)
    if not owns(actor, current):
        raise PermissionDenied(f"only the operator may change {SPECS[kind].label} {ident}")
    if expected is not None and work.revision_of(object_key(kind, ident)) != expected:
        raise TxnConflict(
            (object_key(kind, ident),),
            f"{SPECS[kind].label} {ident} changed since revision {expected}; read it again",
        )
    return current


def _refs_between(referrer: Record, target: Record) -> list[Ref]:
    """The Refs through which ``referrer`` names ``target``; cascading ones first."""
    refs = [
        ref
        for ref in REFS_FROM.get(type(referrer), ())
        if ref.target is type(target) and target.id in ref.ids(referrer)
    ]
    return sorted(refs, key=lambda r: r.on_delete is not OnDelete.CASCADE)


def _in_use(record: Record, referrer: Record, ref: Ref, actor: Actor) -> str:
    label = SPECS[type(record)].label
    if not visible(actor, referrer):
        return f"{label} {record.id} is used by a record of another tenant"
    return (
        f"{label} {record.id} is used by {SPECS[type(referrer)].label} {referrer.id} "
        f"({ref.field}); remove that reference first"
    )


def _cleared(record: R, ref: Ref, ident: uuid.UUID) -> R:
    """``record`` with ``ident`` removed from the field ``ref`` names."""
    cleared: R = _set_path(record, ref.field.split("."), ident, ref.many)
    return cleared


def _clearing(record: Record, refs: list[Ref], ident: uuid.UUID) -> Update:
    for ref in refs:
        record = _cleared(record, ref, ident)
    return Update(record)


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


def _check_filters(kind: type[Record], filters: Mapping[str, object]) -> None:
    names = {f.name for f in dataclasses.fields(kind)}
    for name in filters:
        if name not in names:
            raise ValidationError(name, f"{SPECS[kind].label} has no such field to filter on")


def _matches(record: Record, filters: Mapping[str, object]) -> bool:
    return all(getattr(record, k) == v for k, v in filters.items())


__all__ = [
    "MAX_TXN_OPS",
    "Change",
    "Create",
    "Link",
    "ObjectEvent",
    "ObjectStore",
    "Patch",
    "Remove",
    "Stored",
    "Transaction",
    "Unlink",
    "Update",
    "decode_event",
]
