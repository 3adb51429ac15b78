"""Tenants and the virtual devices: bridges, routers, their ports and routes.

A **bridge** is a virtual L2 segment; a **router** a virtual L3 device (a
tenant's VPC router or the provider router). A **port** belongs to exactly one
device (``device_id`` + ``device_type``). It is *interior* when peered
(``peer_id``) to a port of another device and *exterior* when bound to a host
interface (``PortBinding``); never both. Router ports carry a MAC, an address
and the subnet they face; bridge ports may carry the MAC and addresses of the VM
behind them (used to answer ARP without flooding, and for port security).
``tunnel_key`` is the port's 24-bit VXLAN key; 0 asks the object layer to
allocate one.
"""

from __future__ import annotations

import enum
import ipaddress
import uuid

from tenet.errors import ValidationError
from tenet.model.base import Record, TenantRecord, record
from tenet.model.types import (
    MAC,
    IPAddress,
    IPNetwork,
    check_mac,
    check_range,
    check_same_family,
    check_tunnel_key,
    is_usable_host,
    mac_is_multicast,
)


@record
class Tenant(Record):
    KIND = "tenants"

    description: str = ""


class DeviceType(enum.StrEnum):
    BRIDGE = "bridge"
    ROUTER = "router"


@record
class ArpEntry:
    """A static IP -> MAC binding a bridge answers ARP (and NDP) with."""

    ip: IPAddress
    mac: MAC

    def __post_init__(self) -> None:
        check_mac(self.mac, "mac")


@record
class AddressPair:
    """An address (or CIDR) and MAC a port may send from, with port security on."""

    ip: IPNetwork
    mac: MAC | None = None

    def __post_init__(self) -> None:
        if self.mac is not None:
            check_mac(self.mac, "mac")
            if mac_is_multicast(self.mac):
                raise ValidationError("mac", f"{self.mac} is a multicast MAC")


@record
class Bridge(TenantRecord):
    KIND = "bridges"

    admin_state_up: bool = True
    # the VNI of the bridge's flood (broadcast, unknown unicast); 0: allocate one
    tunnel_key: int = 0
    inbound_chain_id: uuid.UUID | None = None
    outbound_chain_id: uuid.UUID | None = None
    static_arp: tuple[ArpEntry, ...] = ()
    # set by the operator: every tenant may see it (an external network)
    shared: bool = False

    def check(self) -> None:
        check_tunnel_key(self.tunnel_key)
        seen: dict[IPAddress, int] = {}
        for i, entry in enumerate(self.static_arp):
            if entry.ip in seen:
                raise ValidationError(
                    f"static_arp[{i}].ip",
                    f"{entry.ip} is already bound at static_arp[{seen[entry.ip]}]",
                )
            seen[entry.ip] = i


@record
class Router(TenantRecord):
    KIND = "routers"

    admin_state_up: bool = True
    inbound_chain_id: uuid.UUID | None = None
    outbound_chain_id: uuid.UUID | None = None


@record
class Port(TenantRecord):
    KIND = "ports"

    device_id: uuid.UUID
    device_type: DeviceType
    admin_state_up: bool = True
    tunnel_key: int = 0
    peer_id: uuid.UUID | None = None
    inbound_chain_id: uuid.UUID | None = None
    outbound_chain_id: uuid.UUID | None = None
    port_group_ids: tuple[uuid.UUID, ...] = ()
    mac: MAC | None = None
    # bridge ports: the addresses of the VM behind the port
    fixed_ips: tuple[IPAddress, ...] = ()
    # router ports: the port's own address and the subnet it faces
    address: IPAddress | None = None
    subnet: IPNetwork | None = None
    port_security: bool = False
    allowed_address_pairs: tuple[AddressPair, ...] = ()
    # bridge ports: the security groups that filter the VM's traffic (tenet.model.secgroups)
    security_group_ids: tuple[uuid.UUID, ...] = ()

    @property
    def interior(self) -> bool:
        return self.peer_id is not None

    def check(self) -> None:
        check_tunnel_key(self.tunnel_key)
        if self.peer_id == self.id:
            raise ValidationError("peer_id", "a port cannot be peered to itself")
        if self.mac is not None:
            check_mac(self.mac, "mac")
            if mac_is_multicast(self.mac):
                raise ValidationError("mac", f"{self.mac} is a multicast MAC")
        if len(set(self.port_group_ids)) != len(self.port_group_ids):
            raise ValidationError("port_group_ids", "lists a port group twice")
        if len(set(self.security_group_ids)) != len(self.security_group_ids):
            raise ValidationError("security_group_ids", "lists a security group twice")
        if self.device_type is DeviceType.ROUTER:
            self._check_router_port()
        else:
            self._check_bridge_port()

    def _check_router_port(self) -> None:
        if self.fixed_ips:
            raise ValidationError("fixed_ips", "a router port has one address; use address")
        if self.security_group_ids:
            raise ValidationError("security_group_ids", "only bridge ports have security groups")
        if self.mac is None:
            raise ValidationError("mac", "a router port needs a MAC")
        if self.address is None:
            raise ValidationError("address", "a router port needs an address")
        if self.subnet is None:
            raise ValidationError("subnet", "a router port needs the subnet it faces")
        check_same_family(self.subnet, self.address, "address")
        if not is_usable_host(self.address, self.subnet):
            raise ValidationError(
                "address", f"{self.address} is not a usable host address in {self.subnet}"
            )

    def _check_bridge_port(self) -> None:
        if self.address is not None or self.subnet is not None:
            field = "address" if self.address is not None else "subnet"
            raise ValidationError(field, "only router ports have an address and a subnet")
        if len(set(self.fixed_ips)) != len(self.fixed_ips):
            raise ValidationError("fixed_ips", "lists an address twice")


class RouteType(enum.StrEnum):
    NORMAL = "normal"  # forward out of next_hop_port_id (to next_hop_gateway if set)
    BLACKHOLE = "blackhole"  # drop silently
    REJECT = "reject"  # drop with ICMP administratively prohibited
    LOCAL = "local"  # to the router itself (its own port addresses)


WEIGHT_MAX = 65535


@record
class Route(TenantRecord):
    """One entry of a router's table: (src, dst) prefixes -> next hop.

    Lookup is longest prefix on ``dst``, then on ``src``; among equal prefixes the
    routes with the lowest ``weight`` form an ECMP group.
    """

    KIND = "routes"

    router_id: uuid.UUID
    dst: IPNetwork
    src: IPNetwork | None = None
    type: RouteType = RouteType.NORMAL
    next_hop_port_id: uuid.UUID | None = None
    next_hop_gateway: IPAddress | None = None
    weight: int = 100

    @property
    def src_network(self) -> IPNetwork:
        if self.src is not None:
            return self.src
        if self.dst.version == 4:
            return ipaddress.IPv4Network("0.0.0.0/0")
        return ipaddress.IPv6Network("::/0")

    def check(self) -> None:
        check_range(self.weight, 1, WEIGHT_MAX, "weight")
        if self.src is not None:
            check_same_family(self.dst, self.src, "src")
        if self.type is RouteType.NORMAL:
            if self.next_hop_port_id is None:
                raise ValidationError("next_hop_port_id", "a normal route needs a next-hop port")
        elif self.next_hop_port_id is not None or self.next_hop_gateway is not None:
            field = "next_hop_port_id" if self.next_hop_port_id else "next_hop_gateway"
            raise ValidationError(field, f"a {self.type} route has no next hop")
        if self.next_hop_gateway is not None:
            check_same_family(self.dst, self.next_hop_gateway, "next_hop_gateway")
