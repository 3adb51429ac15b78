"""Services on virtual devices: L4 load balancing, DHCP, BGP uplinks, IPsec VPN.

* A **load balancer** sits on a router; a **VIP** (address, protocol, port) sends
  new connections to a **pool**'s **members**; a **health monitor** takes members
  out of rotation.
* A **DHCP subnet** on a bridge is served by the agent (gateway, DNS, MTU, host
  routes); a **DHCP host** pins a MAC to an address.
* A **BGP peer** on an edge router's port announces its **BGP networks**.
* A **VPN service** on a router holds **IPsec connections** to remote peers.
"""

from __future__ import annotations

import enum
import uuid

from tenet.errors import ValidationError
from tenet.model.base import TenantRecord, record
from tenet.model.types import (
    MAC,
    IPAddress,
    IPNetwork,
    check_mac,
    check_range,
    check_same_family,
    is_usable_host,
    mac_is_multicast,
)

PORT_MAX = 65535
ASN_MAX = (1 << 32) - 1


class L4Protocol(enum.StrEnum):
    TCP = "tcp"
    UDP = "udp"


class LbMethod(enum.StrEnum):
    ROUND_ROBIN = "round_robin"
    SOURCE_IP = "source_ip"


class SessionPersistence(enum.StrEnum):
    NONE = "none"
    SOURCE_IP = "source_ip"


class MonitorType(enum.StrEnum):
    TCP = "tcp"
    HTTP = "http"
    PING = "ping"


@record
class LoadBalancer(TenantRecord):
    KIND = "load_balancers"

    router_id: uuid.UUID
    admin_state_up: bool = True


@record
class HealthMonitor(TenantRecord):
    KIND = "health_monitors"

    type: MonitorType = MonitorType.TCP
    delay: float = 5.0
    timeout: float = 3.0
    max_retries: int = 3
    http_path: str = "/"

    def check(self) -> None:
        if not 0 < self.delay <= 3600:
            raise ValidationError("delay", f"{self.delay} is outside 0..3600 seconds")
        if not 0 < self.timeout <= self.delay:
            raise ValidationError("timeout", f"{self.timeout} must be > 0 and <= delay")
        check_range(self.max_retries, 1, 10, "max_retries")
        if not self.http_path.startswith("/"):
            raise ValidationError("http_path", "must start with /")


@record
class Pool(TenantRecord):
    KIND = "pools"

    load_balancer_id: uuid.UUID
    protocol: L4Protocol = L4Protocol.TCP
    lb_method: LbMethod = LbMethod.ROUND_ROBIN
    health_monitor_id: uuid.UUID | None = None
    admin_state_up: bool = True


@record
class PoolMember(TenantRecord):
    KIND = "pool_members"

    pool_id: uuid.UUID
    address: IPAddress
    protocol_port: int
    weight: int = 1
    admin_state_up: bool = True

    def check(self) -> None:
        check_range(self.protocol_port, 1, PORT_MAX, "protocol_port")
        check_range(self.weight, 0, 256, "weight")


@record
class Vip(TenantRecord):
    KIND = "vips"

    load_balancer_id: uuid.UUID
    pool_id: uuid.UUID
    address: IPAddress
    protocol: L4Protocol = L4Protocol.TCP
    protocol_port: int
    session_persistence: SessionPersistence = SessionPersistence.NONE
    admin_state_up: bool = True

    def check(self) -> None:
        check_range(self.protocol_port, 1, PORT_MAX, "protocol_port")


@record
class HostRoute:
    destination: IPNetwork
    nexthop: IPAddress

    def __post_init__(self) -> None:
        check_same_family(self.destination, self.nexthop, "nexthop")


@record
class DhcpSubnet(TenantRecord):
    KIND = "dhcp_subnets"

    bridge_id: uuid.UUID
    cidr: IPNetwork
    gateway: IPAddress | None = None
    server_address: IPAddress | None = None
    dns_servers: tuple[IPAddress, ...] = ()
    host_routes: tuple[HostRoute, ...] = ()
    mtu: int = 1450
    lease_time: int = 86400
    enabled: bool = True

    def check(self) -> None:
        if self.cidr.version != 4:
            raise ValidationError("cidr", "DHCP serves IPv4 subnets")
        for field in ("gateway", "server_address"):
            value = getattr(self, field)
            if value is not None and not is_usable_host(value, self.cidr):
                raise ValidationError(field, f"{value} is not a usable address in {self.cidr}")
        for i, dns in enumerate(self.dns_servers):
            check_same_family(self.cidr, dns, f"dns_servers[{i}]")
        for i, route in enumerate(self.host_routes):
            check_same_family(self.cidr, route.destination, f"host_routes[{i}].destination")
        check_range(self.mtu, 576, 9000, "mtu")
        check_range(self.lease_time, 60, 10 * 365 * 86400, "lease_time")


@record
class DhcpHost(TenantRecord):
    KIND = "dhcp_hosts"

    subnet_id: uuid.UUID
    mac: MAC
    ip: IPAddress

    def check(self) -> None:
        check_mac(self.mac, "mac")
        if mac_is_multicast(self.mac):
            raise ValidationError("mac", f"{self.mac} is a multicast MAC")


@record
class BgpPeer(TenantRecord):
    KIND = "bgp_peers"

    router_id: uuid.UUID
    port_id: uuid.UUID
    local_as: int
    peer_as: int
    peer_address: IPAddress
    hold_time: int = 90
    keepalive: int = 30

    def check(self) -> None:
        check_range(self.local_as, 1, ASN_MAX, "local_as")
        check_range(self.peer_as, 1, ASN_MAX, "peer_as")
        if self.hold_time != 0:
            check_range(self.hold_time, 3, 65535, "hold_time")
            check_range(self.keepalive, 1, self.hold_time // 3, "keepalive")
        else:  # no keepalives are sent with a hold time of 0 (RFC 4271 4.4)
            check_range(self.keepalive, 0, 65535 // 3, "keepalive")


@record
class BgpNetwork(TenantRecord):
    KIND = "bgp_networks"

    router_id: uuid.UUID
    network: IPNetwork


@record
class VpnService(TenantRecord):
    KIND = "vpn_services"

    router_id: uuid.UUID
    port_id: uuid.UUID
    local_address: IPAddress
    admin_state_up: bool = True


class IkeVersion(enum.StrEnum):
    V1 = "ikev1"
    V2 = "ikev2"


PSK_MIN = 8


@record
class IPsecConnection(TenantRecord):
    KIND = "ipsec_connections"

    vpn_service_id: uuid.UUID
    peer_address: IPAddress
    local_cidrs: tuple[IPNetwork, ...]
    peer_cidrs: tuple[IPNetwork, ...]
    psk: str
    ike_version: IkeVersion = IkeVersion.V2
    mtu: int = 1400
    admin_state_up: bool = True

    def check(self) -> None:
        if not self.local_cidrs:
            raise ValidationError("local_cidrs", "needs at least one CIDR")
        if not self.peer_cidrs:
            raise ValidationError("peer_cidrs", "needs at least one CIDR")
        if len(self.psk) < PSK_MIN:
            raise ValidationError("psk", f"must be at least {PSK_MIN} characters")
        check_range(self.mtu, 576, 9000, "mtu")
        for i, local in enumerate(self.local_cidrs):
            for peer in self.peer_cidrs:
                if local.version == peer.version and local.overlaps(peer):
                    raise ValidationError(f"local_cidrs[{i}]", f"{local} overlaps peer {peer}")
