"""One optimistic transaction of the object layer, being built.

A :class:`UnitOfWork` reads records and raw keys through a cache, collects puts
and deletes, and commits them as one store transaction whose compares are the
revisions of every key it read. If anything it read changed in between, the
commit raises TxnConflict and nothing is written; the object layer then redoes
the whole change from fresh reads.

Invariant: ``view`` answers reads with the pending writes applied, so a change
that cascades sees its own earlier steps (a deleted port is gone, a cleared
reference is cleared).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import TypeVar

from tenet.model import Record, dumps, loads
from tenet.store.base import Compare, Delete, Op, Put, Store

R = TypeVar("R", bound=Record)

PREFIX = "/tenet/v1/"
OBJECTS = PREFIX + "objects/"
INDEX = PREFIX + "index/"
META = PREFIX + "meta/"


def object_key(kind: type[Record], ident: uuid.UUID) -> str:
    return f"{OBJECTS}{kind.KIND}/{ident}"


def kind_prefix(kind: type[Record]) -> str:
    return f"{OBJECTS}{kind.KIND}/"


class UnitOfWork:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._read_revisions: dict[str, int] = {}
        self._raw: dict[str, bytes | None] = {}
        self._records: dict[str, Record | None] = {}
        self._writes: dict[str, bytes | None] = {}
        self._listed: dict[type[Record], list[str]] = {}

    # -- raw keys ---------------------------------------------------------------
    def read_raw(self, key: str) -> bytes | None:
        if key not in self._raw:
            kv = self._store.get(key)
            self._read_revisions[key] = kv.mod_revision if kv else 0
            self._raw[key] = kv.value if kv else None
        return self._raw[key]

    def revision_of(self, key: str) -> int:
        """The mod_revision the key had when this unit first read it."""
        self.read_raw(key)
        return self._read_revisions[key]

    def write_raw(self, key: str, value: bytes | None) -> None:
        self._raw[key] = value
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
    def get(self, kind: type[R], ident: uuid.UUID) -> R | None:
        key = object_key(kind, ident)
        if key not in self._records:
            raw = self.read_raw(key)
            self._records[key] = None if raw is None else loads(kind, raw)
        found = self._records[key]
        assert found is None or isinstance(found, kind)
        return found

    def list(self, kind: type[R]) -> list[R]:
        """Every record of ``kind``, with this unit's pending writes applied."""
        if kind not in self._listed:
            result = self._store.list(kind_prefix(kind))
            keys = []
            for kv in result.items:
                keys.append(kv.key)
                if kv.key not in self._raw:
                    self._raw[kv.key] = kv.value
                    self._read_revisions[kv.key] = kv.mod_revision
            self._listed[kind] = keys
        keys = list(self._listed[kind])
        prefix = kind_prefix(kind)
        keys += [k for k in self._writes if k.startswith(prefix) and k not in keys]
        out: list[R] = []
        for key in keys:
            record = self.get(kind, uuid.UUID(key.removeprefix(prefix)))
            if record is not None:
                out.append(record)
        return out

    def put(self, record: Record) -> None:
        key = object_key(type(record), record.id)
        self._records[key] = record
        self.write_raw(key, dumps(record))

    def delete(self, record: Record) -> None:
        key = object_key(type(record), record.id)
        self._records[key] = None
        self.write_raw(key, None)

    def is_deleted(self, record: Record) -> bool:
        key = object_key(type(record), record.id)
        return key in self._writes and self._writes[key] is None

    def written(self) -> Iterator[Record]:
        for key in self._writes:
            record = self._records.get(key)
            if record is not None:
                yield record

    # -- commit -----------------------------------------------------------------
    def commit(self) -> int:
        compares = [Compare(k, rev) for k, rev in self._read_revisions.items()]
        ops: list[Op] = [Put(k, v) if v is not None else Delete(k) for k, v in self._writes.items()]
        return self._store.txn(compares, ops)
