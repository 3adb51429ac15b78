"""A small tenant built through the object layer: a bridge, VM ports, security groups.

Shared by the security-group tests of the object layer and of the simulation: the
records the simulation runs are the ones the object layer compiled.
"""

from __future__ import annotations

import ipaddress
import uuid
from typing import Any

from tenet.clock import FakeClock
from tenet.model import (
    MAC,
    Bridge,
    Chain,
    DeviceType,
    Host,
    IPAddrGroup,
    Port,
    PortBinding,
    Rule,
    SecurityGroup,
    SecurityGroupRule,
    Tenant,
    from_dict,
)
from tenet.simulation import TopologyView
from tenet.store.memory import MemoryStore
from tenet.store.objects import ObjectStore


class World:
    def __init__(self) -> None:
        self.clock = FakeClock()
        self.o = ObjectStore(MemoryStore(self.clock), self.clock)
        self.tenant = self.o.create(Tenant(name="acme")).record
        self.bridge = self.o.create(Bridge(tenant_id=self.tenant.id, name="net")).record
        self.host = self.o.create(Host(name="h1")).record
        self._n = 0

    def group(self, name: str, **fields: Any) -> SecurityGroup:
        return self.o.create(SecurityGroup(tenant_id=self.tenant.id, name=name, **fields)).record

    def rule(self, group: SecurityGroup, **fields: Any) -> SecurityGroupRule:
        body = {"tenant_id": str(self.tenant.id), "security_group_id": str(group.id), **fields}
        return self.o.create(from_dict(SecurityGroupRule, body)).record

    def port(self, name: str, ip: str, *groups: SecurityGroup, bind: bool = True) -> Port:
        self._n += 1
        port = self.o.create(
            Port(
                tenant_id=self.tenant.id,
                device_id=self.bridge.id,
                device_type=DeviceType.BRIDGE,
                name=name,
                mac=MAC(f"02:00:00:00:00:{self._n:02x}"),
                fixed_ips=(ipaddress.ip_address(ip),),
                security_group_ids=tuple(g.id for g in groups),
            )
        ).record
        if bind:
            self.o.create(
                PortBinding(port_id=port.id, host_id=self.host.id, interface=f"tap{self._n}")
            )
        return port

    # -- reading back ---------------------------------------------------------------------
    def get_group(self, group: SecurityGroup | uuid.UUID) -> SecurityGroup:
        ident = group if isinstance(group, uuid.UUID) else group.id
        return self.o.get(SecurityGroup, ident).record

    def chain(self, group: SecurityGroup, direction: str) -> Chain:
        chain_id = group.ingress_chain_id if direction == "ingress" else group.egress_chain_id
        assert chain_id is not None
        return self.o.get(Chain, chain_id).record

    def chain_rules(self, group: SecurityGroup, direction: str) -> list[Rule]:
        return [self.o.get(Rule, r).record for r in self.chain(group, direction).rule_ids]

    def members(self, group: SecurityGroup) -> list[str]:
        assert group.ip_addr_group_id is not None
        record = self.o.get(IPAddrGroup, group.ip_addr_group_id).record
        return [str(a) for a in record.addresses]

    def group_rules(self, group: SecurityGroup) -> list[SecurityGroupRule]:
        return [s.record for s in self.o.list(SecurityGroupRule, security_group_id=group.id)]

    def view(self) -> TopologyView:
        records, _ = self.o.snapshot()
        return TopologyView.build(records, self.host.id)
