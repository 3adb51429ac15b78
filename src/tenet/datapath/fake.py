"""A datapath in memory, for unit tests of the agent (CONVENTIONS.md point 3).

It keeps what the agent told it (ports, flows, tunnel ports) and, like a real one,
forwards: :meth:`FakeDatapath.receive` is a frame arriving on a port; it either
matches an installed flow, which the one action interpreter
(:func:`tenet.packets.actions.interpret`) applies, or becomes an upcall. What the
datapath sent, the agent's executions included, is in ``sent`` as (where, frame):
a test asserts "a frame from port A leaves on port B with these headers", not
what the flow table holds.

Like the kernel datapath, a flow installed loose (``ttl_above`` given) also serves
frames that differ from its match only in the TCP flags and in a TTL above its
floor; each flow ORs the TCP flags of the frames it serves into
``FlowStats.tcp_flags``. A frame from the tunnel on :data:`STATE_VNI` is always an
upcall (with ``tunnel_src``), never forwarded.

``preinstalled`` flows stand for a previous run's (the kernel datapath's pinned
maps): the datapath is then ``adopted`` and the agent must re-validate them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from typing import Any

from tenet.datapath.base import STATE_VNI, DpAction, FlowStats, Upcall
from tenet.datapath.pytx import loose_key
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
    tcp_flags: dict[FlowMatch, int] = field(default_factory=dict)  # seen since installed
    adopted: bool = False
    failure: BaseException | None = None
    now: float = 0.0  # what a flow hit records as its last use (tests move it)
    _next: int = 1
    _stale_keys: set[int] = field(default_factory=set)
    _loose_owner: dict[tuple[Any, ...], FlowMatch] = field(default_factory=dict)  # by loose key

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
        self.tcp_flags.pop(match, None)
        self._unloose(match)
        if ttl_above is not None:
            self.loose[match] = ttl_above
            self._loose_owner[loose_key(match)] = match  # the last one installed owns it

    def _unloose(self, match: FlowMatch) -> None:
        if self.loose.pop(match, None) is not None:
            key = loose_key(match)
            if self._loose_owner.get(key) == match:
                del self._loose_owner[key]

    def delete(self, match: FlowMatch) -> FlowStats | None:
        self._unloose(match)
        if self.flows.pop(match, None) is None:
            return None
        packets, nbytes, last = self.counts.pop(match, (0, 0, 0.0))
        return FlowStats(match, packets, nbytes, last, self.tcp_flags.pop(match, 0))

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

    def receive(
        self,
        frame: bytes,
        port_no: int,
        tunnel_key: int = 0,
        tunnel_src: IPv4Address | None = None,
    ) -> Upcall | None:
        """A frame arriving on ``port_no`` (0 with ``tunnel_key``, from the host at
        ``tunnel_src``: from the tunnel): forwarded by the flow it matches (counted), or
        queued as an upcall (returned). A flow-state frame (``STATE_VNI``) is always an
        upcall."""
        state = tunnel_key == STATE_VNI
        if tunnel_key and not state and tunnel_key in self.tunnel_ports:
            self.sent.append((Output(self.tunnel_ports[tunnel_key]), frame))
            return None
        match = extract_match(frame, port_no, tunnel_key)
        owner = None if state else self._serving(match)
        if owner is None:
            upcall = Upcall(port_no, frame, match, tunnel_key, tunnel_src=tunnel_src)
            self.queue.put(upcall)
            return upcall
        packets, nbytes, _ = self.counts.get(owner, (0, 0, 0.0))
        self.counts[owner] = (packets + 1, nbytes + len(frame), self.now)
        self.tcp_flags[owner] = self.tcp_flags.get(owner, 0) | match.tcp_flags
        self._send(frame, self.flows[owner])
        return None

    def _serving(self, match: FlowMatch) -> FlowMatch | None:
        """The installed match whose flow serves a frame of ``match``: its own, or the
        loose flow with its loose key if its TTL is above that flow's floor."""
        if match in self.flows:
            return match
        owner = self._loose_owner.get(loose_key(match))
        if owner is None:
            return None
        floor = self.loose[owner]
        return owner if not floor or match.ip_ttl > floor else None

    def dump(self) -> list[FlowStats]:
        return [
            FlowStats(m, *self.counts.get(m, (0, 0, 0.0)), self.tcp_flags.get(m, 0))
            for m in self.flows
        ]

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
