"""A store that measures itself: every call of another store timed into a histogram by
operation (``tenet_store_request_seconds``), failures counted, and the object changes
its watches delivered remembered with when they arrived (for the agent's watch lag).

:class:`MeteredStore` wraps any :class:`~tenet.store.base.Store` and keeps its
contract (it only observes). The clock is ``time.perf_counter`` (a duration, not a
date: the store layer may read it). A watch's deliveries are kept as (revision,
arrival) of the object changes not yet known applied (:meth:`MeteredStore.lag`
forgets those at or below the revision the caller applied); at most ``KEEP`` are
kept, the oldest first dropped (the lag it reports is then younger than the truth).
"""

from __future__ import annotations

import builtins
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

from tenet.metrics import Family, Histogram, counter_family
from tenet.store.base import NO_LEASE, Compare, Event, KeyValue, ListResult, Op, Store, Watch
from tenet.store.keys import OBJECTS
from tenet.store.watch import WatchHandle

KEEP = 10_000
T = TypeVar("T")


class MeteredStore:
    def __init__(self, inner: Store, clock: Callable[[], float] = time.perf_counter) -> None:
        self.inner = inner
        self.latency = Histogram(("op",))
        self.failures: dict[str, int] = {}
        self._clock = clock
        self._lock = threading.Lock()
        self._delivered: deque[tuple[int, float]] = deque(maxlen=KEEP)

    def _timed(self, op: str, call: Callable[[], T]) -> T:
        start = self._clock()
        try:
            return call()
        except Exception:
            with self._lock:
                self.failures[op] = self.failures.get(op, 0) + 1
            raise
        finally:
            self.latency.observe(self._clock() - start, op)

    # -- the store protocol --------------------------------------------------------------
    def revision(self) -> int:
        return self._timed("revision", self.inner.revision)

    def get(self, key: str) -> KeyValue | None:
        return self._timed("get", lambda: self.inner.get(key))

    def list(self, prefix: str) -> ListResult:
        return self._timed("list", lambda: self.inner.list(prefix))

    def range(self, start: str, end: str, *, limit: int = 0) -> ListResult:
        return self._timed("range", lambda: self.inner.range(start, end, limit=limit))

    def put(self, key: str, value: bytes, *, lease: int = NO_LEASE) -> int:
        return self._timed("put", lambda: self.inner.put(key, value, lease=lease))

    def delete(self, key: str) -> int:
        return self._timed("delete", lambda: self.inner.delete(key))

    def txn(self, compares: Sequence[Compare], ops: Sequence[Op]) -> int:
        return self._timed("txn", lambda: self.inner.txn(compares, ops))

    def watch(self, prefix: str, start_revision: int) -> Watch:
        inner = self._timed("watch", lambda: self.inner.watch(prefix, start_revision))
        return MeteredWatch(inner, self)

    def grant_lease(self, ttl: float) -> int:
        return self._timed("grant_lease", lambda: self.inner.grant_lease(ttl))

    def keepalive(self, lease: int) -> None:
        self._timed("keepalive", lambda: self.inner.keepalive(lease))

    def revoke(self, lease: int) -> None:
        self._timed("revoke", lambda: self.inner.revoke(lease))

    def compact(self, revision: int) -> None:
        self._timed("compact", lambda: self.inner.compact(revision))

    def close(self) -> None:
        self.inner.close()

    # -- what it measured ----------------------------------------------------------------
    def delivered(self, events: Sequence[Event]) -> None:
        """A watch brought ``events``: remember the object changes among them."""
        now = self._clock()
        with self._lock:
            for event in events:
                if event.key.startswith(OBJECTS):
                    self._delivered.append((event.revision, now))

    def lag(self, applied: int) -> tuple[int, float]:
        """Object changes delivered above the ``applied`` revision: how many, and how long
        the oldest has waited (0.0 when none)."""
        now = self._clock()
        with self._lock:
            while self._delivered and self._delivered[0][0] <= applied:
                self._delivered.popleft()
            if not self._delivered:
                return 0, 0.0
            return len(self._delivered), now - self._delivered[0][1]

    def families(self, prefix: str) -> builtins.list[Family]:
        """The latency histogram and the failures, named ``<prefix>_store_...``."""
        with self._lock:
            failures = dict(self.failures)
        return [
            self.latency.family(
                f"{prefix}_store_request_seconds", "Time the store's calls took, by operation."
            ),
            counter_family(
                f"{prefix}_store_failures_total",
                "Store calls that raised, by operation.",
                "op",
                failures,
            ),
        ]


class MeteredWatch(WatchHandle):
    """A watch whose batches are reported to its store as they arrive."""

    def __init__(self, inner: Watch, store: MeteredStore) -> None:
        self.inner = inner
        self.store = store

    def get(self, timeout: float | None = None) -> list[Event]:
        events = self.inner.get(timeout)
        if events:
            self.store.delivered(events)
        return events

    def close(self) -> None:
        self.inner.close()

    @property
    def closed(self) -> bool:
        return self.inner.closed

    def __iter__(self) -> Iterator[Event]:
        for event in self.inner:
            self.store.delivered([event])
            yield event
