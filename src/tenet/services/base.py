"""The service seam of an agent: a small protocol, and what the daemon hands a service.

A :class:`Service` is started once the agent holds its host's lease (``start``, where
it may do I/O), ticked by the agent's loop about once a second with the monotonic
time (``tick``), and closed when the agent stops (``close``). An exception from any
of them ends the agent (crash-only, CONVENTIONS.md point 8): on restart the service
starts again from the store. A service must not block the loop: a tick does a
bounded amount of work, and anything slow (a BGP daemon, a health check's socket)
runs in a process or thread of the service's own, whose failure the next tick
raises.

Where a service fits (the issues that bring them): LB health checks
(``services/lb_health.py``), NAT port-block leases (``services/natblocks.py``), the
BGP supervisor (``services/bgp/``), IPsec (``services/ipsec.py``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from tenet.clock import Clock
from tenet.store.base import Store


@dataclass(frozen=True)
class ServiceContext:
    """What a started service may use: its host, the store and the host's lease (keys
    written under it vanish when the agent dies), the clock, and the agent's counters."""

    host_id: uuid.UUID
    store: Store
    lease: int
    clock: Clock
    counters: Callable[[], Mapping[str, int]]


class Service(Protocol):
    name: str

    def start(self, ctx: ServiceContext) -> None: ...

    def tick(self, now: float) -> None: ...

    def close(self) -> None: ...
