"""The object layer's rules for particular kinds, run inside a change's transaction.

``PREPARE[kind](work, old, new, position)`` runs before a record is written (``old``
is None for a create) and returns the record to write; ``DELETE[kind](work,
record)`` runs when one is deleted. They keep what the reference index alone does
not: unique 24-bit tunnel keys (claimed under index keys), both sides of a link,
one binding per port and per interface, a chain's rule order, no loop of chain
jumps, non-overlapping subnets on a router, DHCP host addresses in their subnet,
and security groups compiled into chains, rules and address groups
(:mod:`tenet.store.secgroups`).

Invariant: no rule scans a kind. What a rule needs about other records it reads by
key, or through the reference index under the target's guard
(:meth:`~tenet.store.unit_of_work.UnitOfWork.referrers`), so a transaction's size
never grows with the size of the store.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from tenet.errors import AlreadyExists, ReferenceConflict, ValidationError
from tenet.model import (
    Bridge,
    Chain,
    DeviceType,
    Port,
    PortBinding,
    Record,
    Route,
    Rule,
    RuleAction,
    SecurityGroup,
    SecurityGroupRule,
    TunnelZoneMember,
)
from tenet.model.consistency import (
    check_dhcp_host,
    check_peering,
    check_route_next_hop,
    check_router_port_subnets,
    find_jump_cycle,
)
from tenet.model.rules import IPAddrGroup
from tenet.model.services import DhcpHost, DhcpSubnet
from tenet.model.types import TUNNEL_KEY_MAX
from tenet.store import secgroups
from tenet.store.keys import (
    TUNNEL_KEY_NEXT,
    binding_iface_key,
    binding_port_key,
    object_key,
    tunnel_key_key,
    tz_member_key,
)
from tenet.store.unit_of_work import UnitOfWork

MAX_JUMP_CHAINS = 64  # chains a jump-loop check follows before it refuses the jump


def _tunnel_key(work: UnitOfWork, record: Port | Bridge, old: Port | Bridge | None) -> int:
    owner = object_key(type(record), record.id)
    if old is not None and old.tunnel_key:
        if record.tunnel_key not in (0, old.tunnel_key):
            raise ValidationError("tunnel_key", "cannot be changed once allocated")
        return old.tunnel_key
    if record.tunnel_key:
        if not work.claim(tunnel_key_key(record.tunnel_key), owner):
            raise AlreadyExists(f"tunnel_key {record.tunnel_key} is already in use")
        return record.tunnel_key
    raw = work.read_raw(TUNNEL_KEY_NEXT)
    start = int(raw) if raw else 1
    for offset in range(TUNNEL_KEY_MAX):
        key = (start - 1 + offset) % TUNNEL_KEY_MAX + 1
        if work.claim(tunnel_key_key(key), owner):
            work.write_raw(TUNNEL_KEY_NEXT, str(key % TUNNEL_KEY_MAX + 1).encode())
            return key
    raise AlreadyExists("every 24-bit tunnel key is in use")


def _release_tunnel_key(work: UnitOfWork, record: Record) -> None:
    assert isinstance(record, Port | Bridge)
    if record.tunnel_key:
        work.release(tunnel_key_key(record.tunnel_key), object_key(type(record), record.id))


def _prepare_bridge(work: UnitOfWork, old: Any, new: Any, position: int | None) -> Any:
    return new.replace(tunnel_key=_tunnel_key(work, new, old))


def _prepare_port(work: UnitOfWork, old: Port | None, new: Port, position: int | None) -> Port:
    new = _prepare_port_links(work, old, new)
    secgroups.port_written(work, old, new)  # the groups it joins or leaves
    return new


def _delete_port(work: UnitOfWork, record: Record) -> None:
    _release_tunnel_key(work, record)
    secgroups.port_deleted(work, record)


def _prepare_port_links(work: UnitOfWork, old: Port | None, new: Port) -> Port:
    new = new.replace(tunnel_key=_tunnel_key(work, new, old))
    if new.subnet is not None and (old is None or old.subnet != new.subnet):
        siblings = work.referrer_records(new.device_id, Port)
        check_router_port_subnets(new, [p for p in siblings if p.device_id == new.device_id])
    old_peer = old.peer_id if old is not None else None
    if new.peer_id == old_peer:
        return new
    if old_peer is not None:
        former = work.get(Port, old_peer)
        if former is not None and former.peer_id == new.id:
            work.put(former.replace(peer_id=None))
    if new.peer_id is not None:
        peer = work.get(Port, new.peer_id)
        assert peer is not None  # checked with the references
        bridge_side = new if new.device_type is DeviceType.BRIDGE else peer
        bridge = work.get(Bridge, bridge_side.device_id)
        check_peering(new, peer, shared_bridge=bridge is not None and bridge.shared)
        if peer.peer_id not in (None, new.id):
            raise ReferenceConflict(f"port {peer.id} is already linked to port {peer.peer_id}")
        for side in (new, peer):
            if work.read_raw(binding_port_key(side.id)) is not None:
                raise ReferenceConflict(
                    f"port {side.id} is bound to a host interface; an interior port cannot be"
                )
        work.put(peer.replace(peer_id=new.id))
    return new


def _prepare_route(work: UnitOfWork, old: Route | None, new: Route, position: int | None) -> Route:
    port = work.get(Port, new.next_hop_port_id) if new.next_hop_port_id else None
    check_route_next_hop(new, port)
    return new


def _prepare_chain(work: UnitOfWork, old: Chain | None, new: Chain, position: int | None) -> Chain:
    secgroups.refuse_owned(work, new)
    before = set(old.rule_ids) if old is not None else set()
    if set(new.rule_ids) != before:
        raise ValidationError(
            "rule_ids", "can only be reordered here; add and delete rules through the rules"
        )
    return new


def _jumps_from(work: UnitOfWork, chain_id: uuid.UUID, new: Rule) -> set[uuid.UUID]:
    """The chains the rules of ``chain_id`` jump to, ``new`` as it will be."""
    out = set()
    for rule in work.referrer_records(chain_id, Rule):
        if rule.id == new.id or rule.chain_id != chain_id:
            continue
        if rule.action is RuleAction.JUMP and rule.jump_chain_id is not None:
            out.add(rule.jump_chain_id)
    if new.chain_id == chain_id and new.jump_chain_id is not None:
        out.add(new.jump_chain_id)
    return out


def _prepare_rule(work: UnitOfWork, old: Rule | None, new: Rule, position: int | None) -> Rule:
    secgroups.refuse_owned(work, new)
    if old is not None and old.chain_id != new.chain_id:
        secgroups.refuse_owned(work, old)
    chain = work.get(Chain, new.chain_id)
    assert chain is not None
    if old is None:
        ids = list(chain.rule_ids)
        where = len(ids) if position is None else position
        if not 0 <= where <= len(ids):
            raise ValidationError("position", f"{position} is outside 0..{len(ids)}")
        ids.insert(where, new.id)
        work.put(chain.replace(rule_ids=tuple(ids)))
    if new.action is RuleAction.JUMP:
        assert new.jump_chain_id is not None
        # the jump graph reachable from the rule's chain, read chain by chain under guards
        jumps: dict[uuid.UUID, set[uuid.UUID]] = {}
        todo = [new.chain_id]
        while todo:
            chain_id = todo.pop()
            if chain_id in jumps:
                continue
            if len(jumps) >= MAX_JUMP_CHAINS:
                raise ValidationError(
                    "jump_chain_id", f"the jump reaches more than {MAX_JUMP_CHAINS} chains"
                )
            jumps[chain_id] = _jumps_from(work, chain_id, new)
            todo.extend(jumps[chain_id])
        cycle = find_jump_cycle(new.chain_id, jumps)
        if cycle:
            path = " -> ".join(str(c) for c in cycle)
            raise ValidationError("jump_chain_id", f"the jump makes a loop of chains: {path}")
    return new


def _delete_rule(work: UnitOfWork, record: Record) -> None:
    assert isinstance(record, Rule)
    secgroups.refuse_owned(work, record)
    chain = work.get(Chain, record.chain_id)
    if chain is not None and record.id in chain.rule_ids and not work.is_deleted(chain):
        work.put(chain.replace(rule_ids=tuple(r for r in chain.rule_ids if r != record.id)))


def _prepare_ip_addr_group(
    work: UnitOfWork, old: IPAddrGroup | None, new: IPAddrGroup, position: int | None
) -> IPAddrGroup:
    secgroups.refuse_owned(work, new)
    return new


def _prepare_binding(
    work: UnitOfWork, old: PortBinding | None, new: PortBinding, position: int | None
) -> PortBinding:
    port = work.get(Port, new.port_id)
    assert port is not None
    if port.peer_id is not None:
        raise ValidationError(
            "port_id", f"port {port.id} is an interior port (linked to {port.peer_id})"
        )
    owner = object_key(PortBinding, new.id)
    if old is not None:
        _release_binding(work, old)
    if not work.claim(binding_port_key(new.port_id), owner):
        raise AlreadyExists(f"port {new.port_id} is already bound")
    if not work.claim(binding_iface_key(new.host_id, new.interface), owner):
        raise AlreadyExists(f"interface {new.interface} of host {new.host_id} is already bound")
    return new


def _release_binding(work: UnitOfWork, record: Record) -> None:
    assert isinstance(record, PortBinding)
    owner = object_key(PortBinding, record.id)
    work.release(binding_port_key(record.port_id), owner)
    work.release(binding_iface_key(record.host_id, record.interface), owner)


def _prepare_member(
    work: UnitOfWork, old: TunnelZoneMember | None, new: TunnelZoneMember, position: int | None
) -> TunnelZoneMember:
    if old is not None:
        _release_member(work, old)
    key = tz_member_key(new.tunnel_zone_id, new.host_id)
    if not work.claim(key, object_key(TunnelZoneMember, new.id)):
        raise AlreadyExists(f"host {new.host_id} is already in tunnel zone {new.tunnel_zone_id}")
    return new


def _release_member(work: UnitOfWork, record: Record) -> None:
    assert isinstance(record, TunnelZoneMember)
    key = tz_member_key(record.tunnel_zone_id, record.host_id)
    work.release(key, object_key(TunnelZoneMember, record.id))


def _prepare_dhcp_host(
    work: UnitOfWork, old: DhcpHost | None, new: DhcpHost, position: int | None
) -> DhcpHost:
    subnet = work.get(DhcpSubnet, new.subnet_id)
    assert subnet is not None
    check_dhcp_host(new, subnet)
    return new


PREPARE: dict[type[Record], Callable[..., Any]] = {
    Bridge: _prepare_bridge,
    Port: _prepare_port,
    Route: _prepare_route,
    Chain: _prepare_chain,
    Rule: _prepare_rule,
    IPAddrGroup: _prepare_ip_addr_group,
    SecurityGroup: secgroups.prepare_group,
    SecurityGroupRule: secgroups.prepare_rule,
    PortBinding: _prepare_binding,
    TunnelZoneMember: _prepare_member,
    DhcpHost: _prepare_dhcp_host,
}

DELETE: dict[type[Record], Callable[[UnitOfWork, Record], None]] = {
    Bridge: _release_tunnel_key,
    Port: _delete_port,
    Rule: _delete_rule,
    SecurityGroup: secgroups.delete_group,
    SecurityGroupRule: secgroups.delete_rule,
    PortBinding: _release_binding,
    TunnelZoneMember: _release_member,
}
