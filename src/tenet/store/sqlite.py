"""The embedded store: one SQLite file shared by the processes of one machine.

Tables::

    meta(name, value)          'revision' (current), 'compacted' (oldest kept)
    kv(key, value, create_revision, mod_revision, version, lease)
    events(revision, seq, type, key, value, create_revision, version, lease)
    leases(id, ttl, deadline)  deadline in wall-clock seconds (shared by processes)

Invariants:

* every change (put, delete, txn, lease expiry or revoke) is one ``BEGIN
  IMMEDIATE`` transaction that bumps ``meta.revision`` by one, changes ``kv`` and
  appends its events to ``events``; SQLite makes it atomic and durable, so a
  writer killed half-way leaves nothing of its change (WAL mode, synchronous=FULL:
  the store holds configuration, written rarely, and a committed change must
  survive a power cut too);
* ``events`` holds every revision from ``meta.compacted`` on, so a watch in any
  process reads the history in order with no gaps; history older than
  ``history`` revisions is compacted automatically;
* a lease's keys are deleted by whichever process first notices its deadline
  passed (every operation and every watch poll checks), at one revision.

A store object holds one connection, guarded by a lock, so it can be shared by
threads. A watch reads the events table when the file changes: it sleeps on an
inotify watch of the store's directory, which a commit in any process (a write to
the WAL) wakes, and reads at least every ``poll_interval`` seconds anyway (lease
deadlines pass without a write). Without inotify it polls at that interval.
"""

from __future__ import annotations

import ctypes
import os
import select
import sqlite3
import struct
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from tenet.clock import Clock, SystemClock
from tenet.errors import (
    LeaseExpired,
    StoreUnavailable,
    TxnConflict,
    ValidationError,
    WatchCompacted,
)
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
from tenet.store.keys import prefix_end
from tenet.store.watch import PollingWatch, check_key, check_value

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS kv (
    key TEXT PRIMARY KEY, value BLOB NOT NULL, create_revision INTEGER NOT NULL,
    mod_revision INTEGER NOT NULL, version INTEGER NOT NULL, lease INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS kv_lease ON kv (lease) WHERE lease != 0;
CREATE TABLE IF NOT EXISTS events (
    revision INTEGER NOT NULL, seq INTEGER NOT NULL, type INTEGER NOT NULL,
    key TEXT NOT NULL, value BLOB NOT NULL, create_revision INTEGER NOT NULL,
    version INTEGER NOT NULL, lease INTEGER NOT NULL, PRIMARY KEY (revision, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS leases (
    id INTEGER PRIMARY KEY AUTOINCREMENT, ttl REAL NOT NULL, deadline REAL NOT NULL
);
INSERT OR IGNORE INTO meta VALUES ('revision', 1), ('compacted', 1);
"""

IN_MODIFY, IN_MOVED_TO, IN_CREATE = 0x2, 0x80, 0x100
IN_Q_OVERFLOW = 0x4000  # events were lost: assume one was the store's
IN_NONBLOCK, IN_CLOEXEC = os.O_NONBLOCK, os.O_CLOEXEC
INOTIFY_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len; then the name


class FileChanges:
    """Wakes a sleeper when a file of the store (the database or its WAL) is written,
    by any process: inotify on the directory, so a WAL made anew is still seen.
    ``available`` is False where inotify is not (the sleeper then just sleeps)."""

    def __init__(self, path: Path) -> None:
        self._names = {path.name.encode(), f"{path.name}-wal".encode()}
        self._fd = -1
        # closed by the waiter if one is in select(): its number must not be reused under it
        self._lock = threading.Lock()
        self._waiting = self._closing = False
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = int(libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC))
        except (OSError, AttributeError):
            return
        if fd < 0:
            return
        mask = IN_MODIFY | IN_CREATE | IN_MOVED_TO
        if libc.inotify_add_watch(fd, str(path.parent).encode(), mask) < 0:
            os.close(fd)
            return
        self._fd = fd

    @property
    def available(self) -> bool:
        return self._fd >= 0

    def wait(self, timeout: float) -> bool:
        """Until a store file is written (since the last call; True) or ``timeout``
        passes (False)."""
        with self._lock:
            fd = self._fd
            self._waiting = fd >= 0
        if fd < 0:
            threading.Event().wait(timeout)
            return False
        try:
            deadline = time.monotonic() + timeout
            while not self._drain(fd):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                select.select([fd], [], [], remaining)
            return True
        finally:
            with self._lock:
                self._waiting = False
                if self._closing:
                    self._close()

    def _drain(self, fd: int) -> bool:
        """Read every queued event; whether one was about a store file."""
        hit = False
        while True:
            try:
                data = os.read(fd, 8192)
            except BlockingIOError:
                return hit
            offset = 0
            while offset + INOTIFY_EVENT.size <= len(data):
                _, mask, _, length = INOTIFY_EVENT.unpack_from(data, offset)
                start = offset + INOTIFY_EVENT.size
                name = data[start : start + length].rstrip(b"\0")
                hit = hit or name in self._names or bool(mask & IN_Q_OVERFLOW)
                offset = start + length

    def close(self) -> None:
        with self._lock:
            self._closing = True
            if not self._waiting:
                self._close()

    def _close(self) -> None:
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)

    def __del__(self) -> None:
        self._close()


# after a write to the store's files, how long a watch looks again every RECHECK
# seconds for the commit to become visible (the WAL's fsync is in between)
WRITE_VISIBLE = 0.05
RECHECK = 0.001

PUT, DELETE = 0, 1
BATCH_REVISIONS = 1000
COMPACT_EVERY = 1000


class SqliteStore:
    def __init__(
        self,
        path: str | Path,
        clock: Clock | None = None,
        *,
        poll_interval: float = 0.02,
        history: int = 100_000,
        busy_timeout: float = 30.0,
    ) -> None:
        self.path = Path(path)
        self._clock = clock or SystemClock()
        self._poll = poll_interval
        self._history = history
        self._lock = threading.RLock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)  # a first start
            self._db = sqlite3.connect(
                self.path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(f"BEGIN IMMEDIATE;{SCHEMA}COMMIT;")
        except (sqlite3.Error, OSError) as exc:
            raise StoreUnavailable(f"cannot open the store {self.path}: {exc}") from exc

    # -- transactions --------------------------------------------------------------------
    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                self._db.execute("BEGIN")
                try:
                    yield self._db
                finally:
                    self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                raise StoreUnavailable(f"store {self.path}: {exc}") from exc

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StoreUnavailable(f"store {self.path}: {exc}") from exc
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException as exc:
                self._db.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise StoreUnavailable(f"store {self.path}: {exc}") from exc
                raise

    def _revision(self, db: sqlite3.Connection) -> int:
        row = db.execute("SELECT value FROM meta WHERE name = 'revision'").fetchone()
        return int(row[0])

    def _apply(self, db: sqlite3.Connection, ops: Sequence[Op]) -> int:
        """Write ``ops`` at one new revision (inside a write transaction)."""
        revision = self._revision(db) + 1
        events = []
        for seq, op in enumerate(ops):
            old = db.execute(
                "SELECT create_revision, version FROM kv WHERE key = ?", (op.key,)
            ).fetchone()
            if isinstance(op, Put):
                create = old[0] if old else revision
                version = old[1] + 1 if old else 1
                db.execute(
                    "INSERT OR REPLACE INTO kv VALUES (?, ?, ?, ?, ?, ?)",
                    (op.key, bytes(op.value), create, revision, version, op.lease),
                )
                events.append(
                    (revision, seq, PUT, op.key, bytes(op.value), create, version, op.lease)
                )
            else:
                db.execute("DELETE FROM kv WHERE key = ?", (op.key,))
                events.append((revision, seq, DELETE, op.key, b"", 0, 0, 0))
        db.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?)", events)
        db.execute("UPDATE meta SET value = ? WHERE name = 'revision'", (revision,))
        if revision % COMPACT_EVERY == 0 and revision > self._history:
            self._compact(db, revision - self._history)
        return revision

    # -- leases expiry ----------------------------------------------------------------------
    def _expire(self) -> None:
        """Delete the keys of leases past their deadline, if any (one revision)."""
        now = self._clock.time()
        with self._lock:
            try:
                due = self._db.execute("SELECT 1 FROM leases WHERE deadline <= ? LIMIT 1", (now,))
                if due.fetchone() is None:
                    return
            except sqlite3.Error as exc:
                raise StoreUnavailable(f"store {self.path}: {exc}") from exc
            with self._write() as db:
                ids = [
                    r[0] for r in db.execute("SELECT id FROM leases WHERE deadline <= ?", (now,))
                ]
                self._end_leases(db, ids)

    def _end_leases(self, db: sqlite3.Connection, ids: Sequence[int]) -> None:
        doomed: list[str] = []
        for lease in ids:
            db.execute("DELETE FROM leases WHERE id = ?", (lease,))
            doomed += [r[0] for r in db.execute("SELECT key FROM kv WHERE lease = ?", (lease,))]
        if doomed:
            self._apply(db, [Delete(k) for k in sorted(doomed)])

    # -- the protocol -----------------------------------------------------------------------
    def revision(self) -> int:
        self._expire()
        with self._read() as db:
            return self._revision(db)

    def get(self, key: str) -> KeyValue | None:
        self._expire()
        with self._read() as db:
            row = db.execute("SELECT * FROM kv WHERE key = ?", (key,)).fetchone()
        return None if row is None else KeyValue(*row)

    def list(self, prefix: str) -> ListResult:
        if not prefix:
            return self.range("", "\U0010ffff")
        return self.range(prefix, prefix_end(prefix))

    def range(self, start: str, end: str, *, limit: int = 0) -> ListResult:
        if limit < 0:
            raise ValidationError("limit", f"{limit} is below 0")
        self._expire()
        with self._read() as db:
            # the primary key's index serves key >= ? AND key < ?, in key order
            rows = db.execute(
                "SELECT * FROM kv WHERE key >= ? AND key < ? ORDER BY key LIMIT ?",
                (start, end, limit + 1 if limit else -1),
            ).fetchall()
            more = bool(limit) and len(rows) > limit
            items = [KeyValue(*row) for row in (rows[:limit] if more else rows)]
            return ListResult(items, self._revision(db), more=more)

    def put(self, key: str, value: bytes, *, lease: int = NO_LEASE) -> int:
        return self.txn((), (Put(key, value, lease),))

    def delete(self, key: str) -> int:
        check_key(key)
        self._expire()
        with self._write() as db:
            if db.execute("SELECT 1 FROM kv WHERE key = ?", (key,)).fetchone() is None:
                return 0
            return self._apply(db, (Delete(key),))

    def txn(self, compares: Sequence[Compare], ops: Sequence[Op]) -> int:
        for op in ops:
            check_key(op.key)
            if isinstance(op, Put):
                check_value(op.value)
        self._expire()
        with self._write() as db:
            failed = []
            for compare in compares:
                row = db.execute(
                    "SELECT mod_revision FROM kv WHERE key = ?", (compare.key,)
                ).fetchone()
                if (row[0] if row else 0) != compare.mod_revision:
                    failed.append(compare.key)
            if failed:
                raise TxnConflict(tuple(failed))
            for lease in {op.lease for op in ops if isinstance(op, Put) and op.lease != NO_LEASE}:
                if db.execute("SELECT 1 FROM leases WHERE id = ?", (lease,)).fetchone() is None:
                    raise LeaseExpired(lease)
            effective = [
                op
                for op in ops
                if isinstance(op, Put)
                or db.execute("SELECT 1 FROM kv WHERE key = ?", (op.key,)).fetchone()
            ]
            if not effective:
                return self._revision(db)
            return self._apply(db, effective)

    def watch(self, prefix: str, start_revision: int) -> PollingWatch:
        def fetch(next_revision: int) -> tuple[list[Event], int]:
            self._expire()
            with self._read() as db:
                compacted = db.execute("SELECT value FROM meta WHERE name = 'compacted'")
                oldest = int(compacted.fetchone()[0])
                if next_revision < oldest:
                    raise WatchCompacted(next_revision, oldest)
                upto = min(self._revision(db), next_revision + BATCH_REVISIONS - 1)
                rows = db.execute(
                    "SELECT * FROM events WHERE revision BETWEEN ? AND ? "
                    "AND substr(key, 1, ?) = ? ORDER BY revision, seq",
                    (next_revision, upto, len(prefix), prefix),
                ).fetchall()
            return [_event(row) for row in rows], upto

        changes = FileChanges(self.path)  # before the first fetch: no commit goes unseen
        written_at, seen_upto = 0.0, 0

        def wait(next_revision: int, timeout: float) -> None:
            nonlocal written_at, seen_upto
            if next_revision <= seen_upto and time.monotonic() - written_at < WRITE_VISIBLE:
                # a write was seen, but SQLite makes a commit visible only once the WAL is
                # synced and its index updated (no file event): look again shortly
                time.sleep(min(RECHECK, timeout))
                return
            if changes.wait(min(self._poll, timeout)):
                written_at, seen_upto = time.monotonic(), next_revision

        return PollingWatch(fetch, wait, start_revision, on_close=changes.close)

    def grant_lease(self, ttl: float) -> int:
        if not ttl > 0:
            raise ValidationError("ttl", f"{ttl} must be positive")
        self._expire()
        with self._write() as db:
            cur = db.execute(
                "INSERT INTO leases (ttl, deadline) VALUES (?, ?)", (ttl, self._clock.time() + ttl)
            )
            assert cur.lastrowid is not None
            return cur.lastrowid

    def keepalive(self, lease: int) -> None:
        self._expire()
        with self._write() as db:
            cur = db.execute(
                "UPDATE leases SET deadline = ? + ttl WHERE id = ?", (self._clock.time(), lease)
            )
            if cur.rowcount == 0:
                raise LeaseExpired(lease)

    def revoke(self, lease: int) -> None:
        self._expire()
        with self._write() as db:
            self._end_leases(db, [lease])

    def compact(self, revision: int) -> None:
        with self._write() as db:
            self._compact(db, min(revision, self._revision(db)))

    def _compact(self, db: sqlite3.Connection, revision: int) -> None:
        oldest = int(db.execute("SELECT value FROM meta WHERE name = 'compacted'").fetchone()[0])
        if revision <= oldest:
            return
        db.execute("DELETE FROM events WHERE revision < ?", (revision,))
        db.execute("UPDATE meta SET value = ? WHERE name = 'compacted'", (revision,))

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _event(row: tuple[int, int, int, str, bytes, int, int, int]) -> Event:
    revision, _, kind, key, value, create, version, lease = row
    if kind == PUT:
        return Event(EventType.PUT, KeyValue(key, value, create, revision, version, lease))
    return Event(EventType.DELETE, KeyValue(key, b"", 0, revision, 0))
