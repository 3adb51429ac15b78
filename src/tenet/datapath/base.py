"""The datapath protocol: what every fast path (userspace, kernel eBPF) offers the agent.

A datapath owns local ports (host-side interfaces of VMs' veths, numbered by the
datapath), an exact-match flow table (FlowMatch -> actions), a tunnel-port table
(VNI -> local port: packets from the tunnel with that key go straight there,
so the egress host never simulates), and a bounded, fair queue of upcalls
(packets that matched no flow). The agent installs flows and executes the first
packet of each; the datapath counts and forwards the rest.

Actions are :mod:`tenet.packets.actions`' vocabulary: header rewrites plus
:class:`Output` (a local port) and :class:`Tunnel` (VXLAN to a remote host with a
key), with its semantics (:func:`~tenet.packets.actions.interpret`). An action
list with no output drops.

Connection tracking asks three things of every datapath: a flow's
:attr:`FlowStats.tcp_flags` (the OR of the TCP flags of every packet it carried,
loose flows included, so the agent sees FIN and RST without exact flows); the
echo identifier in the match (``FlowMatch.icmp_id``); and frames on the reserved
VNI :data:`STATE_VNI` (flow state between agents, sent with ``execute(frame, 0,
[Tunnel(peer, STATE_VNI)])``): on the receiving host such a frame is never
forwarded, whatever the tunnel ports and flows say, but always handed up as an
:class:`Upcall` with ``tunnel_key=STATE_VNI`` and :attr:`Upcall.tunnel_src`, the
sender's underlay address; the upcall queue hands them to the agent before any
upcall queued after them (:mod:`tenet.datapath.upcalls`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Protocol

from tenet.model.types import TUNNEL_KEY_STATE
from tenet.packets import FlowMatch
from tenet.packets.actions import DpAction, Output, Tunnel

STATE_VNI = TUNNEL_KEY_STATE
"""The VNI of flow-state frames between agents: never a port's tunnel key."""


@dataclass(frozen=True, slots=True)
class Upcall:
    port_no: int
    frame: bytes
    match: FlowMatch
    tunnel_key: int = 0
    truncated: bool = False  # only the frame's headers: set up its flow, do not send it
    tunnel_src: IPv4Address | None = None  # a tunnelled frame's outer source (its host)


@dataclass(frozen=True, slots=True)
class FlowStats:
    match: FlowMatch
    packets: int
    bytes: int
    last_used: float
    tcp_flags: int = 0  # the OR of the TCP flags of every packet since it was installed


class Datapath(Protocol):
    adopted: bool
    """Whether the datapath found flows a previous run left installed (they forward
    until the agent re-validates them: :meth:`dump` lists them)."""

    failure: BaseException | None
    """Set when a thread of the datapath died; the agent ends on it (crash-only)."""

    def add_port(self, ifname: str) -> int: ...

    def remove_port(self, port_no: int) -> None: ...

    def install(
        self, match: FlowMatch, actions: Sequence[DpAction], *, ttl_above: int | None = None
    ) -> None:
        """Forward packets of ``match`` with ``actions`` (replacing what it had).

        ``ttl_above`` loosens the flow: its outcome holds for any TCP flags and any
        TTL above that floor (0: any TTL), so the datapath may match one flow for all
        of them and hand over a packet whose TTL is at or under the floor (a router
        on its way answers it with an ICMP error). A datapath may ignore it and match
        exactly: exact is never wrong, only more upcalls (both datapaths here honour
        it, and a loose flow's :attr:`FlowStats.tcp_flags` then holds the flags of a
        whole connection's direction). ``delete``, ``dump`` and the counters still
        speak of ``match``.
        """

    def delete(self, match: FlowMatch) -> FlowStats | None: ...

    def execute(self, frame: bytes, in_port: int, actions: Sequence[DpAction]) -> None: ...

    def dump(self) -> list[FlowStats]: ...

    def set_tunnel_port(self, key: int, port_no: int) -> None: ...

    def clear_tunnel_port(self, key: int) -> None: ...

    def prune_tunnel_ports(self) -> int:
        """Forget tunnel keys a previous run mapped that this run has not set again
        (after adoption); how many."""
        ...

    def upcalls(self, timeout: float) -> list[Upcall]: ...

    def wake(self) -> None:
        """Make a waiting ``upcalls`` call return now (another thread has work for the
        caller)."""

    def stats(self) -> dict[str, int]: ...

    def close(self) -> None: ...


__all__ = ["STATE_VNI", "Datapath", "DpAction", "FlowStats", "Output", "Tunnel", "Upcall"]
