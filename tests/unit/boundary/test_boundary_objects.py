"""The tenant boundary in the object layer, generated from the reference declarations.

For every kind a tenant owns and every reference field it has (``REFS``), a member of
tenant B creates, replaces and patches a record naming a record of tenant A, and one
naming nothing: each is refused, the two refusals read the same (nothing tells a
foreign id from a missing one), and the whole store is byte for byte unchanged. The
same record naming B's own target is accepted (so a refusal is the boundary's, not a
bad body's). A reference field added later is covered without editing this file.
"""

from __future__ import annotations

import uuid

import pytest
from world import BODIES, TARGET, W, build_world, naming, set_field

from tenet.clock import FakeClock
from tenet.errors import ClientError, NotFoundError, PermissionDenied, ValidationError
from tenet.model import (
    KINDS,
    SPECS,
    Bridge,
    Condition,
    DeviceType,
    IPAddrGroup,
    Owner,
    Port,
    PortBinding,
    Ref,
    Rule,
    Tenant,
    TenantRecord,
    from_dict,
    to_dict,
)
from tenet.model.kinds import REFS
from tenet.store.boundary import Actor
from tenet.store.memory import MemoryStore
from tenet.store.objects import ObjectStore

TENANT_REFS = [r for r in REFS if issubclass(r.source, TenantRecord)]


def _id(ref: Ref) -> str:
    return f"{ref.source.KIND}.{ref.field}->{ref.target.KIND}"


def dump(o: ObjectStore) -> list[tuple[str, bytes]]:
    return [(kv.key, kv.value) for kv in o.store.list("/").items]


@pytest.fixture
def two() -> tuple[ObjectStore, W, W]:
    o = ObjectStore(MemoryStore(FakeClock()), FakeClock())
    return o, build_world(o, "acme"), build_world(o, "globex")


def test_every_kind_has_a_body_and_a_target() -> None:
    assert set(BODIES) == set(KINDS)
    assert set(TARGET) == set(KINDS)


def test_the_generated_cases_cover_every_reference_field() -> None:
    fields = {(r.source, r.field) for r in TENANT_REFS}
    print(f"\n{len(TENANT_REFS)} references ({len(fields)} fields) of tenant-owned kinds")
    assert len(TENANT_REFS) >= 40  # every kind's tenant_id, plus each Ref the kinds declare


@pytest.mark.parametrize("ref", TENANT_REFS, ids=_id)
def test_a_member_names_only_its_own_tenants_records(
    two: tuple[ObjectStore, W, W], ref: Ref
) -> None:
    o, a, b = two
    member = Actor.member(uuid.UUID(b["tenant"]))
    own = b[TARGET[ref.target.KIND]]
    # the control: naming B's own record is fine for B's member
    mine = o.create(from_dict(ref.source, naming(ref, b, own)), actor=member).record
    before = dump(o)
    foreign, nothing = a[TARGET[ref.target.KIND]], str(uuid.uuid4())
    answers = []
    for target in (foreign, nothing):
        with pytest.raises(NotFoundError) as created:
            o.create(from_dict(ref.source, naming(ref, b, target)), actor=member)
        assert created.value.field == ref.field
        value = [target] if ref.many else target
        replaced = from_dict(ref.source, set_field(to_dict(mine), ref.field, value))
        with pytest.raises(ClientError) as updated:  # 4xx: foreign, missing or immutable
            o.update(replaced, actor=member)
        top = ref.field.split(".")[0]
        patch = set_field(to_dict(mine), ref.field, value)[top]
        with pytest.raises(ClientError) as patched:
            o.patch(ref.source, mine.id, {top: patch}, actor=member)
        answers.append([str(e.value).replace(target, "<id>") for e in (created, updated, patched)])
        assert dump(o) == before, f"a refused write by a member changed the store ({target})"
    assert answers[0] == answers[1], "a foreign id is told apart from a missing one"


def test_the_hole_of_the_issue_is_closed(two: tuple[ObjectStore, W, W]) -> None:
    """B's member points its router port's peer_id at A's router port."""
    o, a, b = two
    member = Actor.member(uuid.UUID(b["tenant"]))
    mine = o.get(Port, uuid.UUID(b["rport2"])).record
    theirs = o.get(Port, uuid.UUID(a["rport2"]))
    before = dump(o)
    with pytest.raises(NotFoundError) as info:
        o.update(mine.replace(peer_id=theirs.record.id), actor=member)
    assert info.value.field == "peer_id"
    with pytest.raises(NotFoundError):
        o.link(mine.id, theirs.record.id, actor=member)
    with pytest.raises(NotFoundError):
        o.patch(Port, mine.id, {"peer_id": str(theirs.record.id)}, actor=member)
    assert dump(o) == before
    assert o.get(Port, theirs.record.id) == theirs


def test_a_cross_tenant_link_is_the_operators_and_a_member_cannot_undo_its_far_side(
    two: tuple[ObjectStore, W, W],
) -> None:
    o, a, b = two
    member = Actor.member(uuid.UUID(b["tenant"]))
    mine, theirs = uuid.UUID(b["rport2"]), uuid.UUID(a["rport2"])
    o.link(mine, theirs)  # the admin may link across tenants (the edge)
    before = dump(o)
    for write in (
        lambda: o.unlink(mine, actor=member),  # would clear A's port too
        lambda: o.delete(Port, mine, actor=member),  # would clear A's peer_id
        lambda: o.delete(Tenant, uuid.UUID(b["tenant"]), actor=member),
    ):
        with pytest.raises(PermissionDenied, match=r"outside the token's tenant|operator"):
            write()
        assert dump(o) == before
    # what the admin linked stays valid when B's member changes something else
    renamed = o.get(Port, mine).record.replace(name="uplink")
    assert o.update(renamed, actor=member).record.peer_id == theirs


def test_a_member_writes_no_operator_record_and_no_tenant(two: tuple[ObjectStore, W, W]) -> None:
    o, _, b = two
    member = Actor.member(uuid.UUID(b["tenant"]))
    before = dump(o)
    operator_kinds = [k for k, s in SPECS.items() if s.owner is Owner.OPERATOR]
    assert set(operator_kinds) >= {Tenant, PortBinding}
    for kind in operator_kinds:
        body = BODIES[kind.KIND][0](b)
        with pytest.raises((PermissionDenied, NotFoundError)):
            o.create(from_dict(kind, body), actor=member)
        existing = uuid.UUID(b[TARGET[kind.KIND]])
        with pytest.raises((PermissionDenied, NotFoundError)):  # its tenant, or unseen
            o.delete(kind, existing, actor=member)
    assert dump(o) == before


def test_only_the_operator_shares_and_members_name_what_it_shared(
    two: tuple[ObjectStore, W, W],
) -> None:
    o, a, b = two
    member = Actor.member(uuid.UUID(b["tenant"]))
    t = uuid.UUID(b["tenant"])
    with pytest.raises(PermissionDenied, match="shared"):
        o.create(Bridge(tenant_id=t, shared=True), actor=member)
    own = o.get(Bridge, uuid.UUID(b["bridge"])).record
    with pytest.raises(PermissionDenied, match="shared"):
        o.update(own.replace(shared=True), actor=member)
    group = o.get(IPAddrGroup, uuid.UUID(a["ipg"])).record
    rule = Rule(tenant_id=t, chain_id=uuid.UUID(b["chain"]),
                condition=Condition(ip_addr_group_src_id=group.id))  # fmt: skip
    with pytest.raises(NotFoundError):
        o.create(rule, actor=member)
    o.update(group.replace(shared=True))  # the operator shares A's group
    assert o.create(rule, actor=member).record.condition.ip_addr_group_src_id == group.id
    # a reference that does not accept shared records still refuses it
    shared_bridge = o.update(o.get(Bridge, uuid.UUID(a["bridge"])).record.replace(shared=True))
    port = Port(tenant_id=t, device_id=shared_bridge.record.id, device_type=DeviceType.BRIDGE)
    with pytest.raises(NotFoundError) as info:
        o.create(port, actor=member)
    assert info.value.field == "device_id"


def test_the_operator_links_a_tenant_router_to_its_shared_external_network(
    two: tuple[ObjectStore, W, W],
) -> None:
    """DESIGN's edge: a tenant router's gateway port on the operator's external bridge."""
    o, a, b = two
    ext = o.create(Bridge(tenant_id=uuid.UUID(a["tenant"]), name="ext", shared=True)).record
    uplink = o.create(Port(tenant_id=ext.tenant_id, device_id=ext.id,
                           device_type=DeviceType.BRIDGE)).record  # fmt: skip
    private = o.get(Bridge, uuid.UUID(a["bridge"])).record
    other = o.create(Port(tenant_id=private.tenant_id, device_id=private.id,
                          device_type=DeviceType.BRIDGE)).record  # fmt: skip
    gateway = uuid.UUID(b["rport2"])
    member = Actor.member(uuid.UUID(b["tenant"]))
    with pytest.raises(NotFoundError):  # a member does not make links to the edge
        o.link(gateway, uplink.id, actor=member)
    with pytest.raises(ValidationError, match="another tenant"):  # nor is any bridge an edge
        o.link(gateway, other.id)
    assert o.link(gateway, uplink.id).record.peer_id == uplink.id
    assert o.get(Port, uplink.id).record.peer_id == gateway
