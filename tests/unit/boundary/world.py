"""A tenant with one record of every kind, and bodies of new records that name them.

The tenant-boundary tests are generated from the kinds' reference declarations
(``tenet.model.kinds.REFS``): for every Ref they need a valid body of a new record
of the Ref's source kind in which the Ref's field can be pointed at any record of
the target kind. ``BODIES[kind]`` lists body variants (JSON, as the API takes
them); :func:`naming` picks the variant in which the field counts for the Ref (a
port's ``device_id`` names a bridge or a router by ``device_type``) and puts the
target there. A kind without bodies here fails ``test_every_kind_has_a_body``, so
a new kind or reference is covered by adding its body, not by editing the tests.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable
from typing import Any

from tenet.errors import ValidationError
from tenet.model import KINDS, Record, Ref, from_dict
from tenet.store.objects import ObjectStore

W = dict[str, str]  # record name in the world -> id
Body = dict[str, Any]


def _t(w: W) -> Body:
    return {"tenant_id": w["tenant"]}


BODIES: dict[str, list[Callable[[W], Body]]] = {
    "tenants": [lambda w: {"name": "t2"}],
    "bridges": [lambda w: {**_t(w), "name": "b2"}],
    "routers": [lambda w: {**_t(w), "name": "r2"}],
    "ports": [
        lambda w: {**_t(w), "device_id": w["bridge"], "device_type": "bridge"},
        lambda w: {**_t(w), "device_id": w["router"], "device_type": "router",
                   "mac": "02:00:00:00:01:99", "address": "10.9.0.1", "subnet": "10.9.0.0/24"},
    ],
    "routes": [lambda w: {**_t(w), "router_id": w["router"], "dst": "198.51.100.0/24",
                          "next_hop_port_id": w["rport"]}],
    "chains": [lambda w: {**_t(w), "name": "c2"}],
    "rules": [
        lambda w: {**_t(w), "chain_id": w["chain"], "condition": {}},
        lambda w: {**_t(w), "chain_id": w["chain"], "action": "jump",
                   "jump_chain_id": w["chain2"], "condition": {}},
    ],
    "port_groups": [lambda w: {**_t(w), "name": "pg2"}],
    "ip_addr_groups": [lambda w: {**_t(w), "name": "ipg2", "addresses": ["10.0.0.0/24"]}],
    "security_groups": [lambda w: {**_t(w), "name": "sg2"}],
    "security_group_rules": [lambda w: {**_t(w), "security_group_id": w["sg"],
                                        "direction": "ingress", "protocol": "tcp",
                                        "port_range_min": 8080, "port_range_max": 8080}],
    "load_balancers": [lambda w: {**_t(w), "router_id": w["router"]}],
    "pools": [lambda w: {**_t(w), "load_balancer_id": w["lb"]}],
    "pool_members": [lambda w: {**_t(w), "pool_id": w["pool"], "address": "10.0.0.9",
                                "protocol_port": 80}],
    "vips": [lambda w: {**_t(w), "load_balancer_id": w["lb"], "pool_id": w["pool"],
                        "address": "10.0.0.100", "protocol_port": 80}],
    "health_monitors": [lambda w: {**_t(w), "name": "hm2"}],
    "dhcp_subnets": [lambda w: {**_t(w), "bridge_id": w["bridge"], "cidr": "10.1.0.0/24"}],
    "dhcp_hosts": [lambda w: {**_t(w), "subnet_id": w["dhcp"], "mac": "02:00:00:00:00:07",
                              "ip": "10.0.0.7"}],
    "hosts": [lambda w: {"name": "h2"}],
    "tunnel_zones": [lambda w: {"name": "z2"}],
    "tunnel_zone_members": [lambda w: {"tunnel_zone_id": w["zone"], "host_id": w["host2"],
                                       "address": "10.250.0.9"}],
    "port_bindings": [lambda w: {"port_id": w["vmport2"], "host_id": w["host"],
                                 "interface": "tap9"}],
    "bgp_peers": [lambda w: {**_t(w), "router_id": w["router"], "port_id": w["rport"],
                             "local_as": 65000, "peer_as": 65001, "peer_address": "10.0.0.254"}],
    "bgp_networks": [lambda w: {**_t(w), "router_id": w["router"], "network": "203.0.113.0/24"}],
    "vpn_services": [lambda w: {**_t(w), "router_id": w["router"], "port_id": w["rport"],
                                "local_address": "192.0.2.2"}],
    "ipsec_connections": [lambda w: {**_t(w), "vpn_service_id": w["vpn"],
                                     "peer_address": "198.51.100.1",
                                     "local_cidrs": ["10.0.0.0/24"],
                                     "peer_cidrs": ["10.9.0.0/24"], "psk": "a-long-shared-key"}],
}  # fmt: skip

# the record of each kind a world holds (what the Refs of other tenants point at)
TARGET: dict[str, str] = {
    "tenants": "tenant", "bridges": "bridge", "routers": "router", "ports": "rport2",
    "routes": "route", "chains": "chain3", "rules": "rule", "port_groups": "pg",
    "ip_addr_groups": "ipg", "security_groups": "sg", "security_group_rules": "sgrule",
    "load_balancers": "lb", "pools": "pool", "pool_members": "member",
    "vips": "vip", "health_monitors": "hm", "dhcp_subnets": "dhcp", "dhcp_hosts": "dhcphost",
    "hosts": "host", "tunnel_zones": "zone", "tunnel_zone_members": "tzm",
    "port_bindings": "binding", "bgp_peers": "bgp", "bgp_networks": "bgpnet",
    "vpn_services": "vpn", "ipsec_connections": "ipsec",
}  # fmt: skip


def build_world(objects: ObjectStore, name: str) -> W:
    """A tenant named ``name`` with a record of every kind, made by the operator."""
    w: W = {}

    def make(key: str, kind: str, body: Body) -> None:
        w[key] = str(objects.create(from_dict(KINDS[kind], body)).record.id)

    make("tenant", "tenants", {"name": name})
    t = _t(w)
    make("bridge", "bridges", {**t, "name": "net"})
    make("router", "routers", {**t, "name": "r"})
    make("rport", "ports", {**t, "device_id": w["router"], "device_type": "router",
                            "mac": "02:00:00:00:00:aa", "address": "10.0.0.1",
                            "subnet": "10.0.0.0/24"})  # fmt: skip
    make("rport2", "ports", {**t, "device_id": w["router"], "device_type": "router",
                             "mac": "02:00:00:00:00:ab", "address": "10.0.5.1",
                             "subnet": "10.0.5.0/24"})  # fmt: skip
    make("vmport", "ports", {**t, "device_id": w["bridge"], "device_type": "bridge",
                             "mac": "02:00:00:00:00:05", "fixed_ips": ["10.0.0.5"]})  # fmt: skip
    make("vmport2", "ports", {**t, "device_id": w["bridge"], "device_type": "bridge"})
    make("route", "routes", {**t, "router_id": w["router"], "dst": "192.0.2.0/24",
                             "type": "blackhole"})  # fmt: skip
    for chain in ("chain", "chain2", "chain3"):
        make(chain, "chains", {**t, "name": chain})
    make("rule", "rules", {**t, "chain_id": w["chain3"]})
    make("pg", "port_groups", {**t, "name": "pg"})
    make("ipg", "ip_addr_groups", {**t, "name": "ipg", "addresses": ["10.0.0.0/24"]})
    make("sg", "security_groups", {**t, "name": "sg"})
    make("sgrule", "security_group_rules", {**t, "security_group_id": w["sg"],
                                            "direction": "ingress", "protocol": "tcp",
                                            "port_range_min": 22,
                                            "port_range_max": 22})  # fmt: skip
    make("lb", "load_balancers", {**t, "router_id": w["router"]})
    make("hm", "health_monitors", {**t, "name": "hm"})
    make("pool", "pools", {**t, "load_balancer_id": w["lb"]})
    make("member", "pool_members", {**t, "pool_id": w["pool"], "address": "10.0.0.8",
                                    "protocol_port": 80})  # fmt: skip
    make("vip", "vips", {**t, "load_balancer_id": w["lb"], "pool_id": w["pool"],
                         "address": "10.0.0.99", "protocol_port": 80})  # fmt: skip
    make("dhcp", "dhcp_subnets", {**t, "bridge_id": w["bridge"], "cidr": "10.0.0.0/24"})
    make("dhcphost", "dhcp_hosts", {**t, "subnet_id": w["dhcp"], "mac": "02:00:00:00:00:06",
                                    "ip": "10.0.0.6"})  # fmt: skip
    make("bgp", "bgp_peers", {**t, "router_id": w["router"], "port_id": w["rport"],
                              "local_as": 65000, "peer_as": 65001,
                              "peer_address": "10.0.0.253"})  # fmt: skip
    make("bgpnet", "bgp_networks", {**t, "router_id": w["router"], "network": "203.0.113.0/24"})
    make("vpn", "vpn_services", {**t, "router_id": w["router"], "port_id": w["rport"],
                                 "local_address": "192.0.2.1"})  # fmt: skip
    make("ipsec", "ipsec_connections", {**t, "vpn_service_id": w["vpn"],
                                        "peer_address": "198.51.100.2",
                                        "local_cidrs": ["10.0.0.0/24"],
                                        "peer_cidrs": ["10.8.0.0/24"],
                                        "psk": "another-long-key"})  # fmt: skip
    make("host", "hosts", {"name": f"{name}-host"})
    make("host2", "hosts", {"name": f"{name}-host2"})
    make("zone", "tunnel_zones", {"name": f"{name}-zone"})
    make("tzm", "tunnel_zone_members", {"tunnel_zone_id": w["zone"], "host_id": w["host"],
                                        "address": "10.250.0.1"})  # fmt: skip
    make("binding", "port_bindings", {"port_id": w["vmport"], "host_id": w["host"],
                                      "interface": "tap0"})  # fmt: skip
    return w


def set_field(body: Body, field: str, value: Any) -> Body:
    """``body`` with the dotted ``field`` set to ``value``."""
    out = copy.deepcopy(body)
    node = out
    *parents, last = field.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value
    return out


def naming(ref: Ref, w: W, target: uuid.UUID | str) -> Body:
    """A body of a new record of ``ref.source`` (in ``w``'s tenant) whose ``ref.field``
    names ``target``, in a variant where that field counts for ``ref``."""
    value: Any = [str(target)] if ref.many else str(target)
    for variant in BODIES[ref.source.KIND]:
        body = set_field(variant(w), ref.field, value)
        try:
            record: Record = from_dict(ref.source, body)
        except ValidationError:
            continue  # the field does not belong in this variant (a jump target, say)
        if uuid.UUID(str(target)) in ref.ids(record):
            return body
    raise AssertionError(f"no body of {ref.source.KIND} in which {ref.field} names a target")
