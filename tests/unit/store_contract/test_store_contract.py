"""The store protocol (tenet.store.base), on every backend."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from tenet.clock import FakeClock
from tenet.errors import ConflictError, LeaseExpired, TxnConflict, ValidationError, WatchCompacted
from tenet.store import (
    Compare,
    Delete,
    EventType,
    MemoryStore,
    Put,
    SqliteStore,
    Store,
    open_store,
)

Factory = Callable[[FakeClock], Store]


def drain(store: Store, prefix: str, start: int, count: int) -> list[tuple[str, str, int]]:
    """The next ``count`` events of a watch, as (type, key, revision)."""
    out: list[tuple[str, str, int]] = []
    with store.watch(prefix, start) as watch:
        while len(out) < count:
            batch = watch.get(timeout=5)
            assert batch, f"the watch went quiet after {out}"
            out += [(e.type.value, e.key, e.revision) for e in batch]
    return out


def test_an_empty_store_is_at_revision_1(store: Store) -> None:
    assert store.revision() == 1
    assert store.get("/a") is None
    assert store.list("/").items == []


def test_each_change_bumps_the_revision_by_one(store: Store) -> None:
    assert store.put("/a", b"1") == 2
    assert store.put("/a", b"2") == 3
    assert store.put("/b", b"1") == 4
    assert store.delete("/a") == 5
    assert store.delete("/a") == 0  # absent: no change
    assert store.revision() == 5


def test_key_bookkeeping(store: Store) -> None:
    store.put("/k", b"v1")
    store.put("/k", b"v2")
    kv = store.get("/k")
    assert kv is not None
    assert (kv.value, kv.create_revision, kv.mod_revision, kv.version) == (b"v2", 2, 3, 2)
    store.delete("/k")
    store.put("/k", b"v3")
    again = store.get("/k")
    assert again is not None
    assert (again.create_revision, again.version) == (5, 1)


def test_list_by_prefix_is_sorted_with_its_revision(store: Store) -> None:
    for key in ("/ab/2", "/a/2", "/a/1", "/b", "/a/é"):
        store.put(key, key.encode())
    result = store.list("/a/")
    assert [kv.key for kv in result.items] == ["/a/1", "/a/2", "/a/é"]
    assert result.revision == store.revision()
    assert [kv.key for kv in store.list("/a").items] == ["/a/1", "/a/2", "/a/é", "/ab/2"]


def test_a_range_read_is_half_open_sorted_and_limited(store: Store) -> None:
    for key in ("/r/05", "/r/01", "/r/03", "/r/04", "/r/02", "/s"):
        store.put(key, b"x")
    store.delete("/r/04")
    assert [kv.key for kv in store.range("/r/02", "/r/05").items] == ["/r/02", "/r/03"]
    first = store.range("/r/", "/r0", limit=2)
    assert ([kv.key for kv in first.items], first.more) == (["/r/01", "/r/02"], True)
    assert first.revision == store.revision()
    rest = store.range(first.items[-1].key + "\0", "/r0", limit=2)
    assert ([kv.key for kv in rest.items], rest.more) == (["/r/03", "/r/05"], False)
    assert store.range("/r/09", "/r/01").items == []
    with pytest.raises(ValidationError):
        store.range("/r/", "/r0", limit=-1)


def test_paging_a_range_sees_every_key_once(store: Store) -> None:
    keys = [f"/p/{i:04d}" for i in range(57)]
    store.txn((), [Put(k, b"") for k in keys])
    seen: list[str] = []
    start = "/p/"
    while True:
        page = store.range(start, "/p0", limit=10)
        seen += [kv.key for kv in page.items]
        if not page.more:
            break
        start = page.items[-1].key + "\0"
    assert seen == keys


@pytest.mark.parametrize("key", ["", 7, None])
def test_bad_keys_are_refused(store: Store, key: object) -> None:
    with pytest.raises(ValidationError) as info:
        store.put(key, b"x")  # type: ignore[arg-type]
    assert info.value.field == "key"


def test_values_must_be_bytes(store: Store) -> None:
    with pytest.raises(ValidationError) as info:
        store.put("/k", "text")  # type: ignore[arg-type]
    assert info.value.field == "value"


def test_a_transaction_shares_one_revision(store: Store) -> None:
    store.put("/gone", b"x")
    rev = store.txn([Compare("/new", 0)], [Put("/new", b"1"), Put("/b", b"2"), Delete("/gone")])
    assert rev == 3
    assert {kv.key: kv.mod_revision for kv in store.list("/").items} == {"/b": 3, "/new": 3}


def test_a_failed_compare_writes_nothing_and_names_the_keys(store: Store) -> None:
    store.put("/a", b"1")
    store.put("/b", b"1")
    before = store.revision()
    with pytest.raises(TxnConflict) as info:
        store.txn(
            [Compare("/a", 2), Compare("/b", 2), Compare("/c", 0)],
            [Put("/a", b"2"), Put("/c", b"new")],
        )
    assert isinstance(info.value, ConflictError)
    assert info.value.keys == ("/b",)
    assert store.revision() == before
    assert store.get("/c") is None
    kv = store.get("/a")
    assert kv is not None
    assert kv.value == b"1"


def test_compare_zero_means_absent(store: Store) -> None:
    store.txn([Compare("/x", 0)], [Put("/x", b"1")])
    with pytest.raises(TxnConflict):
        store.txn([Compare("/x", 0)], [Put("/x", b"2")])


def test_an_empty_transaction_returns_the_current_revision(store: Store) -> None:
    store.put("/a", b"1")
    assert store.txn([Compare("/a", 2)], []) == 2


def test_compare_and_set_from_threads_loses_no_update(make_store: Factory) -> None:
    clock = FakeClock()
    first = make_store(clock)
    first.put("/counter", b"0")
    done = []

    def bump(n: int) -> None:
        store = make_store(clock)
        for _ in range(n):
            while True:
                kv = store.get("/counter")
                assert kv is not None
                try:
                    store.txn(
                        [Compare("/counter", kv.mod_revision)],
                        [Put("/counter", str(int(kv.value) + 1).encode())],
                    )
                    break
                except TxnConflict:
                    continue
        done.append(n)

    threads = [threading.Thread(target=bump, args=(40,)) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    kv = first.get("/counter")
    assert kv is not None
    assert int(kv.value) == sum(done) == 120


def test_a_watch_replays_history_in_order_without_gaps(store: Store) -> None:
    start = store.revision() + 1
    store.put("/w/a", b"1")
    store.put("/other", b"x")
    store.txn([], [Put("/w/b", b"1"), Put("/w/c", b"1")])
    store.delete("/w/a")
    events = drain(store, "/w/", start, 4)
    assert events == [
        ("put", "/w/a", start),
        ("put", "/w/b", start + 2),
        ("put", "/w/c", start + 2),
        ("delete", "/w/a", start + 3),
    ]


def test_one_revision_arrives_in_one_batch(store: Store) -> None:
    start = store.revision() + 1
    store.txn([], [Put(f"/t/{i:02}", b"x") for i in range(20)])
    with store.watch("/t/", start) as watch:
        batch = watch.get(timeout=5)
    assert [e.key for e in batch] == [f"/t/{i:02}" for i in range(20)]
    assert {e.revision for e in batch} == {start}


def test_a_watch_sees_live_changes_from_another_thread(store: Store) -> None:
    start = store.revision() + 1

    def writer() -> None:
        for i in range(50):
            store.put(f"/live/{i}", b"x")

    thread = threading.Thread(target=writer)
    thread.start()
    events = drain(store, "/live/", start, 50)
    thread.join()
    assert [rev for _, _, rev in events] == list(range(start, start + 50))


def test_a_resumed_watch_replays_what_it_missed(store: Store) -> None:
    start = store.revision() + 1
    store.put("/r/1", b"x")
    seen = drain(store, "/r/", start, 1)
    last = seen[-1][2]
    store.put("/r/2", b"x")  # while no watch is open
    store.put("/r/3", b"x")
    resumed = drain(store, "/r/", last + 1, 2)
    assert [key for _, key, _ in resumed] == ["/r/2", "/r/3"]


def test_a_watch_from_compacted_history_says_so(store: Store) -> None:
    for i in range(5):
        store.put(f"/c/{i}", b"x")
    store.compact(4)
    with pytest.raises(WatchCompacted) as info, store.watch("/c/", 2) as watch:
        watch.get(timeout=1)
    assert info.value.compact_revision == 4
    assert [k for _, k, _ in drain(store, "/c/", 4, 3)] == ["/c/2", "/c/3", "/c/4"]


def test_a_quiet_watch_times_out_empty(store: Store) -> None:
    with store.watch("/q/", store.revision() + 1) as watch:
        assert watch.get(timeout=0.05) == []


def test_closing_a_watch_from_another_thread_ends_it(store: Store) -> None:
    watch = store.watch("/z/", store.revision() + 1)
    got: list[object] = []
    thread = threading.Thread(target=lambda: got.extend(watch))
    thread.start()
    watch.close()
    thread.join(timeout=5)
    assert not thread.is_alive()
    assert got == []


def test_leases_expire_their_keys_at_one_revision(store: Store, clock: FakeClock) -> None:
    lease = store.grant_lease(10)
    assert lease != 0
    store.txn([], [Put("/l/a", b"x", lease), Put("/l/b", b"x", lease), Put("/l/c", b"x")])
    start = store.revision() + 1
    clock.advance(5)
    store.keepalive(lease)
    clock.advance(9)
    assert store.get("/l/a") is not None  # kept alive
    clock.advance(2)
    with store.watch("/l/", start) as watch:  # the watch's own poll expires it
        batch = watch.get(timeout=5)
    assert [(e.type, e.key) for e in batch] == [
        (EventType.DELETE, "/l/a"),
        (EventType.DELETE, "/l/b"),
    ]
    assert {e.revision for e in batch} == {start}
    assert [kv.key for kv in store.list("/l/").items] == ["/l/c"]
    with pytest.raises(LeaseExpired):
        store.keepalive(lease)


def test_a_put_with_a_dead_lease_is_refused(store: Store) -> None:
    lease = store.grant_lease(10)
    store.revoke(lease)
    before = store.revision()
    with pytest.raises(LeaseExpired):
        store.put("/k", b"x", lease=lease)
    assert store.revision() == before


def test_revoke_deletes_the_keys_and_is_idempotent(store: Store) -> None:
    lease = store.grant_lease(60)
    store.put("/v/a", b"x", lease=lease)
    store.revoke(lease)
    assert store.get("/v/a") is None
    store.revoke(lease)
    assert store.grant_lease(60) not in (0, lease)


def test_open_store_reads_urls(tmp_path: Path) -> None:
    memory = open_store("memory:")
    assert isinstance(memory, MemoryStore)
    memory.close()
    absolute = open_store(f"sqlite://{tmp_path}/a.db")
    assert isinstance(absolute, SqliteStore)
    assert absolute.path == tmp_path / "a.db"
    absolute.close()


@pytest.mark.parametrize("url", ["", "redis://x", "sqlite:", "sqlite:///tmp/dir/"])
def test_open_store_refuses_bad_urls(url: str) -> None:
    with pytest.raises(ValidationError) as info:
        open_store(url)
    assert info.value.field == "store"
