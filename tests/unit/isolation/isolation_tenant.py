"""One tenant of a world: its devices, ports, routes, chains and rules.

:class:`TenantBuilder` adds tenant ``i`` to a :class:`~isolation_build.WorldBuilder`,
through its object store. Everything but the tenant's public /28
(``public_net(i)``) and its gateway address is the same in every tenant: the
subnets, the VM addresses and MACs, the router port MACs. What a tenant has
beyond the two bridges on its main router (a public segment, IPv6, an inner
router, a VPN port, a gateway, which routes, chains and rules) is drawn from the
world's generator.
"""

from __future__ import annotations

import contextlib
import dataclasses
import random
import uuid
from typing import TYPE_CHECKING, Any

from isolation_world import (
    BLACKHOLE,
    ECMP_INSIDE,
    EXTERNAL,
    INNER,
    LINK,
    REJECT,
    SUBNETS,
    TRANSIT,
    UPSTREAM,
    V6,
    VPN,
    gw_address,
    ip,
    net,
    public_net,
    router_mac,
    vm_mac,
)

from tenet.errors import AlreadyExists
from tenet.model import (
    AddressPair,
    ArpEntry,
    Bridge,
    Chain,
    Condition,
    CtState,
    IPAddrGroup,
    NatTarget,
    Port,
    PortGroup,
    PortRange,
    Router,
    RouteType,
    Rule,
    RuleAction,
    SecurityGroup,
    SecurityGroupRule,
    Tenant,
    from_dict,
)

if TYPE_CHECKING:
    from isolation_build import WorldBuilder


class TenantBuilder:
    """One tenant's records (``i``: its index; everything but ``public_net(i)`` and the
    gateway address is the same in every tenant)."""

    def __init__(self, b: WorldBuilder, i: int, tenants: int, shared_gw_mac: bool) -> None:
        self.b = b
        self.rng = b.rng
        self.maybe = b.maybe
        self.i = i
        self.tenants = tenants
        self.shared_gw_mac = shared_gw_mac
        self.name = f"t{i}"
        self.ports: list[Port] = []
        self.exterior: list[Port] = []

    def build(self) -> None:
        b, rng, name = self.b, self.rng, self.name
        tenant = b.create(Tenant(id=b.new_id(), name=name))
        self.tid = tenant.id
        b.tenant_ids.append(tenant.id)
        self.chains = [
            b.create(Chain(id=b.new_id(), tenant_id=self.tid, name=f"{name}/chain{c}"))
            for c in range(0 if b.simple else rng.choice((0, 1, 2, 3, 4)))
        ]
        self.groups = [
            b.create(PortGroup(id=b.new_id(), tenant_id=self.tid, name=f"{name}/pg{g}"))
            for g in range(int(self.maybe(0.5)))
        ]
        self.security_groups = self._security_groups()
        self.addr_groups = [b.shared_group]
        if self.maybe(0.5):
            addresses = tuple(net(c) for c in rng.sample([*SUBNETS, INNER, "10.0.1.10/32"], 2))
            self.addr_groups.append(
                b.create(
                    IPAddrGroup(
                        id=b.new_id(), tenant_id=self.tid, name=f"{name}/ag", addresses=addresses
                    )
                )
            )
        router = b.create(
            Router(
                id=b.new_id(),
                tenant_id=self.tid,
                name=f"{name}/r0",
                inbound_chain_id=self.chain(0.2),
                outbound_chain_id=self.chain(0.2),
            )
        )
        b.tenant_routers.append(router)
        bridge_ports = [self.segment(router, k, cidr) for k, cidr in enumerate(SUBNETS, 1)]
        if b.simple or rng.random() < 0.5:
            self.segment(router, 4, str(public_net(self.i)))
        inner = self.inner(router) if self.maybe(0.4) else None
        vpn = self.vpn(router) if self.maybe(0.3) else None
        gw = self.gateway(router) if b.simple or rng.random() < 0.9 else None
        self.routes(router, bridge_ports, inner, vpn, gw)
        self.rules()
        b.ingress[self.tid] = self.exterior

    def _security_groups(self) -> list[SecurityGroup]:
        """0-2 security groups with random rules (drawn from a random generator of their
        own: the rest of the world is what it was for the seed before they came)."""
        b = self.b
        self.sg_rng = rng = random.Random(f"{b.seed}/{self.name}/security groups")
        if b.simple:
            return []
        groups: list[SecurityGroup] = []
        for g in range(rng.choice((0, 1, 1, 2))):
            group = b.create(
                SecurityGroup(
                    id=uuid.UUID(int=rng.getrandbits(128), version=4),
                    tenant_id=self.tid,
                    name=f"{self.name}/sg{g}",
                    stateful=rng.random() < 0.7,
                )
            )
            groups.append(group)
            if rng.random() < 0.3:  # no egress unless a rule allows it
                for stored in b.o.list(SecurityGroupRule, security_group_id=group.id):
                    b.o.delete(SecurityGroupRule, stored.record.id)
            for _ in range(rng.randint(0, 3)):
                self._security_group_rule(rng, group, groups)
        return groups

    def _security_group_rule(
        self, rng: random.Random, group: SecurityGroup, groups: list[SecurityGroup]
    ) -> None:
        body: dict[str, Any] = {
            "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "tenant_id": str(self.tid),
            "security_group_id": str(group.id),
            "direction": rng.choice(("ingress", "egress")),
        }
        proto = rng.choice((None, "tcp", "udp", "icmp"))
        if proto is not None:
            body["protocol"] = proto
            if proto == "icmp" and rng.random() < 0.5:
                body["port_range_min"] = rng.choice((0, 8))
            elif proto != "icmp" and rng.random() < 0.7:
                low = rng.choice((22, 53, 80, 1024))
                body["port_range_min"], body["port_range_max"] = low, low + rng.choice((0, 100))
        remote = rng.random()
        if remote < 0.3:
            body["remote_ip_prefix"] = rng.choice([*SUBNETS, INNER, "10.0.1.10/32", "0.0.0.0/0"])
        elif remote < 0.5:
            body["remote_group_id"] = str(rng.choice(groups).id)
        with contextlib.suppress(AlreadyExists):  # a duplicate of a rule drawn before
            self.b.o.create(from_dict(SecurityGroupRule, body))

    def chain(self, p: float = 0.25) -> uuid.UUID | None:
        if self.chains and self.rng.random() < p:
            return self.rng.choice(self.chains).id
        return None

    def _vm(self, bridge: Bridge, b: int, v: int, ips: tuple[Any, ...]) -> Port:
        rng, mac = self.rng, vm_mac(b, v)
        self.b.macs.add(mac)
        for a in ips:
            (self.b.v4 if a.version == 4 else self.b.v6).add(str(a))
        secured = self.maybe(0.4)
        pairs: tuple[AddressPair, ...] = ()
        if secured and rng.random() < 0.5:
            pair_net = net(f"10.0.{b}.128/25") if b < 4 else net("0.0.0.0/0")
            pairs = (AddressPair(ip=pair_net, mac=rng.choice((None, vm_mac(b, 99)))),)
        port = self.b._bport(
            self.tid,
            bridge,
            f"{self.name}/b{b}/vm{v}",
            mac=mac,
            fixed_ips=ips,
            port_security=secured,
            allowed_address_pairs=pairs,
            admin_state_up=not self.maybe(0.05),
            inbound_chain_id=self.chain(0.2),
            outbound_chain_id=self.chain(0.2),
            port_group_ids=(self.groups[0].id,) if self.groups and self.maybe(0.5) else (),
            security_group_ids=tuple(
                g.id for g in self.security_groups if self.sg_rng.random() < 0.4
            ),
        )
        self.exterior.append(port)
        self.ports.append(port)
        if not self.maybe(0.1):
            self.b.bind(port, self.b.hosts)
        return port

    def segment(self, router: Router, k: int, cidr: str, r: int = 0) -> Port:
        """A bridge on ``cidr`` behind router port ``k``, with VMs (and IPv6, sometimes)."""
        b, rng = self.b, self.rng
        subnet = net(cidr)
        static = ()
        if self.maybe(0.3):
            static = (ArpEntry(ip=subnet.network_address + 77, mac=vm_mac(k, 77)),)
            b.v4.add(str(subnet.network_address + 77))
        bridge = b.create(
            Bridge(
                id=b.new_id(),
                tenant_id=self.tid,
                name=f"{self.name}/b{k}",
                inbound_chain_id=self.chain(0.15),
                outbound_chain_id=self.chain(0.15),
                static_arp=static,
            )
        )
        rport = b._rport(
            self.tid,
            router,
            f"{self.name}/r{r}/p{k}",
            router_mac(r, k),
            subnet.network_address + 1,
            subnet,
            inbound_chain_id=self.chain(0.15),
            outbound_chain_id=self.chain(0.15),
        )
        self.ports.append(rport)
        b._link_to(bridge, rport, self.tid, f"{self.name}/b{k}/up")
        v6 = k <= 2 and self.maybe(0.5)
        if v6:
            prefix = net(V6[k - 1])
            r6 = b._rport(
                self.tid,
                router,
                f"{self.name}/r{r}/p{k}v6",
                router_mac(r, 16 + k),
                prefix.network_address + 1,
                prefix,
            )
            b._link_to(bridge, r6, self.tid, f"{self.name}/b{k}/up6")
        first = 5 if subnet.prefixlen == 28 else 10
        for v in range(2 if b.simple else rng.randint(1, 4)):
            ips: tuple[Any, ...] = (subnet.network_address + first + v,)
            if v6:
                ips = (*ips, net(V6[k - 1]).network_address + 16 + v)
            self._vm(bridge, k, v, ips)
        b.v4.update(
            str(subnet.network_address + n) for n in (50, 99, 255) if n < subnet.num_addresses
        )
        if self.maybe(0.3):  # a port with no MAC or address (a VM nothing is known about)
            bare = b._bport(self.tid, bridge, f"{self.name}/b{k}/bare")
            self.exterior.append(bare)
            b.bind(bare, b.hosts)
        return rport

    def inner(self, router: Router) -> Port:
        """A second router behind a /30, with ``INNER`` behind it."""
        b = self.b
        inner = b.create(
            Router(
                id=b.new_id(),
                tenant_id=self.tid,
                name=f"{self.name}/r1",
                inbound_chain_id=self.chain(0.15),
            )
        )
        subnet = net(LINK[2])
        near = b._rport(
            self.tid, router, f"{self.name}/r0/link", router_mac(0, 9), ip(LINK[0]), subnet
        )
        far = b._rport(
            self.tid, inner, f"{self.name}/r1/link", router_mac(1, 9), ip(LINK[1]), subnet
        )
        b.o.link(near.id, far.id)
        self.segment(inner, 3, INNER, r=1)
        b._route(
            self.tid, inner, "0.0.0.0/0", far, ip(LINK[0]) if self.rng.random() < 0.7 else None
        )
        return near

    def vpn(self, router: Router) -> Port:
        """An exterior port of the router itself, bound to a host."""
        b = self.b
        subnet = net(VPN)
        port = b._rport(
            self.tid,
            router,
            f"{self.name}/r0/vpn",
            router_mac(0, 8),
            subnet.network_address + 1,
            subnet,
            inbound_chain_id=self.chain(0.2),
        )
        b.v4.update(("172.16.0.2", "172.16.5.9"))
        self.exterior.append(port)
        b.bind(port, b.hosts)
        return port

    def gateway(self, router: Router) -> Port:
        """The router's port toward the operator (see the module doc: edge or direct)."""
        b, i = self.b, self.i
        mac = "02:00:00:00:0f:01" if self.shared_gw_mac else f"02:00:00:0f:{i:02x}:01"
        subnet = EXTERNAL if b.direct else TRANSIT
        gw = b._rport(
            self.tid,
            router,
            f"{self.name}/r0/gw",
            mac,
            gw_address(i, b.direct),
            subnet,
            outbound_chain_id=self.chain(0.15),
        )
        if b.direct:
            ext_port = b._bport(b.op, b.ext, f"op/ext/t{i}")
            b.o.link(gw.id, ext_port.id)  # the operator's act: onto its shared bridge
        else:
            b.o.link(gw.id, b.edge_links[i].id)
        return gw

    def routes(
        self,
        router: Router,
        inside: list[Port],
        inner: Port | None,
        vpn: Port | None,
        gw: Port | None,
    ) -> None:
        b, rng, tid = self.b, self.rng, self.tid
        if inner is not None:
            b._route(tid, router, INNER, inner, ip(LINK[1]) if rng.random() < 0.5 else None)
        if vpn is not None:
            b._route(tid, router, "172.16.5.0/24", vpn, ip("172.16.0.2"))
        if gw is not None:
            direct = b.direct
            upstream = UPSTREAM if direct else ip(f"100.64.0.{4 * self.i + 1}")
            others = [gw_address(j, direct) for j in range(self.tenants) if j != self.i]
            choices = [upstream, upstream, None, *others]
            if b.simple:
                b._route(tid, router, "0.0.0.0/0", gw, upstream)
                return
            count = rng.choice((0, 1, 1, 1, 2, 3))
            ecmp = rng.random() < 0.7
            for n, gateway in enumerate(rng.sample(choices, k=min(count, len(choices)))):
                b._route(tid, router, "0.0.0.0/0", gw, gateway, weight=100 if ecmp else 100 + n)
            if self.maybe(0.3):
                b._route(tid, router, "0.0.0.0/0", gw, upstream, src=SUBNETS[1], weight=50)
            if self.maybe(0.3):
                b._route(tid, router, "198.51.100.0/24", gw, rng.choice(choices))
            if self.maybe(0.3):
                b._route(tid, router, "::/0", gw, None)
        if self.maybe(0.6):
            b._route(tid, router, BLACKHOLE, None, None, kind=RouteType.BLACKHOLE)
        if self.maybe(0.6):
            src = SUBNETS[0] if rng.random() < 0.3 else None
            b._route(tid, router, REJECT, None, None, kind=RouteType.REJECT, src=src)
        if self.maybe(0.2):
            b._route(tid, router, "::/0", None, None, kind=RouteType.BLACKHOLE)
        if self.maybe(0.5):  # an ECMP group across the two inside ports
            for k, port in enumerate(inside, 1):
                b._route(tid, router, ECMP_INSIDE, port, ip(f"10.0.{k}.50"))
        b.v4.update(("10.0.66.5", "10.0.77.5", "10.0.88.5", "10.0.3.10", "10.0.3.99"))

    # -- rules ----------------------------------------------------------------------------------
    def rules(self) -> None:
        b, rng = self.b, self.rng
        for c, chain in enumerate(self.chains):
            later = self.chains[c + 1 :]
            for _ in range(rng.randint(1, 5)):
                action = rng.choices(
                    _ACTIONS,
                    weights=_ACTION_WEIGHTS,
                )[0]
                if action is RuleAction.JUMP and not later:
                    action = RuleAction.ACCEPT
                nat = ()
                if action is RuleAction.DNAT:
                    nat = (NatTarget(start=ip("10.0.1.10"), end=ip("10.0.1.11")),)
                b.create(
                    Rule(
                        id=b.new_id(),
                        tenant_id=self.tid,
                        name=f"{chain.name}/{action}",
                        chain_id=chain.id,
                        condition=self.condition(),
                        action=action,
                        jump_chain_id=rng.choice(later).id if action is RuleAction.JUMP else None,
                        nat_targets=nat,
                    )
                )

    def condition(self) -> Condition:
        rng = self.rng
        fields: dict[str, Any] = {}
        for feature in rng.sample(_FEATURES, k=rng.choice((0, 1, 1, 2, 2, 3))):
            self._feature(feature, fields)
        for name in list(fields):
            inv = "inv_" + name.replace("_ids", "s").removesuffix("_id")
            if rng.random() < 0.15 and inv in _INVERTIBLE:
                fields[inv] = True
        return Condition(**fields)

    def _feature(self, feature: str, fields: dict[str, Any]) -> None:
        rng = self.rng
        if feature in ("in_port_ids", "out_port_ids"):
            fields[feature] = tuple(p.id for p in rng.sample(self.ports, k=min(2, len(self.ports))))
        elif feature in ("in_port_group_id", "out_port_group_id") and self.groups:
            fields[feature] = self.groups[0].id
        elif feature == "eth_type":
            fields[feature] = rng.choice((0x0800, 0x0806, 0x86DD))
        elif feature in ("eth_src", "eth_dst"):
            fields[feature] = rng.choice(sorted(self.b.macs))
        elif feature == "nw":
            cidrs = [*SUBNETS, INNER, "10.0.1.10/32", "0.0.0.0/1", str(EXTERNAL), VPN]
            for side in ("nw_src", "nw_dst"):
                if rng.random() < 0.6:
                    fields[side] = net(rng.choice(cidrs))
            if rng.random() < 0.15:
                fields.pop("nw_src", None)
                fields["nw_dst"] = net(V6[0])
        elif feature == "addr_group":
            side = rng.choice(("ip_addr_group_src_id", "ip_addr_group_dst_id"))
            fields[side] = rng.choice(self.addr_groups).id
        elif feature == "l4":
            proto = rng.choice((6, 17, 1))
            fields["nw_proto"] = proto
            if proto == 1:
                fields["icmp_type"] = rng.choice((0, 8, 3, 11))
            else:
                start = rng.choice((0, 22, 53, 80, 1024))
                fields["tp_dst" if rng.random() < 0.7 else "tp_src"] = PortRange(
                    start=start, end=start + rng.choice((0, 0, 100, 65535 - start))
                )
        elif feature == "ct_state":
            fields[feature] = rng.choice((CtState.NEW, CtState.ESTABLISHED))


_ACTIONS = (
    RuleAction.ACCEPT,
    RuleAction.DROP,
    RuleAction.REJECT,
    RuleAction.JUMP,
    RuleAction.RETURN,
    RuleAction.CONTINUE,
    RuleAction.DNAT,  # NAT fails closed (drops) until the stateful issue
    RuleAction.MASQUERADE,
)
_ACTION_WEIGHTS = (40, 14, 12, 12, 8, 6, 2, 1)
_FEATURES = (
    "in_port_ids",
    "out_port_ids",
    "in_port_group_id",
    "out_port_group_id",
    "eth_type",
    "eth_src",
    "eth_dst",
    "nw",
    "addr_group",
    "l4",
    "ct_state",
)
_INVERTIBLE = frozenset(f.name for f in dataclasses.fields(Condition) if f.name.startswith("inv_"))
