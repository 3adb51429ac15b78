"""Security groups in the object layer: what a group, a rule and a member compile to,
each written in the one transaction of the change, and what is refused (naming the
field, or the group that owns a record)."""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import Sequence

import pytest
from sgworld import World

from tenet.errors import (
    AlreadyExists,
    NotFoundError,
    ReferenceConflict,
    ValidationError,
)
from tenet.model import (
    Chain,
    Condition,
    DeviceType,
    IPAddrGroup,
    Port,
    PortRange,
    Rule,
    RuleAction,
    SecurityGroup,
    SecurityGroupRule,
    Tenant,
    from_dict,
)
from tenet.store.base import Compare, ListResult, Op, Store
from tenet.store.boundary import Actor
from tenet.store.objects import MAX_TXN_OPS, ObjectStore
from tenet.store.secgroups import compiled_id


@pytest.fixture
def w() -> World:
    return World()


def test_a_new_group_owns_two_chains_an_address_group_and_allows_all_egress(w: World) -> None:
    sg = w.group("web")
    assert sg.ingress_chain_id
    assert sg.egress_chain_id
    assert sg.ip_addr_group_id
    ingress = w.chain_rules(sg, "ingress")
    assert [r.action for r in ingress] == [RuleAction.DROP]  # nothing allowed in yet
    egress = w.chain_rules(sg, "egress")
    assert [r.action for r in egress] == [RuleAction.ACCEPT, RuleAction.ACCEPT, RuleAction.DROP]
    assert {r.condition.eth_type for r in egress[:2]} == {0x0800, 0x86DD}
    rules = w.group_rules(sg)
    assert {(r.direction, r.ethertype) for r in rules} == {("egress", "IPv4"), ("egress", "IPv6")}
    assert {compiled_id(r.id) for r in rules} == {r.id for r in egress[:2]}
    for rule in rules:  # a trace names the group rule
        assert str(rule.id) in w.o.get(Rule, compiled_id(rule.id)).record.name
    assert w.members(sg) == []


def test_a_rule_compiles_to_an_accept_before_the_drop_with_neutrons_mapping(w: World) -> None:
    sg = w.group("web")
    ssh = w.rule(sg, direction="ingress", protocol="tcp", port_range_min=22, port_range_max=22,
                 remote_ip_prefix="10.0.0.0/8")  # fmt: skip
    ping = w.rule(sg, direction="ingress", protocol="icmp", port_range_min=8)
    out = w.rule(sg, direction="egress", ethertype="IPv6", protocol="icmp", remote_ip_prefix="::/0")
    assert ssh.protocol == 6
    assert ping.protocol == 1
    ingress = w.chain_rules(sg, "ingress")
    assert [r.id for r in ingress[:2]] == [compiled_id(ssh.id), compiled_id(ping.id)]
    assert ingress[-1].action is RuleAction.DROP
    assert ingress[0].condition == Condition(
        eth_type=0x0800, nw_proto=6, tp_dst=PortRange(start=22, end=22),
        nw_src=ipaddress.ip_network("10.0.0.0/8"),
    )  # fmt: skip
    assert ingress[1].condition == Condition(eth_type=0x0800, nw_proto=1, icmp_type=8)
    compiled = w.o.get(Rule, compiled_id(out.id)).record
    assert compiled.condition == Condition(eth_type=0x86DD, nw_proto=58)  # icmp in IPv6: ICMPv6
    assert f"rule {ssh.id}: ingress IPv4 tcp 22 from 10.0.0.0/8" in ingress[0].name


def test_deleting_a_rule_removes_its_compiled_rule_in_the_same_transaction(w: World) -> None:
    sg = w.group("web")
    ssh = w.rule(sg, direction="ingress", protocol="tcp", port_range_min=22, port_range_max=22)
    w.o.delete(SecurityGroupRule, ssh.id)
    assert w.o.find(Rule, compiled_id(ssh.id)) is None
    assert [r.action for r in w.chain_rules(sg, "ingress")] == [RuleAction.DROP]


def test_members_addresses_follow_ports_joining_leaving_and_changing(w: World) -> None:
    sg, other = w.group("web"), w.group("db")
    a = w.port("a", "10.0.0.5", sg)
    b = w.port("b", "10.0.0.6", sg, other)
    assert w.members(sg) == ["10.0.0.5/32", "10.0.0.6/32"]
    assert w.members(other) == ["10.0.0.6/32"]
    w.o.update(w.o.get(Port, a.id).record.replace(fixed_ips=(ipaddress.ip_address("10.0.0.9"),)))
    assert w.members(sg) == ["10.0.0.6/32", "10.0.0.9/32"]
    w.o.update(w.o.get(Port, b.id).record.replace(security_group_ids=(other.id,)))  # leaves sg
    assert w.members(sg) == ["10.0.0.9/32"]
    assert w.members(other) == ["10.0.0.6/32"]
    w.o.patch(Port, a.id, {"security_group_ids": [str(other.id)]})
    assert w.members(sg) == []
    assert w.members(other) == ["10.0.0.6/32", "10.0.0.9/32"]
    w.o.delete(Port, b.id)
    assert w.members(other) == ["10.0.0.9/32"]


def test_two_members_with_one_address_keep_it_until_both_leave(w: World) -> None:
    sg = w.group("web")
    a = w.port("a", "10.0.0.5", sg)
    w.port("b", "10.0.0.5", sg)  # the same address behind another port (another VM's)
    w.o.delete(Port, a.id)
    assert w.members(sg) == ["10.0.0.5/32"]


def test_a_remote_group_rule_matches_the_remote_groups_members(w: World) -> None:
    web, db = w.group("web"), w.group("db")
    rule = w.rule(db, direction="ingress", protocol="tcp", port_range_min=5432,
                  port_range_max=5432, remote_group_id=str(web.id))  # fmt: skip
    compiled = w.o.get(Rule, compiled_id(rule.id)).record
    assert compiled.condition.ip_addr_group_src_id == web.ip_addr_group_id
    out = w.rule(web, direction="egress", protocol="tcp", remote_group_id=str(db.id))
    assert (
        w.o.get(Rule, compiled_id(out.id)).record.condition.ip_addr_group_dst_id
        == db.ip_addr_group_id
    )
    own = w.rule(web, direction="ingress", remote_group_id=str(web.id))  # the default group's
    assert (
        w.o.get(Rule, compiled_id(own.id)).record.condition.ip_addr_group_src_id
        == web.ip_addr_group_id
    )


def test_deleting_a_group_deletes_its_records_and_rules_naming_it_as_remote(w: World) -> None:
    web, db = w.group("web"), w.group("db")
    named = w.rule(db, direction="ingress", remote_group_id=str(web.id))
    w.rule(web, direction="ingress", protocol="udp", port_range_min=53, port_range_max=53)
    w.o.delete(SecurityGroup, web.id)
    for kind, ident in ((Chain, web.ingress_chain_id), (Chain, web.egress_chain_id),
                        (IPAddrGroup, web.ip_addr_group_id)):  # fmt: skip
        assert ident is not None
        assert w.o.find(kind, ident) is None
    assert w.group_rules(web) == []
    assert w.o.find(SecurityGroupRule, named.id) is None  # as Neutron's ON DELETE CASCADE
    assert w.o.find(Rule, compiled_id(named.id)) is None
    assert compiled_id(named.id) not in w.chain(db, "ingress").rule_ids
    leftovers = {s.record.id for s in w.o.list(Rule)}
    assert leftovers == {r.id for r in w.chain_rules(db, "ingress") + w.chain_rules(db, "egress")}


def test_a_group_in_use_by_a_port_is_not_deleted_and_the_error_names_the_port(w: World) -> None:
    sg = w.group("web")
    port = w.port("a", "10.0.0.5", sg)
    with pytest.raises(ReferenceConflict, match=f"port {port.id}.*security_group_ids") as info:
        w.o.delete(SecurityGroup, sg.id)
    assert info.value.status == 409
    assert w.get_group(sg) == sg


def test_owned_records_are_refused_naming_the_group(w: World) -> None:
    sg = w.group("web")
    chain = w.chain(sg, "ingress")
    drop = w.chain_rules(sg, "ingress")[0]
    members = w.o.get(IPAddrGroup, sg.ip_addr_group_id).record  # type: ignore[arg-type]
    for write in (
        lambda: w.o.update(chain.replace(name="mine")),
        lambda: w.o.delete(Chain, chain.id),
        lambda: w.o.update(drop.replace(action=RuleAction.ACCEPT)),
        lambda: w.o.delete(Rule, drop.id),
        lambda: w.o.create(Rule(tenant_id=w.tenant.id, chain_id=chain.id)),
        lambda: w.o.update(members.replace(addresses=(ipaddress.ip_network("0.0.0.0/0"),))),
        lambda: w.o.delete(IPAddrGroup, members.id),
    ):
        with pytest.raises(ReferenceConflict, match=f"security group {sg.id}"):
            write()
    assert w.chain(sg, "ingress") == chain


def test_a_record_naming_an_owned_record_holds_the_group_until_it_goes(w: World) -> None:
    sg = w.group("web")
    mine = w.o.create(Chain(tenant_id=w.tenant.id, name="mine")).record
    named = Condition(ip_addr_group_src_id=sg.ip_addr_group_id)
    rule = w.o.create(Rule(tenant_id=w.tenant.id, chain_id=mine.id, condition=named)).record
    with pytest.raises(ReferenceConflict, match=f"rule {rule.id}"):
        w.o.delete(SecurityGroup, sg.id)
    w.o.delete(Rule, rule.id)
    w.o.delete(SecurityGroup, sg.id)


def test_a_create_cannot_choose_the_owned_records_and_an_update_cannot_change_them(
    w: World,
) -> None:
    mine = w.o.create(Chain(tenant_id=w.tenant.id, name="mine")).record
    sg = w.o.create(SecurityGroup(tenant_id=w.tenant.id, ingress_chain_id=mine.id)).record
    assert sg.ingress_chain_id != mine.id
    assert w.o.get(Chain, mine.id).record == mine
    with pytest.raises(ValidationError) as info:
        w.o.update(sg.replace(egress_chain_id=mine.id))
    assert info.value.field == "egress_chain_id"
    renamed = w.o.update(sg.replace(name="web", description="the web tier")).record
    assert w.chain(renamed, "ingress").name == "security group web ingress"


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"direction": "sideways"}, "direction", "not one of"),
        ({"direction": "ingress", "ethertype": "IPv5"}, "ethertype", "not one of"),
        ({"direction": "ingress", "protocol": "tcpx"}, "protocol", "not a protocol"),
        ({"direction": "ingress", "protocol": 256}, "protocol", "outside"),
        ({"direction": "ingress", "protocol": "tcp", "port_range_min": 22}, "port_range_max",
         "both"),
        ({"direction": "ingress", "protocol": "tcp", "port_range_min": 80, "port_range_max": 22},
         "port_range_max", "below"),
        ({"direction": "ingress", "protocol": "udp", "port_range_min": 0, "port_range_max": 5},
         "port_range_min", "outside"),
        ({"direction": "ingress", "port_range_min": 22, "port_range_max": 22}, "port_range_min",
         "tcp"),
        ({"direction": "ingress", "protocol": "icmp", "port_range_max": 0}, "port_range_min",
         "type"),
        ({"direction": "ingress", "protocol": "icmp", "port_range_min": 300}, "port_range_min",
         "outside"),
        ({"direction": "ingress", "protocol": "icmpv6"}, "protocol", "IPv6"),
        ({"direction": "ingress", "remote_ip_prefix": "::/0"}, "remote_ip_prefix", "IPv6"),
        ({"direction": "ingress", "remote_ip_prefix": "10.0.0.0/8",
          "remote_group_id": str(uuid.UUID(int=1))}, "remote_group_id", "not both"),
        ({"direction": "ingress", "description": "x" * 300}, "description", "at most"),
    ],
)  # fmt: skip
def test_bad_rules_are_refused_naming_the_field(
    w: World, body: dict[str, object], field: str, words: str
) -> None:
    sg = w.group("web")
    with pytest.raises(ValidationError) as info:
        w.rule(sg, **body)
    assert info.value.field == field
    assert words.lower() in info.value.reason.lower(), info.value.reason


def test_duplicates_and_references_are_refused(w: World) -> None:
    sg = w.group("web")
    first = w.rule(sg, direction="ingress", protocol="tcp", port_range_min=22, port_range_max=22)
    with pytest.raises(AlreadyExists, match=str(first.id)):
        w.rule(sg, direction="ingress", protocol="6", port_range_min=22, port_range_max=22)
    with pytest.raises(AlreadyExists):  # the default egress rule, again
        w.rule(sg, direction="egress", ethertype="IPv4", remote_ip_prefix="0.0.0.0/0")
    with pytest.raises(NotFoundError) as info:
        w.rule(sg, direction="ingress", remote_group_id=str(uuid.uuid4()))
    assert info.value.field == "remote_group_id"
    with pytest.raises(ValidationError) as refused:  # Neutron has no rule update
        w.o.update(first.replace(port_range_max=23))
    assert refused.value.field == "port_range_max"
    assert w.o.update(first.replace(description="ssh")).record.description == "ssh"


def test_ports_name_groups_of_their_own_tenant_and_router_ports_none(w: World) -> None:
    sg = w.group("web")
    member = Actor.member(w.tenant.id)
    globex = w.o.create(Tenant(name="globex")).record
    theirs = w.o.create(SecurityGroup(tenant_id=globex.id, name="theirs")).record
    for foreign in (theirs.id, uuid.uuid4()):  # another tenant's group reads as none at all
        port = Port(tenant_id=w.tenant.id, device_id=w.bridge.id, device_type=DeviceType.BRIDGE,
                    security_group_ids=(foreign,))  # fmt: skip
        with pytest.raises(NotFoundError) as info:
            w.o.create(port, actor=member)
        assert info.value.field == "security_group_ids"
    body = {"tenant_id": str(w.tenant.id), "device_id": str(w.bridge.id), "device_type": "router",
            "mac": "02:00:00:00:01:01", "address": "10.0.0.1", "subnet": "10.0.0.0/24",
            "security_group_ids": [str(sg.id)]}  # fmt: skip
    with pytest.raises(ValidationError) as router_port:
        from_dict(Port, body)
    assert router_port.value.field == "security_group_ids"
    with pytest.raises(ValidationError) as twice:
        from_dict(Port, {**body, "device_type": "bridge", "mac": None, "address": None,
                         "subnet": None, "security_group_ids": [str(sg.id)] * 2})  # fmt: skip
    assert twice.value.field == "security_group_ids"


class Recording:
    """A store that remembers the size of every transaction."""

    def __init__(self, store: Store) -> None:
        self.inner = store
        self.sizes: list[tuple[int, int]] = []

    def txn(self, compares: Sequence[Compare], ops: Sequence[Op]) -> int:
        self.sizes.append((len(compares), len(ops)))
        return self.inner.txn(compares, ops)

    def range(self, start: str, end: str, *, limit: int = 0) -> ListResult:
        return self.inner.range(start, end, limit=limit)

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


def test_every_change_is_one_transaction_within_the_stores_bound() -> None:
    w = World()
    rec = Recording(w.o.store)
    w.o = ObjectStore(rec, w.clock)  # type: ignore[arg-type]
    sg = w.group("web")
    assert len(rec.sizes) == 1, "a group and what it owns: one transaction"
    rules = [w.rule(sg, direction="ingress", protocol="tcp", port_range_min=p, port_range_max=p)
             for p in range(1000, 1040)]  # fmt: skip
    ports = [w.port(f"p{i}", f"10.0.1.{i}", sg, bind=False) for i in range(1, 60)]
    before = len(rec.sizes)
    w.o.update(w.o.get(Port, ports[0].id).record.replace(security_group_ids=()))
    assert len(rec.sizes) == before + 1
    assert len(w.members(sg)) == 58
    assert max(c for c, _ in rec.sizes) <= MAX_TXN_OPS
    assert max(o for _, o in rec.sizes) <= MAX_TXN_OPS
    for port in ports:
        w.o.delete(Port, port.id)
    w.o.delete(SecurityGroup, sg.id)  # 42 rules: in steps if need be, each within the bound
    assert max(o for _, o in rec.sizes) <= MAX_TXN_OPS
    assert all(w.o.find(SecurityGroupRule, r.id) is None for r in rules)
    assert w.o.list(Rule) == []
    assert w.o.list(Chain) == []


def test_a_member_manages_its_groups_and_names_no_other_tenants_group() -> None:
    w = World()
    member = Actor.member(w.tenant.id)
    sg = w.o.create(SecurityGroup(tenant_id=w.tenant.id, name="web"), actor=member).record
    body = {"tenant_id": str(w.tenant.id), "security_group_id": str(sg.id), "direction": "ingress"}
    rule = w.o.create(from_dict(SecurityGroupRule, body), actor=member).record
    assert compiled_id(rule.id) in w.chain(sg, "ingress").rule_ids
    globex = w.o.create(Tenant(name="globex")).record
    theirs = w.o.create(SecurityGroup(tenant_id=globex.id, name="theirs")).record
    before = w.o.snapshot()[0]
    remote = {**body, "protocol": "tcp", "remote_group_id": str(theirs.id)}
    with pytest.raises(NotFoundError) as info:
        w.o.create(from_dict(SecurityGroupRule, remote), actor=member)
    assert info.value.field == "remote_group_id"
    with pytest.raises(NotFoundError):  # the other tenant's group is not there for it
        w.o.delete(SecurityGroup, theirs.id, actor=member)
    assert w.o.snapshot()[0] == before
    w.o.delete(SecurityGroup, sg.id, actor=member)
    assert {c.record.id for c in w.o.list(Chain)} == {
        theirs.ingress_chain_id,
        theirs.egress_chain_id,
    }
