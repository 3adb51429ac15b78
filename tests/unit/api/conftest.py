"""Fixtures: a real API server per test, and an admin client."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from apiworld import Server


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    made = Server(tmp_path / "store.db")
    try:
        yield made
    finally:
        made.close()


@pytest.fixture
def admin(server: Server) -> Iterator[httpx.Client]:
    secret, _ = server.tokens.create("admin", None, "test admin")
    with server.client(secret) as client:
        yield client
