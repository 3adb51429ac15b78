"""Bindings on one host: waiting for their interface, bound, refused with a reason, and
the traffic through them, against a fake datapath and a table of the host's links."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import uuid

import pytest
from agent_helpers import mac, udp

from tenet.agent.bindings import (
    TRANSITIONS,
    IllegalTransition,
    PortStatus,
    Seen,
    State,
    next_state,
)
from tenet.agent.core import AgentCore
from tenet.agent.learned import LearnedState
from tenet.agent.links import (
    AddressSeen,
    FakeLinks,
    Link,
    LinkDump,
    LinkGone,
    LinkSeen,
    LinkTable,
)
from tenet.datapath.base import Output
from tenet.datapath.fake import FakeDatapath
from tenet.model import Bridge, DeviceType, Port, PortBinding, Record, Tenant
from tenet.model import Host as HostRecord
from tenet.model.types import MAC

HOST = uuid.uuid4()
UNDERLAY = ipaddress.IPv4Address("192.0.2.1")
VM1_MAC, VM2_MAC = "02:00:00:00:00:01", "02:00:00:00:00:02"


class Agent:
    """An agent core whose bindings follow a table of links the test changes."""

    def __init__(self, records: list[Record]) -> None:
        self.dp = FakeDatapath()
        self.learned = LearnedState()
        self.core = AgentCore(HOST, self.dp, self.learned)
        self.table = LinkTable()
        self.control = FakeLinks(self.table)
        bindings = self.core.bindings
        bindings.links, bindings.control, bindings.underlay = self.table, self.control, UNDERLAY
        self.table.apply(
            LinkDump(
                (Link(1, "lo", 65536, loopback=True), Link(2, "ul0", 1500, kind="veth")),
                ((2, UNDERLAY),),
            )
        )
        self.records = records
        self.core.load(records)

    def link(self, index: int, name: str, **attrs: object) -> None:
        self.table.apply(LinkSeen(Link(index, name, **attrs)))  # type: ignore[arg-type]
        self.core.sync_ports()

    def gone(self, index: int) -> None:
        self.table.apply(LinkGone(index))
        self.core.sync_ports()

    def status(self, port: Port) -> PortStatus | None:
        return self.core.bindings.status.get(port.id)

    def send(self, frame: bytes, port: Port) -> list[tuple[object, bytes]]:
        before = len(self.dp.sent)
        if self.dp.receive(frame, self.core.port_no[port.id]) is not None:
            for upcall in self.dp.upcalls(0):
                self.core.handle(upcall, 1.0)
        return list(self.dp.sent[before:])


def topology(*interfaces: str) -> tuple[list[Record], list[Port]]:
    """One bridge, one port per interface (10.0.0.N, MAC ...:0N), all bound here."""
    tenant = Tenant(name="t")
    bridge = Bridge(tenant_id=tenant.id, name="b", tunnel_key=9)
    records: list[Record] = [tenant, bridge, HostRecord(id=HOST, name="h1")]
    ports = []
    for n, ifname in enumerate(interfaces, start=1):
        port = Port(
            tenant_id=tenant.id,
            device_id=bridge.id,
            device_type=DeviceType.BRIDGE,
            mac=MAC(f"02:00:00:00:00:0{n}"),
            fixed_ips=(ipaddress.ip_address(f"10.0.0.{n}"),),
            tunnel_key=100 + n,
        )
        ports.append(port)
        records += [port, PortBinding(port_id=port.id, host_id=HOST, interface=ifname)]
    return records, ports


def to_vm2() -> bytes:
    return udp(VM1_MAC, VM2_MAC, "10.0.0.1", "10.0.0.2")


def test_a_binding_waits_for_its_interface_and_is_bound_when_it_appears() -> None:
    records, (vm1,) = topology("tapXYZ")
    agent = Agent(records)
    status = agent.status(vm1)
    assert status is not None
    assert status.state is State.WAITING
    assert "no interface tapXYZ" in status.reason
    assert agent.dp.ports == {}
    assert agent.dp.tunnel_ports == {}

    agent.link(7, "tapXYZ", mtu=1450, kind="veth")
    status = agent.status(vm1)
    assert status == PortStatus(State.BOUND, "tapXYZ", "", 1450)
    assert list(agent.dp.ports.values()) == ["tapXYZ"]
    assert agent.dp.tunnel_ports == {101: agent.core.port_no[vm1.id]}


def test_an_interface_that_goes_is_unbound_and_bound_again_when_it_comes_back() -> None:
    records, (vm1, vm2) = topology("tap1", "tap2")
    agent = Agent(records)
    agent.link(7, "tap1", mtu=1450)
    agent.link(8, "tap2", mtu=1450)
    agent.learned.macs[(vm1.device_id, mac(VM1_MAC))] = vm1.id
    agent.learned.macs[(vm2.device_id, mac(VM2_MAC))] = vm2.id
    first = agent.send(to_vm2(), vm1)
    assert [where for where, _ in first] == [Output(agent.core.port_no[vm2.id])]
    assert agent.dp.flows  # the flow vm1 -> vm2 forwards in the datapath

    agent.gone(8)
    status = agent.status(vm2)
    assert status is not None
    assert status.state is State.WAITING
    assert vm2.id not in agent.core.port_no
    assert 102 not in agent.dp.tunnel_ports
    assert agent.dp.flows == {}  # the flow that output to it is gone
    assert agent.send(to_vm2(), vm1) == []  # nowhere to go while it waits

    agent.link(9, "tap2", mtu=1450)  # made again: a new index, a new datapath port
    assert agent.status(vm2) == PortStatus(State.BOUND, "tap2", "", 1450)
    again = agent.send(to_vm2(), vm1)
    assert [where for where, _ in again] == [Output(agent.core.port_no[vm2.id])]
    assert agent.dp.tunnel_ports[102] == agent.core.port_no[vm2.id]


def test_a_rename_is_a_disappearance_and_an_appearance() -> None:
    records, (vm1,) = topology("tap1")
    agent = Agent(records)
    agent.link(7, "tap1")
    number = agent.core.port_no[vm1.id]
    agent.link(7, "tap1-old")  # renamed away
    status = agent.status(vm1)
    assert status is not None
    assert status.state is State.WAITING
    assert number not in agent.dp.ports
    agent.link(7, "tap1")  # and back
    status = agent.status(vm1)
    assert status is not None
    assert status.state is State.BOUND


def test_the_mtu_is_lowered_to_what_the_tunnel_carries_and_the_link_brought_up() -> None:
    records, (vm1,) = topology("tap1")
    agent = Agent(records)
    agent.link(7, "tap1", mtu=9000, up=False)
    assert ("up", 7, 1) in agent.control.calls
    assert ("mtu", 7, 1450) in agent.control.calls
    assert agent.status(vm1) == PortStatus(State.BOUND, "tap1", "", 1450)


def test_a_link_that_cannot_be_changed_leaves_the_binding_waiting_with_why() -> None:
    records, (vm1,) = topology("tap1")
    agent = Agent(records)
    agent.control.fail = True
    agent.link(7, "tap1", mtu=9000)
    status = agent.status(vm1)
    assert status is not None
    assert status.state is State.WAITING
    assert "cannot attach tap1" in status.reason


@pytest.mark.parametrize(
    ("interface", "reason"),
    [("ul0", "underlay interface"), ("lo", "loopback"), ("tenet-vx", "tunnel device")],
)
def test_bindings_the_agent_must_refuse_are_refused_with_their_reason(
    interface: str, reason: str
) -> None:
    records, (vm1, vm2) = topology(interface, "tap2")
    agent = Agent(records)
    agent.link(8, "tap2")
    status = agent.status(vm1)
    assert status is not None
    assert status.state is State.REFUSED
    assert reason in status.reason
    assert list(agent.dp.ports.values()) == ["tap2"]  # the other port is bound all the same
    assert agent.status(vm2) == PortStatus(State.BOUND, "tap2", "", 1450)


def test_a_vxlan_device_under_another_name_is_refused() -> None:
    records, (vm1,) = topology("vx0")
    agent = Agent(records)
    agent.link(5, "vx0", kind="vxlan")
    status = agent.status(vm1)
    assert status is not None
    assert status.state is State.REFUSED
    assert "tunnel device" in status.reason


def test_a_name_that_is_no_interface_name_is_refused() -> None:
    records, (vm1,) = topology("tap1")
    binding = next(r for r in records if isinstance(r, PortBinding))
    object.__setattr__(binding, "interface", "bad/name")  # past the model's own check
    agent = Agent(records)
    status = agent.status(vm1)
    assert status is not None
    assert status.state is State.REFUSED
    assert "not a valid interface name" in status.reason


def test_an_interface_bound_to_a_port_is_refused_to_another_under_any_of_its_names() -> None:
    records, (vm1, vm2) = topology("tap1", "tap1-alt")
    agent = Agent(records)
    agent.link(7, "tap1", altnames=("tap1-alt",))
    assert agent.status(vm1) == PortStatus(State.BOUND, "tap1", "", 1450)
    status = agent.status(vm2)
    assert status is not None
    assert status.state is State.REFUSED
    assert f"already bound to port {vm1.id}" in status.reason
    assert len(agent.dp.ports) == 1

    binding = next(r for r in records if isinstance(r, PortBinding) and r.port_id == vm1.id)
    agent.core.records.pop(binding.id)  # vm1's binding deleted: vm2 may have it
    agent.core.sync_ports()
    assert vm1.id not in agent.core.bindings.status
    assert agent.status(vm2) == PortStatus(State.BOUND, "tap1-alt", "", 1450)


def test_an_altname_the_kernel_did_not_announce_is_found_by_a_look_up() -> None:
    records, (vm1,) = topology("tap1-alt")
    agent = Agent(records)
    agent.link(7, "tap1")
    assert agent.status(vm1) is not None
    assert agent.status(vm1).state is State.WAITING
    # the kernel's name look-up knows the altname, its events did not say
    agent.control.resolve = lambda name: 7 if name == "tap1-alt" else None  # type: ignore[method-assign]
    agent.core.sync_ports()
    assert agent.status(vm1) == PortStatus(State.BOUND, "tap1-alt", "", 1450)


def test_a_binding_that_leaves_the_host_is_released_and_its_status_deleted() -> None:
    records, (vm1,) = topology("tap1")
    agent = Agent(records)
    agent.link(7, "tap1")
    agent.core.bindings.take_changes()
    binding = next(r for r in records if isinstance(r, PortBinding))
    moved = dataclasses.replace(binding, host_id=uuid.uuid4())
    agent.core.records[binding.id] = moved
    agent.core.sync_ports()
    assert agent.core.bindings.take_changes() == {vm1.id: None}
    assert agent.dp.ports == {}
    assert agent.dp.tunnel_ports == {}


def test_statuses_are_published_once_per_change() -> None:
    records, (vm1,) = topology("tap1")
    agent = Agent(records)
    first = agent.core.bindings.take_changes()
    assert first[vm1.id] is not None
    assert first[vm1.id].state is State.WAITING
    agent.core.sync_ports()
    assert agent.core.bindings.take_changes() == {}
    agent.link(7, "tap1")
    changed = agent.core.bindings.take_changes()[vm1.id]
    assert changed is not None
    assert json.loads(changed.encode()) == {"state": "bound", "interface": "tap1", "mtu": 1450}


def test_without_a_picture_of_the_links_every_binding_is_tried_on_the_datapath() -> None:
    records, (vm1,) = topology("tap1")
    core = AgentCore(HOST, FakeDatapath(), LearnedState())
    core.load(records)
    assert core.bindings.status[vm1.id] == PortStatus(State.BOUND, "tap1")


def test_the_transition_table_is_enforced() -> None:
    assert next_state(None, Seen.ABSENT) is State.WAITING
    assert next_state(State.WAITING, Seen.PRESENT) is State.BOUND
    assert next_state(State.BOUND, Seen.ABSENT) is State.WAITING
    assert (State.BOUND, Seen.PRESENT) not in TRANSITIONS
    with pytest.raises(IllegalTransition):
        next_state(State.BOUND, Seen.PRESENT)


def test_a_link_table_follows_renames_altnames_and_addresses() -> None:
    table = LinkTable()
    table.apply(LinkSeen(Link(3, "a", altnames=("a2",))))
    assert table.lookup("a2") == table.lookup("a") == Link(3, "a", altnames=("a2",))
    table.apply(LinkSeen(Link(3, "b")))
    assert table.lookup("a") is None
    assert table.lookup("a2") is None
    assert table.lookup("b") is not None
    table.apply(AddressSeen(3, UNDERLAY))
    assert [link.index for link in table.holding(UNDERLAY)] == [3]
    table.apply(LinkGone(3))
    assert table.lookup("b") is None
    assert table.holding(UNDERLAY) == []


def test_a_bound_ports_new_tunnel_key_replaces_the_old_one() -> None:
    records, (vm1,) = topology("tap1")
    agent = Agent(records)
    agent.link(7, "tap1")
    number = agent.core.port_no[vm1.id]
    agent.core.records[vm1.id] = dataclasses.replace(vm1, tunnel_key=555)
    agent.core.sync_ports()
    assert agent.dp.tunnel_ports == {555: number}
