"""One spec per record kind: what it refers to, who owns it, what an agent holds.

Adding a kind is one edit here (and its record class). Everything that treats
kinds alike reads these specs:

* the object layer: references (kept whole, indexed, cascaded or cleared on
  delete, checked against the writer's tenant), fields that never change;
* agents (:class:`~tenet.store.reach.Reach`): which kinds they hold and which
  children they follow down from a record they hold;
* the agent's flow invalidation: which referenced records a change to a record
  also touches (a rule changes its chain's walk);
* the API's policy: who may write a kind (a tenant's members, or only the
  operator), which kinds are not implemented yet (refused, naming the kind and
  the issue that brings it), and which may be shared by the operator.

A :class:`Ref` says: records of ``source`` hold in ``field`` (a dotted path; a
tuple of ids when ``many``) the id of a ``target`` record. ``on_delete`` says what
deleting the target does: CASCADE deletes the referrers (recursively), CLEAR
removes the reference from them, REFUSE refuses the delete naming a referrer.
``same_tenant`` asks the target to be in the source's tenant for every writer;
otherwise only an admin may cross tenants. ``shared_ok`` lets a member name a
target of another tenant that the operator marked ``shared``. ``when`` restricts
a Ref to some records (a port's ``device_id`` names a bridge or a router, by
``device_type``). ``follow`` is False for references an agent does not load
(the tenant; port lists inside rule conditions: ids are all a condition needs).
"""

from __future__ import annotations

import dataclasses
import enum
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from tenet.model.base import Record, TenantRecord
from tenet.model.devices import Bridge, DeviceType, Port, Route, Router, Tenant
from tenet.model.hosts import Host, PortBinding, TunnelZone, TunnelZoneMember
from tenet.model.rules import Chain, IPAddrGroup, PortGroup, Rule
from tenet.model.secgroups import SecurityGroup, SecurityGroupRule
from tenet.model.services import (
    BgpNetwork,
    BgpPeer,
    DhcpHost,
    DhcpSubnet,
    HealthMonitor,
    IPsecConnection,
    LoadBalancer,
    Pool,
    PoolMember,
    Vip,
    VpnService,
)


class OnDelete(enum.Enum):
    CASCADE = "cascade"
    CLEAR = "clear"
    REFUSE = "refuse"


CASCADE, CLEAR, REFUSE = OnDelete.CASCADE, OnDelete.CLEAR, OnDelete.REFUSE


@dataclass(frozen=True, slots=True)
class Ref:
    source: type[Record]
    field: str
    target: type[Record]
    on_delete: OnDelete
    many: bool = False
    same_tenant: bool = True
    shared_ok: bool = False
    follow: bool = True
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

    @property
    def cascades(self) -> bool:
        """A parent-child reference: the referrer lives and dies with the target."""
        return self.on_delete is OnDelete.CASCADE and not self.many


class Owner(enum.Enum):
    TENANT = "tenant"  # a tenant's members create and change it (the operator too)
    OPERATOR = "operator"  # only an admin token writes it


@dataclass(frozen=True, slots=True)
class KindSpec:
    kind: type[Record]
    owner: Owner = Owner.TENANT
    refs: tuple[Ref, ...] = ()
    # kinds an agent holding a record of this kind also loads (its children)
    children: tuple[type[Record], ...] = ()
    # agents hold records of this kind (the simulation reads them)
    held: bool = True
    # ref fields whose targets' flows a change to this record also invalidates
    touches: tuple[str, ...] = ()
    # fields that never change once the record exists (a new record is needed)
    immutable: tuple[str, ...] = ()
    # not implemented yet: the API refuses the kind with this reason
    planned: str | None = None
    # the operator may mark records of this kind ``shared``: members of every tenant
    # may then read them and name them where a Ref says ``shared_ok``
    shareable: bool = False
    label: str = field(default="", init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "label", self.kind.KIND.removesuffix("s").replace("_", " "))


def _on(device: DeviceType) -> Callable[[Record], bool]:
    def pred(record: Record) -> bool:
        return isinstance(record, Port) and record.device_type is device

    return pred


def _chains(source: type[Record], *fields: str) -> tuple[Ref, ...]:
    return tuple(Ref(source, f, Chain, REFUSE) for f in fields)


LB = "L4 load balancing is not implemented yet (issue: L4 load balancing with health checks)"
DHCP = "DHCP is not served yet (issue: DHCP, DNS and IPv6 neighbor discovery)"
BGP = "BGP is not implemented yet (issue: BGP gateway)"
VPN = "IPsec VPN is not implemented yet"

_SPECS: tuple[KindSpec, ...] = (
    KindSpec(Tenant, Owner.OPERATOR, held=False),
    KindSpec(
        Bridge,
        refs=_chains(Bridge, "inbound_chain_id", "outbound_chain_id"),
        children=(Port, DhcpSubnet),
        shareable=True,
    ),
    KindSpec(
        Router,
        refs=_chains(Router, "inbound_chain_id", "outbound_chain_id"),
        children=(Port, Route),
    ),
    KindSpec(
        Port,
        refs=(
            Ref(Port, "device_id", Bridge, CASCADE, when=_on(DeviceType.BRIDGE)),
            Ref(Port, "device_id", Router, CASCADE, when=_on(DeviceType.ROUTER)),
            Ref(Port, "peer_id", Port, CLEAR, same_tenant=False),
            Ref(Port, "port_group_ids", PortGroup, CLEAR, many=True),
            # a group in use by a port is not deleted (Neutron's 409 SecurityGroupInUse)
            Ref(Port, "security_group_ids", SecurityGroup, REFUSE, many=True),
            *_chains(Port, "inbound_chain_id", "outbound_chain_id"),
        ),
        children=(PortBinding,),
        touches=("peer_id",),
        immutable=("device_id", "device_type"),
    ),
    KindSpec(
        Route,
        refs=(
            Ref(Route, "router_id", Router, CASCADE),
            Ref(Route, "next_hop_port_id", Port, CASCADE),
        ),
        immutable=("router_id",),
    ),
    KindSpec(Chain, children=(Rule,)),
    KindSpec(
        Rule,
        refs=(
            Ref(Rule, "chain_id", Chain, CASCADE),
            Ref(Rule, "jump_chain_id", Chain, REFUSE),
            Ref(Rule, "condition.in_port_group_id", PortGroup, REFUSE),
            Ref(Rule, "condition.out_port_group_id", PortGroup, REFUSE),
            Ref(Rule, "condition.ip_addr_group_src_id", IPAddrGroup, REFUSE, shared_ok=True),
            Ref(Rule, "condition.ip_addr_group_dst_id", IPAddrGroup, REFUSE, shared_ok=True),
            Ref(
                Rule,
                "condition.in_port_ids",
                Port,
                CLEAR,
                many=True,
                same_tenant=False,
                follow=False,
            ),
            Ref(
                Rule,
                "condition.out_port_ids",
                Port,
                CLEAR,
                many=True,
                same_tenant=False,
                follow=False,
            ),
        ),
        touches=("chain_id",),
        immutable=("chain_id",),
    ),
    KindSpec(PortGroup),
    KindSpec(
        SecurityGroup,
        # what the group owns: its chains and members' address group (refused deletes
        # name the group; the object layer deletes them with it)
        refs=(
            *_chains(SecurityGroup, "ingress_chain_id", "egress_chain_id"),
            Ref(SecurityGroup, "ip_addr_group_id", IPAddrGroup, REFUSE),
        ),
        immutable=("ingress_chain_id", "egress_chain_id", "ip_addr_group_id"),
    ),
    KindSpec(
        SecurityGroupRule,
        refs=(
            Ref(SecurityGroupRule, "security_group_id", SecurityGroup, CASCADE),
            # Neutron deletes the rules that name a deleted group as their remote
            Ref(SecurityGroupRule, "remote_group_id", SecurityGroup, CASCADE, follow=False),
        ),
        held=False,  # agents run the rules compiled from it (same id)
        # Neutron has no rule update: a new rule is needed (name, description may change)
        immutable=(
            "security_group_id",
            "direction",
            "ethertype",
            "protocol",
            "port_range_min",
            "port_range_max",
            "remote_ip_prefix",
            "remote_group_id",
        ),
    ),
    KindSpec(IPAddrGroup, shareable=True),
    KindSpec(
        LoadBalancer,
        refs=(Ref(LoadBalancer, "router_id", Router, CASCADE),),
        held=False,
        immutable=("router_id",),
        planned=LB,
    ),
    KindSpec(
        Pool,
        refs=(
            Ref(Pool, "load_balancer_id", LoadBalancer, CASCADE),
            Ref(Pool, "health_monitor_id", HealthMonitor, CLEAR),
        ),
        held=False,
        planned=LB,
    ),
    KindSpec(PoolMember, refs=(Ref(PoolMember, "pool_id", Pool, CASCADE),), held=False, planned=LB),
    KindSpec(
        Vip,
        refs=(
            Ref(Vip, "load_balancer_id", LoadBalancer, CASCADE),
            Ref(Vip, "pool_id", Pool, CASCADE),
        ),
        held=False,
        planned=LB,
    ),
    KindSpec(HealthMonitor, held=False, planned=LB),
    KindSpec(
        DhcpSubnet,
        refs=(Ref(DhcpSubnet, "bridge_id", Bridge, CASCADE),),
        children=(DhcpHost,),
        touches=("bridge_id",),
        planned=DHCP,
    ),
    KindSpec(
        DhcpHost,
        refs=(Ref(DhcpHost, "subnet_id", DhcpSubnet, CASCADE),),
        touches=("subnet_id",),
        planned=DHCP,
    ),
    KindSpec(Host, Owner.OPERATOR, children=(TunnelZoneMember,)),
    KindSpec(TunnelZone, Owner.OPERATOR),
    KindSpec(
        TunnelZoneMember,
        Owner.OPERATOR,
        refs=(
            Ref(TunnelZoneMember, "tunnel_zone_id", TunnelZone, CASCADE, same_tenant=False),
            Ref(TunnelZoneMember, "host_id", Host, CASCADE, same_tenant=False),
        ),
        touches=("host_id",),
    ),
    KindSpec(
        PortBinding,
        Owner.OPERATOR,
        refs=(
            Ref(PortBinding, "port_id", Port, CASCADE, same_tenant=False),
            Ref(PortBinding, "host_id", Host, CASCADE, same_tenant=False),
        ),
        touches=("port_id",),
    ),
    KindSpec(
        BgpPeer,
        refs=(Ref(BgpPeer, "router_id", Router, CASCADE), Ref(BgpPeer, "port_id", Port, CASCADE)),
        held=False,
        immutable=("router_id",),
        planned=BGP,
    ),
    KindSpec(
        BgpNetwork,
        refs=(Ref(BgpNetwork, "router_id", Router, CASCADE),),
        held=False,
        immutable=("router_id",),
        planned=BGP,
    ),
    KindSpec(
        VpnService,
        refs=(
            Ref(VpnService, "router_id", Router, CASCADE),
            Ref(VpnService, "port_id", Port, CASCADE),
        ),
        held=False,
        immutable=("router_id",),
        planned=VPN,
    ),
    KindSpec(
        IPsecConnection,
        refs=(Ref(IPsecConnection, "vpn_service_id", VpnService, CASCADE),),
        held=False,
        planned=VPN,
    ),
)


def _with_tenant(spec: KindSpec) -> KindSpec:
    """A tenant's record refers to its tenant: indexed like any reference, so a tenant
    that still owns something cannot be deleted (and a racing create is seen)."""
    if not issubclass(spec.kind, TenantRecord):
        return spec
    ref = Ref(spec.kind, "tenant_id", Tenant, REFUSE, follow=False)
    return dataclasses.replace(
        spec,
        refs=(ref, *spec.refs),  # first: a record's own tenant is checked before what it names
        immutable=("tenant_id", *spec.immutable),
    )


SPECS: dict[type[Record], KindSpec] = {s.kind: _with_tenant(s) for s in _SPECS}
KINDS: dict[str, type[Record]] = {s.kind.KIND: s.kind for s in _SPECS}

REFS: tuple[Ref, ...] = tuple(ref for spec in SPECS.values() for ref in spec.refs)
REFS_FROM: dict[type[Record], tuple[Ref, ...]] = {k: s.refs for k, s in SPECS.items()}
REFS_TO: dict[type[Record], tuple[Ref, ...]] = {
    kind: tuple(ref for ref in REFS if ref.target is kind) for kind in SPECS
}


def spec(kind: type[Record]) -> KindSpec:
    return SPECS[kind]
