"""The distributed store: an etcd v3 cluster, through its JSON gateway.

The store protocol is etcd's (see :mod:`tenet.store.base`), so this is a mapping:

* ``txn(compares, ops)`` is one etcd Txn: each Compare is ``MOD == mod_revision``
  (``0``: absent); the failure branch reads the compared keys back, so a
  TxnConflict names the keys whose revision moved. At most ``MAX_TXN_OPS`` (128,
  etcd's ``--max-txn-ops``) operations, and a request under ``--max-request-bytes``
  (1.5 MiB): more is a TooLarge, and nothing is written;
* a txn whose answer was lost (its member died with it, or the leader did) is
  looked up, not blindly sent again. It was applied if its keys hold what it wrote
  at one revision since it was sent, or if etcd's history shows its first key
  written so at a revision since (up to ``MAX_LOOKUP`` revisions back): its
  revision is returned. Otherwise it is sent again *guarded*: with, besides its
  own compares, "every key it puts is as it is now", so that if the lost one lands
  first, the second fails (and is then found applied). Left to chance: a lost
  txn without compares that lands after its guarded copy (it writes the same
  values again), and a txn whose history was compacted or is only deletes: those
  raise StoreUnavailable saying that the outcome is unknown;
* a watch reads one member's ``/v3/watch`` stream in a thread of its own, and when
  that member fails, goes quiet or loses its leader, it watches again on the next
  member from the revision after the last one delivered: no gap, no duplicate.
  History compacted away ends the watch with WatchCompacted; no member answering
  for ``deadline`` seconds ends it with StoreUnavailable;
* leases have whole-second TTLs in etcd (a fraction rounds up) and run on the
  cluster's clock, not on the ``clock`` given (the other backends take it for
  their tests): a keepalive on a gone lease (etcd answers without a TTL) raises
  LeaseExpired.

Keys and values are sent base64; keys are UTF-8, so etcd's byte order is the
code point order the other backends sort by.
"""

from __future__ import annotations

import math
import queue
import threading
import time
from collections.abc import Sequence

import httpx

from tenet.errors import (
    LeaseExpired,
    StoreError,
    StoreUnavailable,
    TooLarge,
    TxnConflict,
    ValidationError,
    WatchCompacted,
)
from tenet.store.base import NO_LEASE, Compare, Event, EventType, KeyValue, ListResult, Op, Put
from tenet.store.etcd_client import (
    AnswerLost,
    Endpoint,
    EtcdClient,
    EtcdError,
    Json,
    b64,
    parse_endpoints,
    unb64,
)
from tenet.store.keys import prefix_end
from tenet.store.watch import WatchHandle, check_key, check_value

MAX_TXN_OPS = 128
MAX_REQUEST_BYTES = 1_572_864  # etcd's default --max-request-bytes
WATCH_QUIET = 5.0  # a watch stream silent this long is dropped and opened again
ALL_KEYS = "\0"  # as a range end: every key from the start on
MAX_LOOKUP = 256  # revisions a lost write's key is looked up at, at most


class EtcdStore:
    """A Store on an etcd cluster. ``url`` is ``etcd://host:port[,host:port...]``."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 2.0,
        deadline: float = 30.0,
        start_deadline: float = 5.0,
    ) -> None:
        """``timeout``: of one request to one member; ``deadline``: how long a call
        (or a watch) keeps trying the members before it raises StoreUnavailable, long
        enough to ride out an election or a whole cluster's restart;
        ``start_deadline``: the same for the first call, which fails fast."""
        self.url = url
        self._client = EtcdClient(parse_endpoints(url), timeout=timeout, deadline=start_deadline)
        try:
            self.revision()
        except StoreError:
            self._client.close()
            raise
        self._client.deadline = deadline

    def __str__(self) -> str:
        return str(self._client)

    # -- reading -------------------------------------------------------------------------
    def _call(self, path: str, body: Json, *, write: bool) -> Json:
        try:
            return self._client.call(path, body, write=write)
        except EtcdError as exc:
            if "too large" in exc.message or "too many operations" in exc.message:
                raise TooLarge(f"{self}: etcd refused the change: {exc.message}") from exc
            raise StoreError(f"{self}: etcd refused {path}: {exc.message}") from exc

    def revision(self) -> int:
        answer = self._call("kv/range", {"key": b64(ALL_KEYS), "count_only": True}, write=False)
        return _revision(answer)

    def get(self, key: str) -> KeyValue | None:
        check_key(key)
        answer = self._call("kv/range", {"key": b64(key)}, write=False)
        kvs = answer.get("kvs") or []
        return _kv(kvs[0]) if kvs else None

    def list(self, prefix: str) -> ListResult:
        if not prefix:
            return self._range(ALL_KEYS, ALL_KEYS, 0)
        return self._range(prefix, prefix_end(prefix), 0)

    def range(self, start: str, end: str, *, limit: int = 0) -> ListResult:
        if limit < 0:
            raise ValidationError("limit", f"{limit} is below 0")
        if start >= end:
            return ListResult([], self.revision())
        return self._range(start or ALL_KEYS, end, limit)

    def _range(self, start: str, end: str, limit: int) -> ListResult:
        body: Json = {"key": b64(start), "range_end": b64(end)}
        if limit:
            body["limit"] = str(limit)
        answer = self._call("kv/range", body, write=False)
        items = [_kv(kv) for kv in answer.get("kvs") or []]
        return ListResult(items, _revision(answer), more=bool(answer.get("more")))

    # -- writing -------------------------------------------------------------------------
    def put(self, key: str, value: bytes, *, lease: int = NO_LEASE) -> int:
        return self.txn((), (Put(key, value, lease),))

    def delete(self, key: str) -> int:
        check_key(key)
        answer = self._call("kv/deleterange", {"key": b64(key)}, write=True)
        return _revision(answer) if int(answer.get("deleted", 0)) else 0

    def txn(self, compares: Sequence[Compare], ops: Sequence[Op]) -> int:
        for op in ops:
            check_key(op.key)
            if isinstance(op, Put):
                check_value(op.value)
        if len(ops) > MAX_TXN_OPS or len(compares) > MAX_TXN_OPS:
            raise TooLarge(
                f"{self}: a transaction of {len(ops)} operations and {len(compares)} "
                f"compares; etcd takes at most {MAX_TXN_OPS} of each"
            )
        size = sum(len(op.key) + len(op.value) for op in ops if isinstance(op, Put))
        if size > MAX_REQUEST_BYTES:
            raise TooLarge(
                f"{self}: a transaction of {size} bytes of keys and values; etcd takes "
                f"requests of at most {MAX_REQUEST_BYTES} bytes"
            )
        return self._send_txn(tuple(compares), ops)

    def _send_txn(self, compares: tuple[Compare, ...], ops: Sequence[Op]) -> int:
        """Send a txn; when its answer is lost, find out whether it was applied: its
        revision if it was, the txn sent again, guarded, if it was not (so far), or
        StoreUnavailable (no telling)."""
        resent, first = False, self._client.seen_revision
        while True:
            before = self._client.seen_revision  # the txn, if applied, is after this
            try:
                answer = self._call("kv/txn", _txn_body(compares, ops), write=True)
            except AnswerLost as lost:
                verdict = self._was_applied(ops, before)
                if verdict is None:
                    raise StoreUnavailable(
                        f"{lost}; the store cannot tell which (its history since is gone "
                        "or too long)"
                    ) from lost
                if verdict:
                    return verdict
                compares = self._guarded(compares, ops)
                resent = True
                continue
            except StoreError as exc:
                if "lease not found" in str(exc):
                    raise LeaseExpired(self._dead_lease(ops)) from exc
                raise
            if answer.get("succeeded"):
                return _revision(answer)
            if resent:  # the lost one may have landed after all, before this one
                landed = self._holds(ops, first)
                if landed:
                    return landed
                raise StoreUnavailable(
                    f"{self}: a write's answer was lost, and the keys it writes changed "
                    "before it could be sent again: its outcome is unknown"
                )
            raise _conflict(compares, answer)

    def _guarded(self, compares: tuple[Compare, ...], ops: Sequence[Op]) -> tuple[Compare, ...]:
        """The compares for sending again a txn found not applied: also "every key it
        puts is as it is now", so that if the lost one lands first, this one fails."""
        keys = {c.key for c in compares}
        extra: tuple[Compare, ...] = ()
        for op in ops:
            if isinstance(op, Put) and op.key not in keys:
                kv = self.get(op.key)
                extra += (Compare(op.key, kv.mod_revision if kv else 0),)
                keys.add(op.key)
        return compares + extra

    def _holds(self, ops: Sequence[Op], before: int) -> int:
        """The revision at which every key the txn puts holds what it wrote, one
        revision after ``before``; 0 if they do not."""
        puts = [op for op in ops if isinstance(op, Put)]
        found = [self.get(op.key) for op in puts]
        revisions = {kv.mod_revision for kv in found if kv is not None}
        if len(revisions) == 1 and all(
            kv is not None and kv.value == bytes(op.value) and kv.lease == op.lease
            for kv, op in zip(found, puts, strict=True)
        ):
            revision = revisions.pop()
            return revision if revision > before else 0
        return 0

    def _was_applied(self, ops: Sequence[Op], before: int) -> int | None:
        """After a lost answer: the txn's revision if it was applied, 0 if it was not
        (up to now), None if there is no telling. It is atomic and after ``before``:
        if its first put is not at any revision since, in etcd's history, it was
        not applied."""
        puts = [op for op in ops if isinstance(op, Put)]
        if not puts:
            return None  # deletes leave no mark: were they ours?
        landed = self._holds(ops, before)
        if landed:
            return landed
        first, now = puts[0], self.revision()
        if now - before > MAX_LOOKUP:
            return None
        for revision in range(before + 1, now + 1):
            try:
                answer = self._call(
                    "kv/range", {"key": b64(first.key), "revision": str(revision)}, write=False
                )
            except StoreError:
                return None  # compacted: no telling
            kvs = answer.get("kvs") or []
            kv = _kv(kvs[0]) if kvs else None
            if kv is not None and kv.mod_revision == revision and kv.value == bytes(first.value):
                return revision
        return 0

    def _dead_lease(self, ops: Sequence[Op]) -> int:
        leases = sorted({op.lease for op in ops if isinstance(op, Put) and op.lease})
        for lease in leases:
            answer = self._call("lease/timetolive", {"ID": str(lease)}, write=False)
            if int(answer.get("TTL", -1)) < 0:
                return lease
        return leases[0] if leases else 0

    # -- leases --------------------------------------------------------------------------
    def grant_lease(self, ttl: float) -> int:
        if not ttl > 0:
            raise ValidationError("ttl", f"{ttl} must be positive")
        # sent again if its answer is lost: a lease granted twice expires unused
        answer = self._call("lease/grant", {"TTL": str(math.ceil(ttl))}, write=False)
        return int(answer["ID"])

    def keepalive(self, lease: int) -> None:
        answer = self._call("lease/keepalive", {"ID": str(lease)}, write=False)
        result = answer.get("result", answer)
        if int(result.get("TTL", 0)) <= 0:
            raise LeaseExpired(lease)

    def revoke(self, lease: int) -> None:
        try:
            self._call("lease/revoke", {"ID": str(lease)}, write=False)
        except StoreError as exc:
            if "lease not found" not in str(exc):
                raise

    def compact(self, revision: int) -> None:
        revision = min(revision, self.revision())
        try:
            self._call("kv/compaction", {"revision": str(revision)}, write=False)
        except StoreError as exc:
            if "compacted" not in str(exc):
                raise

    # -- watching ------------------------------------------------------------------------
    def watch(self, prefix: str, start_revision: int) -> EtcdWatch:
        if start_revision < 1:
            raise ValidationError("start_revision", f"{start_revision} is below 1")
        return EtcdWatch(self._client, prefix, start_revision)

    def close(self) -> None:
        self._client.close()


def _txn_body(compares: Sequence[Compare], ops: Sequence[Op]) -> Json:
    """A Txn: every compare ``MOD == mod_revision``; the failure branch reads the
    compared keys back, to name those that moved."""
    return {
        "compare": [
            {"target": "MOD", "key": b64(c.key), "mod_revision": str(c.mod_revision)}
            for c in compares
        ],
        "success": [_request(op) for op in ops],
        "failure": [{"request_range": {"key": b64(c.key)}} for c in compares],
    }


def _conflict(compares: Sequence[Compare], answer: Json) -> TxnConflict:
    failed = []
    for compare, response in zip(compares, answer.get("responses") or [], strict=False):
        kvs = (response.get("response_range") or {}).get("kvs") or []
        now = int(kvs[0].get("mod_revision", 0)) if kvs else 0
        if now != compare.mod_revision:
            failed.append(compare.key)
    return TxnConflict(tuple(failed) or tuple(c.key for c in compares))


def _request(op: Op) -> Json:
    if isinstance(op, Put):
        put: Json = {"key": b64(op.key), "value": b64(op.value)}
        if op.lease:
            put["lease"] = str(op.lease)
        return {"request_put": put}
    return {"request_delete_range": {"key": b64(op.key)}}


def _revision(answer: Json) -> int:
    return int(answer.get("header", {}).get("revision", 0))


def _kv(raw: Json) -> KeyValue:
    return KeyValue(
        key=unb64(raw.get("key")).decode(),
        value=unb64(raw.get("value")),
        create_revision=int(raw.get("create_revision", 0)),
        mod_revision=int(raw.get("mod_revision", 0)),
        version=int(raw.get("version", 0)),
        lease=int(raw.get("lease", 0)),
    )


def _event(raw: Json) -> Event:
    kv = _kv(raw.get("kv") or {})
    if raw.get("type") == "DELETE":
        return Event(EventType.DELETE, KeyValue(kv.key, b"", 0, kv.mod_revision, 0))
    return Event(EventType.PUT, kv)


class EtcdWatch(WatchHandle):
    """A watch fed by a thread that follows the cluster from member to member.

    The thread puts batches of events (lists), or the error that ended the watch, on
    a queue; ``get`` takes from it. ``next_revision`` only moves forward, and events
    below it (a member that replays what another sent) are dropped."""

    def __init__(self, client: EtcdClient, prefix: str, start_revision: int) -> None:
        self._client = client
        self._prefix = prefix
        self.next_revision = start_revision
        self._queue: queue.Queue[list[Event] | StoreError] = queue.Queue()
        self._closed = threading.Event()
        self._ended = False
        self._delivered = False
        self._thread = threading.Thread(target=self._follow, name="etcd-watch", daemon=True)
        self._thread.start()

    # -- the consumer's side ---------------------------------------------------------------
    def get(self, timeout: float | None = None) -> list[Event]:
        if self._ended:
            return []
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            return []
        if isinstance(item, StoreError):
            self._ended = True
            raise item
        return item

    def close(self) -> None:
        self._closed.set()
        self._queue.put([])  # wakes a get() waiting forever

    # -- the thread's side -----------------------------------------------------------------
    def _follow(self) -> None:
        failing_since: float | None = None
        problems: dict[str, str] = {}
        pause = threading.Event()
        while not self._closed.is_set():
            delivered = False
            for endpoint in self._client.order():
                if self._closed.is_set():
                    return
                self._delivered = False
                try:
                    self._stream(endpoint)
                except WatchCompacted as exc:
                    self._queue.put(exc)
                    return
                except (httpx.HTTPError, _MemberFailed) as exc:
                    problems[str(endpoint)] = str(exc) or type(exc).__name__
                if self._delivered:  # it worked for a while: start again from it
                    delivered = True
                    break
            if delivered:
                failing_since = None
                problems.clear()
                continue
            now = time.monotonic()
            failing_since = failing_since or now
            if now - failing_since >= self._client.deadline:
                said = "; ".join(f"{k}: {v}" for k, v in problems.items())
                self._queue.put(
                    StoreUnavailable(f"the watch lost every member of {self._client}: {said}")
                )
                return
            pause.wait(0.1)

    def _stream(self, endpoint: Endpoint) -> None:
        """Watch on one member until it fails or goes quiet (``_delivered``: it
        created the watch, or sent events)."""
        body = {
            "create_request": {
                "key": b64(self._prefix or ALL_KEYS),
                "range_end": b64(prefix_end(self._prefix) if self._prefix else ALL_KEYS),
                "start_revision": str(self.next_revision),
                "progress_notify": True,
            }
        }
        stream = self._client.stream(endpoint, "watch", body, WATCH_QUIET)
        try:
            for line in stream.lines():
                if self._closed.is_set():
                    return
                result = line.get("result")
                if result is None:
                    error = line.get("error")
                    message = error.get("message") if isinstance(error, dict) else error
                    raise _MemberFailed(str(message or line))
                if result.get("canceled"):
                    compacted = int(result.get("compact_revision", 0))
                    if compacted:
                        raise WatchCompacted(self.next_revision, compacted)
                    raise _MemberFailed(str(result.get("cancel_reason") or "watch canceled"))
                self._delivered = True
                self._client.answered(endpoint)
                events = [
                    e
                    for e in map(_event, result.get("events") or [])
                    if e.revision >= self.next_revision
                ]
                if events:
                    self.next_revision = events[-1].revision + 1
                    self._queue.put(events)
        finally:
            stream.close()


class _MemberFailed(Exception):
    """A member ended or refused the watch for a reason other than compaction."""
