"""Sending frames from Python as an installed flow says: what both datapaths share.

The userspace datapath sends every packet this way; the kernel datapath sends the
first packet of each flow (the agent executes it) and the flows its program cannot
hold. A flow's actions are compiled once (:func:`tenet.packets.actions.compile_actions`,
the one interpreter) into a :class:`SoftFlow`, which also counts what it forwarded.
:class:`PythonSender` runs a program on a frame and hands each output to a local
port's AF_PACKET socket or, for a tunnel, to the host's UDP socket as VXLAN.

Thread-safety: ``ports`` is only changed under ``lock`` (the agent's thread adds and
removes ports while a datapath thread sends); a send reads it without the lock,
which is safe for one dict lookup.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol

from tenet.errors import PacketError
from tenet.packets import FlowMatch
from tenet.packets.actions import DpAction, Output, Program, Tunnel, compile_actions, run
from tenet.packets.vxlan import VXLAN

BURST = 64  # upcalls handed to the agent at a time
SOCKET_BUFFER = 4 << 20
SO_RCVBUFFORCE = 33
SO_SNDBUFFORCE = 32


Dest = int | tuple[bytes, tuple[str, int]]
"""Where an output goes: a local port number, or (VXLAN header, UDP address)."""


@dataclass(slots=True)
class SoftFlow:
    """An installed flow as Python applies it, with its counters. ``dests`` are the
    program's outputs made ready to send, in order."""

    program: Program
    dests: tuple[Dest, ...]
    packets: int = 0
    bytes: int = 0
    last_used: float = 0.0
    ttl_above: int | None = None  # a loose flow's TTL floor (the kernel datapath's)
    tcp_flags: int = 0  # the OR of the TCP flags of the frames it forwarded


def loose_key(match: FlowMatch) -> tuple[Any, ...]:
    """What a loose flow matches on: ``match`` with no TCP flags and no TTL (as a plain
    tuple, cheaper to make than a FlowMatch; for every frame of a connection the same)."""
    return (*match[:11], 0, *match[12:15], 0, *match[16:])  # ip_ttl, tcp_flags


def soft_flow(actions: Sequence[DpAction], vxlan_port: int, now: float = 0.0) -> SoftFlow:
    program, dests = _prepared(tuple(actions), vxlan_port)
    return SoftFlow(program, dests, last_used=now)


@lru_cache(maxsize=4096)  # flows set up in a burst share a few action lists: hashed once
def _prepared(actions: tuple[DpAction, ...], vxlan_port: int) -> tuple[Program, tuple[Dest, ...]]:
    program = compile_actions(actions)
    return program, _dests(program, vxlan_port)


def _dests(program: Program, vxlan_port: int) -> tuple[Dest, ...]:
    dests: list[Dest] = []
    for out in program.outputs:
        if isinstance(out, Output):
            dests.append(out.port_no)
        elif isinstance(out, Tunnel):
            dests.append((VXLAN(out.key).build(), (str(out.remote), vxlan_port)))
        else:
            raise TypeError(f"a datapath cannot send to a virtual port: {out!r}")
    return tuple(dests)


def deep_buffers(sock: socket.socket) -> None:
    """Socket buffers deep enough to ride out a burst while Python catches up
    (a drop there costs a TCP flow its congestion window)."""
    for opt, forced in ((socket.SO_RCVBUF, SO_RCVBUFFORCE), (socket.SO_SNDBUF, SO_SNDBUFFORCE)):
        try:
            sock.setsockopt(socket.SOL_SOCKET, forced, SOCKET_BUFFER)
        except OSError:  # without CAP_NET_ADMIN: as much as net.core.*mem_max allows
            sock.setsockopt(socket.SOL_SOCKET, opt, SOCKET_BUFFER)


class TxCounters(Protocol):
    tx: int
    tunnel_tx: int
    errors: int
    malformed: int


class PythonSender:
    """Sends frames out of local ports and VXLAN, counting into ``counters``."""

    def __init__(self, udp: socket.socket, vxlan_port: int, counters: TxCounters) -> None:
        self.udp = udp
        self.vxlan_port = vxlan_port
        self.counters = counters
        self.ports: dict[int, socket.socket] = {}
        self.lock = threading.Lock()

    def apply(self, flow: SoftFlow, frame: bytes) -> None:
        """Run ``flow``'s program on ``frame`` and send each output."""
        try:
            sends = run(flow.program, frame)
        except PacketError:
            self.counters.malformed += 1
            return
        for (_, data), dest in zip(sends, flow.dests, strict=True):
            if isinstance(dest, int):
                self.send(dest, data)
            else:
                self.tunnel(dest, data)

    def execute(self, actions: Sequence[DpAction], frame: bytes) -> None:
        """Send one frame as ``actions`` say (a first packet, a generated one)."""
        try:
            flow = soft_flow(actions, self.vxlan_port)
        except TypeError:
            self.counters.errors += 1
            return
        self.apply(flow, frame)

    def send(self, number: int, frame: bytes) -> None:
        sock = self.ports.get(number)
        if sock is None:
            return
        try:
            sock.send(frame)
            self.counters.tx += 1
        except OSError:
            self.counters.errors += 1

    def tunnel(self, dest: tuple[bytes, tuple[str, int]], frame: bytes) -> None:
        header, address = dest
        try:
            self.udp.sendto(header + frame, address)
            self.counters.tunnel_tx += 1
        except OSError:
            self.counters.errors += 1

    def add(self, number: int, sock: socket.socket) -> socket.socket | None:
        """Send out of ``sock`` as port ``number``; returns the socket it replaced."""
        with self.lock:
            old = self.ports.pop(number, None)
            self.ports[number] = sock
        return old

    def remove(self, number: int) -> socket.socket | None:
        with self.lock:
            return self.ports.pop(number, None)

    def numbers(self) -> list[int]:
        with self.lock:
            return list(self.ports)
