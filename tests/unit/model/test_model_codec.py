"""The codec: unknown and missing fields, JSON types, field paths, round trips."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import uuid
from typing import Any

import pytest
from model_factories import (
    BRIDGE,
    CHAIN,
    MINIMAL,
    OTHER_CHAIN,
    PORT,
    ROUTER,
    ROUTER_PORT,
    TENANT,
    body,
    rejects,
)

from tenet.errors import ValidationError
from tenet.model import KINDS, Bridge, Port, Rule, Tenant, dumps, from_dict, loads, to_dict

# kind -> the fields a body must have
REQUIRED: dict[str, set[str]] = {
    "tenants": set(),
    "bridges": {"tenant_id"},
    "routers": {"tenant_id"},
    "ports": {"tenant_id", "device_id", "device_type"},
    "routes": {"tenant_id", "router_id", "dst"},
    "chains": {"tenant_id"},
    "rules": {"tenant_id", "chain_id"},
    "port_groups": {"tenant_id"},
    "ip_addr_groups": {"tenant_id"},
    "security_groups": {"tenant_id"},
    "security_group_rules": {"tenant_id", "security_group_id", "direction"},
    "load_balancers": {"tenant_id", "router_id"},
    "pools": {"tenant_id", "load_balancer_id"},
    "pool_members": {"tenant_id", "pool_id", "address", "protocol_port"},
    "vips": {"tenant_id", "load_balancer_id", "pool_id", "address", "protocol_port"},
    "health_monitors": {"tenant_id"},
    "dhcp_subnets": {"tenant_id", "bridge_id", "cidr"},
    "dhcp_hosts": {"tenant_id", "subnet_id", "mac", "ip"},
    "hosts": set(),
    "tunnel_zones": set(),
    "tunnel_zone_members": {"tunnel_zone_id", "host_id", "address"},
    "port_bindings": {"port_id", "host_id", "interface"},
    "bgp_peers": {"tenant_id", "router_id", "port_id", "local_as", "peer_as", "peer_address"},
    "bgp_networks": {"tenant_id", "router_id", "network"},
    "vpn_services": {"tenant_id", "router_id", "port_id", "local_address"},
    "ipsec_connections": {
        "tenant_id",
        "vpn_service_id",
        "peer_address",
        "local_cidrs",
        "peer_cidrs",
        "psk",
    },
}

REQUIRED_CASES = [
    (kind, name) for kind, names in sorted(REQUIRED.items()) for name in sorted(names)
]


def test_the_tables_cover_every_kind() -> None:
    assert set(MINIMAL) == set(KINDS)
    assert set(REQUIRED) == set(KINDS)
    for kind, cls in KINDS.items():
        assert kind == cls.KIND


@pytest.mark.parametrize(("kind", "name"), REQUIRED_CASES)
def test_missing_required_field_is_named(kind: str, name: str) -> None:
    data = body(kind)
    del data[name]
    rejects(kind, data, name, "required")


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_kind_builds_from_its_minimal_body_and_round_trips(kind: str) -> None:
    cls = KINDS[kind]
    record = from_dict(cls, body(kind))
    assert type(record) is cls
    assert loads(cls, dumps(record)) == record
    assert from_dict(cls, to_dict(record)) == record
    # the encoded form is plain JSON, and the same bytes for the same record
    assert json.loads(dumps(record)) == to_dict(record)
    assert dumps(from_dict(cls, to_dict(record))) == dumps(record)
    # the body's values survive (only spelling may change)
    encoded = to_dict(record)
    for name, value in body(kind).items():
        assert encoded[name] == value, name


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_kind_rejects_unknown_top_level_fields(kind: str) -> None:
    rejects(kind, body(kind, bogus=1), "bogus", "unknown field")


@pytest.mark.parametrize(
    "name",
    ["KIND", "interior", "Name", "tenant", "tenantId", "__class__", "check"],
)
def test_attributes_that_are_not_fields_are_unknown(name: str) -> None:
    rejects("ports", body("ports", **{name: "x"}), name, "unknown field")


@pytest.mark.parametrize(
    ("kind", "data", "path"),
    [
        ("rules", body("rules", condition={"bogus": True}), "condition.bogus"),
        (
            "rules",
            body("rules", condition={"nw_proto": 6, "tp_dst": {"start": 1, "end": 2, "step": 1}}),
            "condition.tp_dst.step",
        ),
        (
            "rules",
            body(
                "rules",
                action="snat",
                nat_targets=[
                    {"start": "1.1.1.1", "end": "1.1.1.1"},
                    {"start": "1.1.1.2", "end": "1.1.1.2", "protocol": "tcp"},
                ],
            ),
            "nat_targets[1].protocol",
        ),
        (
            "bridges",
            body("bridges", static_arp=[{"ip": "10.0.0.1", "mac": "02:00:00:00:00:01", "x": 1}]),
            "static_arp[0].x",
        ),
        (
            "ports",
            body("ports", allowed_address_pairs=[{"ip": "10.0.0.1", "ip_address": "10.0.0.1"}]),
            "allowed_address_pairs[0].ip_address",
        ),
        (
            "dhcp_subnets",
            body("dhcp_subnets", host_routes=[{"destination": "0.0.0.0/0", "gw": "10.0.0.1"}]),
            "host_routes[0].gw",
        ),
    ],
)
def test_unknown_nested_fields_are_named_with_their_path(
    kind: str, data: dict[str, Any], path: str
) -> None:
    rejects(kind, data, path, "unknown field")


@pytest.mark.parametrize(
    ("kind", "data", "path", "keyword"),
    [
        (
            "rules",
            body("rules", condition={"nw_proto": 6, "tp_dst": {"start": 10}}),
            "condition.tp_dst.end",
            "required",
        ),
        (
            "rules",
            body("rules", condition={"nw_proto": 6, "tp_dst": {"start": 10, "end": 9}}),
            "condition.tp_dst.end",
            "below",
        ),
        (
            "rules",
            body(
                "rules",
                action="dnat",
                nat_targets=[
                    {"start": "10.0.0.1", "end": "10.0.0.1"},
                    {"start": "10.0.0.9", "end": "10.0.0.1"},
                ],
            ),
            "nat_targets[1].end",
            "below",
        ),
        (
            "rules",
            body("rules", action="dnat", nat_targets=[{"start": "10.0.0.1", "end": "10.0.0.x"}]),
            "nat_targets[0].end",
            "not an IPv4 or IPv6",
        ),
        ("bridges", body("bridges", static_arp=[{"ip": "10.0.0.1"}]), "static_arp[0].mac", "req"),
        (
            "bridges",
            body(
                "bridges",
                static_arp=[
                    {"ip": "10.0.0.1", "mac": "02:00:00:00:00:01"},
                    {"ip": "10.0.0.2", "mac": 2},
                ],
            ),
            "static_arp[1].mac",
            "MAC",
        ),
        (
            "ports",
            body("ports", allowed_address_pairs=[{"ip": "10.0.0.1", "mac": "02:00:00:00:00"}]),
            "allowed_address_pairs[0].mac",
            "MAC",
        ),
        (
            "ports",
            body("ports", allowed_address_pairs=[{"mac": "02:00:00:00:00:01"}]),
            "allowed_address_pairs[0].ip",
            "required",
        ),
        ("rules", body("rules", condition={"nw_src": "10/8"}), "condition.nw_src", "CIDR"),
        ("rules", body("rules", condition={"in_port_ids": [PORT, 5]}), "condition.in_port_ids[1]",
         "UUID"),
    ],
)  # fmt: skip
def test_nested_errors_name_the_full_path(
    kind: str, data: dict[str, Any], path: str, keyword: str
) -> None:
    rejects(kind, data, path, keyword)


WRONG_TYPES = [
    pytest.param("ports", "tunnel_key", "5", "integer", id="string-for-int"),
    pytest.param("ports", "tunnel_key", True, "boolean", id="bool-for-int"),
    pytest.param("ports", "tunnel_key", 5.0, "integer", id="float-for-int"),
    pytest.param("ports", "tunnel_key", None, "integer", id="null-for-int"),
    pytest.param("ports", "admin_state_up", 1, "true or false", id="int-for-bool"),
    pytest.param("ports", "admin_state_up", "true", "true or false", id="string-for-bool"),
    pytest.param("ports", "port_security", None, "true or false", id="null-for-bool"),
    pytest.param("ports", "fixed_ips", {"ip": "10.0.0.1"}, "list", id="object-for-list"),
    pytest.param("ports", "fixed_ips", "10.0.0.1", "list", id="string-for-list"),
    pytest.param("ports", "port_group_ids", None, "list", id="null-for-list"),
    pytest.param("ports", "name", 5, "string", id="int-for-string"),
    pytest.param("ports", "name", ["a"], "string", id="list-for-string"),
    pytest.param("ports", "name", None, "string", id="null-for-string"),
    pytest.param("ports", "device_type", 1, "'bridge'", id="int-for-enum"),
    pytest.param("ports", "device_type", "Bridge", "'bridge'", id="enum-is-case-sensitive"),
    pytest.param("ports", "device_type", ["bridge"], "'bridge'", id="list-for-enum"),
    pytest.param("ports", "device_id", {"id": BRIDGE}, "UUID", id="object-for-uuid"),
    pytest.param("rules", "condition", [], "object", id="list-for-record"),
    pytest.param("rules", "condition", "tcp", "object", id="string-for-record"),
    pytest.param("bridges", "static_arp", {"ip": "10.0.0.1"}, "list", id="object-for-record-list"),
    pytest.param("bgp_peers", "local_as", 64512.0, "integer", id="float-asn"),
    pytest.param("health_monitors", "delay", "5", "number", id="string-for-float"),
    pytest.param("health_monitors", "delay", False, "number", id="bool-for-float"),
]


@pytest.mark.parametrize(("kind", "name", "value", "keyword"), WRONG_TYPES)
def test_wrong_json_types_are_rejected(kind: str, name: str, value: object, keyword: str) -> None:
    rejects(kind, body(kind, **{name: value}), name, keyword)


def test_wrong_type_inside_a_list_names_the_item() -> None:
    data = body("bridges", static_arp=[{"ip": "10.0.0.1", "mac": "02:00:00:00:00:01"}, "x"])
    rejects("bridges", data, "static_arp[1]", "object")


def test_optional_fields_take_null_as_absent() -> None:
    port = from_dict(Port, body("ports", mac=None, peer_id=None, inbound_chain_id=None))
    assert port == from_dict(Port, body("ports", id=str(port.id)))
    assert port.mac is None
    assert port.peer_id is None


def test_lists_are_stored_as_tuples_and_accept_tuples() -> None:
    port = from_dict(Port, body("ports", fixed_ips=("10.0.0.1", "10.0.0.2")))
    assert port.fixed_ips == (ipaddress.IPv4Address("10.0.0.1"), ipaddress.IPv4Address("10.0.0.2"))


@pytest.mark.parametrize("data", [[], "x", 5, None])
def test_the_top_level_must_be_an_object(data: Any) -> None:
    with pytest.raises(ValidationError) as info:
        from_dict(Tenant, data)
    assert info.value.field == ""
    assert "object" in info.value.reason


@pytest.mark.parametrize(
    ("raw", "keyword"),
    [
        (b"", "JSON"),
        (b"{", "JSON"),
        (b"{'name': 'x'}", "JSON"),
        (b"\xff\xfe\xfa", "JSON"),
        (b"[" * 100_000, "JSON"),  # nesting deep enough to exhaust the recursion limit
        (b"[]", "object"),
        (b'"tenant"', "object"),
    ],
)
def test_loads_rejects_what_is_not_a_json_object(raw: bytes, keyword: str) -> None:
    with pytest.raises(ValidationError) as info:
        loads(Tenant, raw)
    assert info.value.field == ""
    assert keyword in info.value.reason


def test_loads_names_fields_like_from_dict() -> None:
    raw = json.dumps(body("rules", condition={"nw_proto": 6, "tp_src": {"start": 9, "end": 8}}))
    with pytest.raises(ValidationError) as info:
        loads(Rule, raw.encode())
    assert info.value.field == "condition.tp_src.end"


def test_loads_rejects_json_nan_in_a_number_field() -> None:
    with pytest.raises(ValidationError) as info:
        loads(Tenant, b'{"created_at": NaN}')
    assert info.value.field == "created_at"


# ---------------------------------------------------------------- good values, both families

DUAL_STACK = [
    pytest.param("ports", {"fixed_ips": ["10.0.0.5"]}, {"fixed_ips": ["2001:db8::5"]},
                 id="port-fixed-ips"),
    pytest.param("ports", {"allowed_address_pairs": [{"ip": "10.0.0.0/24"}]},
                 {"allowed_address_pairs": [{"ip": "2001:db8::/64"}]}, id="port-address-pairs"),
    pytest.param("ports", ROUTER_PORT,
                 dict(ROUTER_PORT, address="2001:db8::1", subnet="2001:db8::/64"),
                 id="router-port"),
    pytest.param("routes", {"dst": "10.0.0.0/8", "src": "10.1.0.0/16",
                            "next_hop_gateway": "10.0.0.1"},
                 {"dst": "2001:db8::/32", "src": "2001:db8:1::/48",
                  "next_hop_gateway": "2001:db8::1"}, id="route"),
    pytest.param("bridges", {"static_arp": [{"ip": "10.0.0.1", "mac": "02:00:00:00:00:01"}]},
                 {"static_arp": [{"ip": "2001:db8::1", "mac": "02:00:00:00:00:01"}]},
                 id="static-arp"),
    pytest.param("rules", {"condition": {"nw_src": "10.0.0.0/8", "nw_dst": "0.0.0.0/0"}},
                 {"condition": {"nw_src": "2001:db8::/32", "nw_dst": "::/0"}}, id="condition"),
    pytest.param("rules", {"action": "snat", "nat_targets": [{"start": "1.1.1.1",
                                                              "end": "1.1.1.9"}]},
                 {"action": "snat", "nat_targets": [{"start": "2001:db8::1",
                                                     "end": "2001:db8::9"}]}, id="nat-target"),
    pytest.param("ip_addr_groups", {"addresses": ["10.0.0.0/8", "192.0.2.1/32"]},
                 {"addresses": ["2001:db8::/32", "2001:db8::1/128"]}, id="ip-addr-group"),
    pytest.param("pool_members", {"address": "10.0.0.10"}, {"address": "2001:db8::10"},
                 id="pool-member"),
    pytest.param("vips", {"address": "192.0.2.10"}, {"address": "2001:db8::10"}, id="vip"),
    pytest.param("tunnel_zone_members", {"address": "172.16.0.1"}, {"address": "fd00::1"},
                 id="tunnel-zone-member"),
    pytest.param("bgp_peers", {"peer_address": "198.51.100.1"},
                 {"peer_address": "2001:db8::1"}, id="bgp-peer"),
    pytest.param("bgp_networks", {"network": "203.0.113.0/24"}, {"network": "2001:db8::/48"},
                 id="bgp-network"),
    pytest.param("vpn_services", {"local_address": "198.51.100.2"},
                 {"local_address": "2001:db8::2"}, id="vpn-service"),
    pytest.param("ipsec_connections", {"peer_address": "198.51.100.3"},
                 {"peer_address": "2001:db8::3", "local_cidrs": ["2001:db8:a::/48"],
                  "peer_cidrs": ["2001:db8:b::/48"]}, id="ipsec"),
]  # fmt: skip


def _versions(value: object) -> set[int]:
    """The IP versions of every address or network inside ``value``."""
    if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv4Network):
        return {4}
    if isinstance(value, ipaddress.IPv6Address | ipaddress.IPv6Network):
        return {6}
    if isinstance(value, tuple):
        return set().union(*(_versions(v) for v in value))
    if dataclasses.is_dataclass(value):
        return set().union(*(_versions(getattr(value, f.name)) for f in dataclasses.fields(value)))
    return set()


@pytest.mark.parametrize(("kind", "v4", "v6"), DUAL_STACK)
def test_fields_hold_ipv4_and_ipv6(kind: str, v4: dict[str, Any], v6: dict[str, Any]) -> None:
    cls = KINDS[kind]
    for changes, version in ((v4, 4), (v6, 6)):
        record = from_dict(cls, body(kind, **changes))
        for name in changes:
            if name in ("action", "tenant_id", "device_id", "device_type", "mac"):
                continue
            assert _versions(getattr(record, name)) == {version}, name
        assert from_dict(cls, to_dict(record)) == record
        assert loads(cls, dumps(record)) == record


def test_ipv6_addresses_are_stored_compressed() -> None:
    port = from_dict(Port, body("ports", fixed_ips=["2001:0DB8:0000:0000:0000:0000:0000:0001"]))
    assert to_dict(port)["fixed_ips"] == ["2001:db8::1"]


# ---------------------------------------------------------------- full records round trip

FULL: list[tuple[type[Any], dict[str, Any]]] = [
    (
        Port,
        dict(
            ROUTER_PORT,
            name="uplink",
            tunnel_key=77,
            peer_id=PORT,
            admin_state_up=False,
            inbound_chain_id=CHAIN,
            outbound_chain_id=OTHER_CHAIN,
            port_group_ids=[CHAIN, OTHER_CHAIN],
            port_security=True,
            allowed_address_pairs=[{"ip": "10.0.0.0/24", "mac": "02:00:00:00:09:09"}],
            created_at=1.5,
            updated_at=2.25,
        ),
    ),
    (
        Bridge,
        body(
            "bridges",
            tunnel_key=(1 << 24) - 2,
            inbound_chain_id=CHAIN,
            static_arp=[
                {"ip": "10.0.0.1", "mac": "02:00:00:00:00:01"},
                {"ip": "fe80::1", "mac": "02:00:00:00:00:01"},
            ],
        ),
    ),
    (
        Rule,
        body(
            "rules",
            action="dnat",
            condition={
                "in_port_ids": [PORT],
                "inv_in_ports": True,
                "out_port_group_id": OTHER_CHAIN,
                "eth_type": 0x0800,
                "eth_src": "02:00:00:00:00:01",
                "nw_src": "10.0.0.0/8",
                "nw_dst": "192.0.2.10/32",
                "ip_addr_group_src_id": ROUTER,
                "inv_ip_addr_group_src": True,
                "nw_proto": 6,
                "tp_src": {"start": 1024, "end": 65535},
                "tp_dst": {"start": 80, "end": 80},
                "inv_tp_dst": True,
                "ct_state": "new",
            },
            nat_targets=[
                {"start": "10.0.0.5", "end": "10.0.0.6", "port_start": 8080, "port_end": 8081}
            ],
        ),
    ),
]


@pytest.mark.parametrize(("cls", "data"), FULL, ids=lambda v: getattr(v, "__name__", ""))
def test_full_records_round_trip_and_keep_every_value(cls: type[Any], data: dict[str, Any]) -> None:
    record = from_dict(cls, data)
    assert loads(cls, dumps(record)) == record
    assert from_dict(cls, to_dict(record)) == record

    def subset(given: object, encoded: object) -> None:
        if isinstance(given, dict):
            assert isinstance(encoded, dict)
            for key, value in given.items():
                subset(value, encoded[key])
        elif isinstance(given, list):
            assert isinstance(encoded, list)
            assert len(given) == len(encoded)
            for a, b in zip(given, encoded, strict=True):
                subset(a, b)
        else:
            assert encoded == given

    subset(data, to_dict(record))


def test_to_dict_writes_every_field_and_only_json_types() -> None:
    record = from_dict(Rule, FULL[2][1])
    encoded = to_dict(record)
    assert set(encoded) == {f.name for f in dataclasses.fields(Rule)}
    assert encoded["action"] == "dnat"
    assert encoded["condition"]["ct_state"] == "new"  # type: ignore[index]
    assert encoded["condition"]["tp_dst"] == {"start": 80, "end": 80}  # type: ignore[index]
    assert encoded["id"] == str(record.id)

    def plain(value: object) -> None:
        assert value is None or type(value) in (bool, int, float, str, list, dict), value
        if isinstance(value, list):
            for v in value:
                plain(v)
        if isinstance(value, dict):
            for v in value.values():
                plain(v)

    plain(encoded)


def test_records_given_as_values_pass_through_from_dict() -> None:
    existing = from_dict(Rule, FULL[2][1])
    again = from_dict(
        Rule,
        body(
            "rules",
            id=str(existing.id),
            condition=existing.condition,
            action="dnat",
            nat_targets=list(existing.nat_targets),
        ),
    )
    assert again == existing


def test_enums_round_trip_as_their_values() -> None:
    port = from_dict(Port, body("ports", device_type="router", **{
        k: v for k, v in ROUTER_PORT.items() if k in ("mac", "address", "subnet")}))  # fmt: skip
    assert to_dict(port)["device_type"] == "router"
    assert json.loads(dumps(port))["device_type"] == "router"


def test_dumps_is_canonical() -> None:
    a = from_dict(Tenant, {"id": TENANT, "name": "t"})
    b = from_dict(Tenant, {"name": "t", "id": TENANT.upper()})
    assert dumps(a) == dumps(b)
    assert dumps(a).startswith(b'{"created_at":0.0,"description":"","id":"' + TENANT.encode())


def test_uuids_come_back_as_uuid_objects() -> None:
    port = loads(Port, dumps(from_dict(Port, body("ports", peer_id=ROUTER))))
    assert port.peer_id == uuid.UUID(ROUTER)
    assert isinstance(port.tenant_id, uuid.UUID)
