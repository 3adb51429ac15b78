"""Next hops a router is resolving: packets that wait for ARP, retries, and failure.

When a simulation's verdict is WAIT, a router needed the MAC of a next hop nobody
has learned yet and emitted an ARP request for it. The agent then:

* **queues the packet** under (router, next hop), at most ``QUEUE_MAX`` packets per
  next hop and ``PENDING_MAX`` next hops (the oldest packet goes first when full,
  counted): a packet that waits is not lost;
* **sends the request again** once a second (``RETRY``), at most ``TRIES`` times;
* when the next hop is **learned** (the router's ARP entry appears in the store,
  from whichever host saw the reply), the queued packets are simulated again and go
  their way;
* when every try went unanswered, the next hop is **failed** for ``FAILED_FOR``
  seconds: ``failed()`` says so, which the simulation reads (``StateView.arp_failed``)
  to answer packets to it with ICMP host unreachable, the queued ones included.
  After that the router tries again on the next packet.

The table, per next hop, with ``now`` passed in (no clock here)::

    (none) --wait--> RESOLVING --learned--> (none)       release: queued packets again
                     RESOLVING --tick, tries left--> RESOLVING   resend the request
                     RESOLVING --tick, no tries left--> FAILED   release: host unreachable
                     FAILED --FAILED_FOR passes--> (none)
                     FAILED --learned--> (none)

Pure logic: :class:`NextHops` returns what to send and what to simulate again; the
agent does it.
"""

from __future__ import annotations

import enum
import uuid
from collections import OrderedDict, deque
from dataclasses import dataclass, field

from tenet.model import IPAddress
from tenet.simulation import tags
from tenet.simulation.result import Emit
from tenet.simulation.state import Connection, ConnectionKey, NatBinding, NatKey, StateView
from tenet.simulation.tags import Tag

RETRY = 1.0  # seconds between ARP requests for one next hop
TRIES = 3  # requests before the next hop is failed
FAILED_FOR = 20.0  # seconds a failed next hop answers host unreachable
QUEUE_MAX = 16  # packets queued per next hop (Linux's unres_qlen_bytes is ~ that)
PENDING_MAX = 1024  # next hops being resolved at once, per agent


class State(enum.Enum):
    RESOLVING = "resolving"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Waiting:
    """A packet that waits: its upcall's port and frame."""

    port_no: int
    frame: bytes


@dataclass
class NextHop:
    router_id: uuid.UUID
    ip: IPAddress
    state: State
    request: Emit | None  # the ARP request to send again
    tries: int
    next_try: float
    failed_until: float = 0.0
    queue: deque[Waiting] = field(default_factory=deque)


@dataclass
class Counters:
    queued: int = 0
    released: int = 0
    overflow: int = 0
    retries: int = 0
    failures: int = 0


class NextHops:
    def __init__(self) -> None:
        self._hops: OrderedDict[tuple[uuid.UUID, IPAddress], NextHop] = OrderedDict()
        self._by_tag: dict[Tag, tuple[uuid.UUID, IPAddress]] = {}  # the ARP entry's flow tag
        self.counters = Counters()

    def __len__(self) -> int:
        return len(self._hops)

    def failed(self, router_id: uuid.UUID, ip: IPAddress) -> bool:
        """Whether the router gave up on ``ip`` (until a tick after ``FAILED_FOR``)."""
        hop = self._hops.get((router_id, ip))
        return hop is not None and hop.state is State.FAILED

    def wait(
        self,
        router_id: uuid.UUID,
        ip: IPAddress,
        packet: Waiting | None,
        request: Emit | None,
        now: float,
    ) -> bool:
        """A packet waits for ``ip`` (``packet`` None: a generated one, not kept).
        Returns whether the ARP request the simulation emitted should be sent now (not
        when one went out less than ``RETRY`` ago)."""
        key = (router_id, ip)
        hop = self._hops.get(key)
        send = False
        if hop is None or hop.state is State.FAILED:
            if hop is None and len(self._hops) >= PENDING_MAX:
                _, oldest = self._hops.popitem(last=False)
                self._by_tag.pop(tags.arp(oldest.router_id, oldest.ip), None)
                self.counters.overflow += len(oldest.queue)
            hop = NextHop(router_id, ip, State.RESOLVING, request, 1, now + RETRY)
            self._hops[key] = hop
            self._by_tag[tags.arp(router_id, ip)] = key
            send = True
        if packet is not None:
            if len(hop.queue) >= QUEUE_MAX:
                hop.queue.popleft()
                self.counters.overflow += 1
            hop.queue.append(packet)
            self.counters.queued += 1
        return send

    def learned(self, router_id: uuid.UUID, ip: IPAddress) -> list[Waiting]:
        """The next hop's MAC is known now: the packets to simulate again."""
        hop = self._hops.pop((router_id, ip), None)
        if hop is None:
            return []
        self._by_tag.pop(tags.arp(router_id, ip), None)
        self.counters.released += len(hop.queue)
        return list(hop.queue)

    def learned_tag(self, tag: Tag) -> list[Waiting]:
        """:meth:`learned` for the ARP entry whose flow tag is ``tag`` (what a change of
        learned state in the store names); nothing for any other tag."""
        key = self._by_tag.get(tag)
        return self.learned(*key) if key is not None else []

    def tick(self, now: float) -> tuple[list[Emit], list[Waiting]]:
        """Requests to send again, and packets to simulate again because their next
        hop just failed (they get ICMP host unreachable now)."""
        resend: list[Emit] = []
        release: list[Waiting] = []
        for key, hop in list(self._hops.items()):
            if hop.state is State.FAILED:
                if now >= hop.failed_until:
                    del self._hops[key]
                    self._by_tag.pop(tags.arp(*key), None)
                continue
            if now < hop.next_try:
                continue
            if hop.tries < TRIES:
                hop.tries += 1
                hop.next_try = now + RETRY
                if hop.request is not None:
                    resend.append(hop.request)
                    self.counters.retries += 1
                continue
            hop.state = State.FAILED
            hop.failed_until = now + FAILED_FOR
            self.counters.failures += 1
            release.extend(hop.queue)
            hop.queue.clear()
        return resend, release


class WithNextHops:
    """The agent's :class:`~tenet.simulation.state.StateView`: learned state, and which
    next hops this agent's routers gave up on (``arp_failed``)."""

    def __init__(self, inner: StateView, hops: NextHops) -> None:
        self.inner = inner
        self.hops = hops

    def mac_port(self, bridge_id: uuid.UUID, mac: bytes) -> uuid.UUID | None:
        return self.inner.mac_port(bridge_id, mac)

    def arp_mac(self, router_id: uuid.UUID, ip: IPAddress) -> bytes | None:
        return self.inner.arp_mac(router_id, ip)

    def arp_failed(self, router_id: uuid.UUID, ip: IPAddress) -> bool:
        return self.hops.failed(router_id, ip) or self.inner.arp_failed(router_id, ip)

    def connection(self, key: ConnectionKey) -> Connection | None:
        return self.inner.connection(key)

    def nat_mapping(self, key: NatKey) -> NatBinding | None:
        return self.inner.nat_mapping(key)
