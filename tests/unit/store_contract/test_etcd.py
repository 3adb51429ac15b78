"""What only the etcd backend has: URLs of several members, failing over between
them, and the limits of one etcd request. Real etcd members on loopback."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tenet.errors import StoreUnavailable, TooLarge, ValidationError
from tenet.lab.etcd import EtcdCluster, etcd_available, free_port
from tenet.store import EtcdStore, Put, Watch, open_store

pytestmark = pytest.mark.skipif(etcd_available() is None, reason="etcd is not installed")


@pytest.fixture(scope="module")
def cluster() -> Iterator[EtcdCluster]:
    with EtcdCluster(size=3) as made:
        yield made


@pytest.mark.parametrize(
    "url", ["etcd://", "etcd://host", "etcd://host:0", "etcd://h:2379,h", "etcd://h:port"]
)
def test_a_bad_etcd_url_names_the_store_field(url: str) -> None:
    with pytest.raises(ValidationError) as info:
        open_store(url)
    assert info.value.field == "store"


def test_an_unreachable_cluster_at_start_names_its_members() -> None:
    ports = [free_port(), free_port()]
    url = f"etcd://127.0.0.1:{ports[0]},127.0.0.1:{ports[1]}"
    with pytest.raises(StoreUnavailable) as info:
        EtcdStore(url, timeout=0.5, start_deadline=0.5)
    message = str(info.value)
    assert "no etcd member" in message
    assert all(f"127.0.0.1:{port}" in message for port in ports)


def test_an_oversized_write_is_refused_whole(cluster: EtcdCluster) -> None:
    store = open_store(cluster.url)
    before = store.revision()
    with pytest.raises(TooLarge) as too_many:
        store.txn([], [Put(f"/big/{i:03}", b"x") for i in range(129)])
    assert "128" in str(too_many.value)
    with pytest.raises(TooLarge) as too_big:
        store.put("/big/one", b"x" * 1_600_000)
    assert "bytes" in str(too_big.value)
    assert store.revision() == before
    assert store.list("/big/").items == []
    store.close()


def test_an_etcd_answer_too_large_is_too_large(cluster: EtcdCluster) -> None:
    """Just under the client's own check, etcd's envelope puts it over: etcd says so."""
    store = open_store(cluster.url)
    before = store.revision()
    with pytest.raises(TooLarge) as info:
        store.txn([], [Put(f"/edge/{i}", b"x" * 393_200) for i in range(4)])
    assert "too large" in str(info.value)
    assert store.revision() == before
    store.close()


def test_writes_and_a_watch_carry_on_when_a_member_dies(cluster: EtcdCluster) -> None:
    store = open_store(cluster.url)
    start = store.revision() + 1
    watch = store.watch("/f/", start)
    for i in range(5):
        store.put(f"/f/{i}", b"x")
    first = cluster.members[0]  # the member the client and the watch use first
    cluster.kill(first)
    try:
        for i in range(5, 10):
            store.put(f"/f/{i}", b"x")
        seen: list[int] = []
        deadline = time.monotonic() + 30
        while len(seen) < 10 and time.monotonic() < deadline:
            seen += [e.revision for e in watch.get(timeout=1)]
        assert seen == list(range(start, start + 10))
    finally:
        watch.close()
        store.close()
        cluster.restart(first)


def drain_until_it_fails(watch: Watch, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        watch.get(timeout=1)


def test_without_a_quorum_calls_and_watches_say_so(cluster: EtcdCluster) -> None:
    """The member left has no leader: its watch is ended with "no leader" (the watch
    asks for one), its reads time out, and after the store's deadline the caller
    hears StoreUnavailable, not silence."""
    store = EtcdStore(cluster.url, deadline=2)
    watch = store.watch("/q/", store.revision() + 1)
    for member in cluster.members[1:]:
        cluster.kill(member)
    try:
        with pytest.raises(StoreUnavailable) as read:
            store.get("/q/a")
        assert "no etcd member" in str(read.value)
        with pytest.raises(StoreUnavailable) as watched:
            drain_until_it_fails(watch)
        assert "the watch lost every member" in str(watched.value)
        assert "no leader" in str(watched.value), watched.value
    finally:
        watch.close()
        store.close()
        cluster.restart_all()
