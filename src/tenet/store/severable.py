"""A store that can be cut off: a fake for tests of what a client does when the store
stops answering. It forwards every call to another store until :meth:`cut`; from
then until :meth:`heal`, every call, and every read of its watches, raises
``StoreUnavailable`` (the store itself goes on: leases expire on its clock).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from tenet.errors import StoreUnavailable
from tenet.store.base import NO_LEASE, Compare, Event, KeyValue, ListResult, Op, Store, Watch
from tenet.store.watch import WatchHandle


class SeverableStore:
    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self._cut = threading.Event()

    def cut(self) -> None:
        self._cut.set()

    def heal(self) -> None:
        self._cut.clear()

    def check(self) -> None:
        if self._cut.is_set():
            raise StoreUnavailable("the store is cut off (SeverableStore)")

    def revision(self) -> int:
        self.check()
        return self.inner.revision()

    def get(self, key: str) -> KeyValue | None:
        self.check()
        return self.inner.get(key)

    def list(self, prefix: str) -> ListResult:
        self.check()
        return self.inner.list(prefix)

    def range(self, start: str, end: str, *, limit: int = 0) -> ListResult:
        self.check()
        return self.inner.range(start, end, limit=limit)

    def put(self, key: str, value: bytes, *, lease: int = NO_LEASE) -> int:
        self.check()
        return self.inner.put(key, value, lease=lease)

    def delete(self, key: str) -> int:
        self.check()
        return self.inner.delete(key)

    def txn(self, compares: Sequence[Compare], ops: Sequence[Op]) -> int:
        self.check()
        return self.inner.txn(compares, ops)

    def watch(self, prefix: str, start_revision: int) -> Watch:
        self.check()
        return SeverableWatch(self, self.inner.watch(prefix, start_revision))

    def grant_lease(self, ttl: float) -> int:
        self.check()
        return self.inner.grant_lease(ttl)

    def keepalive(self, lease: int) -> None:
        self.check()
        self.inner.keepalive(lease)

    def revoke(self, lease: int) -> None:
        self.check()
        self.inner.revoke(lease)

    def compact(self, revision: int) -> None:
        self.check()
        self.inner.compact(revision)

    def close(self) -> None:
        self.inner.close()


class SeverableWatch(WatchHandle):
    """A watch that fails for good once its store is cut (as a watch that lost every
    member for its deadline does)."""

    def __init__(self, store: SeverableStore, inner: Watch) -> None:
        self._store = store
        self._inner = inner

    def get(self, timeout: float | None = None) -> list[Event]:
        self._store.check()
        return self._inner.get(timeout)

    def close(self) -> None:
        self._inner.close()

    @property
    def closed(self) -> bool:
        return self._inner.closed
