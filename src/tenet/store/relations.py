"""The references between model records, and what deleting a target does.

Each :class:`Ref` says: records of ``source`` hold in ``field`` (a dotted path;
a tuple of ids when ``many``) the id of a ``target`` record. The object layer
enforces, in the one transaction that writes a change:

* on write, every referenced id exists (else ValidationError naming the field)
  and, when ``same_tenant``, belongs to the writer's tenant;
* on delete of a target, per ``on_delete``: CASCADE deletes the referrers (and
  their own referrers, recursively), CLEAR removes the reference from them,
  REFUSE refuses the delete with ReferenceConflict naming the referrers.

``when`` restricts a Ref to some source records (a port's ``device_id`` names a
bridge or a router, by ``device_type``).
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from tenet.model import (
    BgpNetwork,
    BgpPeer,
    Bridge,
    Chain,
    DeviceType,
    DhcpHost,
    DhcpSubnet,
    HealthMonitor,
    Host,
    IPAddrGroup,
    IPsecConnection,
    LoadBalancer,
    Pool,
    PoolMember,
    Port,
    PortBinding,
    PortGroup,
    Record,
    Route,
    Router,
    Rule,
    Tenant,
    TunnelZone,
    TunnelZoneMember,
    Vip,
    VpnService,
)


class OnDelete(enum.Enum):
    CASCADE = "cascade"
    CLEAR = "clear"
    REFUSE = "refuse"


@dataclass(frozen=True, slots=True)
class Ref:
    source: type[Record]
    field: str
    target: type[Record]
    on_delete: OnDelete
    many: bool = False
    same_tenant: bool = True
    when: Callable[[Record], bool] | None = None

    def ids(self, record: Record) -> tuple[uuid.UUID, ...]:
        """The ids ``record`` references through this Ref."""
        if self.when is not None and not self.when(record):
            return ()
        value: object = record
        for part in self.field.split("."):
            value = getattr(value, part)
        if value is None:
            return ()
        if self.many:
            assert isinstance(value, tuple)
            return value
        assert isinstance(value, uuid.UUID)
        return (value,)


def _on(device: DeviceType) -> Callable[[Record], bool]:
    def pred(record: Record) -> bool:
        return isinstance(record, Port) and record.device_type is device

    return pred


CASCADE, CLEAR, REFUSE = OnDelete.CASCADE, OnDelete.CLEAR, OnDelete.REFUSE


def _chain_refs(source: type[Record], *fields: str) -> list[Ref]:
    return [Ref(source, f, Chain, REFUSE) for f in fields]


REFS: tuple[Ref, ...] = (
    Ref(Port, "device_id", Bridge, CASCADE, when=_on(DeviceType.BRIDGE)),
    Ref(Port, "device_id", Router, CASCADE, when=_on(DeviceType.ROUTER)),
    Ref(Port, "peer_id", Port, CLEAR, same_tenant=False),
    Ref(Port, "port_group_ids", PortGroup, CLEAR, many=True),
    *_chain_refs(Port, "inbound_chain_id", "outbound_chain_id"),
    *_chain_refs(Bridge, "inbound_chain_id", "outbound_chain_id"),
    *_chain_refs(Router, "inbound_chain_id", "outbound_chain_id"),
    Ref(Route, "router_id", Router, CASCADE),
    Ref(Route, "next_hop_port_id", Port, CASCADE),
    Ref(Rule, "chain_id", Chain, CASCADE),
    Ref(Rule, "jump_chain_id", Chain, REFUSE),
    Ref(Rule, "condition.in_port_group_id", PortGroup, REFUSE),
    Ref(Rule, "condition.out_port_group_id", PortGroup, REFUSE),
    Ref(Rule, "condition.ip_addr_group_src_id", IPAddrGroup, REFUSE),
    Ref(Rule, "condition.ip_addr_group_dst_id", IPAddrGroup, REFUSE),
    Ref(Rule, "condition.in_port_ids", Port, CLEAR, many=True, same_tenant=False),
    Ref(Rule, "condition.out_port_ids", Port, CLEAR, many=True, same_tenant=False),
    Ref(LoadBalancer, "router_id", Router, CASCADE),
    Ref(Pool, "load_balancer_id", LoadBalancer, CASCADE),
    Ref(Pool, "health_monitor_id", HealthMonitor, CLEAR),
    Ref(PoolMember, "pool_id", Pool, CASCADE),
    Ref(Vip, "load_balancer_id", LoadBalancer, CASCADE),
    Ref(Vip, "pool_id", Pool, CASCADE),
    Ref(DhcpSubnet, "bridge_id", Bridge, CASCADE),
    Ref(DhcpHost, "subnet_id", DhcpSubnet, CASCADE),
    Ref(TunnelZoneMember, "tunnel_zone_id", TunnelZone, CASCADE, same_tenant=False),
    Ref(TunnelZoneMember, "host_id", Host, CASCADE, same_tenant=False),
    Ref(PortBinding, "port_id", Port, CASCADE, same_tenant=False),
    Ref(PortBinding, "host_id", Host, CASCADE, same_tenant=False),
    Ref(BgpPeer, "router_id", Router, CASCADE),
    Ref(BgpPeer, "port_id", Port, CASCADE),
    Ref(BgpNetwork, "router_id", Router, CASCADE),
    Ref(VpnService, "router_id", Router, CASCADE),
    Ref(VpnService, "port_id", Port, CASCADE),
    Ref(IPsecConnection, "vpn_service_id", VpnService, CASCADE),
)

REFS_FROM: dict[type[Record], list[Ref]] = {}
REFS_TO: dict[type[Record], list[Ref]] = {}
for _ref in REFS:
    REFS_FROM.setdefault(_ref.source, []).append(_ref)
    REFS_TO.setdefault(_ref.target, []).append(_ref)

# A tenant can only be deleted once it owns nothing (checked by the object layer).
TENANT = Tenant
