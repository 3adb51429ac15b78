"""A store that fails: 503 with a retry hint, and nothing half-written."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import httpx

from tenet.api.auth import Tokens
from tenet.api.local import LocalServer
from tenet.errors import StoreUnavailable
from tenet.store import SqliteStore
from tenet.store.base import Compare, Op
from tenet.store.objects import ObjectStore


class FlakyStore(SqliteStore):
    """A real SQLite store whose writes fail while ``down`` is set, as a lost backend."""

    down = False

    def txn(self, compares: Sequence[Compare], ops: Sequence[Op]) -> int:
        if self.down:
            raise StoreUnavailable("the store backend is unreachable")
        return super().txn(compares, ops)


def test_a_failing_store_is_a_503_and_writes_nothing(tmp_path: Path) -> None:
    store = FlakyStore(tmp_path / "store.db")
    secret, _ = Tokens(store).create("admin", None, "test")
    with (
        LocalServer(ObjectStore(store)) as server,
        httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {secret}"}) as admin,
    ):
        tenant = admin.post("/v1/tenants", json={"name": "acme"}).json()
        store.down = True
        response = admin.post("/v1/bridges", json={"tenant_id": tenant["id"], "name": "web"})
        assert response.status_code == 503
        assert response.headers["retry-after"] == "1"
        assert response.json()["error"]["code"] == "unavailable"
        store.down = False
        assert admin.get("/v1/bridges").json()["items"] == []
        assert admin.post("/v1/bridges", json={"tenant_id": tenant["id"]}).status_code == 201
    store.close()
