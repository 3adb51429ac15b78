"""The topology model: frozen records of tenants' virtual networks and of hosts.

``KINDS`` maps each record kind's name (its collection name in the store and the
API) to its class; ``SPECS`` holds what the rest of tenet needs to know about each
kind (:mod:`tenet.model.kinds`).
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
from tenet.model.kinds import KINDS, SPECS, KindSpec, OnDelete, Owner, Ref
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
from tenet.model.secgroups import Direction, EtherType, SecurityGroup, SecurityGroupRule
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

__all__ = [
    "KINDS",
    "MAC",
    "SPECS",
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
    "Direction",
    "EtherType",
    "HealthMonitor",
    "Host",
    "HostRoute",
    "IPAddrGroup",
    "IPAddress",
    "IPNetwork",
    "IPsecConnection",
    "IkeVersion",
    "KindSpec",
    "L4Protocol",
    "LbMethod",
    "LoadBalancer",
    "MonitorType",
    "NatTarget",
    "OnDelete",
    "Owner",
    "Pool",
    "PoolMember",
    "Port",
    "PortBinding",
    "PortGroup",
    "PortRange",
    "Record",
    "Ref",
    "Route",
    "RouteType",
    "Router",
    "Rule",
    "RuleAction",
    "SecurityGroup",
    "SecurityGroupRule",
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
