"""One optimistic transaction of the object layer, being built.

A :class:`UnitOfWork` reads records and raw keys through a cache, collects puts
and deletes, and commits them as one store transaction. Its compares are the
revisions of what it read, so if anything it read changed in between, the commit
raises TxnConflict and nothing is written; the object layer then redoes the whole
change from fresh reads.

What it keeps whole by itself, for every record it puts or deletes:

* the **reference index** (``index/refs/<target>/<kind>/<id>``, see
  :mod:`tenet.store.keys`): who refers to whom, so "who refers to this record" is
  one range read, never a scan of a kind;
* the **guard** of every record referred to (``index/guard/<target>``), rewritten
  blindly (no compare) whenever a referrer is written. A reader of a record's
  referrers compares that one key instead of every referrer, so a referrer created,
  changed or deleted concurrently makes the reader's commit fail: no phantom, and
  a transaction's size does not grow with the number of referrers.

Invariants:

* ``view`` semantics: reads answer with this unit's pending writes applied, so a
  change that cascades sees its own earlier steps;
* a commit has at most :data:`MAX_TXN_OPS` compares and as many writes (etcd's
  default ``--max-txn-ops``); a bigger one raises :class:`~tenet.errors.TooLarge`
  before anything is sent, and writes nothing;
* ``changes()`` lists every record this unit changes, as committed and as it will
  be: what the tenant boundary checks.
"""

from __future__ import annotations

import uuid
from typing import TypeVar

from tenet.errors import TooLarge
from tenet.model import KINDS, Record, dumps, loads
from tenet.model.kinds import REFS_FROM
from tenet.store.base import Compare, Delete, Op, Put, Store
from tenet.store.keys import (
    guard_key,
    object_key,
    prefix_end,
    ref_key,
    refs_prefix,
)

R = TypeVar("R", bound=Record)

MAX_TXN_OPS = 128
"""etcd's default limit on the compares, and on the writes, of one transaction."""


def ref_targets(record: Record | None) -> dict[uuid.UUID, tuple[str, ...]]:
    """The records ``record`` refers to, each with the fields that name it."""
    if record is None:
        return {}
    out: dict[uuid.UUID, tuple[str, ...]] = {}
    for ref in REFS_FROM.get(type(record), ()):
        for ident in ref.ids(record):
            if ident != record.id:
                out[ident] = (*out.get(ident, ()), ref.field)
    return out


class UnitOfWork:
    def __init__(self, store: Store, *, budget: int = MAX_TXN_OPS) -> None:
        self._store = store
        self.budget = budget
        self._committed: dict[str, tuple[bytes | None, int]] = {}  # key -> (value, mod_rev)
        self._compares: dict[str, int] = {}
        self._writes: dict[str, bytes | None] = {}
        self._records: dict[str, Record | None] = {}  # decoded, pending writes applied
        self._original: dict[str, Record | None] = {}  # as committed, for changed records

    # -- raw keys ---------------------------------------------------------------
    def _fetch(self, key: str) -> tuple[bytes | None, int]:
        found = self._committed.get(key)
        if found is None:
            kv = self._store.get(key)
            found = self._committed[key] = (kv.value, kv.mod_revision) if kv else (None, 0)
        return found

    def read_raw(self, key: str, *, compare: bool = True) -> bytes | None:
        """The key's value as this unit sees it. With ``compare`` (the default), the
        commit fails if the key changed since it was first read here."""
        value, revision = self._fetch(key)
        if compare:
            self._compares.setdefault(key, revision)
        return self._writes.get(key, value)

    def revision_of(self, key: str) -> int:
        """The mod_revision the key had when this unit first read it."""
        self.read_raw(key)
        return self._fetch(key)[1]

    def write_raw(self, key: str, value: bytes | None) -> None:
        self._writes[key] = value

    def claim(self, key: str, owner: str) -> bool:
        """Take the index ``key`` for ``owner``; False if someone else holds it."""
        held = self.read_raw(key)
        if held is not None and held.decode() != owner:
            return False
        if held is None:
            self.write_raw(key, owner.encode())
        return True

    def release(self, key: str, owner: str) -> None:
        held = self.read_raw(key)
        if held is not None and held.decode() == owner:
            self.write_raw(key, None)

    # -- records ----------------------------------------------------------------
    def get(self, kind: type[R], ident: uuid.UUID, *, compare: bool = True) -> R | None:
        """The record, or None. ``compare=False`` only for records read through a
        guarded index (:meth:`referrers`): the guard stands for them."""
        key = object_key(kind, ident)
        raw = self.read_raw(key, compare=compare)
        if key not in self._records:
            self._records[key] = None if raw is None else loads(kind, raw)
        found = self._records[key]
        assert found is None or isinstance(found, kind)
        return found

    def referrers(
        self, target: uuid.UUID, kind: type[Record] | None = None, *, limit: int = 0
    ) -> list[tuple[type[Record], uuid.UUID]]:
        """The records that refer to ``target`` (of ``kind`` if given), pending writes
        applied, sorted; at most ``limit`` (0: all). Compares ``target``'s guard only."""
        self.read_raw(guard_key(target))
        prefix = refs_prefix(target, kind)
        pending = {k: v for k, v in self._writes.items() if k.startswith(prefix)}
        read = self._store.range(prefix, prefix_end(prefix), limit=0 if pending else limit)
        found = {kv.key for kv in read.items}
        for key, value in pending.items():
            if value is None:
                found.discard(key)
            else:
                found.add(key)
        out = []
        for key in sorted(found):
            kind_name, _, ident = key.removeprefix(refs_prefix(target)).partition("/")
            out.append((KINDS[kind_name], uuid.UUID(ident)))
        return out[:limit] if limit else out

    def referrer_records(self, target: uuid.UUID, kind: type[R]) -> list[R]:
        """The records of ``kind`` that refer to ``target``, read under its guard."""
        out = []
        for _, ident in self.referrers(target, kind):
            record = self.get(kind, ident, compare=False)
            if record is not None:
                out.append(record)
        return out

    def put(self, record: Record) -> None:
        key = object_key(type(record), record.id)
        old = self._current(key, type(record))
        self._records[key] = record
        self.write_raw(key, dumps(record))
        self._reindex(old, record)

    def delete(self, record: Record) -> None:
        key = object_key(type(record), record.id)
        old = self._current(key, type(record))
        self._records[key] = None
        self.write_raw(key, None)
        self._reindex(old, None)
        self.write_raw(guard_key(record.id), None)

    def _current(self, key: str, kind: type[Record]) -> Record | None:
        """The record at ``key`` as this unit sees it, remembering it as committed."""
        if key not in self._original:
            raw, _ = self._fetch(key)
            self._original[key] = None if raw is None else loads(kind, raw)
        if key in self._records:
            return self._records[key]
        return self._original[key]

    def _reindex(self, old: Record | None, new: Record | None) -> None:
        record = new or old
        assert record is not None
        before, after = ref_targets(old), ref_targets(new)
        for target in before.keys() - after.keys():
            self.write_raw(ref_key(target, record.KIND, record.id), None)
        for target, fields in after.items():
            if before.get(target) != fields:
                self.write_raw(ref_key(target, record.KIND, record.id), ",".join(fields).encode())
        for target in before.keys() | after.keys():
            self.touch(target)

    def touch(self, target: uuid.UUID) -> None:
        """Rewrite ``target``'s guard (no compare): readers of its referrers conflict."""
        key = guard_key(target)
        if key in self._writes and self._writes[key] is None:
            return  # the target is deleted by this unit: its guard goes with it
        self.write_raw(key, b"")

    def is_deleted(self, record: Record) -> bool:
        key = object_key(type(record), record.id)
        return key in self._writes and self._writes[key] is None

    def changes(self) -> list[tuple[Record | None, Record | None]]:
        """Every record this unit changes: (as committed, as it will be)."""
        out = []
        for key, old in self._original.items():
            new = self._records.get(key)
            if old != new:
                out.append((old, new))
        return out

    # -- commit -----------------------------------------------------------------
    def size(self) -> tuple[int, int]:
        """(compares, writes) the commit would send."""
        return len(self._compares), len(self._writes)

    def check_size(self) -> None:
        compares, writes = self.size()
        if compares > self.budget or writes > self.budget:
            raise TooLarge(
                f"the change needs {compares} compares and {writes} writes in one "
                f"transaction; the store allows {self.budget} of each"
            )

    def commit(self) -> int:
        self.check_size()
        compares = [Compare(k, rev) for k, rev in self._compares.items()]
        ops: list[Op] = [Put(k, v) if v is not None else Delete(k) for k, v in self._writes.items()]
        return self._store.txn(compares, ops)
