"""Rule chains, and the sets rules refer to (port groups, IP address groups).

A **chain** is an ordered list of rules (``rule_ids``, kept by the object layer).
A **rule** has a condition and an action. Every condition field is optional
(``None`` or empty matches anything) and has an ``inv_`` twin that inverts it.
Actions: accept, drop, reject and the NAT actions end the chain walk; continue
goes on to the next rule; jump walks another chain and comes back unless that
chain decided; return leaves the current chain. Security groups are chains whose
rules use IP address groups; floating IPs are a DNAT/SNAT pair of rules on the
provider router's chains.
"""

from __future__ import annotations

import enum
import uuid

from tenet.errors import ValidationError
from tenet.model.base import TenantRecord, record
from tenet.model.types import (
    MAC,
    IPAddress,
    IPNetwork,
    check_mac,
    check_range,
    check_same_family,
)

PORT_MAX = 65535


@record
class PortRange:
    """An inclusive L4 port range ``start..end``."""

    start: int
    end: int

    def __post_init__(self) -> None:
        check_range(self.start, 0, PORT_MAX, "start")
        check_range(self.end, 0, PORT_MAX, "end")
        if self.start > self.end:
            raise ValidationError("end", f"{self.end} is below start {self.start}")

    def __contains__(self, port: object) -> bool:
        return isinstance(port, int) and self.start <= port <= self.end


class CtState(enum.StrEnum):
    """Connection-tracking state of a packet, as rules match it."""

    NEW = "new"  # the first packet of a connection (the forward direction)
    ESTABLISHED = "established"  # a packet of a connection already seen
    RETURN = "return"  # a reply: the reverse direction of a tracked connection


@record
class Condition:
    in_port_ids: tuple[uuid.UUID, ...] = ()
    inv_in_ports: bool = False
    out_port_ids: tuple[uuid.UUID, ...] = ()
    inv_out_ports: bool = False
    in_port_group_id: uuid.UUID | None = None
    inv_in_port_group: bool = False
    out_port_group_id: uuid.UUID | None = None
    inv_out_port_group: bool = False
    eth_type: int | None = None
    inv_eth_type: bool = False
    eth_src: MAC | None = None
    inv_eth_src: bool = False
    eth_dst: MAC | None = None
    inv_eth_dst: bool = False
    nw_src: IPNetwork | None = None
    inv_nw_src: bool = False
    nw_dst: IPNetwork | None = None
    inv_nw_dst: bool = False
    ip_addr_group_src_id: uuid.UUID | None = None
    inv_ip_addr_group_src: bool = False
    ip_addr_group_dst_id: uuid.UUID | None = None
    inv_ip_addr_group_dst: bool = False
    nw_proto: int | None = None
    inv_nw_proto: bool = False
    tp_src: PortRange | None = None
    inv_tp_src: bool = False
    tp_dst: PortRange | None = None
    inv_tp_dst: bool = False
    icmp_type: int | None = None
    inv_icmp_type: bool = False
    icmp_code: int | None = None
    inv_icmp_code: bool = False
    ct_state: CtState | None = None
    inv_ct_state: bool = False

    def __post_init__(self) -> None:
        if self.eth_type is not None:
            check_range(self.eth_type, 0x0600, 0xFFFF, "eth_type")
        if self.eth_src is not None:
            check_mac(self.eth_src, "eth_src")
        if self.eth_dst is not None:
            check_mac(self.eth_dst, "eth_dst")
        if self.nw_src is not None and self.nw_dst is not None:
            check_same_family(self.nw_src, self.nw_dst, "nw_dst")
        if self.nw_proto is not None:
            check_range(self.nw_proto, 0, 255, "nw_proto")
        if self.icmp_type is not None:
            check_range(self.icmp_type, 0, 255, "icmp_type")
        if self.icmp_code is not None:
            check_range(self.icmp_code, 0, 255, "icmp_code")
            if self.icmp_type is None:
                raise ValidationError("icmp_code", "needs icmp_type")
        self._check_l4()

    def _check_l4(self) -> None:
        has_ports = self.tp_src is not None or self.tp_dst is not None
        has_icmp = self.icmp_type is not None
        if has_ports and has_icmp:
            raise ValidationError("icmp_type", "cannot be combined with tp_src/tp_dst")
        if has_ports and self.nw_proto not in (6, 17, 132):
            field = "tp_src" if self.tp_src is not None else "tp_dst"
            raise ValidationError(field, "port ranges need nw_proto 6 (TCP), 17 (UDP) or 132")
        if has_icmp and self.nw_proto not in (1, 58):
            raise ValidationError("icmp_type", "needs nw_proto 1 (ICMP) or 58 (ICMPv6)")


class RuleAction(enum.StrEnum):
    ACCEPT = "accept"
    DROP = "drop"
    REJECT = "reject"
    CONTINUE = "continue"
    JUMP = "jump"
    RETURN = "return"
    SNAT = "snat"
    DNAT = "dnat"
    MASQUERADE = "masquerade"
    REV_SNAT = "rev_snat"
    REV_DNAT = "rev_dnat"


NAT_ACTIONS = frozenset({RuleAction.SNAT, RuleAction.DNAT})


@record
class NatTarget:
    """Addresses ``start..end`` and L4 ports ``port_start..port_end`` to translate to."""

    start: IPAddress
    end: IPAddress
    port_start: int = 0
    port_end: int = 0

    def __post_init__(self) -> None:
        check_same_family(self.start, self.end, "end")
        if int(self.end) < int(self.start):
            raise ValidationError("end", f"{self.end} is below start {self.start}")
        check_range(self.port_start, 0, PORT_MAX, "port_start")
        check_range(self.port_end, 0, PORT_MAX, "port_end")
        if self.port_end < self.port_start:
            raise ValidationError("port_end", f"{self.port_end} is below port_start")


@record
class Chain(TenantRecord):
    KIND = "chains"

    rule_ids: tuple[uuid.UUID, ...] = ()

    def check(self) -> None:
        if len(set(self.rule_ids)) != len(self.rule_ids):
            raise ValidationError("rule_ids", "lists a rule twice")


@record
class Rule(TenantRecord):
    KIND = "rules"

    chain_id: uuid.UUID
    condition: Condition = Condition()
    action: RuleAction = RuleAction.ACCEPT
    jump_chain_id: uuid.UUID | None = None
    nat_targets: tuple[NatTarget, ...] = ()

    def check(self) -> None:
        if self.action is RuleAction.JUMP:
            if self.jump_chain_id is None:
                raise ValidationError("jump_chain_id", "a jump rule needs a target chain")
            if self.jump_chain_id == self.chain_id:
                raise ValidationError("jump_chain_id", "a rule cannot jump to its own chain")
        elif self.jump_chain_id is not None:
            raise ValidationError("jump_chain_id", f"only jump rules have one, not {self.action}")
        if self.action in NAT_ACTIONS:
            if not self.nat_targets:
                raise ValidationError("nat_targets", f"a {self.action} rule needs a target")
        elif self.nat_targets:
            raise ValidationError("nat_targets", f"a {self.action} rule has no NAT targets")


@record
class PortGroup(TenantRecord):
    """A set of ports (members name it in ``Port.port_group_ids``)."""

    KIND = "port_groups"

    stateful: bool = False


@record
class IPAddrGroup(TenantRecord):
    """A set of addresses and prefixes, matched by rules (security group members)."""

    KIND = "ip_addr_groups"

    addresses: tuple[IPNetwork, ...] = ()
    # set by the operator: every tenant's rules may name it
    shared: bool = False

    def check(self) -> None:
        if len(set(self.addresses)) != len(self.addresses):
            raise ValidationError("addresses", "lists an address twice")
