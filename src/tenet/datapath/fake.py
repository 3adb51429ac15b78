"""A datapath in memory, for unit tests of the agent (CONVENTIONS.md point 3).

It keeps what the agent told it (ports, flows, tunnel ports) and records what
it was asked to send; tests inject upcalls with :meth:`FakeDatapath.inject`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from tenet.datapath.base import DpAction, FlowStats, Upcall
from tenet.datapath.upcalls import UpcallQueue
from tenet.packets import FlowMatch, extract_match


@dataclass
class FakeDatapath:
    ports: dict[int, str] = field(default_factory=dict)
    flows: dict[FlowMatch, tuple[DpAction, ...]] = field(default_factory=dict)
    tunnel_ports: dict[int, int] = field(default_factory=dict)
    executed: list[tuple[bytes, int, tuple[DpAction, ...]]] = field(default_factory=list)
    queue: UpcallQueue = field(default_factory=UpcallQueue)
    counts: dict[FlowMatch, tuple[int, int, float]] = field(default_factory=dict)
    loose: dict[FlowMatch, int] = field(default_factory=dict)  # ttl_above of loose flows
    _next: int = 1

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

    def dump(self) -> list[FlowStats]:
        return [FlowStats(m, *self.counts.get(m, (0, 0, 0.0))) for m in self.flows]

    def set_tunnel_port(self, key: int, port_no: int) -> None:
        self.tunnel_ports[key] = port_no

    def clear_tunnel_port(self, key: int) -> None:
        self.tunnel_ports.pop(key, None)

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
