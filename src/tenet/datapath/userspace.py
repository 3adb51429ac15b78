"""The userspace datapath: the portable reference fast path, in Python.

One AF_PACKET socket per local port (the host side of a VM's veth), one UDP
socket for VXLAN on the host's underlay address, a flow table (exact and loose
matches), and one worker thread that moves frames::

    frame in on port P (or VXLAN with key K, from host H)
      K is STATE_VNI (flow state)?        -> upcall (with H), never forwarded
      K mapped to a local port?           -> send there, done (egress host)
      flow table[extract_match(frame)]     -> apply the compiled actions, count
      else loose flows[loose_key(match)],
        its TTL above the flow's floor     -> the same
      otherwise                            -> upcall (bounded, fair), dropped here

A loose flow (``install(..., ttl_above=n)``) serves every frame that differs from
its match only in the TCP flags and in a TTL above its floor, as in the kernel
datapath, so a TCP connection is one flow per direction whose TCP flags are OR-ed
(what connection tracking reads to see a close). The exact table is looked up
first: a frame of the packet a flow was installed from costs one lookup.

Actions are compiled once, at install (:mod:`tenet.datapath.pytx`, over the one
interpreter of :mod:`tenet.packets.actions`), so the per-packet work is one match
extraction, one dict lookup, the rewrites if any, and the sends (and an OR of the
frame's TCP flags into the flow's, which :meth:`UserspaceDatapath.dump` reports).
Malformed frames are counted and dropped. The sockets are opened in the network
namespace the datapath is created in (the agent runs inside its host's namespace).
"""

from __future__ import annotations

import selectors
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from typing import Any

from tenet.datapath.base import STATE_VNI, DpAction, FlowStats, Upcall
from tenet.datapath.pytx import (
    BURST,
    PythonSender,
    SoftFlow,
    deep_buffers,
    loose_key,
    soft_flow,
)
from tenet.datapath.upcalls import UpcallQueue
from tenet.errors import PacketError
from tenet.packets import FlowMatch, extract_match
from tenet.packets.vxlan import VXLAN, VXLAN_PORT

ETH_P_ALL = 0x0003
PACKET_IGNORE_OUTGOING = 23
SOL_PACKET = 263
FRAME_MAX = 16384  # VM interfaces run without TSO (tx offload off)


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


class UserspaceDatapath:
    def __init__(
        self, underlay: IPv4Address, *, vxlan_port: int = VXLAN_PORT, upcall_bound: int = 256
    ) -> None:
        self.underlay = underlay
        self.vxlan_port = vxlan_port
        self.counters = Counters()
        self._flows: dict[FlowMatch, SoftFlow] = {}
        self._loose: dict[tuple[Any, ...], SoftFlow] = {}  # loose_key -> its owner's flow
        self._tunnel_ports: dict[int, int] = {}
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
        self._tx = PythonSender(self._udp, vxlan_port, self.counters)
        self._selector.register(self._udp, selectors.EVENT_READ, 0)
        self._stop = threading.Event()
        self.failure: BaseException | None = None
        self.adopted = False  # its flows live in this process: none to adopt
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
            self._names[number] = ifname
        self._tx.add(number, sock)
        self._selector.register(sock, selectors.EVENT_READ, number)
        return number

    def remove_port(self, port_no: int) -> None:
        with self._lock:
            self._names.pop(port_no, None)
        sock = self._tx.remove(port_no)
        if sock is not None:
            self._selector.unregister(sock)
            sock.close()

    # -- flows ----------------------------------------------------------------------------
    def install(
        self, match: FlowMatch, actions: Sequence[DpAction], *, ttl_above: int | None = None
    ) -> None:
        flow = soft_flow(actions, self.vxlan_port, time.monotonic())
        flow.ttl_above = ttl_above
        with self._lock:
            old = self._flows.get(match)
            self._flows[match] = flow
            if ttl_above is not None:  # the last one installed owns the loose key
                self._loose[loose_key(match)] = flow
            elif old is not None and old.ttl_above is not None:
                self._unloose(match, old)

    def _unloose(self, match: FlowMatch, flow: SoftFlow) -> None:
        key = loose_key(match)
        if self._loose.get(key) is flow:
            del self._loose[key]

    def delete(self, match: FlowMatch) -> FlowStats | None:
        with self._lock:
            flow = self._flows.pop(match, None)
            if flow is not None and flow.ttl_above is not None:
                self._unloose(match, flow)
        if flow is None:
            return None
        return FlowStats(match, flow.packets, flow.bytes, flow.last_used, flow.tcp_flags)

    def dump(self) -> list[FlowStats]:
        with self._lock:
            items = list(self._flows.items())
        return [FlowStats(m, f.packets, f.bytes, f.last_used, f.tcp_flags) for m, f in items]

    def execute(self, frame: bytes, in_port: int, actions: Sequence[DpAction]) -> None:
        self._tx.execute(actions, frame)

    def set_tunnel_port(self, key: int, port_no: int) -> None:
        with self._lock:
            self._tunnel_ports[key] = port_no

    def clear_tunnel_port(self, key: int) -> None:
        with self._lock:
            self._tunnel_ports.pop(key, None)

    def prune_tunnel_ports(self) -> int:
        return 0  # nothing outlives the process

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
        for number in self._tx.numbers():
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
                        if number:
                            data = sock.recv(FRAME_MAX)
                        else:
                            data, (source, _port) = sock.recvfrom(FRAME_MAX)
                    except (BlockingIOError, InterruptedError):
                        break
                    except OSError:
                        self.counters.errors += 1
                        break
                    if number == 0:
                        self._from_tunnel(data, source)
                    else:
                        self._from_port(number, data)

    def _from_tunnel(self, data: bytes, source: str) -> None:
        """A VXLAN datagram from the host at ``source`` (the outer IPv4 source)."""
        self.counters.tunnel_rx += 1
        try:
            header, inner = VXLAN.parse(data)
        except PacketError:
            self.counters.malformed += 1
            return
        if header.vni == STATE_VNI:  # another agent's flow state: for ours, never forwarded
            self._from_port(0, inner, header.vni, source, state=True)
            return
        port = self._tunnel_ports.get(header.vni)
        if port is not None:
            self._tx.send(port, inner)
            return
        self._from_port(0, inner, header.vni, source)

    def _from_port(
        self, number: int, frame: bytes, key: int = 0, source: str = "", state: bool = False
    ) -> None:
        self.counters.rx += 1
        try:
            match = extract_match(frame, number, key)
        except PacketError:
            self.counters.malformed += 1
            return
        flow = None if state else self._flows.get(match)
        if flow is None and self._loose and not state:
            flow = self._loose.get(loose_key(match))
            if flow is not None and flow.ttl_above and match.ip_ttl <= flow.ttl_above:
                flow = None  # it runs out on the way: the agent's simulation answers it
        if flow is None:
            self.counters.misses += 1
            src = IPv4Address(source) if source else None
            self._upcalls.put(Upcall(number, frame, match, key, tunnel_src=src))
            return
        self.counters.hits += 1
        flow.packets += 1
        flow.bytes += len(frame)
        flow.last_used = time.monotonic()
        flow.tcp_flags |= match.tcp_flags
        self._tx.apply(flow, frame)
