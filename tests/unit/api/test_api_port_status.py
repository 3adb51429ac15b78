"""A port's binding status: what the agent of its host publishes under its lease, read
through the API (``GET /v1/ports/{id}/status``), with Neutron's ACTIVE / DOWN."""

from __future__ import annotations

import uuid

import httpx
from apiworld import Server, build_world, make

from tenet.store.keys import alive_key, port_status_key


def test_a_ports_status_follows_its_binding_and_its_hosts_agent(
    server: Server, admin: httpx.Client
) -> None:
    w = build_world(admin)
    port, host = w["vmport"], w["host"]
    url = f"/v1/ports/{port['id']}/status"
    assert admin.get(url).json() == {
        "port_id": port["id"], "state": "unbound", "reason": "", "status": "DOWN"
    }  # fmt: skip

    make(admin, "port-bindings", port_id=port["id"], host_id=host["id"], interface="tapXYZ")
    down = admin.get(url).json()
    assert (down["state"], down["status"]) == ("host down", "DOWN")
    assert (down["host_id"], down["interface"]) == (host["id"], "tapXYZ")

    # what the host's agent writes (tenet.agent.daemon), under its lease
    hid, pid = uuid.UUID(host["id"]), uuid.UUID(port["id"])
    lease = server.store.grant_lease(60)
    server.store.put(alive_key(hid), b"10.250.0.1", lease=lease)
    assert admin.get(url).json()["state"] == "pending"
    waiting = b'{"state": "waiting", "interface": "tapXYZ", "reason": "no interface tapXYZ"}'
    server.store.put(port_status_key(hid, pid), waiting, lease=lease)
    found = admin.get(url).json()
    assert (found["state"], found["reason"], found["status"]) == (
        "waiting", "no interface tapXYZ", "DOWN"
    )  # fmt: skip
    bound = b'{"state": "bound", "interface": "tapXYZ", "mtu": 1450}'
    server.store.put(port_status_key(hid, pid), bound, lease=lease)
    found = admin.get(url).json()
    assert (found["state"], found["mtu"], found["status"]) == ("bound", 1450, "ACTIVE")

    server.store.revoke(lease)  # the agent stopped: its keys went with its lease
    assert admin.get(url).json()["state"] == "host down"


def test_a_member_sees_its_ports_status_but_not_the_host(
    server: Server, admin: httpx.Client
) -> None:
    w = build_world(admin)
    port, host = w["vmport"], w["host"]
    make(admin, "port-bindings", port_id=port["id"], host_id=host["id"], interface="tap1")
    secret, _ = server.tokens.create("member", uuid.UUID(w["tenant"]["id"]), "m")
    with server.client(secret) as member:
        body = member.get(f"/v1/ports/{port['id']}/status").json()
    assert body["state"] == "host down"
    assert "host_id" not in body
    assert "interface" not in body
