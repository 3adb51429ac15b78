"""Integration fixtures: a lab of namespaces, removed by name after each test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tenet.lab.etcd import UnderlayEtcd, etcd_available
from tenet.store import EtcdStore, SqliteStore, Store

from .netns import Lab, leftovers


@pytest.fixture
def datapath(request: pytest.FixtureRequest) -> str:
    """The agents' datapath; agent test modules parametrize it over both backends."""
    return str(getattr(request, "param", "userspace"))


@pytest.fixture
def lab(datapath: str) -> Iterator[Lab]:
    if os.geteuid() != 0:
        pytest.skip("integration tests need root (network namespaces)")
    made = Lab(datapath=datapath)
    made.start()
    try:
        yield made
    finally:
        errors = made.close()
        assert not leftovers(made.prefix), "namespaces left behind"
        for err in errors:
            if "Traceback" in err:
                print(err)


@pytest.fixture
def store_backend(request: pytest.FixtureRequest) -> str:
    """The store the agents use; a few agent tests parametrize it over sqlite and etcd."""
    return str(getattr(request, "param", "sqlite"))


@pytest.fixture
def lab_store(lab: Lab, store_backend: str, tmp_path: Path) -> Iterator[tuple[Store, str]]:
    """A store for the test and the URL the lab's agents reach it by: an SQLite file,
    or a three-member etcd cluster on the lab's underlay (the test reaching it
    through relays on loopback)."""
    if store_backend == "sqlite":
        store = SqliteStore(tmp_path / "store.db")
        yield store, f"sqlite://{tmp_path / 'store.db'}"
        store.close()
        return
    if etcd_available() is None:
        pytest.skip("etcd is not installed (./dev setup installs Debian's etcd-server)")
    cluster = UnderlayEtcd(lab, tmp_path / "etcd")
    try:
        cluster.start()
        etcd = EtcdStore(cluster.local_url)
        yield etcd, cluster.url
        etcd.close()
    finally:
        cluster.close()
