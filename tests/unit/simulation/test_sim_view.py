"""The topology view: kept up to date record by record, it equals one built at once;
its memos go exactly when a record they were built from changes."""

from __future__ import annotations

import ipaddress
import random
import uuid
from collections.abc import Mapping
from typing import get_args

import pytest
from golden_loader import GOLDEN_DIR, Topology, build_frame, load

from tenet.model import (
    MAC,
    ArpEntry,
    Bridge,
    LoadBalancer,
    Port,
    PortBinding,
    Record,
    Route,
    Router,
    Rule,
    TunnelZoneMember,
)
from tenet.model.kinds import SPECS
from tenet.packets import FlowMatch
from tenet.simulation import Verdict, simulate
from tenet.simulation.chains import CONDITIONS, PLANS
from tenet.simulation.context import REWRITABLE, BytesField, IntField
from tenet.simulation.router import CANDIDATES
from tenet.simulation.view import READ_KINDS, UNREAD_KINDS, TopologyView

FILES = sorted(GOLDEN_DIR.glob("*.toml"))
INDEXES = (
    "ports", "bridges", "routers", "chains", "rules", "port_groups", "ip_addr_groups",
    "bindings", "host_addresses", "device_ports", "routes", "dhcp_subnets", "dhcp_hosts",
    "known_ips", "known_macs",
)  # fmt: skip


def indexes(view: TopologyView) -> dict[str, object]:
    """Everything a simulation can read from ``view``, as plain values."""
    out: dict[str, object] = {"local_host_id": view.local_host_id}
    for name in INDEXES:
        table = getattr(view, name)
        out[name] = {k: dict(v) if isinstance(v, Mapping) else v for k, v in table.items()}
    return out


def _topology(path: str) -> Topology:
    return load(GOLDEN_DIR / path)[0]


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_records_applied_one_by_one_in_any_order_equal_a_built_view(path: object) -> None:
    topo, _ = load(path)  # type: ignore[arg-type]
    rng = random.Random(7)
    for _ in range(3):
        records = list(topo.records)
        rng.shuffle(records)
        view = TopologyView(topo.view.local_host_id)
        for record in records:
            view.apply(record.id, record)
        assert indexes(view) == indexes(topo.view)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_deletes_and_re_adds_keep_the_view_equal_to_a_built_one(path: object) -> None:
    topo, _ = load(path)  # type: ignore[arg-type]
    host = topo.view.local_host_id
    rng = random.Random(11)
    view = TopologyView.build(topo.records, host)
    present = {r.id: r for r in topo.records}
    absent: dict[uuid.UUID, Record] = {}
    for _ in range(150):
        if absent and rng.random() < 0.5:
            record = absent.pop(rng.choice(sorted(absent)))
            present[record.id] = record
            view.apply(record.id, record)
        else:
            record = present.pop(rng.choice(sorted(present)))
            absent[record.id] = record
            view.apply(record.id, None)
        assert indexes(view) == indexes(TopologyView.build(present.values(), host))


def test_changes_update_what_bridges_know_through_peers() -> None:
    topo = _topology("router.toml")
    view = TopologyView.build(topo.records, topo.view.local_host_id)
    records = {r.id: r for r in topo.records}
    router_port = next(
        p for p in view.ports.values() if p.peer_id is not None and p.address is not None
    )
    bridge_port = view.ports[router_port.peer_id]  # type: ignore[index]
    changes: list[Record] = [
        router_port.replace(mac=MAC("02:00:00:00:99:99")),
        router_port.replace(address=ipaddress.ip_address("10.0.0.253")),
    ]
    bridge = view.bridges[bridge_port.device_id]
    entry = ArpEntry(ip=ipaddress.ip_address("10.0.0.77"), mac=MAC("02:00:00:00:77:77"))
    changes.append(bridge.replace(static_arp=(*bridge.static_arp, entry)))
    changes.append(bridge_port.replace(mac=MAC("02:00:00:00:88:88")))
    for change in changes:
        records[change.id] = change
        view.apply(change.id, change)
        assert indexes(view) == indexes(TopologyView.build(records.values(), view.local_host_id))
    assert view.known_ips[bridge.id][entry.ip] == bytes.fromhex("020000007777")


def test_the_view_reads_every_kind_agents_hold_but_hosts_and_zones() -> None:
    held = {kind for kind, spec in SPECS.items() if spec.held}
    assert held == READ_KINDS | UNREAD_KINDS
    assert not READ_KINDS & UNREAD_KINDS


def test_kinds_the_simulation_does_not_read_are_ignored() -> None:
    topo = _topology("router.toml")
    view = TopologyView.build(topo.records)
    router = next(iter(view.routers))
    before = indexes(view)
    balancer = LoadBalancer(tenant_id=uuid.uuid4(), router_id=router)
    view.apply(balancer.id, balancer)
    view.apply(balancer.id, None)
    view.apply(uuid.uuid4(), None)  # a delete of something never seen
    assert indexes(view) == before


def test_the_flow_match_fields_are_typed_as_flow_match_has_them() -> None:
    fields = set(get_args(BytesField)) | set(get_args(IntField))
    assert fields == set(FlowMatch._fields)
    assert not set(get_args(BytesField)) & set(get_args(IntField))
    assert fields >= REWRITABLE


# -- memos --------------------------------------------------------------------------------


def _route_something(topo: Topology, view: TopologyView) -> uuid.UUID:
    """Simulate a routed packet of the router topology; returns the router's id."""
    desc = {
        "type": "ipv4", "proto": "tcp", "eth_src": "vm-a1", "eth_dst": "r1-a",
        "src": "10.0.0.1", "dst": "100.64.0.9", "sport": 40000, "dport": 80,
    }  # fmt: skip
    frame = build_frame(topo, desc)
    result = simulate(frame, topo.id("vm-a1"), view, topo.state(), 1000.0)
    assert result.verdict is Verdict.FORWARD, result.trace_text()
    return topo.id("r1")


def test_router_candidates_go_when_the_router_its_routes_or_ports_change() -> None:
    topo = _topology("router.toml")
    view = TopologyView.build(topo.records, topo.view.local_host_id)
    router_id = _route_something(topo, view)
    kept = view.memos.get(CANDIDATES, (router_id, 4))
    assert kept is not None
    # unrelated: a VM port's binding, another bridge's port
    binding = next(r for r in topo.records if isinstance(r, PortBinding))
    view.apply(binding.id, binding.replace(interface="tap-other"))
    assert view.memos.get(CANDIDATES, (router_id, 4)) is kept
    route = next(r for r in topo.records if isinstance(r, Route) and r.router_id == router_id)
    view.apply(route.id, route.replace(weight=route.weight + 1))
    assert view.memos.get(CANDIDATES, (router_id, 4)) is None
    _route_something(topo, view)
    port = next(p for p in view.device_ports[router_id] if p.subnet is not None)
    view.apply(port.id, port.replace(admin_state_up=True))
    assert view.memos.get(CANDIDATES, (router_id, 4)) is None
    _route_something(topo, view)
    router = view.routers[router_id]
    assert isinstance(router, Router)
    view.apply(router.id, router.replace(name="renamed"))
    assert view.memos.get(CANDIDATES, (router_id, 4)) is None


def test_a_chain_plan_goes_when_the_chain_or_one_of_its_rules_changes() -> None:
    topo = _topology("chains.toml")
    view = TopologyView.build(topo.records, topo.view.local_host_id)
    rules = [r for r in topo.records if isinstance(r, Rule)]
    by_chain: dict[uuid.UUID, list[Rule]] = {}
    for rule in rules:
        by_chain.setdefault(rule.chain_id, []).append(rule)
    chain_id, own = next((c, rs) for c, rs in by_chain.items() if len(rs) >= 2)
    other = next(rs[0] for c, rs in by_chain.items() if c != chain_id)
    # build the plans as a walk would
    from tenet.simulation.chains import _plan

    plan = _plan(view, view.chains[chain_id])
    assert view.memos.get(PLANS, chain_id) is plan
    condition = view.memos.get(CONDITIONS, own[1].id)
    assert condition is not None
    view.apply(other.id, other.replace(name="renamed"))  # another chain's rule
    assert view.memos.get(PLANS, chain_id) is plan
    view.apply(own[0].id, own[0].replace(name="renamed"))
    assert view.memos.get(PLANS, chain_id) is None
    assert view.memos.get(CONDITIONS, own[1].id) is condition  # that rule did not change
    plan = _plan(view, view.chains[chain_id])
    chain = view.chains[chain_id]
    view.apply(chain.id, chain.replace(rule_ids=tuple(reversed(chain.rule_ids))))
    assert view.memos.get(PLANS, chain_id) is None


def test_tunnel_addresses_follow_members() -> None:
    topo = _topology("router.toml")
    view = TopologyView.build(topo.records)
    member = next(r for r in topo.records if isinstance(r, TunnelZoneMember))
    moved = member.replace(address=ipaddress.ip_address("192.0.2.200"))
    view.apply(moved.id, moved)
    assert view.host_addresses[member.host_id] == moved.address
    view.apply(moved.id, None)
    assert member.host_id not in view.host_addresses or any(
        isinstance(r, TunnelZoneMember) and r.host_id == member.host_id and r.id != member.id
        for r in topo.records
    )


def test_a_bridge_port_gone_leaves_no_trace_in_what_its_bridge_knows() -> None:
    topo = _topology("bridge.toml")
    view = TopologyView.build(topo.records)
    port = next(
        p
        for p in view.ports.values()
        if isinstance(view.bridges.get(p.device_id), Bridge) and p.mac and p.fixed_ips
    )
    assert isinstance(port, Port)
    view.apply(port.id, None)
    assert port.fixed_ips[0] not in view.known_ips[port.device_id]
    assert bytes.fromhex(port.mac.replace(":", "")) not in view.known_macs.get(  # type: ignore[union-attr]
        port.device_id, {}
    )
