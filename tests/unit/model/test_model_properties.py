"""Hypothesis: generated valid bodies round-trip; arbitrary JSON never crashes the codec."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from model_factories import body

from tenet.errors import ValidationError
from tenet.model import (
    KINDS,
    Condition,
    DhcpSubnet,
    Port,
    Route,
    Rule,
    RuleAction,
    dumps,
    from_dict,
    loads,
    to_dict,
)

PROPERTY = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FUZZ = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])

uuids = st.uuids().map(str)
NORMAL_MAC = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")


@st.composite
def macs(draw: st.DrawFn, unicast: bool = True) -> str:
    """A MAC in any accepted spelling: either separator, mixed case."""
    octets = bytearray(draw(st.binary(min_size=6, max_size=6)))
    if unicast:
        octets[0] &= 0xFE
    sep = draw(st.sampled_from([":", "-"]))
    text = sep.join(f"{b:02x}" for b in octets)
    upper = draw(st.lists(st.booleans(), min_size=len(text), max_size=len(text)))
    return "".join(c.upper() if u else c for c, u in zip(text, upper, strict=True))


def addresses(version: int) -> st.SearchStrategy[str]:
    return st.ip_addresses(v=version).map(str)


def networks(version: int, min_prefix: int = 0, max_prefix: int | None = None) -> Any:
    top = max_prefix if max_prefix is not None else (32 if version == 4 else 128)
    return st.builds(
        lambda a, p: str(ipaddress.ip_network(f"{a}/{p}", strict=False)),
        st.ip_addresses(v=version),
        st.integers(min_prefix, top),
    )


@st.composite
def host_in(draw: st.DrawFn, cidr: str) -> str:
    """A usable host address of ``cidr``: not its network or broadcast address (IPv4 < /31)."""
    net = ipaddress.ip_network(cidr)
    first, last = 0, net.num_addresses - 1
    if net.version == 4 and net.prefixlen < 31:
        first, last = 1, last - 1
    return str(net.network_address + draw(st.integers(first, last)))


@st.composite
def port_bodies(draw: st.DrawFn) -> dict[str, Any]:
    data: dict[str, Any] = {
        "tenant_id": draw(uuids),
        "device_id": draw(uuids),
        "name": draw(st.text(st.characters(min_codepoint=32, max_codepoint=0x7E), max_size=20)),
        "tunnel_key": draw(st.integers(0, (1 << 24) - 2)),
        "admin_state_up": draw(st.booleans()),
        "port_group_ids": draw(st.lists(st.uuids(), max_size=3, unique=True).map(
            lambda ids: [str(i) for i in ids])),
        "port_security": draw(st.booleans()),
        "allowed_address_pairs": draw(st.lists(
            st.fixed_dictionaries(
                {"ip": st.sampled_from([4, 6]).flatmap(networks)},
                optional={"mac": macs()},
            ),
            max_size=3,
        )),
    }  # fmt: skip
    if draw(st.booleans()):
        data["peer_id"] = draw(uuids)
    if draw(st.booleans()):
        version = draw(st.sampled_from([4, 6]))
        subnet = draw(networks(version, 8 if version == 4 else 16))
        data.update(
            device_type="router",
            mac=draw(macs()),
            subnet=subnet,
            address=draw(host_in(subnet)),
        )
    else:
        data["device_type"] = "bridge"
        if draw(st.booleans()):
            data["mac"] = draw(macs())
        ips = st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6))
        data["fixed_ips"] = [str(ip) for ip in draw(st.lists(ips, max_size=4, unique=True))]
    return data


@st.composite
def route_bodies(draw: st.DrawFn) -> dict[str, Any]:
    version = draw(st.sampled_from([4, 6]))
    data: dict[str, Any] = {
        "tenant_id": draw(uuids),
        "router_id": draw(uuids),
        "dst": draw(networks(version)),
        "type": draw(st.sampled_from(["normal", "blackhole", "reject", "local"])),
        "weight": draw(st.integers(1, 65535)),
    }
    if draw(st.booleans()):
        data["src"] = draw(networks(version))
    if data["type"] == "normal":
        data["next_hop_port_id"] = draw(uuids)
        if draw(st.booleans()):
            data["next_hop_gateway"] = draw(addresses(version))
    return data


def port_ranges() -> Any:
    return st.tuples(st.integers(0, 65535), st.integers(0, 65535)).map(
        lambda p: {"start": min(p), "end": max(p)}
    )


@st.composite
def conditions(draw: st.DrawFn) -> dict[str, Any]:
    cond: dict[str, Any] = {}
    optional: dict[str, Any] = {
        "in_port_ids": st.lists(uuids, max_size=2),
        "out_port_ids": st.lists(uuids, max_size=2),
        "in_port_group_id": uuids,
        "out_port_group_id": uuids,
        "eth_type": st.integers(0x0600, 0xFFFF),
        "eth_src": macs(unicast=False),
        "eth_dst": macs(unicast=False),
        "ip_addr_group_src_id": uuids,
        "ip_addr_group_dst_id": uuids,
        "ct_state": st.sampled_from(["new", "established", "return"]),
    }
    for name, strategy in optional.items():
        if draw(st.booleans()):
            cond[name] = draw(strategy)
    version = draw(st.sampled_from([4, 6]))
    for name in ("nw_src", "nw_dst"):
        if draw(st.booleans()):
            cond[name] = draw(networks(version))
    l4 = draw(st.sampled_from(["none", "ports", "icmp", "other"]))
    if l4 == "ports":
        cond["nw_proto"] = draw(st.sampled_from([6, 17, 132]))
        for name in ("tp_src", "tp_dst"):
            if draw(st.booleans()):
                cond[name] = draw(port_ranges())
    elif l4 == "icmp":
        cond["nw_proto"] = draw(st.sampled_from([1, 58]))
        if draw(st.booleans()):
            cond["icmp_type"] = draw(st.integers(0, 255))
            if draw(st.booleans()):
                cond["icmp_code"] = draw(st.integers(0, 255))
    elif l4 == "other":
        cond["nw_proto"] = draw(st.integers(0, 255))
    for name in list(cond):
        inv = {
            "in_port_ids": "inv_in_ports",
            "out_port_ids": "inv_out_ports",
            "ip_addr_group_src_id": "inv_ip_addr_group_src",
            "ip_addr_group_dst_id": "inv_ip_addr_group_dst",
            "in_port_group_id": "inv_in_port_group",
            "out_port_group_id": "inv_out_port_group",
        }.get(name, f"inv_{name}")
        if draw(st.booleans()):
            cond[inv] = True
    return cond


@st.composite
def nat_targets(draw: st.DrawFn) -> dict[str, Any]:
    version = draw(st.sampled_from([4, 6]))
    a, b = draw(st.ip_addresses(v=version)), draw(st.ip_addresses(v=version))
    lo, hi = draw(port_ranges()).values()
    return {"start": str(min(a, b)), "end": str(max(a, b)), "port_start": lo, "port_end": hi}


@st.composite
def rule_bodies(draw: st.DrawFn) -> dict[str, Any]:
    chain = draw(st.uuids())
    data: dict[str, Any] = {
        "tenant_id": draw(uuids),
        "chain_id": str(chain),
        "condition": draw(conditions()),
        "action": draw(st.sampled_from([a.value for a in RuleAction])),
    }
    if data["action"] == "jump":
        data["jump_chain_id"] = str(draw(st.uuids().filter(lambda u: u != chain)))
    if data["action"] in ("snat", "dnat"):
        data["nat_targets"] = draw(st.lists(nat_targets(), min_size=1, max_size=3))
    return data


@st.composite
def dhcp_subnet_bodies(draw: st.DrawFn) -> dict[str, Any]:
    cidr = draw(networks(4, 8, 30))
    data: dict[str, Any] = {
        "tenant_id": draw(uuids),
        "bridge_id": draw(uuids),
        "cidr": cidr,
        "dns_servers": draw(st.lists(addresses(4), max_size=3)),
        "host_routes": draw(st.lists(
            st.fixed_dictionaries({"destination": networks(4), "nexthop": addresses(4)}),
            max_size=3,
        )),
        "mtu": draw(st.integers(576, 9000)),
        "lease_time": draw(st.integers(60, 10 * 365 * 86400)),
        "enabled": draw(st.booleans()),
    }  # fmt: skip
    for name in ("gateway", "server_address"):
        if draw(st.booleans()):
            data[name] = draw(host_in(cidr))
    return data


def outcome(kind: type[Any], data: object) -> Any:
    """The record ``from_dict`` builds, or the ValidationError it raises."""
    try:
        return from_dict(kind, data)  # type: ignore[arg-type]
    except ValidationError as err:
        return err


def assert_round_trips(cls: type[Any], data: dict[str, Any]) -> Any:
    record = from_dict(cls, data)
    assert loads(cls, dumps(record)) == record
    assert from_dict(cls, to_dict(record)) == record
    assert to_dict(from_dict(cls, to_dict(record))) == to_dict(record)
    return record


@PROPERTY
@given(port_bodies())
def test_ports_round_trip(data: dict[str, Any]) -> None:
    port = assert_round_trips(Port, data)
    if "mac" in data:
        assert port.mac == data["mac"].lower().replace("-", ":")
        assert NORMAL_MAC.fullmatch(to_dict(port)["mac"])
    assert [str(ip) for ip in port.fixed_ips] == [
        str(ipaddress.ip_address(ip)) for ip in data.get("fixed_ips", [])
    ]
    assert port.tunnel_key == data["tunnel_key"]
    assert port.interior == ("peer_id" in data)


@PROPERTY
@given(route_bodies())
def test_routes_round_trip(data: dict[str, Any]) -> None:
    route = assert_round_trips(Route, data)
    assert route.src_network.version == route.dst.version
    assert str(route.dst) == data["dst"]
    assert route.weight == data["weight"]


@PROPERTY
@given(rule_bodies())
def test_rules_with_conditions_round_trip(data: dict[str, Any]) -> None:
    rule = assert_round_trips(Rule, data)
    encoded = to_dict(rule)["condition"]
    assert isinstance(encoded, dict)
    for name, value in data["condition"].items():
        if name in ("eth_src", "eth_dst"):
            assert encoded[name] == value.lower().replace("-", ":")
        else:
            assert encoded[name] == value, name


@PROPERTY
@given(dhcp_subnet_bodies())
def test_dhcp_subnets_round_trip(data: dict[str, Any]) -> None:
    subnet = assert_round_trips(DhcpSubnet, data)
    for name in ("gateway", "server_address"):
        value = getattr(subnet, name)
        assert (value is None) == (name not in data)
        if value is not None:
            assert value in subnet.cidr


@PROPERTY
@given(st.integers().filter(lambda k: not 0 <= k < (1 << 24) - 1))
def test_any_tunnel_key_outside_24_bits_is_rejected(key: int) -> None:
    with pytest.raises(ValidationError) as info:
        from_dict(Port, body("ports", tunnel_key=key))
    assert info.value.field == "tunnel_key"


@PROPERTY
@given(st.text(max_size=20))
def test_any_text_is_either_a_normalized_mac_or_rejected_naming_mac(text: str) -> None:
    port = outcome(Port, body("ports", mac=text))
    if isinstance(port, ValidationError):
        assert port.field == "mac"
        assert "MAC" in port.reason
    else:
        assert port.mac is not None
        assert NORMAL_MAC.fullmatch(port.mac)
        assert port.mac == text.lower().replace("-", ":")


# ---------------------------------------------------------------- arbitrary JSON

TRICKY_STRINGS = st.sampled_from(
    ["", "\ud800", "\x00", "a" * 300, "10.0.0.1", "10.0.0.0/8", "::", "02:00:00:00:00:01",
     "bridge", "router", "normal", "jump", "snat", "00000000-0000-0000-0000-000000000000"]
)  # fmt: skip
JSON_LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=10**300, max_value=10**400),
    st.floats(),
    st.text(max_size=20),
    TRICKY_STRINGS,
)
JSON_VALUES = st.recursive(
    JSON_LEAVES,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.text(max_size=8), inner, max_size=3),
    ),
    max_leaves=8,
)


@FUZZ
@given(st.sampled_from(sorted(KINDS)), st.data())
def test_arbitrary_json_in_any_field_is_a_record_or_a_validation_error(
    kind: str, data: st.DataObject
) -> None:
    cls = KINDS[kind]
    fields = sorted(f.name for f in dataclasses.fields(cls))
    name = data.draw(st.sampled_from([*fields, "bogus"]))
    value = data.draw(JSON_VALUES)
    result = outcome(cls, body(kind, **{name: value}))
    if isinstance(result, ValidationError):
        assert result.reason
        assert result.field.split(".")[0].split("[")[0] in (*fields, "bogus")
    else:
        assert from_dict(cls, json.loads(json.dumps(to_dict(result)))) == result


@FUZZ
@given(st.data())
def test_arbitrary_json_in_a_condition_is_a_rule_or_a_validation_error(data: st.DataObject) -> None:
    cond = data.draw(st.dictionaries(
        st.sampled_from(sorted(f.name for f in dataclasses.fields(Condition))),
        JSON_VALUES,
        max_size=4,
    ))  # fmt: skip
    result = outcome(Rule, body("rules", condition=cond))
    if isinstance(result, ValidationError):
        assert result.field.startswith("condition.")
        assert result.reason
    else:
        assert isinstance(result, Rule)


@FUZZ
@given(st.binary(max_size=64) | JSON_VALUES.map(lambda v: json.dumps(v).encode()))
def test_loads_of_any_bytes_is_a_record_or_a_validation_error(raw: bytes) -> None:
    try:
        result: Any = loads(KINDS["tenants"], raw)
    except ValidationError as err:
        result = err
    assert isinstance(result, ValidationError | KINDS["tenants"])
    if isinstance(result, ValidationError):
        assert result.reason
