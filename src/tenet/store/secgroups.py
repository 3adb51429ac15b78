"""Security groups compiled into chains, rules and address groups, in the change's transaction.

What a group owns (ids derived from the group's, :func:`tenet.model.secgroups.derived_id`):

* an **ingress** and an **egress chain**: one ACCEPT rule per group rule of that
  direction, then a last DROP rule ("no rule of the group allows it"), so a chain
  decides by itself. A compiled rule's id is derived from its group rule's
  (:func:`compiled_id`) and its name holds the group rule's id, so a trace names
  the group rule. Not the same id: agents key what they hold by id alone (the
  reach, the view, flow tags), and a group rule's events would be taken for the
  compiled rule's;
* an **IP address group** of its members' addresses (their fixed IPs and allowed
  address pairs), which rules naming the group as ``remote_group_id`` match.

The hooks below run in the object layer's transaction of the change
(:mod:`tenet.store.kind_rules` calls them), so a group, a rule or a port and what
they compile to are written whole or not at all:

* a group created: its chains, drop rules, address group, and the two allow-all
  egress rules Neutron gives every new group (and their compiled rules);
* a group rule created: its compiled rule, placed before its chain's drop rule;
  deleted: its compiled rule too; a duplicate of a rule of the group is refused;
* a port's groups, fixed IPs or address pairs changed, or the port deleted: the
  address groups of the groups it joins or leaves are recomputed from the members
  (read through the reference index, so nothing scans);
* a group deleted: its rules go (the object layer cascades them, and the rules of
  other groups that name it as their remote, as Neutron does), then what it owns;
  refused while a port is a member (naming the port), or while a record that is
  not the group's names one of its chains or its address group.

Owned records are the group's: writes to them that do not come from here (an
update of an owned chain or address group, a rule created, changed or deleted in
an owned chain) are refused with a ReferenceConflict (409) naming the group. An
owned record is one a group refers to (chains, address group) or a rule in an
owned chain: found through the reference index, so the records need no marker.
"""

from __future__ import annotations

import ipaddress
import uuid

from tenet.errors import AlreadyExists, ReferenceConflict
from tenet.model import (
    Chain,
    Condition,
    DeviceType,
    Direction,
    EtherType,
    IPAddrGroup,
    IPNetwork,
    Port,
    PortRange,
    Record,
    Rule,
    RuleAction,
    SecurityGroup,
    SecurityGroupRule,
)
from tenet.model.secgroups import ICMP_PROTOCOLS, PORT_PROTOCOLS, derived_id
from tenet.model.types import NAME_MAX
from tenet.store.unit_of_work import UnitOfWork

DROP_ROLE = {Direction.INGRESS: "ingress-drop", Direction.EGRESS: "egress-drop"}


def compiled_id(rule_id: uuid.UUID) -> uuid.UUID:
    """The id of the rule a security group rule compiles to."""
    return derived_id(rule_id, "rule")


def _label(group: SecurityGroup) -> str:
    return group.name or str(group.id)


def _name(text: str) -> str:
    return text if len(text) <= NAME_MAX else text[: NAME_MAX - 3] + "..."


# -- groups ------------------------------------------------------------------------------


def prepare_group(
    work: UnitOfWork, old: SecurityGroup | None, new: SecurityGroup, position: int | None
) -> SecurityGroup:
    if old is not None:
        if old.name != new.name:
            _rename_owned(work, new)
        return new
    new = new.replace(
        ingress_chain_id=derived_id(new.id, "ingress"),
        egress_chain_id=derived_id(new.id, "egress"),
        ip_addr_group_id=derived_id(new.id, "members"),
    )
    label = _label(new)
    for direction in Direction:
        chain_id = new.chain_for(direction)
        assert chain_id is not None
        drop_id = derived_id(new.id, DROP_ROLE[direction])
        _must_be_new(work, Chain, chain_id)
        _must_be_new(work, Rule, drop_id)
        work.put(_drop_rule(new, direction, chain_id, drop_id))
        work.put(
            Chain(
                id=chain_id,
                tenant_id=new.tenant_id,
                name=_name(f"security group {label} {direction}"),
                rule_ids=(drop_id,),
            )
        )
    assert new.ip_addr_group_id is not None
    _must_be_new(work, IPAddrGroup, new.ip_addr_group_id)
    work.put(
        IPAddrGroup(
            id=new.ip_addr_group_id,
            tenant_id=new.tenant_id,
            name=_name(f"security group {label} members"),
        )
    )
    for ethertype in EtherType:  # Neutron's default: every new group allows all egress
        rule = SecurityGroupRule(
            id=derived_id(new.id, f"default-egress-{ethertype}"),
            tenant_id=new.tenant_id,
            security_group_id=new.id,
            direction=Direction.EGRESS,
            ethertype=ethertype,
        )
        work.put(rule)
        _compile(work, new, rule)
    return new


def _drop_rule(
    group: SecurityGroup, direction: Direction, chain_id: uuid.UUID, ident: uuid.UUID
) -> Rule:
    return Rule(
        id=ident,
        tenant_id=group.tenant_id,
        name=_name(f"security group {_label(group)}: no {direction} rule allows it"),
        chain_id=chain_id,
        action=RuleAction.DROP,
    )


def _must_be_new(work: UnitOfWork, kind: type[Record], ident: uuid.UUID) -> None:
    if work.get(kind, ident) is not None:
        raise AlreadyExists(f"{kind.KIND} {ident}, which the security group would own, exists")


def _rename_owned(work: UnitOfWork, group: SecurityGroup) -> None:
    label = _label(group)
    for direction in Direction:
        chain_id = group.chain_for(direction)
        chain = work.get(Chain, chain_id) if chain_id is not None else None
        if chain is not None:
            work.put(chain.replace(name=_name(f"security group {label} {direction}")))
            drop_id = derived_id(group.id, DROP_ROLE[direction])
            drop = work.get(Rule, drop_id)
            if drop is not None:
                work.put(drop.replace(name=_drop_rule(group, direction, chain.id, drop_id).name))
    members = work.get(IPAddrGroup, group.ip_addr_group_id) if group.ip_addr_group_id else None
    if members is not None:
        work.put(members.replace(name=_name(f"security group {label} members")))


def delete_group(work: UnitOfWork, record: Record) -> None:
    """After the group and its rules are deleted: what it owns, unless others name it."""
    assert isinstance(record, SecurityGroup)
    for direction in Direction:
        chain_id = record.chain_for(direction)
        chain = work.get(Chain, chain_id) if chain_id is not None else None
        if chain is None or work.is_deleted(chain):
            continue
        for rule in work.referrer_records(chain.id, Rule):
            if rule.chain_id == chain.id and not work.is_deleted(rule):
                work.delete(rule)
        _refuse_named(work, record, chain)
        work.delete(chain)
    if record.ip_addr_group_id is not None:
        members = work.get(IPAddrGroup, record.ip_addr_group_id)
        if members is not None and not work.is_deleted(members):
            _refuse_named(work, record, members)
            work.delete(members)


def _refuse_named(work: UnitOfWork, group: SecurityGroup, owned: Record) -> None:
    for kind, ident in work.referrers(owned.id):
        found = work.get(kind, ident, compare=False)
        if found is not None and not work.is_deleted(found):
            raise ReferenceConflict(
                f"security group {group.id}: its {owned.KIND.removesuffix('s').replace('_', ' ')} "
                f"{owned.id} is named by {kind.KIND.removesuffix('s').replace('_', ' ')} "
                f"{ident}; remove that reference first"
            )


# -- group rules ---------------------------------------------------------------------------


def prepare_rule(
    work: UnitOfWork,
    old: SecurityGroupRule | None,
    new: SecurityGroupRule,
    position: int | None,
) -> SecurityGroupRule:
    group = work.get(SecurityGroup, new.security_group_id)
    assert group is not None  # checked with the references
    if old is None:
        _refuse_duplicate(work, new)
        _must_be_new(work, Rule, compiled_id(new.id))
        _compile(work, group, new)
    else:  # only the name and description may change: the compiled rule's name follows
        compiled = work.get(Rule, compiled_id(new.id))
        if compiled is not None:
            work.put(compiled.replace(name=_rule_name(group, new)))
    return new


def _semantics(rule: SecurityGroupRule) -> tuple[object, ...]:
    return (
        rule.direction,
        rule.ethertype,
        rule.nw_proto,
        rule.port_range_min,
        rule.port_range_max,
        rule.remote_prefix,
        rule.remote_group_id,
    )


def _refuse_duplicate(work: UnitOfWork, new: SecurityGroupRule) -> None:
    mine = _semantics(new)
    for other in work.referrer_records(new.security_group_id, SecurityGroupRule):
        if other.security_group_id == new.security_group_id and _semantics(other) == mine:
            raise AlreadyExists(
                f"security group {new.security_group_id} already has this rule: {other.id}"
            )


def _rule_name(group: SecurityGroup, rule: SecurityGroupRule) -> str:
    what = f"{rule.name} ({rule.summary()})" if rule.name else rule.summary()
    return _name(f"security group {_label(group)} rule {rule.id}: {what}")


def _compile(work: UnitOfWork, group: SecurityGroup, rule: SecurityGroupRule) -> None:
    """The ACCEPT rule of ``rule``, before its chain's last (drop) rule."""
    chain_id = group.chain_for(rule.direction)
    chain = work.get(Chain, chain_id) if chain_id is not None else None
    assert chain is not None, f"security group {group.id} has no {rule.direction} chain"
    compiled = Rule(
        id=compiled_id(rule.id),
        tenant_id=rule.tenant_id,
        name=_rule_name(group, rule),
        chain_id=chain.id,
        condition=condition_of(work, group, rule),
        action=RuleAction.ACCEPT,
    )
    work.put(compiled)
    ids = list(chain.rule_ids)
    ids.insert(max(0, len(ids) - 1), compiled.id)
    work.put(chain.replace(rule_ids=tuple(ids)))


def condition_of(work: UnitOfWork, group: SecurityGroup, rule: SecurityGroupRule) -> Condition:
    """What ``rule`` allows, as a rule condition (Neutron's mapping, as MidoNet's)."""
    proto = rule.nw_proto
    lo, hi = rule.port_range_min, rule.port_range_max
    tp_dst = icmp_type = icmp_code = None
    if proto in PORT_PROTOCOLS and lo is not None and hi is not None:
        tp_dst = PortRange(start=lo, end=hi)
    elif proto in ICMP_PROTOCOLS and lo is not None:
        icmp_type, icmp_code = lo, hi
    ingress = rule.direction is Direction.INGRESS
    prefix = rule.remote_prefix
    addr_group = None
    if rule.remote_group_id is not None:
        remote = group if rule.remote_group_id == group.id else None
        remote = remote or work.get(SecurityGroup, rule.remote_group_id)
        assert remote is not None  # checked with the references
        addr_group = remote.ip_addr_group_id
    return Condition(
        eth_type=rule.ethertype.eth_type,
        nw_proto=proto,
        nw_src=prefix if ingress else None,
        nw_dst=None if ingress else prefix,
        ip_addr_group_src_id=addr_group if ingress else None,
        ip_addr_group_dst_id=None if ingress else addr_group,
        tp_dst=tp_dst,
        icmp_type=icmp_type,
        icmp_code=icmp_code,
    )


def delete_rule(work: UnitOfWork, record: Record) -> None:
    assert isinstance(record, SecurityGroupRule)
    compiled = work.get(Rule, compiled_id(record.id))
    if compiled is None or work.is_deleted(compiled):
        return
    chain = work.get(Chain, compiled.chain_id)
    if chain is not None and not work.is_deleted(chain):
        work.put(chain.replace(rule_ids=tuple(r for r in chain.rule_ids if r != compiled.id)))
    work.delete(compiled)


# -- members -------------------------------------------------------------------------------


def member_addresses(port: Port) -> set[IPNetwork]:
    """What a member port puts in its groups' address groups."""
    out: set[IPNetwork] = {ipaddress.ip_network(ip) for ip in port.fixed_ips}
    out.update(pair.ip for pair in port.allowed_address_pairs)
    return out


def port_written(work: UnitOfWork, old: Port | None, new: Port) -> None:
    """A port is being created or changed: the groups it joins, leaves or whose
    addresses it changes get their address groups recomputed."""
    if new.device_type is not DeviceType.BRIDGE:
        return
    before = set(old.security_group_ids) if old is not None else set()
    after = set(new.security_group_ids)
    same = old is not None and member_addresses(old) == member_addresses(new)
    changed = before ^ after if same else before | after
    for group_id in sorted(changed):
        _refresh_members(work, group_id, new if group_id in after else None, new.id)


def port_deleted(work: UnitOfWork, record: Record) -> None:
    assert isinstance(record, Port)
    for group_id in sorted(set(record.security_group_ids)):
        _refresh_members(work, group_id, None, record.id)


def _refresh_members(
    work: UnitOfWork, group_id: uuid.UUID, port: Port | None, port_id: uuid.UUID
) -> None:
    """Recompute ``group_id``'s address group from its members, ``port`` (None: not a
    member) standing for the port ``port_id`` as it will be."""
    group = work.get(SecurityGroup, group_id)
    if group is None or work.is_deleted(group) or group.ip_addr_group_id is None:
        return
    members = [p for p in work.referrer_records(group_id, Port) if p.id != port_id]
    if port is not None:
        members.append(port)
    addresses: set[IPNetwork] = set()
    for member in members:
        if group_id in member.security_group_ids:
            addresses |= member_addresses(member)
    ordered = tuple(
        sorted(addresses, key=lambda n: (n.version, int(n.network_address), n.prefixlen))
    )
    current = work.get(IPAddrGroup, group.ip_addr_group_id)
    if current is not None and current.addresses != ordered:
        work.put(current.replace(addresses=ordered))


# -- owned records are the group's ------------------------------------------------------------


def owner_of(work: UnitOfWork, ident: uuid.UUID) -> uuid.UUID | None:
    """The security group that owns the chain or address group ``ident``, if any."""
    owners = work.referrers(ident, SecurityGroup)
    return owners[0][1] if owners else None


def refuse_owned(work: UnitOfWork, record: Record) -> None:
    """A direct write of a record a security group owns: refused, naming the group."""
    if isinstance(record, Rule):
        owner, what = (
            owner_of(work, record.chain_id),
            f"rule {record.id} of chain {record.chain_id}",
        )
    else:
        owner = owner_of(work, record.id)
        what = f"{record.KIND.removesuffix('s').replace('_', ' ')} {record.id}"
    if owner is not None:
        raise ReferenceConflict(
            f"{what} belongs to security group {owner}; change the group and its rules "
            "(/v1/security-groups, /v1/security-group-rules) instead"
        )
