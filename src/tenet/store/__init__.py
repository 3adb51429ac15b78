"""The store: a revisioned key-value store with watches and leases, and the
object layer that keeps model records in it.

``open_store(url)`` picks a backend: ``memory:`` (one process; tests) or
``sqlite:///absolute/path.db`` / ``sqlite:relative/path.db`` (the embedded
default) or ``etcd://host:port[,host:port...]`` (a cluster, for many machines).
The protocol is in :mod:`tenet.store.base`.
"""

from __future__ import annotations

from tenet.clock import Clock
from tenet.errors import ValidationError
from tenet.store.base import (
    NO_LEASE,
    Compare,
    Delete,
    Event,
    EventType,
    KeyValue,
    ListResult,
    Op,
    Put,
    Store,
    Watch,
)
from tenet.store.etcd import EtcdStore
from tenet.store.memory import MemoryStore
from tenet.store.sqlite import SqliteStore


def open_store(
    url: str,
    *,
    clock: Clock | None = None,
    poll_interval: float | None = None,
    deadline: float | None = None,
) -> Store:
    """A store backend from a URL; a bad URL is a ValidationError on ``store``.

    ``poll_interval``: the longest a SQLite watch sleeps without reading (a commit
    wakes it sooner; the backend's default if None). ``deadline``: how long an etcd
    call keeps trying before StoreUnavailable (the backend's default if None)."""
    if url == "memory:":
        return MemoryStore(clock)
    if url.startswith("sqlite:"):
        path = url.removeprefix("sqlite:")
        path = "/" + path.removeprefix("///") if path.startswith("///") else path
        if not path or path.endswith("/"):
            raise ValidationError("store", f"{url!r} names no database file")
        if poll_interval is None:
            return SqliteStore(path, clock)
        return SqliteStore(path, clock, poll_interval=poll_interval)
    if url.startswith("etcd:"):
        if deadline is None:
            return EtcdStore(url)  # StoreUnavailable if no member answers
        return EtcdStore(url, deadline=deadline)
    raise ValidationError(
        "store",
        f"{url!r} is not a store URL: use memory:, sqlite:///path/to/file.db "
        "or etcd://host:port[,host:port...]",
    )


__all__ = [
    "NO_LEASE",
    "Compare",
    "Delete",
    "EtcdStore",
    "Event",
    "EventType",
    "KeyValue",
    "ListResult",
    "MemoryStore",
    "Op",
    "Put",
    "SqliteStore",
    "Store",
    "Watch",
    "open_store",
]
