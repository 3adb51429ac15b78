"""What one simulation returns: the contract between the simulation and the agent.

A :class:`SimulationResult` says everything the agent needs to act on one packet
and every later packet of its flow, and nothing the agent has to compute again:

* ``verdict``: FORWARD (``actions`` hold header rewrites and outputs), DROP,
  CONSUMED (answered locally: the answer is in ``emit``), or WAIT (the packet
  waits for ARP resolution of a next hop, ``waiting_for`` = (router, next hop);
  an ARP request is in ``emit``; install no flow: the agent queues the packet
  until the next hop is learned, or answers it with host unreachable when the
  requests go unanswered, ``tenet.agent.nexthops``).
* ``actions``: datapath actions in order. Header rewrites come first and are
  computed once, at ingress (the difference between the packet as it entered and
  as it leaves the last device), then one output per egress: a local port, or a
  tunnel to the host that owns a remote egress port, keyed by that port's
  tunnel key.
* ``match_fields``: the flow-match fields the simulation read. Any packet that
  agrees with this one on these fields, and whose TTL is above ``ttl_above``,
  gets the same result (a megaflow).
* ``ttl_above``: the TTL (IPv6 hop limit) the packet must exceed for this result:
  each router it crossed checked that its TTL does not run out there. That check
  is not a read of ``ip_ttl``: the result holds for every TTL above the floor, so
  a flow can match any TTL as long as the datapath checks the floor (0: none).
* ``tags``: every object the decision depended on, including lookups that found
  nothing (a MAC not in the table is tagged too, so learning it invalidates the
  flood flow), built by :mod:`tenet.simulation.tags`: object ids as
  ``str(uuid)``, learned entries, bindings and route lookups.
* ``emit``: packets the agent sends (ARP replies, ICMP errors, ARP requests).
* ``state``: learned state to write (MAC learned on a bridge port, ARP entry).
* ``trace``: the ordered hops, chains, rules and decisions, for ``tenet trace``.
* ``ct``: for a packet a chain asked the connection state of, what to do with flow
  state (:class:`CtOutcome`, :mod:`tenet.simulation.conntrack`); None otherwise.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass

from tenet.model import CtState, IPAddress
from tenet.packets.actions import OutputLocal, OutputTunnel, SimAction, VirtualOutput
from tenet.simulation.state import Connection, ConnectionKey
from tenet.simulation.tags import Tag


class Verdict(enum.Enum):
    FORWARD = "forward"
    DROP = "drop"
    CONSUMED = "consumed"
    WAIT = "wait"


# -- side effects ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Emit:
    """A generated frame.

    With ``from_device`` False the frame is sent out of exterior port ``port_id``
    as is (an ARP reply to the VM that asked). With ``from_device`` True the
    frame leaves the virtual device that owns ``port_id`` through that port and
    must itself be simulated from there (a router's ARP request into a bridge).
    """

    port_id: uuid.UUID
    frame: bytes
    from_device: bool = False


@dataclass(frozen=True, slots=True)
class MacLearned:
    bridge_id: uuid.UUID
    mac: bytes
    port_id: uuid.UUID
    at: float


@dataclass(frozen=True, slots=True)
class ArpLearned:
    router_id: uuid.UUID
    ip: IPAddress
    mac: bytes
    at: float


StateWrite = MacLearned | ArpLearned


# -- trace ------------------------------------------------------------------------


class TraceKind(enum.StrEnum):
    """Where a trace line happened (its text is what ``tenet trace`` prints)."""

    PORT = "port"
    BRIDGE = "bridge"
    ROUTER = "router"
    CHAIN = "chain"
    RULE = "rule"
    NAT = "nat"
    CONNTRACK = "conntrack"
    VERDICT = "verdict"


# each kind as a module constant, for the walk: reading a member off an enum class
# goes through its metaclass (about 100 ns on 3.11), and a walk writes a line per step
STEP_PORT = TraceKind.PORT
STEP_BRIDGE = TraceKind.BRIDGE
STEP_ROUTER = TraceKind.ROUTER
STEP_CHAIN = TraceKind.CHAIN
STEP_RULE = TraceKind.RULE
STEP_NAT = TraceKind.NAT
STEP_CONNTRACK = TraceKind.CONNTRACK
STEP_VERDICT = TraceKind.VERDICT


UNUSABLE = "not in the view"
"""What a trace line says of a record the view lacks (:attr:`TraceStep.unusable`)."""


@dataclass(frozen=True, slots=True)
class TraceStep:
    """One line of a packet's trip: where it was and what happened there."""

    kind: TraceKind
    ident: uuid.UUID | None
    name: str
    detail: str

    @property
    def unusable(self) -> bool:
        """Whether this line met a record the view lacks (a route's next-hop port, a
        chain, a rule, a group, a device): the store's picture is inconsistent here,
        and the simulation dropped or skipped what depended on it."""
        return UNUSABLE in self.detail

    def __str__(self) -> str:
        label = f"{self.kind} {self.name or self.ident or ''}".rstrip()
        return f"{label}: {self.detail}"


@dataclass(frozen=True, slots=True)
class CtOutcome:
    """What a tracked simulation asks the agent to do with flow state.

    ``commit``: entries to write (and send to ``peers``) before the packet goes;
    ``refs``: keys this flow keeps alive while it carries packets; ``delete``: keys
    to forget (and tell ``peers``); ``state``: what the chains saw; ``recheck``: a
    chain told NEW from ESTABLISHED and this was NEW: the flow holds for the first
    packet only, the agent re-simulates the next one; ``no_flow``: an ICMP error,
    whose connection state came from the header it quotes, which no flow match
    holds: send this packet, install no flow (a later error with the same outer
    header may be about another connection)."""

    state: CtState
    commit: tuple[Connection, ...] = ()
    refs: tuple[ConnectionKey, ...] = ()
    delete: tuple[ConnectionKey, ...] = ()
    peers: frozenset[uuid.UUID] = frozenset()
    recheck: bool = False
    no_flow: bool = False


IDLE_TIMEOUT = 60.0
HARD_TIMEOUT = 0.0  # 0: none


@dataclass(frozen=True, slots=True)
class SimulationResult:
    verdict: Verdict
    actions: tuple[SimAction, ...] = ()
    match_fields: frozenset[str] = frozenset()
    ttl_above: int = 0
    tags: frozenset[Tag] = frozenset()
    emit: tuple[Emit, ...] = ()
    state: tuple[StateWrite, ...] = ()
    trace: tuple[TraceStep, ...] = ()
    idle_timeout: float = IDLE_TIMEOUT
    hard_timeout: float = HARD_TIMEOUT
    waiting_for: tuple[uuid.UUID, IPAddress] | None = None
    ct: CtOutcome | None = None

    @property
    def stateful(self) -> bool:
        """Whether the outcome read or wrote connection state: it holds for this
        connection only, and never for another that agrees on the fields read."""
        return self.ct is not None

    def holds_for_ttl(self, ttl: int) -> bool:
        """Whether a packet with this TTL (and otherwise agreeing) gets this result."""
        return not self.ttl_above or ttl > self.ttl_above

    @property
    def loose_floor(self) -> int | None:
        """The TTL floor a flow of this result holds above for any TCP flags (what
        ``Datapath.install`` takes as ``ttl_above``), or None if the outcome read the TCP
        flags or the TTL and its flow must match them exactly."""
        if "tcp_flags" in self.match_fields or "ip_ttl" in self.match_fields:
            return None
        return self.ttl_above

    @property
    def outputs(self) -> tuple[VirtualOutput, ...]:
        return tuple(a for a in self.actions if isinstance(a, OutputLocal | OutputTunnel))

    def trace_text(self) -> str:
        return "\n".join(str(step) for step in self.trace)
