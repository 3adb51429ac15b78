"""Authorization: tokens, roles, and tenants that cannot see or touch each other's records,
on every route of the API."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from apiworld import NEW, Server, build_world, make

from tenet.api.policy import COLLECTIONS, Access

IMPLEMENTED = sorted(c for c, p in COLLECTIONS.items() if not p.planned)
ADMIN_COLLECTIONS = {c for c in IMPLEMENTED if COLLECTIONS[c].read is Access.ADMIN}


def member(server: Server, tenant_id: str) -> httpx.Client:
    secret, _ = server.tokens.create("member", __import__("uuid").UUID(tenant_id), "member")
    return server.client(secret)


def test_no_token_or_a_bad_one_is_401(server: Server) -> None:
    with server.client() as anyone:
        response = anyone.get("/v1/bridges")
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "unauthorized"
    with server.client("tnt_not-a-real-token") as forger:
        assert forger.get("/v1/bridges").status_code == 401


def test_tokens_are_stored_hashed_and_admin_only(server: Server, admin: httpx.Client) -> None:
    tenant = make(admin, "tenants", name="acme")
    created = admin.post("/v1/tokens", json={"role": "member", "tenant_id": tenant["id"]})
    assert created.status_code == 201, created.text
    secret = created.json()["token"]
    stored = b"".join(kv.key.encode() + kv.value for kv in server.store.list("/tenet/").items)
    assert secret.encode() not in stored  # only its hash is kept
    with server.client(secret) as m:
        assert m.get("/v1/whoami").json()["tenant_id"] == tenant["id"]
        assert m.get("/v1/tokens").status_code == 403
        assert m.post("/v1/tokens", json={"role": "admin"}).status_code == 403
    listed = admin.get("/v1/tokens").json()["items"]
    assert all("token" not in t for t in listed)
    assert admin.delete(f"/v1/tokens/{created.json()['id']}").status_code == 204
    with server.client(secret) as gone:
        assert gone.get("/v1/whoami").status_code == 401
    bad = admin.post("/v1/tokens", json={"role": "member"})
    assert bad.status_code == 422
    assert bad.json()["error"]["field"] == "tenant_id"


def test_members_read_what_the_operator_shared_and_only_the_operator_shares(
    server: Server, admin: httpx.Client
) -> None:
    a = build_world(admin, "acme")
    b = build_world(admin, "globex")
    external = make(admin, "bridges", tenant_id=a["tenant"]["id"], name="external", shared=True)
    with member(server, b["tenant"]["id"]) as m:
        url = f"/v1/bridges/{external['id']}"
        assert m.get(url).json() == external
        assert external["id"] in {x["id"] for x in m.get("/v1/bridges").json()["items"]}
        assert m.get(f"/v1/bridges/{a['bridge']['id']}").status_code == 404  # not shared
        for response in (
            m.patch(url, json={"name": "mine"}),
            m.put(url, json={**external, "name": "mine"}),
            m.delete(url),
            m.post("/v1/bridges", json={"name": "also-shared", "shared": True}),
            m.patch(f"/v1/bridges/{b['bridge']['id']}", json={"shared": True}),
        ):
            assert response.status_code == 403, response.text
            assert response.json()["error"]["code"] == "forbidden"
    assert admin.get(f"/v1/bridges/{external['id']}").json() == external
    assert admin.get(f"/v1/bridges/{b['bridge']['id']}").json()["shared"] is False


def test_a_member_works_in_its_own_tenant(server: Server, admin: httpx.Client) -> None:
    w = build_world(admin)
    with member(server, w["tenant"]["id"]) as m:
        bridge = m.post("/v1/bridges", json={"name": "mine"})  # the tenant is implied
        assert bridge.status_code == 201, bridge.text
        assert bridge.json()["tenant_id"] == w["tenant"]["id"]
        assert m.get(f"/v1/tenants/{w['tenant']['id']}").status_code == 200
        assert [t["id"] for t in m.get("/v1/tenants").json()["items"]] == [w["tenant"]["id"]]
        ids = {b["id"] for b in m.get("/v1/bridges").json()["items"]}
        assert ids == {bridge.json()["id"], w["bridge"]["id"]}
        assert m.post("/v1/tenants", json={"name": "mine"}).status_code == 403
        assert m.get("/v1/hosts").status_code == 403


def _routes(routes: list[Any]) -> list[Any]:
    """Every route, with those of included routers (which FastAPI may keep nested)."""
    out = []
    for route in routes:
        nested = getattr(route, "original_router", None)
        out.extend(_routes(nested.routes) if nested is not None else [route])
    return out


def _fill(path: str, ids: dict[str, str], coll: str) -> str:
    return re.sub(r"\{item_id\}", ids[coll], path)


def test_another_tenants_member_can_neither_read_nor_change_anything(
    server: Server, admin: httpx.Client
) -> None:
    a = build_world(admin, "acme")
    b = build_world(admin, "globex")
    ids: dict[str, str] = {}
    for coll, body in NEW.items():
        ids[coll] = make(admin, coll, **body(a))["id"]
    before = {coll: admin.get(f"/v1/{coll}/{ident}").json() for coll, ident in ids.items()}
    exercised: set[tuple[str, str]] = set()
    with member(server, b["tenant"]["id"]) as intruder:
        for route in _routes(server.app.routes):
            path = getattr(route, "path", "")
            methods = getattr(route, "methods", set()) or set()
            if not path.startswith("/v1/") or path in ("/v1/health", "/v1/whoami"):
                continue
            if not getattr(route, "include_in_schema", True):
                continue  # a planned kind's: 501 for everyone (test_api_resources)
            for method in methods - {"HEAD", "OPTIONS"}:
                if method == "GET" and "{" not in path and path != "/v1/tokens":
                    continue  # a list: 200, without tenant A's records (checked below)
                status = _attempt(intruder, method, path, a, ids)
                exercised.add((method, path))
                assert status in (403, 404), (method, path, status)
        # lists show nothing of tenant A's
        for coll in IMPLEMENTED:
            response = intruder.get(f"/v1/{coll}")
            if coll in ADMIN_COLLECTIONS:
                assert response.status_code == 403
                continue
            assert response.status_code == 200
            assert ids[coll] not in {item["id"] for item in response.json()["items"]}
    after = {coll: admin.get(f"/v1/{coll}/{ident}").json() for coll, ident in ids.items()}
    assert after == before  # nothing changed
    assert len(exercised) > 75  # 13 collections x 5, tokens, links, sub-lists, hosts, trace


def _attempt(
    client: httpx.Client, method: str, path: str, a: dict[str, dict[str, Any]], ids: dict[str, str]
) -> int:
    """One request of the intruder at tenant A's records through ``path``."""
    parent = path.split("/")[2]
    if path == "/v1/tokens" or path.startswith("/v1/tokens/"):
        url = path.replace("{token_id}", "x")
        body: Any = {"role": "admin"}
    elif path == "/v1/trace":
        url, body = path, {"ingress_port_id": a["vmport"]["id"], "ip_dst": "10.0.0.1"}
    elif "{item_id}" in path:
        url = _fill(path, ids, parent)
        if path.startswith("/v1/ports/") and path.endswith("/link"):
            body = {"peer_id": a["rport"]["id"]}
        else:
            body = {"name": "stolen", "revision": 1}
    else:  # a collection: create in tenant A
        url = path
        body = {**NEW[parent](a)} if parent in NEW else {}
    response = client.request(
        method, url, json=body if method in ("POST", "PUT", "PATCH") else None
    )
    return response.status_code


@pytest.mark.parametrize("collection", sorted(ADMIN_COLLECTIONS))
def test_operator_records_are_admin_only(
    server: Server, admin: httpx.Client, collection: str
) -> None:
    w = build_world(admin)
    with member(server, w["tenant"]["id"]) as m:
        response = m.post(f"/v1/{collection}", json=NEW[collection](w))
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "forbidden"
