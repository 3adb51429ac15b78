"""Fixtures of the object layer's tests: every store backend, and a tenant to build in."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from objworld import Topo

from tenet.clock import FakeClock
from tenet.store.memory import MemoryStore
from tenet.store.objects import ObjectStore
from tenet.store.sqlite import SqliteStore


@pytest.fixture(params=["memory", "sqlite"])
def objects(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ObjectStore]:
    clock = FakeClock()
    store = (
        MemoryStore(clock) if request.param == "memory" else SqliteStore(tmp_path / "t.db", clock)
    )
    yield ObjectStore(store, clock)
    store.close()


@pytest.fixture
def topo(objects: ObjectStore) -> Topo:
    return Topo(objects)
