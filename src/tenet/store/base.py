"""The store protocol: a revisioned key-value store with watches and leases.

Every backend (memory, sqlite, etcd) implements :class:`Store` exactly as
written here, and passes one conformance suite (``tests/unit/store_contract/``).
The semantics are etcd v3's, so that etcd can implement them with no emulation:

* The store has one **revision** counter. Every change (a put, a delete, a whole
  transaction, a lease expiring) bumps it by one; all keys written by one change
  share that revision. Revisions start at 1 for an empty store and never repeat.
* Each key has ``create_revision`` (the revision that created it), ``mod_revision``
  (the last one that changed it) and ``version`` (how many times it was written
  since it was created; a deleted key starts again at 1).
* A **transaction** is all or nothing: it checks every :class:`Compare`, and applies
  all its operations at one new revision only if every compare holds; otherwise it
  raises :class:`~tenet.errors.TxnConflict` naming the keys that failed, and writes
  nothing. ``Compare(key, 0)`` means "key does not exist".
* A **watch** on a prefix, started at revision ``r``, yields every event on that
  prefix with revision >= ``r`` in revision order, with no gaps and no
  duplicates, including the events that happened before the watch was created.
  Events of one revision arrive in one batch. A watcher that reconnects resumes
  from ``last_seen + 1`` and misses nothing. If ``r`` is older than the history
  the store keeps, the watch raises :class:`~tenet.errors.WatchCompacted`.
* A **range read** returns keys in ``[start, end)`` in key order, with a limit, at one
  revision; a reader pages by starting again after the last key it got.
* A **lease** has a time to live. Keys put with a lease are deleted (with delete
  events, at one revision) when the lease expires or is revoked. ``keepalive``
  extends a lease by its ttl; a keepalive on a gone lease raises
  :class:`~tenet.errors.LeaseExpired`.

Keys are ``str`` (``/``-separated paths by convention), values are ``bytes``.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol, runtime_checkable

NO_LEASE = 0


@dataclass(frozen=True, slots=True)
class KeyValue:
    key: str
    value: bytes
    create_revision: int
    mod_revision: int
    version: int
    lease: int = NO_LEASE


class EventType(enum.Enum):
    PUT = "put"
    DELETE = "delete"


@dataclass(frozen=True, slots=True)
class Event:
    """One change to one key.

    For a PUT, ``kv`` is the key as written. For a DELETE, ``kv.value`` is empty,
    ``kv.version`` is 0 and ``kv.mod_revision`` is the revision of the deletion.
    """

    type: EventType
    kv: KeyValue

    @property
    def revision(self) -> int:
        return self.kv.mod_revision

    @property
    def key(self) -> str:
        return self.kv.key


@dataclass(frozen=True, slots=True)
class Compare:
    """Holds when ``key``'s mod_revision equals ``mod_revision`` (0: the key is absent)."""

    key: str
    mod_revision: int


@dataclass(frozen=True, slots=True)
class Put:
    key: str
    value: bytes
    lease: int = NO_LEASE


@dataclass(frozen=True, slots=True)
class Delete:
    """Deletes ``key`` if it exists; deleting an absent key is not an error."""

    key: str


Op = Put | Delete


@dataclass(frozen=True, slots=True)
class ListResult:
    """Keys under a prefix or in a range, sorted by key, as of ``revision``; ``more``
    says that a range read stopped at its limit with keys left after the last one."""

    items: list[KeyValue]
    revision: int
    more: bool = False


@runtime_checkable
class Watch(Protocol):
    """A stream of events on one prefix. Close it when done (or use ``with``)."""

    def get(self, timeout: float | None = None) -> list[Event]:
        """The next batch of events (one revision or more, in order).

        Blocks up to ``timeout`` seconds (``None``: forever) and returns an empty
        list when nothing happened. Raises WatchCompacted if the start revision is
        no longer kept, StoreUnavailable if the backend failed.
        """
        ...

    def close(self) -> None: ...

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        ...

    def __enter__(self) -> Watch: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    def __iter__(self) -> Iterator[Event]:
        """Every event, one at a time, blocking until the watch is closed."""
        ...


class Store(Protocol):
    """A revisioned key-value store. See the module docstring for the contract."""

    def revision(self) -> int:
        """The current revision (1 for an empty store)."""
        ...

    def get(self, key: str) -> KeyValue | None: ...

    def list(self, prefix: str) -> ListResult:
        """Every live key starting with ``prefix``, sorted, with the revision read at."""
        ...

    def range(self, start: str, end: str, *, limit: int = 0) -> ListResult:
        """The live keys ``start <= key < end``, sorted, at most ``limit`` of them (0: no
        limit; ``more`` is True when keys were left out). etcd's Range: page through a
        big prefix by starting again just after the last key read."""
        ...

    def put(self, key: str, value: bytes, *, lease: int = NO_LEASE) -> int:
        """Write one key; returns the new revision."""
        ...

    def delete(self, key: str) -> int:
        """Delete one key; returns the new revision, or 0 if the key did not exist."""
        ...

    def txn(self, compares: Sequence[Compare], ops: Sequence[Op]) -> int:
        """All or nothing; returns the new revision (the current one if ``ops`` is empty)."""
        ...

    def watch(self, prefix: str, start_revision: int) -> Watch: ...

    def grant_lease(self, ttl: float) -> int:
        """A new lease id (never 0) that expires ``ttl`` seconds from now."""
        ...

    def keepalive(self, lease: int) -> None: ...

    def revoke(self, lease: int) -> None:
        """End a lease now, deleting its keys. Revoking a gone lease is not an error."""
        ...

    def compact(self, revision: int) -> None:
        """Forget history before ``revision``; watches from older revisions fail."""
        ...

    def close(self) -> None: ...
