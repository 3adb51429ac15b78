"""Minimal valid JSON-shaped bodies for every record kind, and error assertions.

The bodies are what an API client would send: strings for ids, addresses and
enums. Tests copy one, change a field and feed it to ``from_dict``.
"""

from __future__ import annotations

import copy
import uuid
from typing import Any, TypeVar

import pytest

from tenet.errors import ValidationError
from tenet.model import KINDS, Record, from_dict

R = TypeVar("R", bound=Record)

TENANT = "6f1d2c3b-0000-4000-8000-000000000001"
OTHER_TENANT = "6f1d2c3b-0000-4000-8000-000000000002"
ROUTER = "6f1d2c3b-0000-4000-8000-0000000000a1"
BRIDGE = "6f1d2c3b-0000-4000-8000-0000000000b1"
PORT = "6f1d2c3b-0000-4000-8000-0000000000c1"
CHAIN = "6f1d2c3b-0000-4000-8000-0000000000d1"
OTHER_CHAIN = "6f1d2c3b-0000-4000-8000-0000000000d2"
HOST = "6f1d2c3b-0000-4000-8000-0000000000e1"
ZONE = "6f1d2c3b-0000-4000-8000-0000000000e2"
LB = "6f1d2c3b-0000-4000-8000-0000000000f1"
POOL = "6f1d2c3b-0000-4000-8000-0000000000f2"
SUBNET = "6f1d2c3b-0000-4000-8000-0000000000f3"
VPN = "6f1d2c3b-0000-4000-8000-0000000000f4"

# kind -> the smallest body from_dict accepts; the keys are exactly the required fields
MINIMAL: dict[str, dict[str, Any]] = {
    "tenants": {},
    "bridges": {"tenant_id": TENANT},
    "routers": {"tenant_id": TENANT},
    "ports": {"tenant_id": TENANT, "device_id": BRIDGE, "device_type": "bridge"},
    "routes": {
        "tenant_id": TENANT,
        "router_id": ROUTER,
        "dst": "0.0.0.0/0",
        "next_hop_port_id": PORT,
    },
    "chains": {"tenant_id": TENANT},
    "rules": {"tenant_id": TENANT, "chain_id": CHAIN},
    "port_groups": {"tenant_id": TENANT},
    "ip_addr_groups": {"tenant_id": TENANT},
    "security_groups": {"tenant_id": TENANT},
    "security_group_rules": {
        "tenant_id": TENANT,
        "security_group_id": CHAIN,
        "direction": "ingress",
    },
    "load_balancers": {"tenant_id": TENANT, "router_id": ROUTER},
    "pools": {"tenant_id": TENANT, "load_balancer_id": LB},
    "pool_members": {
        "tenant_id": TENANT,
        "pool_id": POOL,
        "address": "10.0.0.10",
        "protocol_port": 80,
    },
    "vips": {
        "tenant_id": TENANT,
        "load_balancer_id": LB,
        "pool_id": POOL,
        "address": "192.0.2.10",
        "protocol_port": 443,
    },
    "health_monitors": {"tenant_id": TENANT},
    "dhcp_subnets": {"tenant_id": TENANT, "bridge_id": BRIDGE, "cidr": "10.0.0.0/24"},
    "dhcp_hosts": {
        "tenant_id": TENANT,
        "subnet_id": SUBNET,
        "mac": "02:00:00:00:00:01",
        "ip": "10.0.0.5",
    },
    "hosts": {},
    "tunnel_zones": {},
    "tunnel_zone_members": {"tunnel_zone_id": ZONE, "host_id": HOST, "address": "172.16.0.1"},
    "port_bindings": {"port_id": PORT, "host_id": HOST, "interface": "tap0"},
    "bgp_peers": {
        "tenant_id": TENANT,
        "router_id": ROUTER,
        "port_id": PORT,
        "local_as": 64512,
        "peer_as": 64513,
        "peer_address": "198.51.100.1",
    },
    "bgp_networks": {"tenant_id": TENANT, "router_id": ROUTER, "network": "203.0.113.0/24"},
    "vpn_services": {
        "tenant_id": TENANT,
        "router_id": ROUTER,
        "port_id": PORT,
        "local_address": "198.51.100.2",
    },
    "ipsec_connections": {
        "tenant_id": TENANT,
        "vpn_service_id": VPN,
        "peer_address": "198.51.100.3",
        "local_cidrs": ["10.0.0.0/24"],
        "peer_cidrs": ["10.1.0.0/24"],
        "psk": "correct horse",
    },
}

ROUTER_PORT: dict[str, Any] = {
    "tenant_id": TENANT,
    "device_id": ROUTER,
    "device_type": "router",
    "mac": "02:00:00:00:01:01",
    "address": "10.0.0.1",
    "subnet": "10.0.0.0/24",
}


def body(kind: str | type[Record], **changes: Any) -> dict[str, Any]:
    """A deep copy of the minimal body of ``kind`` with ``changes`` applied."""
    name = kind if isinstance(kind, str) else kind.KIND
    data = copy.deepcopy(MINIMAL[name])
    data.update(changes)
    return data


def build(kind: type[R], **changes: Any) -> R:
    """A ``kind`` record from its minimal body with ``changes`` applied."""
    return from_dict(kind, body(kind, **changes))


def rejects(kind: str, data: dict[str, Any], field: str, keyword: str) -> ValidationError:
    """``from_dict`` rejects ``data`` naming exactly ``field``, with ``keyword`` in the reason."""
    with pytest.raises(ValidationError) as info:
        from_dict(KINDS[kind], data)
    err = info.value
    assert err.field == field, f"error names {err.field!r} ({err.reason}); expected {field!r}"
    assert err.reason, "the reason is empty"
    assert keyword.lower() in err.reason.lower(), f"{keyword!r} not in reason {err.reason!r}"
    assert str(err) == f"{field}: {err.reason}"
    assert err.status == 422
    return err


def uid(n: int) -> uuid.UUID:
    return uuid.UUID(int=n)
