"""The state the simulation reads besides the topology: learned tables, connections, NAT.

:class:`StateView` is what a simulation may ask; :class:`DictState` answers from
plain dicts (tests, ``tenet trace``), the agent's
:class:`~tenet.agent.learned.LearnedState` from what agents wrote to the store.

* **learned state** (agents write it to the store under leases): a bridge's MAC
  table, a router's ARP table, and whether a router's ARP requests go unanswered;
* **flow state** (DESIGN.md, "Flow state"; never in the store): connection
  tracking entries and NAT mappings. This module is the seam the conntrack issue
  fills in: the keys and values are typed here and every StateView answers the
  lookups, but nothing asks them yet (``Ctx.ct_state`` is NEW for every packet)
  and no result writes them.

Invariants: every key holds a **zone**, the id of the device whose table it is
in (the ingress device of a forward connection; the router of a NAT mapping), so
tenants with overlapping addresses never share an entry. ICMP echo uses its
identifier as both ports. Lookups never raise; a miss is None.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, field
from typing import Protocol

from tenet.model import IPAddress


@dataclass(frozen=True, slots=True)
class ConnectionKey:
    """One direction of a connection as seen by one device."""

    zone: uuid.UUID  # the device id
    proto: int
    src: IPAddress
    src_port: int  # TCP/UDP/SCTP port, or the ICMP echo identifier
    dst: IPAddress
    dst_port: int  # likewise (the identifier again, for ICMP echo)

    def __hash__(self) -> int:
        # what a dataclass would hash, without ipaddress's own __hash__ (a hex string per
        # address): keys are hashed several times for every tracked packet
        return hash(
            (self.zone.int, self.proto, int(self.src), self.src_port, int(self.dst), self.dst_port)
        )

    def reversed(self) -> ConnectionKey:
        """The key of the other direction, in the same zone."""
        return ConnectionKey(
            self.zone, self.proto, self.dst, self.dst_port, self.src, self.src_port
        )


class Direction(enum.Enum):
    FORWARD = "forward"  # the packet that opened the connection went this way
    RETURN = "return"  # replies go this way


@dataclass(frozen=True, slots=True)
class Connection:
    """A conntrack entry: which way its key points. Expiry is the holder's business
    (it is refreshed while flows use it), not the simulation's."""

    key: ConnectionKey
    direction: Direction


class NatKind(enum.Enum):
    FORWARD_SNAT = "forward_snat"
    FORWARD_DNAT = "forward_dnat"
    REVERSE_SNAT = "reverse_snat"
    REVERSE_DNAT = "reverse_dnat"


@dataclass(frozen=True, slots=True)
class NatKey:
    """A packet's addresses at one router, for one kind of translation."""

    kind: NatKind
    zone: uuid.UUID  # the router id
    proto: int
    src: IPAddress
    src_port: int
    dst: IPAddress
    dst_port: int


@dataclass(frozen=True, slots=True)
class NatBinding:
    """What a NAT key translates to: the address and port that replace the original."""

    ip: IPAddress
    port: int


class StateView(Protocol):
    """Everything but the topology a simulation reads."""

    def mac_port(self, bridge_id: uuid.UUID, mac: bytes) -> uuid.UUID | None:
        """The port a MAC was learned on, on one bridge."""
        ...

    def arp_mac(self, router_id: uuid.UUID, ip: IPAddress) -> bytes | None:
        """The MAC a router learned for a next-hop address."""
        ...

    def arp_failed(self, router_id: uuid.UUID, ip: IPAddress) -> bool:
        """True while a router's ARP requests for ``ip`` have gone unanswered (it
        answers packets to it with ICMP host unreachable until the entry expires)."""
        ...

    def connection(self, key: ConnectionKey) -> Connection | None:
        """The conntrack entry of ``key`` (None: the packet is not part of a connection
        this host knows)."""
        ...

    def nat_mapping(self, key: NatKey) -> NatBinding | None:
        """The translation recorded for ``key`` (None: none yet)."""
        ...


@dataclass
class DictState:
    """State in plain dicts (tests, ``tenet trace``)."""

    macs: dict[tuple[uuid.UUID, bytes], uuid.UUID] = field(default_factory=dict)
    arps: dict[tuple[uuid.UUID, IPAddress], bytes] = field(default_factory=dict)
    failed: set[tuple[uuid.UUID, IPAddress]] = field(default_factory=set)
    connections: dict[ConnectionKey, Connection] = field(default_factory=dict)
    nat: dict[NatKey, NatBinding] = field(default_factory=dict)

    def mac_port(self, bridge_id: uuid.UUID, mac: bytes) -> uuid.UUID | None:
        return self.macs.get((bridge_id, mac))

    def arp_mac(self, router_id: uuid.UUID, ip: IPAddress) -> bytes | None:
        return self.arps.get((router_id, ip))

    def arp_failed(self, router_id: uuid.UUID, ip: IPAddress) -> bool:
        return (router_id, ip) in self.failed

    def connection(self, key: ConnectionKey) -> Connection | None:
        return self.connections.get(key)

    def nat_mapping(self, key: NatKey) -> NatBinding | None:
        return self.nat.get(key)
