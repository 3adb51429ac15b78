"""An agent on a fake datapath that forwards, and frames to send through it.

Tests say what happens to a packet, not what the flow table holds (CONVENTIONS.md
point 11): :meth:`Host.send` makes a frame arrive on a local port, and returns
what left the datapath (the flow's outputs, or the agent's execution of the
first packet) and whether the packet went up to the agent.
"""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from tenet.agent.core import AgentCore
from tenet.agent.learned import LearnedState
from tenet.datapath.fake import FakeDatapath
from tenet.model import Record
from tenet.packets import ETH_TYPE_IPV4, UDP, Ethernet, IPv4, Packet, mac_from_str
from tenet.packets.actions import DatapathOutput
from tenet.store.objects import ObjectEvent


@dataclass
class Sent:
    """What one frame did: where copies left, and whether the agent saw it."""

    out: list[tuple[DatapathOutput, bytes]]
    upcalled: bool

    @property
    def only(self) -> tuple[DatapathOutput, Ethernet, IPv4]:
        """The one copy that left, parsed."""
        assert len(self.out) == 1, self.out
        where, data = self.out[0]
        eth, rest = Ethernet.parse(data)
        ip, _ = IPv4.parse(rest)
        return where, eth, ip


class Host:
    def __init__(self, host_id: uuid.UUID, records: Iterable[Record]) -> None:
        self.dp = FakeDatapath()
        self.learned = LearnedState()
        self.core = AgentCore(host_id, self.dp, self.learned)
        self.core.load(records)
        self.revision = 0

    def port_no(self, port_id: uuid.UUID) -> int:
        return self.core.port_no[port_id]

    def send(self, frame: bytes, port_id: uuid.UUID, now: float = 1.0) -> Sent:
        before = len(self.dp.sent)
        upcall = self.dp.receive(frame, self.port_no(port_id))
        if upcall is not None:
            for taken in self.dp.upcalls(0):
                self.core.handle(taken, now)
        return Sent(self.dp.sent[before:], upcall is not None)

    def change(self, record: Record) -> None:
        self.revision += 1
        self.core.apply(ObjectEvent(type(record), record.id, record, self.revision))

    def delete(self, record: Record) -> None:
        self.revision += 1
        self.core.apply(ObjectEvent(type(record), record.id, None, self.revision))


def mac(text: str) -> bytes:
    return mac_from_str(text)


def udp(eth_src: str, eth_dst: str, src: str, dst: str, sport: int = 1000, ttl: int = 64) -> bytes:
    eth = Ethernet(mac(eth_dst), mac(eth_src), ETH_TYPE_IPV4)
    ip = IPv4(ipaddress.IPv4Address(src), ipaddress.IPv4Address(dst), 17, ttl=ttl)
    return Packet(eth, ip, UDP(sport, 53), b"q").build()
