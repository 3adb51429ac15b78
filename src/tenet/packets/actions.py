"""What a flow does to a frame: the one action vocabulary, and its reference interpreter.

The simulation decides actions, the agent installs them, datapaths apply them and
tests check them; all of them speak this module's words and nothing else:

* **rewrites**, applied in order to the frame as it is so far: Ethernet source and
  destination, IP source and destination, L4 source and destination ports, and a
  TTL / hop limit decrement (one per router crossed). Checksums stay right
  (:mod:`tenet.packets.rewrite`);
* **outputs**, each of which sends the frame as the rewrites before it left it
  (OpenFlow's and OVS's action-list semantics). The simulation outputs to
  *virtual* ports (:class:`OutputLocal`: a port bound on this host,
  :class:`OutputTunnel`: a port bound on another host, reached by VXLAN with that
  port's key); the agent translates those into *datapath* outputs
  (:class:`Output`: a datapath port number, :class:`Tunnel`: a remote underlay
  address and a key). An action list with no output drops.

New actions (connection tracking commits, NAT of ICMP identifiers and inner
headers, load-balancer selection) are added here, to :func:`compile_actions`, and
to the datapaths' encoders, which are checked against :func:`interpret`.

:func:`compile_actions` turns a list into a :class:`Program` once (rewrites as
callables on a ``bytearray``, then the outputs); :func:`interpret` runs one on a
frame and returns every output with the frame it carries. The userspace
datapath, the fake datapath and the golden tests all go through them.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache, partial
from ipaddress import IPv4Address, IPv6Address

from tenet.packets import rewrite

IPAddress = IPv4Address | IPv6Address


# -- rewrites --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SetEthSrc:
    mac: bytes


@dataclass(frozen=True, slots=True)
class SetEthDst:
    mac: bytes


@dataclass(frozen=True, slots=True)
class SetIpSrc:
    ip: IPAddress


@dataclass(frozen=True, slots=True)
class SetIpDst:
    ip: IPAddress


@dataclass(frozen=True, slots=True)
class SetL4Src:
    port: int


@dataclass(frozen=True, slots=True)
class SetL4Dst:
    port: int


@dataclass(frozen=True, slots=True)
class DecTtl:
    """Decrement the IPv4 TTL / IPv6 hop limit by ``hops`` (one per router crossed)."""

    hops: int


Rewrite = SetEthSrc | SetEthDst | SetIpSrc | SetIpDst | SetL4Src | SetL4Dst | DecTtl


# -- outputs: virtual (what the simulation decides) ---------------------------------


@dataclass(frozen=True, slots=True)
class OutputLocal:
    """Send out of the local interface bound to virtual port ``port_id``."""

    port_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class OutputTunnel:
    """Encapsulate in VXLAN with ``key`` and send to ``address`` (the host of ``port_id``)."""

    port_id: uuid.UUID
    host_id: uuid.UUID
    address: IPAddress
    key: int


# -- outputs: datapath (what the agent installs) -------------------------------------


@dataclass(frozen=True, slots=True)
class Output:
    """Send out of datapath port ``port_no``."""

    port_no: int


@dataclass(frozen=True, slots=True)
class Tunnel:
    """Encapsulate in VXLAN with ``key`` and send to the host at ``remote``."""

    remote: IPv4Address
    key: int


VirtualOutput = OutputLocal | OutputTunnel
DatapathOutput = Output | Tunnel
AnyOutput = VirtualOutput | DatapathOutput
SimAction = Rewrite | VirtualOutput
"""An action of a simulation result."""
DpAction = Rewrite | DatapathOutput
"""An action of an installed flow."""
Action = Rewrite | AnyOutput


# -- the interpreter -------------------------------------------------------------------

Step = Callable[[bytearray], object]


@dataclass(frozen=True, slots=True)
class Program:
    """An action list ready to run: ``steps`` is one entry per output, in order: the
    rewrites that come before it (since the previous output) and the output."""

    steps: tuple[tuple[tuple[Step, ...], AnyOutput], ...]

    @property
    def rewrites(self) -> bool:
        return any(rewrites for rewrites, _ in self.steps)

    @property
    def outputs(self) -> tuple[AnyOutput, ...]:
        return tuple(out for _, out in self.steps)


def _step(action: Rewrite) -> tuple[Step, ...]:
    if isinstance(action, SetEthSrc):
        return (partial(rewrite.set_eth_src, mac=action.mac),)
    if isinstance(action, SetEthDst):
        return (partial(rewrite.set_eth_dst, mac=action.mac),)
    if isinstance(action, SetIpSrc):
        return (partial(rewrite.set_ip_src, addr=action.ip.packed),)
    if isinstance(action, SetIpDst):
        return (partial(rewrite.set_ip_dst, addr=action.ip.packed),)
    if isinstance(action, SetL4Src):
        return (partial(rewrite.set_l4_src, port=action.port),)
    if isinstance(action, SetL4Dst):
        return (partial(rewrite.set_l4_dst, port=action.port),)
    return (rewrite.dec_ttl,) * action.hops


_OUTPUTS = (OutputLocal, OutputTunnel, Output, Tunnel)
_REWRITES = (SetEthSrc, SetEthDst, SetIpSrc, SetIpDst, SetL4Src, SetL4Dst, DecTtl)


def compile_actions(actions: Sequence[Action]) -> Program:
    """``actions`` as a :class:`Program` (cached: flows set up in a burst share a few
    action lists). Raises TypeError for something that is not an action."""
    return _compile(tuple(actions))


@lru_cache(maxsize=4096)
def _compile(actions: tuple[Action, ...]) -> Program:
    steps: list[tuple[tuple[Step, ...], AnyOutput]] = []
    pending: list[Step] = []
    for action in actions:
        if isinstance(action, _OUTPUTS):
            steps.append((tuple(pending), action))
            pending = []
        elif isinstance(action, _REWRITES):
            pending.extend(_step(action))
        else:
            raise TypeError(f"not a flow action: {action!r}")
    return Program(tuple(steps))


def run(program: Program, frame: bytes) -> list[tuple[AnyOutput, bytes]]:
    """Each output of ``program`` with the frame it sends (rewrites before it applied).
    Raises PacketError (the frame untouched) when a rewrite does not fit the frame."""
    out: list[tuple[AnyOutput, bytes]] = []
    buf: bytearray | None = None
    current = frame
    for rewrites, output in program.steps:
        if rewrites:
            if buf is None:
                buf = bytearray(frame)
            for step in rewrites:
                step(buf)
            current = bytes(buf)
        out.append((output, current))
    return out


def interpret(frame: bytes, actions: Sequence[Action]) -> list[tuple[AnyOutput, bytes]]:
    """The reference semantics of an action list: every output with the frame as it
    leaves there. An empty result is a drop."""
    return run(compile_actions(actions), frame)


__all__ = [
    "Action",
    "AnyOutput",
    "DatapathOutput",
    "DecTtl",
    "DpAction",
    "Output",
    "OutputLocal",
    "OutputTunnel",
    "Program",
    "Rewrite",
    "SetEthDst",
    "SetEthSrc",
    "SetIpDst",
    "SetIpSrc",
    "SetL4Dst",
    "SetL4Src",
    "SimAction",
    "Tunnel",
    "VirtualOutput",
    "compile_actions",
    "interpret",
    "run",
]
