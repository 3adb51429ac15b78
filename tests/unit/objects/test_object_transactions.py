"""Transactions that a distributed store can hold: bounded, no scans, no phantoms.

Every transaction the object layer sends is recorded by a store wrapper; none may
exceed etcd's default of 128 compares or 128 writes, however big the store.
"""

from __future__ import annotations

import ipaddress
import itertools
import uuid
from collections.abc import Sequence

import pytest
from objworld import Topo

from tenet.clock import FakeClock
from tenet.errors import NotFoundError, ReferenceConflict, TooLarge, ValidationError
from tenet.model import (
    Bridge,
    Chain,
    Condition,
    DeviceType,
    Host,
    Port,
    PortBinding,
    Route,
    RouteType,
    Rule,
    RuleAction,
    Tenant,
)
from tenet.store.base import Compare, ListResult, Op, Store
from tenet.store.keys import INDEX
from tenet.store.memory import MemoryStore
from tenet.store.objects import MAX_TXN_OPS, Create, Link, ObjectStore, Remove


class Recording:
    """A store that remembers the size of every transaction, and can run something
    just before one is sent (a concurrent writer)."""

    def __init__(self, store: Store) -> None:
        self.inner = store
        self.sizes: list[tuple[int, int]] = []
        self.before_txn: list[object] = []  # callables, run once each

    def txn(self, compares: Sequence[Compare], ops: Sequence[Op]) -> int:
        self.sizes.append((len(compares), len(ops)))
        if self.before_txn:
            hook = self.before_txn.pop(0)
            hook()  # type: ignore[operator]
        return self.inner.txn(compares, ops)

    def range(self, start: str, end: str, *, limit: int = 0) -> ListResult:
        return self.inner.range(start, end, limit=limit)

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


@pytest.fixture
def rec() -> Recording:
    return Recording(MemoryStore(FakeClock()))


@pytest.fixture
def big(rec: Recording) -> tuple[Topo, Bridge, list[Port]]:
    """A tenant with one bridge of 1,000 ports (and a router, a chain, a rule)."""
    objects = ObjectStore(rec, FakeClock())  # type: ignore[arg-type]
    topo = Topo(objects)
    bridge = topo.bridge()
    ports = [topo.bport(bridge, mac=topo.mac()) for _ in range(1000)]
    return topo, bridge, ports


def biggest(rec: Recording) -> tuple[int, int]:
    return max(c for c, _ in rec.sizes), max(o for _, o in rec.sizes)


def test_every_change_fits_one_etcd_transaction_among_1000_ports(
    rec: Recording, big: tuple[Topo, Bridge, list[Port]]
) -> None:
    topo, bridge, ports = big
    o = topo.o
    rec.sizes.clear()
    router = topo.router()
    rport = topo.rport(router, "10.0.0.0/24")
    o.link(ports[0].id, rport.id)
    o.create(Route(tenant_id=topo.tenant.id, router_id=router.id,
                   dst=ipaddress.ip_network("0.0.0.0/0"), type=RouteType.BLACKHOLE))  # fmt: skip
    chain = topo.chain()
    o.create(Rule(tenant_id=topo.tenant.id, chain_id=chain.id,
                  condition=Condition(in_port_ids=(ports[5].id, ports[6].id))))  # fmt: skip
    o.update(o.get(Port, ports[1].id).record.replace(inbound_chain_id=chain.id))
    host = o.create(Host(name="h")).record
    o.create(PortBinding(port_id=ports[2].id, host_id=host.id, interface="tap2"))
    o.update(o.get(Bridge, bridge.id).record.replace(name="renamed"))
    o.delete(Port, ports[3].id)  # deleting one port of 1,000: was 1,002 compares
    o.delete(Port, ports[5].id)  # named in a rule: the rule is cleared, not scanned for
    o.unlink(rport.id)
    o.update(o.get(Port, ports[1].id).record.replace(inbound_chain_id=None))
    with pytest.raises(ReferenceConflict):
        o.delete(Tenant, topo.tenant.id)
    compares, writes = biggest(rec)
    assert compares <= MAX_TXN_OPS, rec.sizes
    assert writes <= MAX_TXN_OPS, rec.sizes
    assert compares < 20, f"a change compares {compares} keys: something scans"
    rule = o.list(Rule)[0].record
    assert rule.condition.in_port_ids == (ports[6].id,)


def test_a_delete_too_big_for_one_transaction_goes_in_steps_each_within_the_bound(
    rec: Recording, big: tuple[Topo, Bridge, list[Port]]
) -> None:
    topo, bridge, ports = big
    o = topo.o
    host = o.create(Host(name="h")).record
    for i in range(40):
        o.create(PortBinding(port_id=ports[i].id, host_id=host.id, interface=f"tap{i}"))
    rec.sizes.clear()
    o.delete(Bridge, bridge.id)
    assert max(c for c, _ in rec.sizes) <= MAX_TXN_OPS
    assert max(w for _, w in rec.sizes) <= MAX_TXN_OPS
    assert o.list(Port) == []
    assert o.list(PortBinding) == []
    assert o.find(Bridge, bridge.id) is None
    # nothing of the bridge, its ports or their bindings is left in the indexes
    left = [kv.key for kv in rec.inner.list(INDEX).items if "/binding/" in kv.key]
    assert left == []
    gone = {str(bridge.id), *(str(p.id) for p in ports)}
    assert not [kv.key for kv in rec.inner.list(INDEX).items if any(g in kv.key for g in gone)]


def test_a_delete_that_would_be_refused_changes_nothing_even_in_steps(
    rec: Recording, big: tuple[Topo, Bridge, list[Port]]
) -> None:
    topo, bridge, _ = big
    o = topo.o
    chain = topo.chain()
    o.update(o.get(Bridge, bridge.id).record.replace(inbound_chain_id=chain.id))
    revision = rec.revision()
    with pytest.raises(ReferenceConflict, match="used by bridge"):
        o.delete(Chain, chain.id)
    assert rec.revision() == revision


def test_a_tenant_delete_racing_a_create_refuses_or_sees_it(rec: Recording) -> None:
    """No phantom: the create lands between the delete's reads and its commit."""
    o = ObjectStore(rec, FakeClock())  # type: ignore[arg-type]
    other = ObjectStore(rec.inner, FakeClock())
    tenant = o.create(Tenant(name="acme")).record
    created: list[Bridge] = []

    def concurrent_create() -> None:
        created.append(other.create(Bridge(tenant_id=tenant.id, name="late")).record)

    rec.before_txn.append(concurrent_create)
    with pytest.raises(ReferenceConflict, match="still owns 1 bridges"):
        o.delete(Tenant, tenant.id)
    assert o.find(Tenant, tenant.id) is not None
    assert o.find(Bridge, created[0].id) is not None


def test_a_create_racing_a_tenant_delete_is_refused(rec: Recording) -> None:
    o = ObjectStore(rec, FakeClock())  # type: ignore[arg-type]
    other = ObjectStore(rec.inner, FakeClock())
    tenant = o.create(Tenant(name="acme")).record
    rec.before_txn.append(lambda: other.delete(Tenant, tenant.id))
    with pytest.raises(NotFoundError, match="tenant") as info:
        o.create(Bridge(tenant_id=tenant.id, name="late"))
    assert info.value.field == "tenant_id"
    assert o.list(Bridge) == []


def test_several_changes_are_one_transaction_all_or_nothing(topo: Topo) -> None:
    o = topo.o
    t = topo.tenant.id
    bridge = topo.bridge()
    router = topo.router()
    revision = o.store.revision()
    rport = Port(tenant_id=t, device_id=router.id, device_type=DeviceType.ROUTER,
                 mac=topo.mac(), address=ipaddress.ip_address("10.1.0.1"),
                 subnet=ipaddress.ip_network("10.1.0.0/24"))  # fmt: skip
    bport = Port(tenant_id=t, device_id=bridge.id, device_type=DeviceType.BRIDGE)
    with o.transaction() as tx:  # a router interface: two ports and a link
        tx.create(rport)
        tx.create(bport)
        tx.link(bport.id, rport.id)
    assert o.store.revision() == revision + 1
    assert [r.record.id for r in tx.results if r is not None] == [rport.id, bport.id, bport.id]
    assert o.get(Port, rport.id).record.peer_id == bport.id
    # a failing step undoes every step before it
    revision = o.store.revision()
    again = Port(tenant_id=t, device_id=bridge.id, device_type=DeviceType.BRIDGE)
    with pytest.raises(NotFoundError):
        o.apply([Create(again), Link(again.id, uuid.uuid4())])
    assert o.store.revision() == revision
    assert o.find(Port, again.id) is None

    def three_steps() -> None:
        with o.transaction() as tx:
            tx.create(Port(tenant_id=t, device_id=bridge.id, device_type=DeviceType.BRIDGE))
            tx.delete(Bridge, bridge.id)
            tx.create(Port(tenant_id=t, device_id=bridge.id, device_type=DeviceType.BRIDGE))

    with pytest.raises(NotFoundError, match="bridge") as info:  # the third step's bridge is gone
        three_steps()
    assert info.value.field == "device_id"
    assert o.store.revision() == revision
    assert o.find(Bridge, bridge.id) is not None


def test_a_block_that_raises_applies_nothing(topo: Topo) -> None:
    revision = topo.o.store.revision()

    def change_of_mind() -> None:
        with topo.o.transaction() as tx:
            tx.create(Bridge(tenant_id=topo.tenant.id))
            raise RuntimeError("changed my mind")

    with pytest.raises(RuntimeError):
        change_of_mind()
    assert topo.o.store.revision() == revision


def test_a_change_bigger_than_a_transaction_is_refused_whole(topo: Topo) -> None:
    bridge = topo.bridge()
    revision = topo.o.store.revision()
    ports = [Port(tenant_id=topo.tenant.id, device_id=bridge.id, device_type=DeviceType.BRIDGE)
             for _ in range(60)]  # fmt: skip
    with pytest.raises(TooLarge, match="128"):
        topo.o.apply([Create(p) for p in ports])
    assert topo.o.store.revision() == revision


def test_removing_through_apply_cascades(topo: Topo) -> None:
    bridge = topo.bridge()
    port = topo.bport(bridge)
    topo.o.apply([Remove(Bridge, bridge.id)])
    assert topo.o.find(Port, port.id) is None


def test_a_jump_loop_is_found_by_following_chains_not_scanning_rules(
    rec: Recording, big: tuple[Topo, Bridge, list[Port]]
) -> None:
    topo, _, _ = big
    o = topo.o
    chains = [topo.chain() for _ in range(5)]
    for a, b in itertools.pairwise(chains):
        o.create(Rule(tenant_id=topo.tenant.id, chain_id=a.id, action=RuleAction.JUMP,
                      jump_chain_id=b.id))  # fmt: skip
    rec.sizes.clear()
    with pytest.raises(ValidationError, match="loop") as info:
        o.create(Rule(tenant_id=topo.tenant.id, chain_id=chains[-1].id, action=RuleAction.JUMP,
                      jump_chain_id=chains[0].id))  # fmt: skip
    assert info.value.field == "jump_chain_id"
    o.create(Rule(tenant_id=topo.tenant.id, chain_id=chains[0].id, action=RuleAction.JUMP,
                  jump_chain_id=chains[3].id))  # fmt: skip
    assert biggest(rec)[0] < 30
