"""A datapath in memory, for unit tests of the agent (CONVENTIONS.md point 3).

It keeps what the agent told it (ports, flows, tunnel ports) and, like a real one,
forwards: :meth:`FakeDatapath.receive` is a frame arriving on a port; it either
matches an installed flow, which the one action interpreter
(:func:`tenet.packets.actions.interpret`) applies, or becomes an upcall. What the
datapath sent, the agent's executions included, is in ``sent`` as (where, frame):
a test asserts "a frame from port A leaves on port B with these headers", not
what the flow table holds.

``preinstalled`` flows stand for a previous run's (the kernel datapath's pinned
maps): the datapath is then ``adopted`` and the agent must re-validate them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from tenet.datapath.base import DpAction, FlowStats, Upcall
from tenet.datapath.upcalls import UpcallQueue
from tenet.errors import PacketError
from tenet.packets import FlowMatch, extract_match
from tenet.packets.actions import DatapathOutput, Output, interpret


@dataclass
class FakeDatapath:
    ports: dict[int, str] = field(default_factory=dict)
    flows: dict[FlowMatch, tuple[DpAction, ...]] = field(default_factory=dict)
    tunnel_ports: dict[int, int] = field(default_factory=dict)
    executed: list[tuple[bytes, int, tuple[DpAction, ...]]] = field(default_factory=list)
    sent: list[tuple[DatapathOutput, bytes]] = field(default_factory=list)
    queue: UpcallQueue = field(default_factory=UpcallQueue)
    counts: dict[FlowMatch, tuple[int, int, float]] = field(default_factory=dict)
    loose: dict[FlowMatch, int] = field(default_factory=dict)  # ttl_above of loose flows
    adopted: bool = False
    failure: BaseException | None = None
    now: float = 0.0  # what a flow hit records as its last use (tests move it)
    _next: int = 1
    _stale_keys: set[int] = field(default_factory=set)

    @classmethod
    def with_previous_run(
        cls,
        flows: Iterable[tuple[FlowMatch, Sequence[DpAction]]],
        tunnel_ports: dict[int, int] | None = None,
    ) -> FakeDatapath:
        """A datapath that finds a previous run's flows and tunnel keys still installed."""
        dp = cls(flows={m: tuple(a) for m, a in flows}, adopted=True)
        dp.tunnel_ports = dict(tunnel_ports or {})
        dp._stale_keys = set(dp.tunnel_ports)
        return dp

    def add_port(self, ifname: str) -> int:
        number, self._next = self._next, self._next + 1
        self.ports[number] = ifname
        return number

    def remove_port(self, port_no: int) -> None:
        self.ports.pop(port_no, None)

    def install(
        self, match: FlowMatch, actions: Sequence[DpAction], *, ttl_above: int | None = None
    ) -> None:
        self.flows[match] = tuple(actions)
        if ttl_above is None:
            self.loose.pop(match, None)
        else:
            self.loose[match] = ttl_above

    def delete(self, match: FlowMatch) -> FlowStats | None:
        self.loose.pop(match, None)
        if self.flows.pop(match, None) is None:
            return None
        packets, nbytes, last = self.counts.pop(match, (0, 0, 0.0))
        return FlowStats(match, packets, nbytes, last)

    def execute(self, frame: bytes, in_port: int, actions: Sequence[DpAction]) -> None:
        self.executed.append((frame, in_port, tuple(actions)))
        self._send(frame, actions)

    def _send(self, frame: bytes, actions: Sequence[DpAction]) -> None:
        try:
            outputs = interpret(frame, actions)
        except PacketError:
            return
        for output, data in outputs:
            if not isinstance(output, DatapathOutput):
                raise TypeError(f"a datapath cannot send to a virtual port: {output!r}")
            self.sent.append((output, data))

    def receive(self, frame: bytes, port_no: int, tunnel_key: int = 0) -> Upcall | None:
        """A frame arriving on ``port_no`` (0 with ``tunnel_key``: from the tunnel):
        forwarded by the flow it matches (counted), or queued as an upcall (returned)."""
        if tunnel_key and tunnel_key in self.tunnel_ports:
            self.sent.append((Output(self.tunnel_ports[tunnel_key]), frame))
            return None
        match = extract_match(frame, port_no, tunnel_key)
        actions = self.flows.get(match)
        if actions is None:
            upcall = Upcall(port_no, frame, match, tunnel_key)
            self.queue.put(upcall)
            return upcall
        packets, nbytes, _ = self.counts.get(match, (0, 0, 0.0))
        self.counts[match] = (packets + 1, nbytes + len(frame), self.now)
        self._send(frame, actions)
        return None

    def dump(self) -> list[FlowStats]:
        return [FlowStats(m, *self.counts.get(m, (0, 0, 0.0))) for m in self.flows]

    def set_tunnel_port(self, key: int, port_no: int) -> None:
        self._stale_keys.discard(key)
        self.tunnel_ports[key] = port_no

    def clear_tunnel_port(self, key: int) -> None:
        self.tunnel_ports.pop(key, None)

    def prune_tunnel_ports(self) -> int:
        stale, self._stale_keys = self._stale_keys, set()
        for key in stale:
            self.tunnel_ports.pop(key, None)
        return len(stale)

    def upcalls(self, timeout: float) -> list[Upcall]:
        return self.queue.take(64, timeout)

    def wake(self) -> None:
        self.queue.wake()

    def stats(self) -> dict[str, int]:
        return {"flows": len(self.flows), "upcalls_dropped": sum(self.queue.dropped.values())}

    def close(self) -> None:
        self.flows.clear()

    def inject(self, frame: bytes, port_no: int) -> Upcall:
        """A frame arriving on ``port_no`` that matches no flow: queued as an upcall."""
        upcall = Upcall(port_no, frame, extract_match(frame, port_no))
        self.queue.put(upcall)
        return upcall
