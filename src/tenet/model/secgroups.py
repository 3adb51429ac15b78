"""Security groups (Neutron's semantics) and their rules.

A **security group** is a set of ports (members name it in
``Port.security_group_ids``) and a list of **rules**, each of which *allows*
some traffic: by ``direction`` (``ingress``: to the VM behind the port;
``egress``: from it), ``ethertype``, ``protocol`` (a number; the API also takes
``tcp``, ``udp``, ``icmp``, ``icmpv6``, ``sctp``), ``port_range_min``/``max``
(for ICMP they are the type and the code, as Neutron has them) and at most one
remote: a prefix (``remote_ip_prefix``) or the members of a group
(``remote_group_id``). What no rule of a port's groups allows is dropped; a
reply of a connection the port's traffic opened is allowed (``stateful``).
A new group gets two rules that allow all egress (IPv4, IPv6), as Neutron's.

The object layer compiles each group into records the simulation already runs
(:mod:`tenet.store.secgroups`): an ingress and an egress chain, a rule per group
rule (named after it), and an IP address group of its members' addresses. Their ids are
the group's fields below, derived from the group's id (:func:`derived_id`), set by
the object layer whatever a create says; those records are the group's: the API
refuses to change them directly.
"""

from __future__ import annotations

import enum
import ipaddress
import uuid
from collections.abc import Callable
from typing import ClassVar

from tenet.errors import ValidationError
from tenet.model.base import TenantRecord, record
from tenet.model.types import IPNetwork, check_range

PROTOCOLS = {"tcp": 6, "udp": 17, "icmp": 1, "icmpv6": 58, "ipv6-icmp": 58, "sctp": 132}
PORT_PROTOCOLS = frozenset({6, 17, 132})
ICMP_PROTOCOLS = frozenset({1, 58})
DESCRIPTION_MAX = 255

_DERIVED = uuid.UUID("5e7c1d2a-3b4f-4c6d-8e9f-a0b1c2d3e4f5")


def derived_id(group_id: uuid.UUID, role: str) -> uuid.UUID:
    """The id of a record a group owns (``ingress``, ``egress``, ``members``...): found
    again from the group's id alone, as MidoNet's translators derive theirs."""
    return uuid.uuid5(_DERIVED, f"{group_id}/{role}")


def parse_protocol(value: object, field: str = "protocol") -> int:
    """A protocol number from a number or one of :data:`PROTOCOLS`' names."""
    if isinstance(value, str):
        name = value.strip().lower()
        if name in PROTOCOLS:
            return PROTOCOLS[name]
        if name.isdigit():
            value = int(name)
        else:
            names = ", ".join(sorted(PROTOCOLS))
            raise ValidationError(field, f"{value!r} is not a protocol number or one of {names}")
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(field, f"expected a protocol number or name, got {value!r:.40}")
    check_range(value, 0, 255, field)
    return value


class Direction(enum.StrEnum):
    INGRESS = "ingress"  # to the VM: the packet leaves tenet through the port
    EGRESS = "egress"  # from the VM: the packet enters tenet through the port


class EtherType(enum.StrEnum):
    IPV4 = "IPv4"
    IPV6 = "IPv6"

    @property
    def version(self) -> int:
        return 4 if self is EtherType.IPV4 else 6

    @property
    def eth_type(self) -> int:
        return 0x0800 if self is EtherType.IPV4 else 0x86DD


@record
class SecurityGroup(TenantRecord):
    KIND = "security_groups"

    description: str = ""
    # replies of connections the members' traffic opened are allowed without a rule
    stateful: bool = True
    # the records the group owns (set by the object layer; see derived_id)
    ingress_chain_id: uuid.UUID | None = None
    egress_chain_id: uuid.UUID | None = None
    ip_addr_group_id: uuid.UUID | None = None

    def check(self) -> None:
        _check_description(self.description)

    def chain_for(self, direction: Direction) -> uuid.UUID | None:
        return self.ingress_chain_id if direction is Direction.INGRESS else self.egress_chain_id


@record
class SecurityGroupRule(TenantRecord):
    KIND = "security_group_rules"
    # the codec reads ``protocol`` with this: a number, or a name (stored as the number)
    PARSERS: ClassVar[dict[str, Callable[[object, str], object]]] = {
        "protocol": lambda value, path: None if value is None else parse_protocol(value, path)
    }

    security_group_id: uuid.UUID
    direction: Direction
    ethertype: EtherType = EtherType.IPV4
    protocol: int | None = None
    port_range_min: int | None = None
    port_range_max: int | None = None
    remote_ip_prefix: IPNetwork | None = None
    remote_group_id: uuid.UUID | None = None
    description: str = ""

    def check(self) -> None:
        _check_description(self.description)
        if self.protocol is not None:
            check_range(self.protocol, 0, 255, "protocol")
        if self.remote_ip_prefix is not None and self.remote_group_id is not None:
            raise ValidationError(
                "remote_group_id", "a rule has a remote_ip_prefix or a remote_group_id, not both"
            )
        prefix = self.remote_ip_prefix
        if prefix is not None and prefix.version != self.ethertype.version:
            raise ValidationError(
                "remote_ip_prefix",
                f"{prefix} is IPv{prefix.version} but ethertype is {self.ethertype}",
            )
        if self.protocol == 58 and self.ethertype is EtherType.IPV4:
            raise ValidationError("protocol", "ICMPv6 (58) needs ethertype IPv6")
        self._check_ports()

    def _check_ports(self) -> None:
        lo, hi = self.port_range_min, self.port_range_max
        if lo is None and hi is None:
            return
        if self.protocol in PORT_PROTOCOLS:
            if lo is None or hi is None:
                field = "port_range_min" if lo is None else "port_range_max"
                raise ValidationError(field, "a port range needs both port_range_min and max")
            check_range(lo, 1, 65535, "port_range_min")
            check_range(hi, 1, 65535, "port_range_max")
            if lo > hi:
                raise ValidationError("port_range_max", f"{hi} is below port_range_min {lo}")
        elif self.protocol in ICMP_PROTOCOLS:
            if lo is None:
                raise ValidationError("port_range_min", "an ICMP code (max) needs a type (min)")
            check_range(lo, 0, 255, "port_range_min")
            if hi is not None:
                check_range(hi, 0, 255, "port_range_max")
        else:
            field = "port_range_min" if lo is not None else "port_range_max"
            raise ValidationError(
                field, "port ranges need protocol tcp, udp or sctp (ICMP: type and code)"
            )

    @property
    def nw_proto(self) -> int | None:
        """The protocol number a packet has: ``icmp`` in an IPv6 rule is ICMPv6."""
        if self.protocol == 1 and self.ethertype is EtherType.IPV6:
            return 58
        return self.protocol

    @property
    def remote_prefix(self) -> IPNetwork | None:
        """The remote prefix that restricts anything (``0.0.0.0/0`` or ``::/0``: none)."""
        prefix = self.remote_ip_prefix
        if prefix is None or prefix.prefixlen == 0:
            return None
        return prefix

    def summary(self) -> str:
        """A short label for traces: ``ingress IPv4 tcp 22 from 10.0.0.0/8``."""
        names = {6: "tcp", 17: "udp", 1: "icmp", 58: "icmpv6", 132: "sctp"}
        parts = [str(self.direction), str(self.ethertype)]
        proto = self.nw_proto
        parts.append("any" if proto is None else names.get(proto, str(proto)))
        lo, hi = self.port_range_min, self.port_range_max
        if proto in ICMP_PROTOCOLS and lo is not None:
            parts.append(f"type {lo}" + (f" code {hi}" if hi is not None else ""))
        elif lo is not None:
            parts.append(str(lo) if lo == hi else f"{lo}-{hi}")
        way = "from" if self.direction is Direction.INGRESS else "to"
        if self.remote_group_id is not None:
            parts.append(f"{way} group {self.remote_group_id}")
        elif self.remote_prefix is not None:
            parts.append(f"{way} {self.remote_prefix}")
        return " ".join(parts)


def _check_description(value: str) -> None:
    if len(value) > DESCRIPTION_MAX:
        raise ValidationError(
            "description", f"is {len(value)} characters long; at most {DESCRIPTION_MAX}"
        )


def any_network(ethertype: EtherType) -> IPNetwork:
    if ethertype is EtherType.IPV4:
        return ipaddress.IPv4Network("0.0.0.0/0")
    return ipaddress.IPv6Network("::/0")
