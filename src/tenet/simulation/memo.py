"""Memos: indexes the simulation derives from a view's records, kept by that view.

A :class:`Slot` names one kind of memo (a chain's plan, a rule's compiled
condition, an address group's index, a router's route candidates) and the type
of its values; the module that computes them declares it. A view's
:class:`Memos` holds the values, each filed under the ids of the records it was
built from; when the view applies a change to a record, it drops every memo
filed under that record's id or under its parent's (a rule's chain, a route's or
port's device), so a memo is never older than its sources.

Invariants: a memo is a pure function of the records it is filed under: it
never changes a result, only its cost. Memos live and die with their view: no
process-wide cache. Slots are constants (names), not caches.
"""

from __future__ import annotations

import uuid
from collections.abc import Hashable, Iterable
from typing import Any, Generic, TypeVar, cast

V = TypeVar("V")


class Slot(Generic[V]):
    """One kind of memo, holding values of type ``V``."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"Slot({self.name!r})"


class Memos:
    __slots__ = ("_filed", "_tables")

    def __init__(self) -> None:
        self._tables: dict[Slot[Any], dict[Hashable, object]] = {}
        self._filed: dict[uuid.UUID, set[tuple[Slot[Any], Hashable]]] = {}

    def get(self, slot: Slot[V], key: Hashable) -> V | None:
        table = self._tables.get(slot)
        if table is None:
            return None
        return cast("V | None", table.get(key))

    def put(self, slot: Slot[V], key: Hashable, value: V, sources: Iterable[uuid.UUID]) -> V:
        """Keep ``value`` until a record in ``sources`` (or a child of one) changes."""
        self._tables.setdefault(slot, {})[key] = value
        for source in sources:
            self._filed.setdefault(source, set()).add((slot, key))
        return value

    def drop(self, record_ids: Iterable[uuid.UUID]) -> None:
        """Forget every memo filed under any of ``record_ids``."""
        for record_id in record_ids:
            for slot, key in self._filed.pop(record_id, ()):
                table = self._tables.get(slot)
                if table is not None:
                    table.pop(key, None)

    def __len__(self) -> int:
        return sum(len(t) for t in self._tables.values())
