"""Security groups in the agent: a change to a group's rules, to its members or to
the group re-simulates the flows through ports of the group, and only those."""

from __future__ import annotations

import ipaddress
import uuid

from agent_helpers import Host, mac, udp

from tenet.clock import FakeClock
from tenet.datapath.base import Output
from tenet.model import Bridge as BridgeRecord
from tenet.model import (
    DeviceType,
    Port,
    PortBinding,
    Record,
    SecurityGroup,
    SecurityGroupRule,
    Tenant,
    from_dict,
)
from tenet.model import Host as HostRecord
from tenet.model.types import MAC
from tenet.store.memory import MemoryStore
from tenet.store.objects import ObjectStore


class Net:
    """One bridge on one host: vm1 (no group), vm2 (in group web), vm3 (in group db)."""

    def __init__(self) -> None:
        clock = FakeClock()
        self.o = ObjectStore(MemoryStore(clock), clock)
        tenant = self.o.create(Tenant(name="t")).record
        bridge = self.o.create(BridgeRecord(tenant_id=tenant.id, name="b")).record
        host = self.o.create(HostRecord(name="h1")).record
        self.tenant = tenant
        self.web = self.o.create(SecurityGroup(tenant_id=tenant.id, name="web")).record
        self.db = self.o.create(SecurityGroup(tenant_id=tenant.id, name="db")).record
        groups = {1: (), 2: (self.web.id,), 3: (self.db.id,)}
        self.ports: dict[int, Port] = {}
        for i in (1, 2, 3):
            port = Port(tenant_id=tenant.id, device_id=bridge.id, device_type=DeviceType.BRIDGE,
                        name=f"vm{i}", mac=MAC(f"02:00:00:00:00:0{i}"),
                        fixed_ips=(ipaddress.ip_address(f"10.0.0.{i}"),),
                        security_group_ids=groups[i])  # fmt: skip
            self.ports[i] = self.o.create(port).record
            self.o.create(PortBinding(port_id=port.id, host_id=host.id, interface=f"tap{i}"))
        records, _ = self.o.snapshot()
        self.seen = {r.id: r for r in records}
        self.host = Host(host.id, records)
        for i, port in self.ports.items():  # their MACs are learned: no state to write
            self.host.learned.macs[(bridge.id, mac(f"02:00:00:00:00:0{i}"))] = port.id

    def sync(self) -> None:
        """Hand the agent every record that changed in the store since the last sync."""
        records, _ = self.o.snapshot()
        now: dict[uuid.UUID, Record] = {r.id: r for r in records}
        for ident, record in now.items():
            if self.seen.get(ident) != record:
                self.host.change(record)
        for ident, record in self.seen.items():
            if ident not in now:
                self.host.delete(record)
        self.seen = now

    def rule(self, group: SecurityGroup, **fields: object) -> SecurityGroupRule:
        body = {"tenant_id": str(self.tenant.id), "security_group_id": str(group.id), **fields}
        return self.o.create(from_dict(SecurityGroupRule, body)).record

    def send(self, src: int, dst: int) -> tuple[bool, bool]:
        """UDP vm<src> -> vm<dst>: (went up to the agent, delivered to vm<dst>)."""
        frame = udp(f"02:00:00:00:00:0{src}", f"02:00:00:00:00:0{dst}", f"10.0.0.{src}",
                    f"10.0.0.{dst}")  # fmt: skip
        sent = self.host.send(frame, self.ports[src].id)
        out = Output(self.host.port_no(self.ports[dst].id))
        return sent.upcalled, any(where == out for where, _ in sent.out)


def test_a_new_rule_re_simulates_the_flows_through_its_groups_ports_only() -> None:
    net = Net()
    assert net.send(1, 2) == (True, False)  # no ingress rule of web allows UDP 53
    assert net.send(1, 2) == (False, False)  # the drop is a flow
    assert net.send(2, 1) == (True, True)  # egress: the default rules
    net.rule(net.web, direction="ingress", protocol="udp", port_range_min=53, port_range_max=53)
    net.sync()
    assert net.send(1, 2) == (True, True)  # its flow went with the chain's change
    assert net.send(2, 1) == (False, True)  # web's egress chain did not change: kept
    assert net.send(1, 2) == (False, True)


def test_a_port_joining_a_remote_group_re_simulates_the_flows_that_matched_it() -> None:
    net = Net()
    net.rule(net.db, direction="ingress", remote_group_id=str(net.web.id))
    net.sync()
    assert net.send(2, 3) == (True, True)  # vm2 is in web
    assert net.send(1, 3) == (True, False)  # vm1 is not
    assert net.send(1, 3) == (False, False)
    vm1 = net.o.get(Port, net.ports[1].id).record
    net.o.update(vm1.replace(security_group_ids=(net.web.id,)))
    net.sync()
    assert net.send(1, 3) == (True, True)


def test_a_group_made_stateless_or_renamed_re_simulates_its_flows() -> None:
    net = Net()
    assert net.send(1, 2) == (True, False)
    net.o.update(net.o.get(SecurityGroup, net.web.id).record.replace(stateful=False))
    net.sync()
    assert net.send(1, 2) == (True, False)  # simulated again (the group is a tag)
