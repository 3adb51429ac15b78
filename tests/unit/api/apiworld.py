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
from tenet.store.objects import ObjectStore


class Server:
    def __init__(self, path: Path, *, auth: bool = True) -> None:
        self.store = SqliteStore(path)
        self.objects = ObjectStore(self.store)
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
    """A tenant with one of nearly everything, for other records to refer to."""
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
    w["lb"] = make(admin, "load-balancers", tenant_id=t, router_id=w["router"]["id"])
    w["pool"] = make(admin, "pools", tenant_id=t, load_balancer_id=w["lb"]["id"])
    w["dhcp"] = make(admin, "dhcp-subnets", tenant_id=t, bridge_id=w["bridge"]["id"],
                     cidr="10.0.0.0/24")  # fmt: skip
    w["vpn"] = make(admin, "vpn-services", tenant_id=t, router_id=w["router"]["id"],
                    port_id=w["rport"]["id"], local_address="192.0.2.1")  # fmt: skip
    w["host"] = make(admin, "hosts", name=f"{name}-host")
    w["zone"] = make(admin, "tunnel-zones", name=f"{name}-zone")
    return w


# collection -> the body of a new record, given the world
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
    "load-balancers": lambda w: {"tenant_id": w["tenant"]["id"], "router_id": w["router"]["id"],
                                 "name": "lb2"},
    "pools": lambda w: {"tenant_id": w["tenant"]["id"], "load_balancer_id": w["lb"]["id"],
                        "name": "pool2"},
    "pool-members": lambda w: {"tenant_id": w["tenant"]["id"], "pool_id": w["pool"]["id"],
                               "address": "10.0.0.9", "protocol_port": 80},
    "vips": lambda w: {"tenant_id": w["tenant"]["id"], "load_balancer_id": w["lb"]["id"],
                       "pool_id": w["pool"]["id"], "address": "10.0.0.100",
                       "protocol_port": 80},
    "health-monitors": lambda w: {"tenant_id": w["tenant"]["id"], "name": "hm"},
    "dhcp-subnets": lambda w: {"tenant_id": w["tenant"]["id"], "bridge_id": w["bridge"]["id"],
                               "cidr": "10.1.0.0/24"},
    "dhcp-hosts": lambda w: {"tenant_id": w["tenant"]["id"], "subnet_id": w["dhcp"]["id"],
                             "mac": "02:00:00:00:00:07", "ip": "10.0.0.7"},
    "hosts": lambda w: {"name": "h2"},
    "tunnel-zones": lambda w: {"name": "z2"},
    "tunnel-zone-members": lambda w: {"tunnel_zone_id": w["zone"]["id"],
                                      "host_id": w["host"]["id"], "address": "10.250.0.9"},
    "port-bindings": lambda w: {"port_id": w["vmport"]["id"], "host_id": w["host"]["id"],
                                "interface": "tap0"},
    "bgp-peers": lambda w: {"tenant_id": w["tenant"]["id"], "router_id": w["router"]["id"],
                            "port_id": w["rport"]["id"], "local_as": 65000, "peer_as": 65001,
                            "peer_address": "10.0.0.254"},
    "bgp-networks": lambda w: {"tenant_id": w["tenant"]["id"], "router_id": w["router"]["id"],
                               "network": "203.0.113.0/24"},
    "vpn-services": lambda w: {"tenant_id": w["tenant"]["id"], "router_id": w["router"]["id"],
                               "port_id": w["rport"]["id"], "local_address": "192.0.2.2"},
    "ipsec-connections": lambda w: {"tenant_id": w["tenant"]["id"],
                                    "vpn_service_id": w["vpn"]["id"],
                                    "peer_address": "198.51.100.1",
                                    "local_cidrs": ["10.0.0.0/24"],
                                    "peer_cidrs": ["10.9.0.0/24"], "psk": "a-long-shared-key"},
}  # fmt: skip
