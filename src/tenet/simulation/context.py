"""The packet as it travels through the virtual topology during one simulation.

A :class:`Ctx` holds the flow match of the packet as it entered (``match``),
the header values as rewritten so far (only the rewritable ones: MACs, IP
addresses, L4 ports, and the number of routers crossed for the TTL), and what
the simulation has gathered: the match fields it read (the megaflow wildcard),
the tags of objects the decision depends on, the trace, packets to emit and
learned state to write.

Invariant: every read of a packet field goes through :meth:`Ctx.get` (or the
typed accessors built on it), so ``read`` is exactly the set of fields the
outcome depends on; the one exception is a router's TTL check
(:meth:`Ctx.ttl_expires`), which a result carries as a floor instead. Reading a
rewritten field reads the rewritten value, but still marks the original field as
read (the rewrite was decided by fields that are themselves marked).
"""

from __future__ import annotations

import uuid
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import TYPE_CHECKING, Any, Literal, get_args, overload

from tenet.packets import FlowMatch
from tenet.simulation.result import Emit, StateWrite, TraceKind, TraceStep
from tenet.simulation.tags import Tag

if TYPE_CHECKING:
    from tenet.simulation.conntrack import Tracking
    from tenet.simulation.state import StateView

# the flow-match fields by the type of their value (a test checks they are FlowMatch's)
BytesField = Literal[
    "eth_src", "eth_dst", "ip_src", "ip_dst", "arp_sha", "arp_spa", "arp_tha", "arp_tpa",
    "nd_target",
]  # fmt: skip
IntField = Literal[
    "in_port", "tunnel_key", "vlan", "vlan_inner", "eth_type", "ip_proto", "ip_tos", "ip_ttl",
    "ip_frag", "l4_src", "l4_dst", "tcp_flags", "arp_op", "icmp_id",
]  # fmt: skip
Field = BytesField | IntField
Rewritable = Literal["eth_src", "eth_dst", "ip_src", "ip_dst", "l4_src", "l4_dst"]

REWRITABLE: frozenset[str] = frozenset(get_args(Rewritable))
MAX_DEVICE_HOPS = 32


class Ctx:
    __slots__ = (
        "ct",
        "ct_read",
        "ct_split",
        "current",
        "emit",
        "frame",
        "generated",
        "hops",
        "in_port_id",
        "ingress_device",
        "match",
        "now",
        "out_port_id",
        "raw_tags",
        "read",
        "routers_crossed",
        "state",
        "state_view",
        "trace",
        "ttl_above",
    )

    def __init__(
        self,
        match: FlowMatch,
        frame: bytes,
        in_port_id: uuid.UUID,
        now: float,
        state_view: StateView | None = None,
        *,
        generated: bool = False,
    ) -> None:
        self.match = match
        self.frame = frame
        self.now = now
        self.current: dict[str, Any] = {}
        self.read: set[str] = {"in_port"}
        self.raw_tags: set[Tag] = set()
        self.trace: list[TraceStep] = []
        self.emit: list[Emit] = []
        self.state: list[StateWrite] = []
        self.in_port_id = in_port_id
        self.out_port_id: uuid.UUID | None = None
        self.routers_crossed = 0
        self.ttl_above = 0
        self.hops = 0
        # connection tracking (tenet.simulation.conntrack): the state view it asks, the
        # device the packet entered the topology at (the zone of its keys), whether
        # tenet generated the frame (it reads as RETURN), the tracking once a chain
        # asked, and whether a chain told NEW from ESTABLISHED
        self.state_view = state_view
        self.ingress_device: uuid.UUID | None = None
        self.generated = generated
        self.ct: Tracking | None = None
        self.ct_split = False
        # fields only the connection key read: the flow holds them, the megaflow does
        # not (its result is re-tracked for each connection: conntrack.retrack)
        self.ct_read: set[str] = set()

    # -- fields ---------------------------------------------------------------------
    @overload
    def get(self, name: BytesField) -> bytes: ...

    @overload
    def get(self, name: IntField) -> int: ...

    def get(self, name: Field) -> Any:
        """The current value of one flow-match field; marks it as read."""
        self.read.add(name)
        if name in self.current:
            return self.current[name]
        return getattr(self.match, name)

    def set(self, name: Rewritable, value: Any) -> None:
        """Rewrite a header field (MACs, IP addresses, L4 ports)."""
        if name not in REWRITABLE:
            raise ValueError(f"{name} is not a rewritable field")
        if value == getattr(self.match, name):
            self.current.pop(name, None)
        else:
            self.current[name] = value

    def peek(self, name: Field) -> Any:
        """A field's current value, read for a connection key (``ct_read``, not
        ``read``, unless something else reads it)."""
        if name not in self.read:
            self.ct_read.add(name)
        if name in self.current:
            return self.current[name]
        return getattr(self.match, name)

    def ttl_expires(self) -> bool:
        """A router's TTL check: does the packet's TTL run out at this router?

        Passing is not a read of ``ip_ttl``: it raises ``ttl_above``, the floor every
        packet of the flow must exceed (a datapath checks it as this router would), so
        one flow serves every TTL. Running out does read it (the outcome is an ICMP
        error for this TTL only).
        """
        if self.match.ip_ttl - self.routers_crossed <= 1:
            self.read.add("ip_ttl")
            return True
        self.ttl_above = max(self.ttl_above, self.routers_crossed + 1)
        return False

    def ip_src(self) -> IPv4Address | IPv6Address | None:
        raw = self.get("ip_src")
        return ip_address(raw) if raw else None

    def ip_dst(self) -> IPv4Address | IPv6Address | None:
        raw = self.get("ip_dst")
        return ip_address(raw) if raw else None

    # -- what the simulation gathers ------------------------------------------------------
    def tag(self, *tags: Tag) -> None:
        """Record what the outcome depends on (tags from :mod:`.tags`)."""
        self.raw_tags.update(tags)

    @property
    def tags(self) -> frozenset[Tag]:
        """The tags as the result carries them."""
        return frozenset(self.raw_tags)

    def note(self, kind: TraceKind, ident: uuid.UUID | None, name: str, detail: str) -> None:
        self.trace.append(TraceStep(kind, ident, name, detail))
