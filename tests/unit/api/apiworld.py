"""What the API tests share: a real server (uvicorn on loopback, a real SQLite file) and
a world of records to refer to."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from tenet.api.app import create_app
from tenet.api.auth import Tokens
from tenet.store import SqliteStore
from tenet.store.metered import MeteredStore
from tenet.store.objects import ObjectStore


class Server:
    def __init__(self, path: Path, *, auth: bool = True, metered: bool = False) -> None:
        self.store = SqliteStore(path)
        self.objects = ObjectStore(MeteredStore(self.store) if metered else self.store)
        self.app = create_app(self.objects, auth=auth)
        config = uvicorn.Config(self.app, host="127.0.0.1", port=0, log_level="critical")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "the API server did not start"
            time.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self.tokens = Tokens(self.store)

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=10)

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.store.close()


def make(client: httpx.Client, collection: str, **body: Any) -> dict[str, Any]:
    response = client.post(f"/v1/{collection}", json=body)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


W = dict[str, dict[str, Any]]


def build_world(admin: httpx.Client, name: str = "acme") -> dict[str, dict[str, Any]]:
    """A tenant with one of nearly everything implemented, for other records to refer to."""
    w: dict[str, dict[str, Any]] = {}
    w["tenant"] = make(admin, "tenants", name=name)
    t = w["tenant"]["id"]
    w["router"] = make(admin, "routers", tenant_id=t, name="r")
    w["bridge"] = make(admin, "bridges", tenant_id=t, name="net")
    w["rport"] = make(admin, "ports", tenant_id=t, device_id=w["router"]["id"],
                      device_type="router", mac="02:00:00:00:00:aa", address="10.0.0.1",
                      subnet="10.0.0.0/24")  # fmt: skip
    w["vmport"] = make(admin, "ports", tenant_id=t, device_id=w["bridge"]["id"],
                       device_type="bridge", mac="02:00:00:00:00:05",
                       fixed_ips=["10.0.0.5"])  # fmt: skip
    w["chain"] = make(admin, "chains", tenant_id=t, name="c")
    w["sg"] = make(admin, "security-groups", tenant_id=t, name="web")
    w["host"] = make(admin, "hosts", name=f"{name}-host")
    w["zone"] = make(admin, "tunnel-zones", name=f"{name}-zone")
    return w


# collection -> the body of a new record, given the world (every implemented kind;
# planned kinds answer 501 on every route: test_api_resources)
NEW: dict[str, Callable[[W], dict[str, Any]]] = {
    "tenants": lambda w: {"name": "globex"},
    "bridges": lambda w: {"tenant_id": w["tenant"]["id"], "name": "b2"},
    "routers": lambda w: {"tenant_id": w["tenant"]["id"], "name": "r2"},
    "ports": lambda w: {"tenant_id": w["tenant"]["id"], "device_id": w["bridge"]["id"],
                        "device_type": "bridge", "name": "p2"},
    "routes": lambda w: {"tenant_id": w["tenant"]["id"], "router_id": w["router"]["id"],
                         "dst": "198.51.100.0/24", "type": "blackhole"},
    "chains": lambda w: {"tenant_id": w["tenant"]["id"], "name": "c2"},
    "rules": lambda w: {"tenant_id": w["tenant"]["id"], "chain_id": w["chain"]["id"]},
    "port-groups": lambda w: {"tenant_id": w["tenant"]["id"], "name": "pg"},
    "ip-addr-groups": lambda w: {"tenant_id": w["tenant"]["id"], "name": "ipg"},
    "security-groups": lambda w: {"tenant_id": w["tenant"]["id"], "name": "db",
                                  "description": "the database tier"},
    "security-group-rules": lambda w: {"tenant_id": w["tenant"]["id"],
                                       "security_group_id": w["sg"]["id"],
                                       "direction": "ingress", "protocol": 6,
                                       "port_range_min": 22, "port_range_max": 22},
    "hosts": lambda w: {"name": "h2"},
    "tunnel-zones": lambda w: {"name": "z2"},
    "tunnel-zone-members": lambda w: {"tunnel_zone_id": w["zone"]["id"],
                                      "host_id": w["host"]["id"], "address": "10.250.0.9"},
    "port-bindings": lambda w: {"port_id": w["vmport"]["id"], "host_id": w["host"]["id"],
                                "interface": "tap0"},
}  # fmt: skip
