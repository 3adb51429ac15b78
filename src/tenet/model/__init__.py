"""The topology model: frozen records of tenants' virtual networks and of hosts.

``KINDS`` maps each record kind's name (its collection name in the store and the
API) to its class.
"""

from __future__ import annotations

from tenet.model.base import Record, TenantRecord
from tenet.model.codec import dumps, from_dict, loads, to_dict
from tenet.model.devices import (
    AddressPair,
    ArpEntry,
    Bridge,
    DeviceType,
    Port,
    Route,
    Router,
    RouteType,
    Tenant,
)
from tenet.model.hosts import Host, PortBinding, TunnelType, TunnelZone, TunnelZoneMember
from tenet.model.rules import (
    Chain,
    Condition,
    CtState,
    IPAddrGroup,
    NatTarget,
    PortGroup,
    PortRange,
    Rule,
    RuleAction,
)
from tenet.model.services import (
    BgpNetwork,
    BgpPeer,
    DhcpHost,
    DhcpSubnet,
    HealthMonitor,
    HostRoute,
    IkeVersion,
    IPsecConnection,
    L4Protocol,
    LbMethod,
    LoadBalancer,
    MonitorType,
    Pool,
    PoolMember,
    SessionPersistence,
    Vip,
    VpnService,
)
from tenet.model.types import MAC, IPAddress, IPNetwork

KINDS: dict[str, type[Record]] = {
    cls.KIND: cls
    for cls in (
        Tenant,
        Bridge,
        Router,
        Port,
        Route,
        Chain,
        Rule,
        PortGroup,
        IPAddrGroup,
        LoadBalancer,
        Pool,
        PoolMember,
        Vip,
        HealthMonitor,
        DhcpSubnet,
        DhcpHost,
        Host,
        TunnelZone,
        TunnelZoneMember,
        PortBinding,
        BgpPeer,
        BgpNetwork,
        VpnService,
        IPsecConnection,
    )
}

__all__ = [
    "KINDS",
    "MAC",
    "AddressPair",
    "ArpEntry",
    "BgpNetwork",
    "BgpPeer",
    "Bridge",
    "Chain",
    "Condition",
    "CtState",
    "DeviceType",
    "DhcpHost",
    "DhcpSubnet",
    "HealthMonitor",
    "Host",
    "HostRoute",
    "IPAddrGroup",
    "IPAddress",
    "IPNetwork",
    "IPsecConnection",
    "IkeVersion",
    "L4Protocol",
    "LbMethod",
    "LoadBalancer",
    "MonitorType",
    "NatTarget",
    "Pool",
    "PoolMember",
    "Port",
    "PortBinding",
    "PortGroup",
    "PortRange",
    "Record",
    "Route",
    "RouteType",
    "Router",
    "Rule",
    "RuleAction",
    "SessionPersistence",
    "Tenant",
    "TenantRecord",
    "TunnelType",
    "TunnelZone",
    "TunnelZoneMember",
    "Vip",
    "VpnService",
    "dumps",
    "from_dict",
    "loads",
    "to_dict",
]
