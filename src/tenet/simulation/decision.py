"""What a virtual device decides about a packet (internal to the simulation).

A device returns one :data:`Decision`: forward to egress ports of its own (the
engine runs the egress chains and follows interior links), drop, consumed (it
answered locally; the answer is in ``ctx.emit``), or wait (an ARP request for the
next hop is in ``ctx.emit``).
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from tenet.model import IPAddress, Port
from tenet.simulation.chains import ChainVerdict


@dataclass(frozen=True, slots=True)
class Forward:
    ports: tuple[Port, ...]


@dataclass(frozen=True, slots=True)
class Drop:
    reason: str


@dataclass(frozen=True, slots=True)
class Consumed:
    reason: str


@dataclass(frozen=True, slots=True)
class Reject:
    """A chain rejected the packet: the engine answers with ICMP 3/13 or a TCP RST."""

    reason: str


@dataclass(frozen=True, slots=True)
class Wait:
    """The packet waits for ``router`` to resolve next hop ``ip`` (an ARP request for it
    is in ``ctx.emit``)."""

    reason: str
    router_id: UUID
    ip: IPAddress


Decision = Forward | Drop | Consumed | Reject | Wait


def from_chain(verdict: ChainVerdict, where: str) -> Decision:
    """The decision of a chain that did not accept (DROP or REJECT)."""
    if verdict is ChainVerdict.REJECT:
        return Reject(f"{where}: reject")
    return Drop(f"{where}: {verdict.value}")
