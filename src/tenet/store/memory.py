"""An in-memory store: the fake that ships next to the real backends.

It implements :class:`~tenet.store.base.Store` exactly (the conformance suite
runs against it), in one process: a lock guards the state, a condition wakes
watchers. History is kept as a list of events in revision order; ``compact``
drops the head. Leases expire lazily: every operation first deletes the keys of
leases whose deadline (by the injected clock) has passed, at one revision.
"""

from __future__ import annotations

import bisect
import itertools
import threading
from collections.abc import Iterable, Sequence
from itertools import islice

from tenet.clock import Clock, SystemClock
from tenet.errors import LeaseExpired, TxnConflict, ValidationError, WatchCompacted
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
)
from tenet.store.watch import PollingWatch, check_key, check_value


class MemoryStore:
    def __init__(self, clock: Clock | None = None) -> None:
        self._clock = clock or SystemClock()
        self._lock = threading.Condition()
        self._kv: dict[str, KeyValue] = {}
        self._keys: list[str] = []  # the live keys, sorted (range reads)
        self._events: list[Event] = []
        self._revision = 1
        self._compacted = 1  # oldest revision still in history
        self._leases: dict[int, tuple[float, float]] = {}  # id -> (ttl, deadline)
        self._lease_ids = itertools.count(0x1000)
        self._closed = False

    # -- reads ------------------------------------------------------------------------
    def revision(self) -> int:
        with self._lock:
            self._expire()
            return self._revision

    def get(self, key: str) -> KeyValue | None:
        with self._lock:
            self._expire()
            return self._kv.get(key)

    def list(self, prefix: str) -> ListResult:
        with self._lock:
            self._expire()
            start = bisect.bisect_left(self._keys, prefix)
            items = []
            for key in islice(self._keys, start, None):
                if not key.startswith(prefix):
                    break
                items.append(self._kv[key])
            return ListResult(items, self._revision)

    def range(self, start: str, end: str, *, limit: int = 0) -> ListResult:
        if limit < 0:
            raise ValidationError("limit", f"{limit} is below 0")
        with self._lock:
            self._expire()
            first = bisect.bisect_left(self._keys, start)
            last = bisect.bisect_left(self._keys, end, lo=first) if end > start else first
            stop = last if not limit else min(last, first + limit)
            items = [self._kv[k] for k in self._keys[first:stop]]
            return ListResult(items, self._revision, more=stop < last)

    # -- writes -----------------------------------------------------------------------
    def put(self, key: str, value: bytes, *, lease: int = NO_LEASE) -> int:
        return self.txn((), (Put(key, value, lease),))

    def delete(self, key: str) -> int:
        with self._lock:
            self._expire()
            if key not in self._kv:
                return 0
            return self._apply((Delete(key),))

    def txn(self, compares: Sequence[Compare], ops: Sequence[Op]) -> int:
        for op in ops:
            check_key(op.key)
            if isinstance(op, Put):
                check_value(op.value)
        with self._lock:
            self._expire()
            failed = tuple(
                c.key
                for c in compares
                if (self._kv[c.key].mod_revision if c.key in self._kv else 0) != c.mod_revision
            )
            if failed:
                raise TxnConflict(failed)
            for op in ops:
                if isinstance(op, Put) and op.lease != NO_LEASE and op.lease not in self._leases:
                    raise LeaseExpired(op.lease)
            effective = [op for op in ops if isinstance(op, Put) or op.key in self._kv]
            if not effective:
                return self._revision
            return self._apply(effective)

    def _apply(self, ops: Sequence[Op]) -> int:
        revision = self._revision + 1
        for op in ops:
            if isinstance(op, Put):
                old = self._kv.get(op.key)
                kv = KeyValue(
                    op.key,
                    bytes(op.value),
                    old.create_revision if old else revision,
                    revision,
                    old.version + 1 if old else 1,
                    op.lease,
                )
                if old is None:
                    bisect.insort(self._keys, op.key)
                self._kv[op.key] = kv
                self._events.append(Event(EventType.PUT, kv))
            elif op.key in self._kv:
                del self._kv[op.key]
                del self._keys[bisect.bisect_left(self._keys, op.key)]
                self._events.append(Event(EventType.DELETE, KeyValue(op.key, b"", 0, revision, 0)))
        self._revision = revision
        self._lock.notify_all()
        return revision

    # -- watches ---------------------------------------------------------------------
    def watch(self, prefix: str, start_revision: int) -> PollingWatch:
        def fetch(next_revision: int) -> tuple[list[Event], int]:
            with self._lock:
                self._expire()
                if next_revision < self._compacted:
                    raise WatchCompacted(next_revision, self._compacted)
                start = self._index(next_revision)
                events = [e for e in self._events[start:] if e.key.startswith(prefix)]
                return events, self._revision

        def wait(next_revision: int, timeout: float) -> None:
            with self._lock:
                if self._revision < next_revision and not self._closed:
                    self._lock.wait(timeout)

        return PollingWatch(fetch, wait, start_revision)

    def _index(self, revision: int) -> int:
        """Position in _events of the first event with revision >= ``revision``."""
        return bisect.bisect_left(self._events, revision, key=lambda e: e.revision)

    def compact(self, revision: int) -> None:
        with self._lock:
            revision = min(revision, self._revision)
            if revision <= self._compacted:
                return
            del self._events[: self._index(revision)]
            self._compacted = revision

    # -- leases ----------------------------------------------------------------------
    def grant_lease(self, ttl: float) -> int:
        if not ttl > 0:
            raise ValidationError("ttl", f"{ttl} must be positive")
        with self._lock:
            self._expire()
            lease = next(self._lease_ids)
            self._leases[lease] = (ttl, self._clock.time() + ttl)
            return lease

    def keepalive(self, lease: int) -> None:
        with self._lock:
            self._expire()
            if lease not in self._leases:
                raise LeaseExpired(lease)
            ttl, _ = self._leases[lease]
            self._leases[lease] = (ttl, self._clock.time() + ttl)

    def revoke(self, lease: int) -> None:
        with self._lock:
            self._expire()
            self._end_leases([lease])

    def _expire(self) -> None:
        now = self._clock.time()
        self._end_leases(
            [lease for lease, (_, deadline) in self._leases.items() if deadline <= now]
        )

    def _end_leases(self, leases: Iterable[int]) -> None:
        gone = {lease for lease in leases if self._leases.pop(lease, None) is not None}
        if not gone:
            return
        doomed = sorted(k for k, kv in self._kv.items() if kv.lease in gone)
        if doomed:
            self._apply([Delete(k) for k in doomed])

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._lock.notify_all()
