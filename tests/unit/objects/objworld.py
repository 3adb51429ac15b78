"""Builders of valid records for the object layer's tests (one tenant at a time)."""

from __future__ import annotations

import ipaddress
import uuid

from tenet.model import Bridge, Chain, DeviceType, Port, Router, Tenant
from tenet.model.types import MAC
from tenet.store.boundary import ADMIN, Actor
from tenet.store.objects import ObjectStore


class Topo:
    """Builders of valid records for one tenant."""

    def __init__(self, objects: ObjectStore, name: str = "acme") -> None:
        self.o = objects
        self.tenant = objects.create(Tenant(name=name)).record
        self.member = Actor.member(self.tenant.id)
        self.admin = ADMIN
        self._mac = 0

    def mac(self) -> MAC:
        self._mac += 1
        return MAC(f"02:00:00:00:{self._mac >> 8:02x}:{self._mac & 0xFF:02x}")

    def bridge(self, **kw: object) -> Bridge:
        return self.o.create(Bridge(tenant_id=self.tenant.id, **kw)).record  # type: ignore[arg-type]

    def router(self) -> Router:
        return self.o.create(Router(tenant_id=self.tenant.id)).record

    def bport(self, bridge: Bridge, **kw: object) -> Port:
        port = Port(
            tenant_id=self.tenant.id, device_id=bridge.id, device_type=DeviceType.BRIDGE, **kw
        )  # type: ignore[arg-type]
        return self.o.create(port).record

    def rport(self, router: Router, cidr: str = "10.0.0.0/24", **kw: object) -> Port:
        net = ipaddress.ip_network(cidr)
        port = Port(
            tenant_id=self.tenant.id,
            device_id=router.id,
            device_type=DeviceType.ROUTER,
            mac=self.mac(),
            address=next(net.hosts()),
            subnet=net,
            **kw,  # type: ignore[arg-type]
        )
        return self.o.create(port).record

    def chain(self) -> Chain:
        return self.o.create(Chain(tenant_id=self.tenant.id)).record

    def port(self, ident: uuid.UUID) -> Port:
        return self.o.get(Port, ident).record
