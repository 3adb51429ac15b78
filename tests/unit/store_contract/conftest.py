"""Fixtures of the store conformance suite: every backend, one suite."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tenet.clock import FakeClock
from tenet.store import MemoryStore, SqliteStore, Store

Factory = Callable[[FakeClock], Store]


@pytest.fixture(params=["memory", "sqlite"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Factory]:
    """Opens stores of one backend (several sqlite stores share one file)."""
    opened: list[Store] = []

    def make(clock: FakeClock) -> Store:
        if request.param == "memory":
            if opened:  # one memory store per test: a second "client" shares it
                return opened[0]
            store: Store = MemoryStore(clock)
        else:
            store = SqliteStore(tmp_path / "store.db", clock, poll_interval=0.005)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(make_store: Factory, clock: FakeClock) -> Store:
    return make_store(clock)
