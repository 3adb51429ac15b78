"""Every collection of the API: create, read, list with a filter and pages, update with the
revision read (a stale one is a 409), delete; and the object layer's rules as 4xx."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from apiworld import NEW, Server, build_world, make

from tenet.api.policy import COLLECTIONS

U = "00000000-0000-0000-0000-000000000001"
PLANNED = sorted(c for c, p in COLLECTIONS.items() if p.planned)


def test_every_implemented_collection_is_covered() -> None:
    assert set(NEW) == {c for c, p in COLLECTIONS.items() if not p.planned}
    assert PLANNED  # load balancers, DHCP, BGP, VPN: until they are implemented


@pytest.mark.parametrize("collection", PLANNED)
def test_a_planned_kind_answers_501_naming_it_on_every_route(
    server: Server, admin: httpx.Client, collection: str
) -> None:
    reason = COLLECTIONS[collection].planned
    assert reason is not None
    tenant = make(admin, "tenants", name="acme")
    secret, _ = server.tokens.create("member", __import__("uuid").UUID(tenant["id"]), "m")
    with server.client(secret) as member:
        for client in (admin, member):
            for method, path, body in [
                ("POST", f"/v1/{collection}", {"tenant_id": tenant["id"]}),
                ("POST", f"/v1/{collection}", None),
                ("GET", f"/v1/{collection}", None),
                ("GET", f"/v1/{collection}/{U}", None),
                ("PUT", f"/v1/{collection}/{U}", {"revision": 1}),
                ("PATCH", f"/v1/{collection}/{U}", {"name": "x"}),
                ("DELETE", f"/v1/{collection}/{U}", None),
            ]:
                response = client.request(method, path, json=body)
                assert response.status_code == 501, (method, path, response.text)
                error = response.json()["error"]
                assert error["code"] == "not_implemented"
                assert collection in error["message"]
                assert reason in error["message"]
    with server.client() as anyone:  # authentication still comes first
        assert anyone.get(f"/v1/{collection}").status_code == 401
        paths = anyone.get("/openapi.json").json()["paths"]
    assert not [p for p in paths if p.startswith(f"/v1/{collection}")]  # not fuzzed


@pytest.mark.parametrize("collection", sorted(NEW))
def test_create_read_list_update_delete(
    server: Server, admin: httpx.Client, collection: str
) -> None:
    w = build_world(admin)
    body = NEW[collection](w)
    created = make(admin, collection, **body)
    for name, value in body.items():
        assert created[name] == value, name
    ident, revision = created["id"], created["revision"]
    url = f"/v1/{collection}/{ident}"

    got = admin.get(url)
    assert got.status_code == 200
    assert got.json() == created

    # list, filtered on a field of the new record, in pages of one
    field = "tenant_id" if "tenant_id" in body else next(iter(body))
    value = body[field]
    listed = admin.get(f"/v1/{collection}", params={field: value, "limit": 1})
    assert listed.status_code == 200, listed.text
    seen = [item["id"] for item in listed.json()["items"]]
    cursor = listed.json()["next_cursor"]
    while cursor:
        page = admin.get(f"/v1/{collection}", params={field: value, "limit": 1, "cursor": cursor})
        seen += [item["id"] for item in page.json()["items"]]
        cursor = page.json()["next_cursor"]
    assert ident in seen
    assert len(seen) == len(set(seen))

    # update with the revision read; the same revision again is stale
    renamed = admin.patch(url, json={"name": "renamed", "revision": revision})
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["name"] == "renamed"
    assert renamed.json()["revision"] > revision
    stale = admin.put(url, json={**created, "name": "again"})
    assert stale.status_code == 409, stale.text
    assert stale.json()["error"]["code"] == "conflict"
    fresh = admin.put(url, json={**renamed.json(), "name": "again"})
    assert fresh.status_code == 200, fresh.text

    assert admin.delete(url).status_code == 204
    gone = admin.get(url)
    assert gone.status_code == 404
    assert gone.json()["error"]["code"] == "not_found"


def test_sub_collections_and_link(admin: httpx.Client) -> None:
    w = build_world(admin)
    t, router, bridge = w["tenant"]["id"], w["router"]["id"], w["bridge"]["id"]
    bport = make(admin, "ports", tenant_id=t, device_id=bridge, device_type="bridge")
    nobody = admin.post(f"/v1/ports/{bport['id']}/link", json={"peer_id": U})
    assert nobody.status_code == 404
    assert nobody.json()["error"]["field"] == "peer_id"
    linked = admin.post(f"/v1/ports/{bport['id']}/link", json={"peer_id": w["rport"]["id"]})
    assert linked.status_code == 200, linked.text
    assert linked.json()["peer_id"] == w["rport"]["id"]
    peer = admin.get(f"/v1/ports/{w['rport']['id']}").json()
    assert peer["peer_id"] == bport["id"]  # both sides
    ports = admin.get(f"/v1/bridges/{bridge}/ports").json()["items"]
    assert {p["id"] for p in ports} == {bport["id"], w["vmport"]["id"]}
    assert [p["id"] for p in admin.get(f"/v1/routers/{router}/ports").json()["items"]] == [
        w["rport"]["id"]
    ]
    route = make(admin, "routes", tenant_id=t, router_id=router, dst="198.51.100.0/24",
                 type="blackhole")  # fmt: skip
    routes = admin.get(f"/v1/routers/{router}/routes").json()["items"]
    assert [r["id"] for r in routes] == [route["id"]]
    rule = make(admin, "rules", tenant_id=t, chain_id=w["chain"]["id"])
    rules = admin.get(f"/v1/chains/{w['chain']['id']}/rules").json()["items"]
    assert [r["id"] for r in rules] == [rule["id"]]
    unlinked = admin.delete(f"/v1/ports/{bport['id']}/link")
    assert unlinked.status_code == 200
    assert unlinked.json()["peer_id"] is None
    assert admin.get(f"/v1/bridges/{bridge}/mac-table").json() == {"items": []}
    assert admin.get(f"/v1/routers/{router}/arp-table").json() == {"items": []}


def test_the_object_layers_rules_are_4xx_with_the_reason(admin: httpx.Client) -> None:
    w = build_world(admin)
    t = w["tenant"]["id"]
    # a reference to nothing
    missing = admin.post("/v1/ports", json={"tenant_id": t, "device_id": t,
                                            "device_type": "bridge"})  # fmt: skip
    assert missing.status_code in (404, 409, 422), missing.text
    assert "bridge" in missing.json()["error"]["message"]
    # a chain in use cannot be deleted
    port = w["vmport"]
    admin.patch(f"/v1/ports/{port['id']}", json={"inbound_chain_id": w["chain"]["id"]})
    refused = admin.delete(f"/v1/chains/{w['chain']['id']}")
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"]["code"] == "conflict"
    # another tenant's chain cannot be used
    other = build_world(admin, "globex")
    foreign = admin.patch(f"/v1/ports/{port['id']}",
                          json={"outbound_chain_id": other["chain"]["id"]})  # fmt: skip
    assert foreign.status_code in (409, 422), foreign.text
    # ownership fields do not change
    moved = admin.patch(f"/v1/bridges/{w['bridge']['id']}",
                        json={"tenant_id": other["tenant"]["id"]})  # fmt: skip
    assert moved.status_code == 422
    assert moved.json()["error"]["field"] == "tenant_id"


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("post", "/v1/bridges", {"tenant_id": "nope"}, "tenant_id"),
        ("post", "/v1/bridges", {"tenant_id": None}, "tenant_id"),
        ("post", "/v1/bridges", {"name": 7}, "name"),
        ("post", "/v1/bridges", {"colour": "red"}, "colour"),
        ("post", "/v1/routes", {"tenant_id": U, "router_id": U, "dst": "300.1.1.0/24"}, "dst"),
        ("post", "/v1/ports", {"tenant_id": U, "device_id": U, "device_type": "bridge",
                               "mac": "zz:00:00:00:00:00"}, "mac"),
        ("post", "/v1/ports", {"tenant_id": U, "device_id": U, "device_type": "switch"},
         "device_type"),
        ("get", "/v1/bridges/not-a-uuid", None, "id"),
        ("get", "/v1/bridges?limit=0", None, "limit"),
        ("get", "/v1/bridges?limit=x", None, "limit"),
        ("get", "/v1/bridges?colour=red", None, "colour"),
        ("get", "/v1/ports?admin_state_up=maybe", None, "admin_state_up"),
    ],
)  # fmt: skip
def test_bad_input_names_the_field(
    admin: httpx.Client, method: str, path: str, body: Any, field: str
) -> None:
    response = admin.request(method.upper(), path, json=body)
    assert 400 <= response.status_code < 500, response.text
    error = response.json()["error"]
    assert error["field"] == field or field in error["message"], error


def test_a_bad_revision_is_named(admin: httpx.Client) -> None:
    tenant = make(admin, "tenants", name="acme")
    for bad in (-1, "3", True):
        response = admin.patch(f"/v1/tenants/{tenant['id']}", json={"revision": bad})
        assert response.status_code == 422
        assert response.json()["error"]["field"] == "revision"
    missing = admin.put(f"/v1/tenants/{tenant['id']}", json={"name": "x"})
    assert missing.status_code == 422
    assert missing.json()["error"]["field"] == "revision"


def test_a_body_that_is_not_json_is_a_4xx(admin: httpx.Client) -> None:
    response = admin.post("/v1/bridges", content=b"{not json", headers={
        "content-type": "application/json"})  # fmt: skip
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation"


def test_pages_come_from_the_store_in_id_order(admin: httpx.Client) -> None:
    tenant = make(admin, "tenants", name="acme")["id"]
    made = sorted(make(admin, "bridges", tenant_id=tenant, name=f"b{i}")["id"] for i in range(5))
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, "tenant_id": tenant}
        if cursor:
            params["cursor"] = cursor
        page = admin.get("/v1/bridges", params=params).json()
        seen += [b["id"] for b in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert cursor == seen[-1]
    assert seen == made
    bad = admin.get("/v1/bridges", params={"cursor": "nope"})
    assert bad.status_code == 422
    assert bad.json()["error"]["field"] == "cursor"
    for limit in (0, 1001):
        assert admin.get("/v1/bridges", params={"limit": limit}).status_code == 422
    assert admin.get("/v1/bridges", params={"limit": 1000}).status_code == 200


def test_patch_merges_in_one_transaction(admin: httpx.Client) -> None:
    w = build_world(admin)
    url = f"/v1/bridges/{w['bridge']['id']}"
    first = admin.patch(url, json={"name": "front"}).json()
    second = admin.patch(url, json={"admin_state_up": False}).json()
    assert (second["name"], second["admin_state_up"]) == ("front", False)
    assert second["revision"] > first["revision"]
    stale = admin.patch(url, json={"name": "x", "revision": first["revision"]})
    assert stale.status_code == 409
    ignored = admin.patch(url, json={"created_at": 1.0, "updated_at": 2.0, "id": w["bridge"]["id"]})
    assert ignored.status_code == 200, ignored.text
    assert ignored.json()["created_at"] == w["bridge"]["created_at"]
    moved = admin.patch(url, json={"id": U})
    assert moved.status_code == 422
    assert moved.json()["error"]["field"] == "id"


def test_trace_checks_its_body_and_answers_hop_by_hop(admin: httpx.Client) -> None:
    w = build_world(admin)
    port = w["vmport"]["id"]
    for body, field in [
        ({"ip_dst": "10.0.0.1"}, "ingress_port_id"),
        ({"ingress_port_id": "nope", "ip_dst": "10.0.0.1"}, "ingress_port_id"),
        ({"ingress_port_id": port}, "ip_dst"),
        ({"ingress_port_id": port, "ip_dst": "10.0.0.300"}, "ip_dst"),
        ({"ingress_port_id": port, "ip_dst": "10.0.0.1", "eth_src": "zz:00"}, "eth_src"),
        ({"ingress_port_id": port, "ip_dst": "10.0.0.1", "eth_dst": 7}, "eth_dst"),
        ({"ingress_port_id": port, "ip_dst": "10.0.0.1", "ttl": 0}, "ttl"),
        ({"ingress_port_id": port, "ip_dst": "10.0.0.1", "src_port": 70000}, "src_port"),
        ({"ingress_port_id": port, "ip_dst": "10.0.0.1", "protocol": "sctp"}, "protocol"),
        ({"ingress_port_id": port, "ip_dst": "10.0.0.1", "colour": "red"}, "colour"),
        ({"ingress_port_id": port, "ip_dst": "2001:db8::1"}, "ip_dst"),
    ]:
        response = admin.post("/v1/trace", json=body)
        assert response.status_code == 422, (body, response.text)
        assert response.json()["error"]["field"] == field, body
    missing = admin.post("/v1/trace", json={"ingress_port_id": U, "ip_dst": "10.0.0.1"})
    assert missing.status_code == 404
    assert missing.json()["error"]["field"] == "ingress_port_id"
    # the bridge has no gateway in this world: the destination MAC is given
    done = admin.post("/v1/trace", json={"ingress_port_id": port, "ip_dst": "10.0.0.9",
                                         "eth_dst": "02:00:00:00:00:09", "protocol": "tcp",
                                         "dst_port": 443})  # fmt: skip
    assert done.status_code == 200, done.text
    result = done.json()
    assert set(result) == {"verdict", "actions", "match_fields", "ttl_above", "trace"}
    assert result["trace"][0]["id"] == port
    assert all(set(step) == {"kind", "id", "name", "detail"} for step in result["trace"])


def test_health_and_openapi(server: Server) -> None:
    with server.client() as anyone:
        assert anyone.get("/v1/health").json()["status"] == "ok"
        spec = anyone.get("/openapi.json").json()
        assert "/v1/bridges/{item_id}" in spec["paths"]
        assert anyone.get("/docs").status_code == 200


def test_a_hosts_interfaces_and_status_come_from_its_agent(
    server: Server, admin: httpx.Client
) -> None:
    host = make(admin, "hosts", name="h1")
    status = admin.get(f"/v1/hosts/{host['id']}/status").json()
    assert status == {"alive": False, "underlay": None, "applied_revision": None, "stats": {}}
    assert admin.get(f"/v1/hosts/{host['id']}/interfaces").json() == {"items": []}
    # what an agent on that host writes (tenet.agent.daemon), under its lease
    from tenet.store.keys import alive_key, applied_key, interfaces_key, stats_key

    hid = __import__("uuid").UUID(host["id"])
    lease = server.store.grant_lease(60)
    server.store.put(alive_key(hid), b"10.250.0.1", lease=lease)
    server.store.put(applied_key(hid), b"7", lease=lease)
    server.store.put(stats_key(hid), b'{"upcalls": 3}', lease=lease)
    server.store.put(interfaces_key(hid), b'[{"name": "tap0", "index": 4, "mac": ""}]',
                     lease=lease)  # fmt: skip
    status = admin.get(f"/v1/hosts/{host['id']}/status").json()
    assert status == {"alive": True, "underlay": "10.250.0.1", "applied_revision": 7,
                      "stats": {"upcalls": 3}}  # fmt: skip
    names = [i["name"] for i in admin.get(f"/v1/hosts/{host['id']}/interfaces").json()["items"]]
    assert names == ["tap0"]
