"""Value types through the API edge: MACs, addresses, CIDRs, UUIDs, names, keys."""

from __future__ import annotations

import ipaddress
import uuid
from typing import Any

import pytest
from model_factories import BRIDGE, ROUTER_PORT, TENANT, body, build, rejects

from tenet.errors import ValidationError
from tenet.model import Bridge, DhcpHost, Port, PortBinding, Route, Rule, Tenant, from_dict, to_dict

# ---------------------------------------------------------------- MAC addresses

BAD_MACS = [
    pytest.param("02:00:00:00:00", "MAC", id="five-octets"),
    pytest.param("02:00:00:00:00:01:02", "MAC", id="seven-octets"),
    pytest.param("02:00:00:00:00:0g", "MAC", id="bad-hex"),
    pytest.param("02:00:00:00:00:zz", "MAC", id="not-hex"),
    pytest.param("02:00:00-00:00:01", "MAC", id="mixed-separators"),
    pytest.param("02-00-00-00-00:01", "MAC", id="mixed-separators-last"),
    pytest.param("020000000001", "MAC", id="no-separators"),
    pytest.param("0200.0000.0001", "MAC", id="cisco-dots"),
    pytest.param("2:0:0:0:0:1", "MAC", id="single-digits"),
    pytest.param("002:00:00:00:00:01", "MAC", id="three-digit-octet"),
    pytest.param(" 02:00:00:00:00:01", "MAC", id="leading-space"),
    pytest.param("02:00:00:00:00:01\n", "MAC", id="trailing-newline"),
    pytest.param("", "MAC", id="empty"),
    pytest.param(2199023255553, "MAC", id="integer"),
    pytest.param(["02", "00", "00", "00", "00", "01"], "MAC", id="list"),
]


@pytest.mark.parametrize(("mac", "keyword"), BAD_MACS)
def test_port_rejects_malformed_mac(mac: object, keyword: str) -> None:
    rejects("ports", body("ports", mac=mac), "mac", keyword)


@pytest.mark.parametrize(
    "mac",
    [
        "01:00:5e:00:00:01",  # IPv4 multicast
        "33:33:00:00:00:01",  # IPv6 multicast
        "ff:ff:ff:ff:ff:ff",  # broadcast
        "03:00:00:00:00:00",  # group bit set, locally administered
        "01-80-C2-00-00-00",  # STP, in the other accepted spelling
    ],
)
@pytest.mark.parametrize("port", ["bridge", "router"])
def test_port_rejects_multicast_mac(mac: str, port: str) -> None:
    data = body("ports", mac=mac) if port == "bridge" else dict(ROUTER_PORT, mac=mac)
    rejects("ports", data, "mac", "multicast")


@pytest.mark.parametrize(
    ("kind", "path", "data"),
    [
        ("ports", "mac", body("ports", mac="0x:00:00:00:00:01")),
        (
            "ports",
            "allowed_address_pairs[0].mac",
            body("ports", allowed_address_pairs=[{"ip": "10.0.0.5", "mac": "02:00:00:00:00"}]),
        ),
        (
            "bridges",
            "static_arp[0].mac",
            body("bridges", static_arp=[{"ip": "10.0.0.5", "mac": "02:00:00:00:00:0q"}]),
        ),
        ("rules", "condition.eth_src", body("rules", condition={"eth_src": "02:00:00:00:00"})),
        ("rules", "condition.eth_dst", body("rules", condition={"eth_dst": "ff-ff:ff:ff:ff:ff"})),
        ("dhcp_hosts", "mac", body("dhcp_hosts", mac="02:00:00:00:00:01:")),
    ],
)
def test_every_mac_field_rejects_malformed_values(
    kind: str, path: str, data: dict[str, Any]
) -> None:
    rejects(kind, data, path, "MAC")


@pytest.mark.parametrize(
    ("kind", "path", "data"),
    [
        (
            "ports",
            "allowed_address_pairs[1].mac",
            body(
                "ports",
                allowed_address_pairs=[
                    {"ip": "10.0.0.5", "mac": "02:00:00:00:00:05"},
                    {"ip": "10.0.0.6", "mac": "01:00:5e:00:00:06"},
                ],
            ),
        ),
        ("dhcp_hosts", "mac", body("dhcp_hosts", mac="ff:ff:ff:ff:ff:ff")),
    ],
)
def test_source_macs_cannot_be_multicast(kind: str, path: str, data: dict[str, Any]) -> None:
    rejects(kind, data, path, "multicast")


def test_condition_may_match_multicast_and_broadcast_macs() -> None:
    rule = build(Rule, condition={"eth_dst": "FF-FF-FF-FF-FF-FF", "eth_src": "01:00:5E:00:00:FB"})
    assert rule.condition.eth_dst == "ff:ff:ff:ff:ff:ff"
    assert rule.condition.eth_src == "01:00:5e:00:00:fb"


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("02:ab:cd:ef:00:01", "02:ab:cd:ef:00:01"),
        ("02:AB:CD:EF:00:01", "02:ab:cd:ef:00:01"),
        ("02-ab-cd-ef-00-01", "02:ab:cd:ef:00:01"),
        ("02-Ab-cD-eF-00-01", "02:ab:cd:ef:00:01"),
        ("fe:ff:ff:ff:ff:ff", "fe:ff:ff:ff:ff:ff"),  # locally administered unicast
    ],
)
def test_macs_are_normalized_everywhere(given: str, stored: str) -> None:
    port = build(
        Port,
        mac=given,
        allowed_address_pairs=[{"ip": "10.0.0.0/24", "mac": given}],
    )
    assert isinstance(port, Port)
    assert port.mac == stored
    assert port.allowed_address_pairs[0].mac == stored
    bridge = build(Bridge, static_arp=[{"ip": "10.0.0.9", "mac": given}])
    assert isinstance(bridge, Bridge)
    assert bridge.static_arp[0].mac == stored
    assert build(DhcpHost, mac=given).mac == stored
    assert to_dict(port)["mac"] == stored
    # the normalized spelling and the given one make equal records
    assert port == from_dict(Port, dict(to_dict(port), mac=given))


def test_records_built_directly_only_take_normalized_macs() -> None:
    with pytest.raises(ValidationError) as info:
        Port(
            tenant_id=uuid.UUID(TENANT),
            device_id=uuid.UUID(BRIDGE),
            device_type="bridge",
            mac="02-00-00-00-00-01",
        )
    assert info.value.field == "mac"
    assert "normalized" in info.value.reason


# ---------------------------------------------------------------- CIDRs


@pytest.mark.parametrize(
    ("cidr", "keyword"),
    [
        ("10.0.0.1/24", "host bits"),
        ("10.0.0.128/24", "10.0.0.0/24"),  # suggests the network meant
        ("192.168.1.1/16", "host bits"),
        ("2001:db8::1/64", "host bits"),
        ("2001:db8::1/64", "2001:db8::/64"),
        ("10.0.0.0/33", "CIDR"),
        ("2001:db8::/129", "CIDR"),
        ("10.0.0.0/-1", "CIDR"),
        ("10.0.0/24", "CIDR"),
        ("10.0.0.0/24/8", "CIDR"),
        ("300.0.0.0/8", "CIDR"),
        ("banana", "CIDR"),
        ("", "CIDR"),
        (167772160, "CIDR"),
        (None, "CIDR"),
    ],
)
def test_route_rejects_malformed_and_host_bits_cidrs(cidr: object, keyword: str) -> None:
    rejects("routes", body("routes", dst=cidr), "dst", keyword)


@pytest.mark.parametrize(
    ("kind", "path", "data"),
    [
        ("routes", "src", body("routes", src="10.1.2.3/8")),
        ("ports", "subnet", dict(ROUTER_PORT, subnet="10.0.0.1/24")),
        ("dhcp_subnets", "cidr", body("dhcp_subnets", cidr="10.0.0.5/24")),
        ("bgp_networks", "network", body("bgp_networks", network="203.0.113.1/24")),
        ("ip_addr_groups", "addresses[1]", body("ip_addr_groups", addresses=["::/0", "::1/0"])),
        ("rules", "condition.nw_src", body("rules", condition={"nw_src": "10.0.0.1/8"})),
        ("rules", "condition.nw_dst", body("rules", condition={"nw_dst": "fd00::1/8"})),
        (
            "ports",
            "allowed_address_pairs[0].ip",
            body("ports", allowed_address_pairs=[{"ip": "10.0.0.5/24"}]),
        ),
        (
            "ipsec_connections",
            "peer_cidrs[0]",
            body("ipsec_connections", peer_cidrs=["10.1.0.1/24"]),
        ),
    ],
)
def test_every_cidr_field_rejects_host_bits(kind: str, path: str, data: dict[str, Any]) -> None:
    rejects(kind, data, path, "host bits")


def test_cidrs_are_stored_in_canonical_form() -> None:
    route = build(Route, dst="2001:0DB8:0000::/32", next_hop_gateway="2001:db8::1")
    assert route.dst == ipaddress.IPv6Network("2001:db8::/32")
    assert to_dict(route)["dst"] == "2001:db8::/32"


# ---------------------------------------------------------------- IP addresses


@pytest.mark.parametrize(
    "ip",
    [
        "10.0.0.256",
        "10.0.0",
        "10.0.0.1.5",
        "010.0.0.1",  # leading zeros are ambiguous (octal?)
        "10.0.0.1/32",  # a CIDR, not an address
        "::g",
        "2001:db8:::1",
        "1:2:3:4:5:6:7:8:9",
        "",
        " 10.0.0.1",
        "localhost",
    ],
)
def test_fixed_ips_reject_bad_address_strings(ip: str) -> None:
    rejects(
        "ports", body("ports", fixed_ips=["10.0.0.4", ip]), "fixed_ips[1]", "not an IPv4 or IPv6"
    )


@pytest.mark.parametrize("ip", [167772161, 10.5, True, None, ["10.0.0.1"], {"ip": "10.0.0.1"}])
def test_address_fields_reject_non_strings(ip: object) -> None:
    rejects("pool_members", body("pool_members", address=ip), "address", "not an IP address")


@pytest.mark.parametrize(
    ("kind", "data", "path"),
    [
        ("ports", dict(ROUTER_PORT, address="2001:db8::1"), "address"),
        ("ports", dict(ROUTER_PORT, address="10.0.0.1", subnet="2001:db8::/64"), "address"),
        ("routes", body("routes", next_hop_gateway="2001:db8::1"), "next_hop_gateway"),
        ("routes", body("routes", dst="::/0", next_hop_gateway="10.0.0.1"), "next_hop_gateway"),
        ("routes", body("routes", src="2001:db8::/32"), "src"),
        ("dhcp_subnets", body("dhcp_subnets", dns_servers=["8.8.8.8", "2001:4860::8888"]),
         "dns_servers[1]"),
        ("rules", body("rules", condition={"nw_src": "10.0.0.0/8", "nw_dst": "::/0"}),
         "condition.nw_dst"),
        ("rules", body("rules", action="snat", nat_targets=[{"start": "1.1.1.1", "end": "::1"}]),
         "nat_targets[0].end"),
    ],
)  # fmt: skip
def test_addresses_must_match_the_family_of_their_subnet_or_destination(
    kind: str, data: dict[str, Any], path: str
) -> None:
    err = rejects(kind, data, path, "IPv")
    assert "IPv4" in err.reason
    assert "IPv6" in err.reason


# ---------------------------------------------------------------- UUIDs


@pytest.mark.parametrize(
    "value", ["", "not-a-uuid", "6f1d2c3b-0000-4000-8000-00000000000", 7, None]
)
def test_uuid_fields_reject_non_uuids(value: object) -> None:
    rejects("ports", body("ports", device_id=value), "device_id", "not a UUID")


def test_uuids_accept_any_standard_spelling_and_store_the_canonical_one() -> None:
    canonical = "6f1d2c3b-0000-4000-8000-0000000000b1"
    for spelling in (canonical.upper(), canonical.replace("-", ""), "{" + canonical + "}"):
        port = build(Port, device_id=spelling)
        assert to_dict(port)["device_id"] == canonical


def test_id_defaults_to_a_fresh_uuid4() -> None:
    a, b = build(Tenant), build(Tenant)
    assert a.id != b.id
    assert a.id.version == 4


# ---------------------------------------------------------------- tunnel keys


@pytest.mark.parametrize("key", [-1, (1 << 24) - 1, 1 << 24, (1 << 24) + 1, 1 << 32])
@pytest.mark.parametrize("kind", ["ports", "bridges"])
def test_tunnel_key_must_fit_in_24_bits(kind: str, key: int) -> None:
    rejects(kind, body(kind, tunnel_key=key), "tunnel_key", "24-bit")


@pytest.mark.parametrize("key", [0, 1, 4789, (1 << 24) - 2])
@pytest.mark.parametrize("kind", [Port, Bridge])
def test_tunnel_key_in_range_or_zero_for_allocate_is_accepted(
    kind: type[Port | Bridge], key: int
) -> None:
    assert build(kind, tunnel_key=key).tunnel_key == key


def test_tunnel_key_defaults_to_zero_meaning_allocate() -> None:
    assert build(Port).tunnel_key == 0
    assert build(Bridge).tunnel_key == 0


# ---------------------------------------------------------------- names


@pytest.mark.parametrize(
    ("name", "keyword"),
    [
        ("x" * 256, "at most 255"),
        ("é" * 256, "at most 255"),
        ("web\nserver", "control"),
        ("web\x00", "control"),
        ("\tweb", "control"),
        ("web\x1b[31m", "control"),
        ("web\x7f", "control"),
        ("web\x85", "control"),  # C1 next-line
    ],
)
@pytest.mark.parametrize("kind", ["tenants", "ports", "hosts", "rules"])
def test_names_reject_overlong_and_control_characters(kind: str, name: str, keyword: str) -> None:
    rejects(kind, body(kind, name=name), "name", keyword)


@pytest.mark.parametrize("name", ["", "x" * 255, "web server-1_(prod)", "ünïcødé 名前", "a/b:c"])
def test_names_accept_printable_text_up_to_255_characters(name: str) -> None:
    assert build(Tenant, name=name).name == name


# ---------------------------------------------------------------- interface names


@pytest.mark.parametrize(
    ("interface", "keyword"),
    [
        ("", "1 to 15 bytes"),
        ("a" * 16, "1 to 15 bytes"),
        ("tap-0123456789ab", "1 to 15 bytes"),
        ("é" * 8, "1 to 15 bytes"),  # 8 characters, 16 bytes
        ("eth/0", "not a valid interface name"),
        ("/", "not a valid interface name"),
        ("eth:0", "not a valid interface name"),
        ("eth 0", "not a valid interface name"),
        ("eth\t0", "not a valid interface name"),
        ("eth\n", "not a valid interface name"),
        ("eth\r0", "not a valid interface name"),
        ("eth\x0b0", "not a valid interface name"),
        ("eth\x000", "not a valid interface name"),  # the kernel would see "eth"
        (".", "not a valid interface name"),
        ("..", "not a valid interface name"),
        ("tap\ud800", "UTF-8"),  # a lone surrogate, as json.loads lets through
    ],
)
def test_port_binding_rejects_bad_interface_names(interface: str, keyword: str) -> None:
    rejects("port_bindings", body("port_bindings", interface=interface), "interface", keyword)


@pytest.mark.parametrize(
    "interface", ["a", "a" * 15, "tap0123abcd-ef", "veth0.100", "é" * 7, "..."]
)
def test_port_binding_accepts_linux_interface_names(interface: str) -> None:
    binding = build(PortBinding, interface=interface)
    assert isinstance(binding, PortBinding)
    assert binding.interface == interface


# ---------------------------------------------------------------- timestamps


@pytest.mark.parametrize(
    ("value", "keyword"),
    [
        (float("nan"), "finite"),
        (float("inf"), "finite"),
        (float("-inf"), "finite"),
        (10**400, "finite"),
        ("0", "number"),
        (True, "number"),
        (None, "number"),
    ],
)
def test_timestamps_must_be_finite_numbers(value: object, keyword: str) -> None:
    rejects("tenants", {"created_at": value}, "created_at", keyword)


def test_integer_timestamps_become_floats() -> None:
    tenant = from_dict(Tenant, {"created_at": 1700000000, "updated_at": 1700000001.5})
    assert tenant.created_at == 1700000000.0
    assert isinstance(tenant.created_at, float)
    assert tenant.updated_at == 1700000001.5
