"""The userspace datapath: the portable reference fast path, in Python.

One AF_PACKET socket per local port (the host side of a VM's veth), one UDP
socket for VXLAN on the host's underlay address, an exact-match flow table, and
one worker thread that moves frames::

    frame in on port P (or VXLAN with key K)
      K mapped to a local port?           -> send there, done (egress host)
      flow table[extract_match(frame)]     -> apply the compiled actions, count
      otherwise                            -> upcall (bounded, fair), dropped here

Actions are compiled once, at install, into rewrites on a ``bytearray`` (only
when there are any) and a list of sends, so the per-packet work is one match
extraction, one dict lookup and the sends. Malformed frames are counted and
dropped. The sockets are opened in the network namespace the datapath is
created in (the agent runs inside its host's namespace).
"""

from __future__ import annotations

import selectors
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache, partial
from ipaddress import IPv4Address
from typing import Protocol

from tenet.datapath.base import DpAction, FlowStats, Output, Tunnel, Upcall
from tenet.datapath.upcalls import UpcallQueue
from tenet.errors import PacketError
from tenet.packets import FlowMatch, extract_match, rewrite
from tenet.packets.vxlan import VXLAN, VXLAN_PORT
from tenet.simulation.result import (
    DecTtl,
    SetEthDst,
    SetEthSrc,
    SetIpDst,
    SetIpSrc,
    SetL4Dst,
    SetL4Src,
)

ETH_P_ALL = 0x0003
PACKET_IGNORE_OUTGOING = 23
SOL_PACKET = 263
FRAME_MAX = 16384  # VM interfaces run without TSO (tx offload off)
BURST = 64
SOCKET_BUFFER = 4 << 20
SO_RCVBUFFORCE = 33
SO_SNDBUFFORCE = 32

Rewrite = Callable[[bytearray], object]


@dataclass(frozen=True, slots=True)
class Encap:
    """A tunnel output, ready to send: the VXLAN header and the remote's UDP address."""

    header: bytes
    remote: str


@dataclass(slots=True)
class Compiled:
    rewrites: tuple[Rewrite, ...]
    outputs: tuple[int | Encap, ...]  # a local port number, or a tunnel
    packets: int = 0
    bytes: int = 0
    last_used: float = 0.0
    ttl_above: int | None = None  # a loose flow's TTL floor (the kernel datapath's)


def compile_actions(actions: Sequence[DpAction]) -> Compiled:
    """A flow's actions as the Python side applies them (a fresh set of counters)."""
    rewrites, outputs = _compiled(tuple(actions))
    return Compiled(rewrites, outputs)


@lru_cache(maxsize=4096)  # flows set up in a burst share a few action lists
def _compiled(actions: tuple[DpAction, ...]) -> tuple[tuple[Rewrite, ...], tuple[int | Encap, ...]]:
    rewrites: list[Rewrite] = []
    outputs: list[int | Encap] = []
    for action in actions:
        if isinstance(action, Output):
            outputs.append(action.port_no)
        elif isinstance(action, Tunnel):
            outputs.append(Encap(VXLAN(action.key).build(), str(action.remote)))
        elif isinstance(action, SetEthSrc):
            rewrites.append(partial(rewrite.set_eth_src, mac=action.mac))
        elif isinstance(action, SetEthDst):
            rewrites.append(partial(rewrite.set_eth_dst, mac=action.mac))
        elif isinstance(action, SetIpSrc):
            rewrites.append(partial(rewrite.set_ip_src, addr=action.ip.packed))
        elif isinstance(action, SetIpDst):
            rewrites.append(partial(rewrite.set_ip_dst, addr=action.ip.packed))
        elif isinstance(action, SetL4Src):
            rewrites.append(partial(rewrite.set_l4_src, port=action.port))
        elif isinstance(action, SetL4Dst):
            rewrites.append(partial(rewrite.set_l4_dst, port=action.port))
        elif isinstance(action, DecTtl):
            for _ in range(action.hops):
                rewrites.append(rewrite.dec_ttl)
    return tuple(rewrites), tuple(outputs)


def deep_buffers(sock: socket.socket) -> None:
    """Socket buffers deep enough to ride out a burst while Python catches up
    (a drop there costs a TCP flow its congestion window)."""
    for opt, forced in ((socket.SO_RCVBUF, SO_RCVBUFFORCE), (socket.SO_SNDBUF, SO_SNDBUFFORCE)):
        try:
            sock.setsockopt(socket.SOL_SOCKET, forced, SOCKET_BUFFER)
        except OSError:  # without CAP_NET_ADMIN: as much as net.core.*mem_max allows
            sock.setsockopt(socket.SOL_SOCKET, opt, SOCKET_BUFFER)


@dataclass
class Counters:
    rx: int = 0
    tx: int = 0
    hits: int = 0
    misses: int = 0
    malformed: int = 0
    tunnel_rx: int = 0
    tunnel_tx: int = 0
    errors: int = 0
    by_port_dropped: dict[int, int] = field(default_factory=dict)


class TxCounters(Protocol):
    tx: int
    tunnel_tx: int
    errors: int
    malformed: int


class PythonTx:
    """Sending frames from Python as a compiled flow says: its rewrites on a copy, then
    each output, a local port's AF_PACKET socket or VXLAN over the UDP socket. Both
    datapaths have it: the userspace one for every packet, the kernel one for first
    packets and for what its program does not do."""

    _ports: dict[int, socket.socket]
    _udp: socket.socket
    vxlan_port: int
    counters: TxCounters

    def _apply(self, flow: Compiled, frame: bytes) -> None:
        if flow.rewrites:
            buf = bytearray(frame)
            try:
                for step in flow.rewrites:
                    step(buf)
            except PacketError:
                self.counters.malformed += 1
                return
            frame = bytes(buf)
        for out in flow.outputs:
            if isinstance(out, int):
                self._send(out, frame)
            else:
                self._tunnel(out, frame)

    def _send(self, number: int, frame: bytes) -> None:
        sock = self._ports.get(number)
        if sock is None:
            return
        try:
            sock.send(frame)
            self.counters.tx += 1
        except OSError:
            self.counters.errors += 1

    def _tunnel(self, out: Encap, frame: bytes) -> None:
        try:
            self._udp.sendto(out.header + frame, (out.remote, self.vxlan_port))
            self.counters.tunnel_tx += 1
        except OSError:
            self.counters.errors += 1


class UserspaceDatapath(PythonTx):
    counters: Counters

    def __init__(
        self, underlay: IPv4Address, *, vxlan_port: int = VXLAN_PORT, upcall_bound: int = 256
    ) -> None:
        self.underlay = underlay
        self.vxlan_port = vxlan_port
        self.counters = Counters()
        self._flows: dict[FlowMatch, Compiled] = {}
        self._tunnel_ports: dict[int, int] = {}
        self._ports: dict[int, socket.socket] = {}
        self._names: dict[int, str] = {}
        self._next_port = 1
        self._lock = threading.Lock()
        self._upcalls = UpcallQueue(upcall_bound)
        self._selector = selectors.DefaultSelector()
        self._udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._udp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        deep_buffers(self._udp)
        try:
            self._udp.bind((str(underlay), vxlan_port))
        except OSError as exc:
            self._udp.close()
            raise OSError(
                exc.errno, f"cannot take VXLAN port {underlay}:{vxlan_port}: {exc.strerror}"
            ) from exc
        self._udp.setblocking(False)
        self._selector.register(self._udp, selectors.EVENT_READ, 0)
        self._stop = threading.Event()
        self.failure: BaseException | None = None
        self._wake_r, self._wake_w = socket.socketpair()
        self._selector.register(self._wake_r, selectors.EVENT_READ, -1)
        self._thread = threading.Thread(target=self._run, name="datapath", daemon=True)
        self._thread.start()

    # -- ports ------------------------------------------------------------------------
    def add_port(self, ifname: str) -> int:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        try:
            sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
            deep_buffers(sock)
            sock.bind((ifname, 0))
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        with self._lock:
            number = self._next_port
            self._next_port += 1
            self._ports[number] = sock
            self._names[number] = ifname
        self._selector.register(sock, selectors.EVENT_READ, number)
        return number

    def remove_port(self, port_no: int) -> None:
        with self._lock:
            sock = self._ports.pop(port_no, None)
            self._names.pop(port_no, None)
        if sock is not None:
            self._selector.unregister(sock)
            sock.close()

    # -- flows ----------------------------------------------------------------------------
    def install(
        self, match: FlowMatch, actions: Sequence[DpAction], *, ttl_above: int | None = None
    ) -> None:
        # exact always (ttl_above is ignored): a second lookup per packet for loose flows
        # costs Python more than the few upcalls per TCP connection it would spare
        compiled = compile_actions(actions)
        compiled.last_used = time.monotonic()
        with self._lock:
            self._flows[match] = compiled

    def delete(self, match: FlowMatch) -> FlowStats | None:
        with self._lock:
            flow = self._flows.pop(match, None)
        if flow is None:
            return None
        return FlowStats(match, flow.packets, flow.bytes, flow.last_used)

    def dump(self) -> list[FlowStats]:
        with self._lock:
            items = list(self._flows.items())
        return [FlowStats(m, f.packets, f.bytes, f.last_used) for m, f in items]

    def execute(self, frame: bytes, in_port: int, actions: Sequence[DpAction]) -> None:
        self._apply(compile_actions(actions), frame)

    def set_tunnel_port(self, key: int, port_no: int) -> None:
        with self._lock:
            self._tunnel_ports[key] = port_no

    def clear_tunnel_port(self, key: int) -> None:
        with self._lock:
            self._tunnel_ports.pop(key, None)

    def upcalls(self, timeout: float) -> list[Upcall]:
        return self._upcalls.take(BURST, timeout)

    def wake(self) -> None:
        self._upcalls.wake()

    def stats(self) -> dict[str, int]:
        c = self.counters
        return {
            "rx": c.rx,
            "tx": c.tx,
            "hits": c.hits,
            "misses": c.misses,
            "malformed": c.malformed,
            "tunnel_rx": c.tunnel_rx,
            "tunnel_tx": c.tunnel_tx,
            "errors": c.errors,
            "upcalls_dropped": sum(self._upcalls.dropped.values()),
            "flows": len(self._flows),
        }

    def close(self) -> None:
        self._stop.set()
        self._wake_w.send(b"x")
        self._thread.join(timeout=5)
        for number in list(self._ports):
            self.remove_port(number)
        self._selector.close()
        for sock in (self._udp, self._wake_r, self._wake_w):
            sock.close()

    # -- the worker ---------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:  # crash-only: the agent sees it and ends
            self.failure = exc
            raise

    def _loop(self) -> None:
        while not self._stop.is_set():
            for key, _ in self._selector.select(timeout=0.5):
                number = key.data
                if number == -1:
                    continue
                sock: socket.socket = key.fileobj  # type: ignore[assignment]
                for _ in range(BURST):
                    try:
                        data = sock.recv(FRAME_MAX)
                    except (BlockingIOError, InterruptedError):
                        break
                    except OSError:
                        self.counters.errors += 1
                        break
                    if number == 0:
                        self._from_tunnel(data)
                    else:
                        self._from_port(number, data)

    def _from_tunnel(self, data: bytes) -> None:
        self.counters.tunnel_rx += 1
        try:
            header, inner = VXLAN.parse(data)
        except PacketError:
            self.counters.malformed += 1
            return
        port = self._tunnel_ports.get(header.vni)
        if port is not None:
            self._send(port, inner)
            return
        self._from_port(0, inner, header.vni)

    def _from_port(self, number: int, frame: bytes, key: int = 0) -> None:
        self.counters.rx += 1
        try:
            match = extract_match(frame, number, key)
        except PacketError:
            self.counters.malformed += 1
            return
        flow = self._flows.get(match)
        if flow is None:
            self.counters.misses += 1
            self._upcalls.put(Upcall(number, frame, match, key))
            return
        self.counters.hits += 1
        flow.packets += 1
        flow.bytes += len(frame)
        flow.last_used = time.monotonic()
        self._apply(flow, frame)
