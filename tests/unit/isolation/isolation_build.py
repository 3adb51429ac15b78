"""Building worlds: hosts, the operator, the tenants (``isolation_tenant``), learned state.

:func:`build_world` makes the :class:`~isolation_world.World` of a seed (see
``isolation_world`` for what a world holds). Every record is created through the
object layer (``ObjectStore`` over a ``MemoryStore``, as the admin), so records are
valid and references whole; ids come from the seed, so one seed is one world.

``simple=True`` builds the fixed skeleton the random worlds vary on, for tests
that follow one packet by hand: no chains, no port security, every port up and
bound, two VMs per segment, each tenant's public segment and gateway, one default
route upstream, no IPv6, inner router or VPN port. ``before_snapshot`` is called
with the builder once every record is stored (a test adds its own records there).
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from isolation_tenant import TenantBuilder
from isolation_world import (
    BROADCAST,
    EDGE_EXT,
    EXTERNAL,
    UNDERLAY,
    UPSTREAM,
    World,
    gw_address,
    ip,
    net,
    public_net,
)

from tenet.clock import FakeClock
from tenet.model import (
    Bridge,
    DeviceType,
    Host,
    IPAddrGroup,
    Port,
    PortBinding,
    Route,
    Router,
    RouteType,
    Tenant,
    TenantRecord,
    TunnelZone,
    TunnelZoneMember,
)
from tenet.packets import mac_from_str
from tenet.simulation import DictState, TopologyView
from tenet.store import MemoryStore
from tenet.store.objects import ObjectStore


class WorldBuilder:
    """The records of one world, created through the object store ``o``, and what the
    packets are drawn from (MACs and addresses the world knows)."""

    def __init__(self, seed: int, direct: bool | None = None, simple: bool = False) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.direct = self.rng.random() < 0.5 if direct is None else direct
        self.simple = simple
        self.standard = False
        self.tenant_ids: list[uuid.UUID] = []
        self.tenant_routers: list[Router] = []
        self.o = ObjectStore(MemoryStore(FakeClock()), FakeClock())
        self.hosts: list[uuid.UUID] = []
        self.ifaces = 0
        self.ingress: dict[uuid.UUID, list[Port]] = {}
        self.macs: set[str] = {BROADCAST, "01:00:5e:00:00:05", "33:33:00:00:00:01"}
        self.v4: set[str] = {"8.8.8.8", "0.0.0.0", "255.255.255.255", "224.0.0.5"}
        self.v4.update(str(a) for a in (UPSTREAM, EDGE_EXT, EXTERNAL.network_address + 200))
        self.v6: set[str] = {"2001:db8::1", "ff02::1", "::", "fd00:9::9"}

    def maybe(self, p: float) -> bool:
        """An optional feature, with probability ``p`` (never in a simple world)."""
        return not self.simple and self.rng.random() < p

    def new_id(self) -> uuid.UUID:
        return uuid.UUID(int=self.rng.getrandbits(128), version=4)

    def create(self, record: Any) -> Any:
        return self.o.create(record).record

    def bind(self, port: Port, hosts: Sequence[uuid.UUID]) -> None:
        self.ifaces += 1
        self.create(
            PortBinding(
                id=self.new_id(),
                port_id=port.id,
                host_id=self.rng.choice(hosts),
                interface=f"tap{self.ifaces}",
            )
        )

    # -- the operator ---------------------------------------------------------------------------
    def infrastructure(self) -> None:
        zone = self.create(TunnelZone(id=self.new_id(), name="zone"))
        names = ["local", "compute1", "compute2", "gateway"]
        if self.maybe(0.3):
            names.append("no-tunnel")  # a host with no underlay address
        for n, name in enumerate(names, 1):
            host = self.create(Host(id=self.new_id(), name=name))
            self.hosts.append(host.id)
            if name != "no-tunnel":
                self.create(
                    TunnelZoneMember(
                        id=self.new_id(),
                        tunnel_zone_id=zone.id,
                        host_id=host.id,
                        address=ip(UNDERLAY.format(n)),
                    )
                )

    def operator(self, tenants: int) -> None:
        op = self.create(Tenant(id=self.new_id(), name="operator"))
        self.op = op.id
        self.shared_group = self.create(
            IPAddrGroup(
                id=self.new_id(),
                tenant_id=op.id,
                name="op/public",
                addresses=(net("198.51.100.0/24"), EXTERNAL),
                shared=True,
            )
        )
        ext = self.create(Bridge(id=self.new_id(), tenant_id=op.id, name="op/ext", shared=True))
        self.ext = ext
        gateway_host = [self.hosts[3]]
        upstream = self.create(
            Port(
                id=self.new_id(),
                tenant_id=op.id,
                device_id=ext.id,
                device_type=DeviceType.BRIDGE,
                name="op/ext/upstream",
                mac="02:00:00:ee:00:01",
                fixed_ips=(UPSTREAM,),
            )
        )
        self.bind(upstream, gateway_host)
        if self.maybe(0.5):
            bare = self.create(
                Port(
                    id=self.new_id(),
                    tenant_id=op.id,
                    device_id=ext.id,
                    device_type=DeviceType.BRIDGE,
                    name="op/ext/uplink",
                )
            )
            self.bind(bare, gateway_host)
        self.macs.add("02:00:00:ee:00:01")
        edge = self.create(Router(id=self.new_id(), tenant_id=op.id, name="op/edge"))
        self.edge = edge
        edge_ext = self._rport(op.id, edge, "op/edge/ext", "02:00:00:ee:01:00", EDGE_EXT, EXTERNAL)
        self._link_to(ext, edge_ext, op.id, "op/ext/edge")
        self.edge_ext = edge_ext
        self._route(op.id, edge, "0.0.0.0/0", edge_ext, UPSTREAM)
        self.edge_links: list[Port] = []
        if not self.direct:
            for i in range(tenants):
                link = net(f"100.64.0.{4 * i}/30")
                port = self._rport(
                    op.id,
                    edge,
                    f"op/edge/t{i}",
                    f"02:00:00:ee:01:{i + 1:02x}",
                    link.network_address + 1,
                    link,
                )
                self.edge_links.append(port)
                self.v4.add(str(link.network_address + 1))
        self.macs.update(f"02:00:00:ee:01:{k:02x}" for k in range(tenants + 1))

    def edge_routes(self, tenants: int) -> None:
        for i in range(tenants):
            if self.direct:
                self._route(
                    self.op, self.edge, str(public_net(i)), self.edge_ext, gw_address(i, True)
                )
            else:
                self._route(self.op, self.edge, str(public_net(i)), self.edge_links[i], None)

    # -- records --------------------------------------------------------------------------------
    def _rport(
        self,
        tenant: uuid.UUID,
        router: Router,
        name: str,
        mac: str,
        address: Any,
        subnet: Any,
        **extra: Any,
    ) -> Port:
        self.macs.add(mac)
        (self.v4 if address.version == 4 else self.v6).add(str(address))
        return self.create(
            Port(
                id=self.new_id(),
                tenant_id=tenant,
                device_id=router.id,
                device_type=DeviceType.ROUTER,
                name=name,
                mac=mac,
                address=address,
                subnet=subnet,
                **extra,
            )
        )

    def _bport(self, tenant: uuid.UUID, bridge: Bridge, name: str, **extra: Any) -> Port:
        return self.create(
            Port(
                id=self.new_id(),
                tenant_id=tenant,
                device_id=bridge.id,
                device_type=DeviceType.BRIDGE,
                name=name,
                **extra,
            )
        )

    def _link_to(self, bridge: Bridge, rport: Port, tenant: uuid.UUID, name: str) -> Port:
        """A port on ``bridge`` peered to router port ``rport``."""
        bport = self._bport(tenant, bridge, name)
        self.o.link(bport.id, rport.id)
        return bport

    def _route(
        self,
        tenant: uuid.UUID,
        router: Router,
        dst: str,
        port: Port | None,
        gateway: Any,
        *,
        kind: RouteType = RouteType.NORMAL,
        weight: int = 100,
        src: str | None = None,
    ) -> None:
        self.create(
            Route(
                id=self.new_id(),
                tenant_id=tenant,
                router_id=router.id,
                name=f"{router.name}:{dst}",
                dst=net(dst),
                src=net(src) if src is not None else None,
                type=kind,
                next_hop_port_id=port.id if port is not None else None,
                next_hop_gateway=gateway,
                weight=weight,
            )
        )

    def build(self, tenants: int, before_snapshot: Callable[[WorldBuilder], None] | None) -> World:
        self.infrastructure()
        self.operator(tenants)
        shared_gw_mac = self.maybe(0.3)
        for i in range(tenants):
            TenantBuilder(self, i, tenants, shared_gw_mac).build()
        self.edge_routes(tenants)
        if before_snapshot is not None:
            before_snapshot(self)
        records, _ = self.o.snapshot()
        records = list(records)
        local = self.hosts[0]
        view = TopologyView.build(records, local_host_id=local)
        owner: dict[uuid.UUID, uuid.UUID] = {}
        names: dict[uuid.UUID, str] = {}
        for record in records:
            if isinstance(record, TenantRecord):
                owner[record.id] = record.tenant_id
            elif isinstance(record, Tenant):
                owner[record.id] = record.id
            if record.name:
                names[record.id] = record.name
        return World(
            seed=self.seed,
            direct=self.direct,
            records=records,
            view=view,
            state=DictState() if self.simple else _state(self.rng, view, self.macs, self.v4),
            operator=self.op,
            tenants=tuple(self.tenant_ids),
            owner=owner,
            names=names,
            ingress={t: tuple(ports) for t, ports in self.ingress.items()},
            macs=tuple(sorted(self.macs)),
            v4=tuple(sorted(self.v4)),
            v6=tuple(sorted(self.v6)),
            outside=tuple(sorted(self.outside(tenants))),
            gateways=_gateways(view),
            standard=self.standard,
        )

    def outside(self, tenants: int) -> set[str]:
        out = {"8.8.8.8", str(UPSTREAM), str(EDGE_EXT), "203.0.113.200", "172.16.5.9"}
        for i in range(tenants):
            out.add(str(gw_address(i, self.direct)))
            out.update(str(public_net(i).network_address + n) for n in (1, 5, 6, 9))
        return out


def _gateways(view: TopologyView) -> dict[uuid.UUID, tuple[tuple[bytes, ...], tuple[Any, ...]]]:
    out = {}
    for port in view.ports.values():
        if port.peer_id is not None:
            continue
        if port.device_type is DeviceType.ROUTER:
            assert port.mac is not None
            out[port.id] = ((mac_from_str(port.mac),), (port.address,))
            continue
        routers = [view.peer(p) for p in view.device_ports.get(port.device_id, ())]
        found = [r for r in routers if r is not None and r.mac is not None]
        out[port.id] = (
            tuple(mac_from_str(r.mac) for r in found if r.mac is not None),
            tuple(r.address for r in found),
        )
    return out


def _state(
    rng: random.Random, view: TopologyView, mac_set: set[str], v4_set: set[str]
) -> DictState:
    """Random learned MAC entries on every bridge and ARP entries on every router."""
    macs, v4 = sorted(mac_set), sorted(v4_set)
    state = DictState()
    all_ports = sorted(view.ports.values(), key=lambda p: p.id)
    bridge_ports = [p for p in all_ports if p.device_type is DeviceType.BRIDGE]
    for bridge_id in sorted(view.bridges):
        ports = view.device_ports.get(bridge_id, ())
        if not ports:
            continue
        for mac in rng.sample(macs, k=min(len(macs), rng.randint(0, 8))):
            if mac[1] in "13579bdf":  # multicast: never learned
                continue
            if rng.random() < 0.05:  # stale or corrupted: a port of another bridge
                state.macs[(bridge_id, mac_from_str(mac))] = rng.choice(bridge_ports).id
            else:
                state.macs[(bridge_id, mac_from_str(mac))] = rng.choice(ports).id
    for router_id in sorted(view.routers):
        for address in rng.sample(v4, k=min(len(v4), rng.randint(0, 6))):
            key = (router_id, ip(address))
            if rng.random() < 0.15:
                state.failed.add(key)
            else:
                state.arps[key] = mac_from_str(rng.choice(macs[1:]))
    return state


def build_world(
    seed: int,
    *,
    tenants: int | None = None,
    direct: bool | None = None,
    simple: bool = False,
    before_snapshot: Callable[[WorldBuilder], None] | None = None,
) -> World:
    """The world of ``seed``: 2-4 tenants, edge or direct attachment, unless given."""
    builder = WorldBuilder(seed, direct, simple)
    builder.standard = (tenants, direct, simple, before_snapshot) == (None, None, False, None)
    count = tenants if tenants is not None else builder.rng.randint(2, 4)
    return builder.build(count, before_snapshot)
