"""Fixtures of the store conformance suite: every backend, one suite.

etcd runs for real: each test gets a fresh single-member cluster (the suite counts
revisions from 1), started from a session-wide pool that keeps the next one
starting while a test runs. etcd's leases run on the cluster's own clock, so on
etcd the test's clock is a :class:`SleepingClock`: advancing it waits that long
for real, and a lease test checks real expiry (the other backends keep the
FakeClock and check the same things instantly).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tenet.clock import FakeClock
from tenet.lab.etcd import EtcdCluster, etcd_available
from tenet.store import EtcdStore, MemoryStore, SqliteStore, Store
from tenet.store.metered import MeteredStore

Factory = Callable[[FakeClock], Store]


class SleepingClock(FakeClock):
    """A FakeClock whose ``advance`` also lets that much real time pass."""

    def advance(self, seconds: float) -> None:
        super().advance(seconds)
        time.sleep(seconds)


class EtcdPool:
    """Fresh single-member etcd clusters, the next one started in the background."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._count = 0
        self._next: EtcdCluster | None = None
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._prepare()

    def _prepare(self) -> None:
        self._count += 1
        cluster = EtcdCluster(size=1, root=self._root / f"c{self._count}")

        def start() -> None:
            try:
                cluster.start()
            except BaseException as exc:  # raised again by take()
                self._error = exc
                cluster.close()

        self._next = cluster
        self._thread = threading.Thread(target=start, daemon=True)
        self._thread.start()

    def take(self) -> EtcdCluster:
        assert self._thread is not None
        assert self._next is not None
        self._thread.join()
        if self._error is not None:
            raise self._error
        cluster = self._next
        self._prepare()
        return cluster

    def close(self) -> None:
        if self._thread is not None and self._next is not None:
            self._thread.join()
            self._next.close()


@pytest.fixture(scope="session")
def etcd_pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdPool]:
    if etcd_available() is None:
        pytest.skip("etcd is not installed (./dev setup installs Debian's etcd-server)")
    pool = EtcdPool(tmp_path_factory.mktemp("etcd"))
    yield pool
    pool.close()


@pytest.fixture(params=["memory", "sqlite", "etcd", "metered"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_store(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Factory]:
    """Opens stores of one backend (several sqlite or etcd stores share one store)."""
    opened: list[Store] = []
    cluster: EtcdCluster | None = None
    if backend == "etcd":
        pool: EtcdPool = request.getfixturevalue("etcd_pool")
        cluster = pool.take()

    def make(clock: FakeClock) -> Store:
        if backend == "memory":
            if opened:  # one memory store per test: a second "client" shares it
                return opened[0]
            store: Store = MemoryStore(clock)
        elif backend == "sqlite":
            store = SqliteStore(tmp_path / "store.db", clock, poll_interval=0.005)
        elif backend == "metered":  # the metrics' wrapper keeps the contract (on SQLite)
            store = MeteredStore(SqliteStore(tmp_path / "store.db", clock, poll_interval=0.005))
        else:
            assert cluster is not None
            store = EtcdStore(cluster.url)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()
    if cluster is not None:
        cluster.close()


@pytest.fixture
def clock(backend: str) -> FakeClock:
    return SleepingClock() if backend == "etcd" else FakeClock()


@pytest.fixture
def store(make_store: Factory, clock: FakeClock) -> Store:
    return make_store(clock)
