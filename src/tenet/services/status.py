"""The host's status, published by its agent: what operators and the API read.

Under the host's lease, outside what agents watch (``tenet.store.keys``):
``status/hosts/<id>/stats`` (the agent's and the datapath's counters, every
``every`` seconds), ``interfaces`` (the network interfaces of the host, when they
change: what port bindings name) and ``applied`` (the store revision whose changes
the agent has applied, as OVN's ``hv_cfg``; written by the agent as it applies).

:func:`status_writes` decides what to write (pure); :class:`StatusService` reads
the counters and the interfaces and writes it.
"""

from __future__ import annotations

import fcntl
import json
import socket
import struct
from collections.abc import Callable, Mapping

from tenet.services.base import ServiceContext
from tenet.store.base import Put
from tenet.store.keys import interfaces_key, stats_key

SIOCGIFHWADDR = 0x8927


def host_interfaces() -> list[dict[str, object]]:
    """The network interfaces of this process's network namespace: name, index, MAC."""
    out: list[dict[str, object]] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for index, name in socket.if_nameindex():
            try:
                raw = fcntl.ioctl(sock.fileno(), SIOCGIFHWADDR, struct.pack("256s", name.encode()))
                mac = raw[18:24].hex(":")
            except OSError:
                mac = ""
            out.append({"name": name, "index": index, "mac": mac})
    return out


def status_writes(
    ctx: ServiceContext,
    counters: Mapping[str, int],
    interfaces: list[dict[str, object]],
    published: bytes,
) -> tuple[list[Put], bytes]:
    """The puts that publish ``counters`` and, if they changed since ``published``,
    the interfaces; and what is published now."""
    puts = [Put(stats_key(ctx.host_id), json.dumps(dict(counters)).encode(), ctx.lease)]
    encoded = json.dumps(interfaces).encode()
    if encoded != published:
        puts.append(Put(interfaces_key(ctx.host_id), encoded, ctx.lease))
    return puts, encoded


class StatusService:
    name = "status"

    def __init__(
        self,
        every: float = 1.0,
        interfaces: Callable[[], list[dict[str, object]]] = host_interfaces,
    ) -> None:
        self.every = every
        self._interfaces = interfaces
        self._ctx: ServiceContext | None = None
        self._published = b""
        self._next = 0.0

    def start(self, ctx: ServiceContext) -> None:
        self._ctx = ctx
        self._next = 0.0
        self._published = b""  # a new lease: the interfaces are published again

    def tick(self, now: float) -> None:
        if self._ctx is None or now < self._next:
            return
        self._next = now + self.every
        puts, self._published = status_writes(
            self._ctx, self._ctx.counters(), self._interfaces(), self._published
        )
        self._ctx.store.txn([], puts)

    def close(self) -> None:
        self._ctx = None
