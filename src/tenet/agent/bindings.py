"""Port bindings on one host: which datapath port each bound port is, and why not.

A binding (``PortBinding``: port, host, interface name) is ordinary input that may
name an interface that does not exist yet (Nova binds the port, then makes the
tap), one that disappears, or one the agent must never take. Each binding of this
host is in one state, and moves only as the table says (an illegal move raises:
it is a bug, CONVENTIONS.md point 5)::

    state \\ event     PRESENT (usable)   ABSENT (no interface)   REFUSE (must not bind)
    (new)              bound              waiting                 refused
    waiting            bound              waiting (new detail)    refused
    bound              -- illegal --      waiting (unbound)       refused (unbound)
    refused            bound              waiting                 refused (new reason)

A binding that leaves the host (deleted, or moved) is released from any state.
Bound means: a datapath port, its tunnel key mapped to it, its flows live. Leaving
bound removes the flows that entered or left through it (their tags) and unmaps the
key; entering bound invalidates the flows that output to the port (they were
decided while it had no datapath port). A bound binding whose link changed index
(deleted and made again, renamed away and another one named so) leaves bound and
enters it again on the new link.

Refused, with the reason published: a name that is no valid interface name,
loopback, the tunnel device, the host's underlay interface (it holds the underlay
address), an interface another port of this host is bound to (also under another
of its names): the binding bound first keeps it, else the one naming it by its
own name, else the lowest port id.

Before binding, a link is brought up and its MTU lowered to what the tunnel can
carry (the underlay's MTU less VXLAN's 50 bytes) when it is higher.

:class:`Bindings` is pure logic over a :class:`~tenet.agent.links.LinkTable` (or
none: every name is taken to exist, and a datapath that cannot open it makes the
binding wait), the datapath and a :class:`LinkControl`; it owns the agent's
port-number maps (shared with :class:`~tenet.agent.core.AgentCore`) and each
binding's :class:`PortStatus`, which the daemon publishes under its lease
(``tenet.store.keys.port_status_key``).
"""

from __future__ import annotations

import enum
import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from typing import Protocol

from tenet.agent.links import Link, LinkTable
from tenet.datapath.base import Datapath
from tenet.datapath.kernel.datapath import VXLAN_IFNAME
from tenet.errors import ValidationError
from tenet.model import Port, PortBinding, Record
from tenet.model.types import check_ifname
from tenet.simulation import tags
from tenet.simulation.tags import Tag

VXLAN_OVERHEAD = 50  # outer Ethernet 14 + IPv4 20 + UDP 8 + VXLAN 8
DEFAULT_UNDERLAY_MTU = 1500


class State(enum.Enum):
    WAITING = "waiting"
    BOUND = "bound"
    REFUSED = "refused"


class Seen(enum.Enum):
    """What the agent found for a binding's interface."""

    PRESENT = "present"
    ABSENT = "absent"
    REFUSE = "refuse"


TRANSITIONS: dict[tuple[State | None, Seen], State] = {
    (None, Seen.PRESENT): State.BOUND,
    (None, Seen.ABSENT): State.WAITING,
    (None, Seen.REFUSE): State.REFUSED,
    (State.WAITING, Seen.PRESENT): State.BOUND,
    (State.WAITING, Seen.ABSENT): State.WAITING,
    (State.WAITING, Seen.REFUSE): State.REFUSED,
    (State.BOUND, Seen.ABSENT): State.WAITING,
    (State.BOUND, Seen.REFUSE): State.REFUSED,
    (State.REFUSED, Seen.PRESENT): State.BOUND,
    (State.REFUSED, Seen.ABSENT): State.WAITING,
    (State.REFUSED, Seen.REFUSE): State.REFUSED,
}


class IllegalTransition(RuntimeError):
    """A binding asked to move where the table has no move: a bug in the agent."""


def next_state(state: State | None, seen: Seen) -> State:
    try:
        return TRANSITIONS[state, seen]
    except KeyError:
        raise IllegalTransition(f"a binding cannot go from {state} on {seen}") from None


@dataclass(frozen=True, slots=True)
class PortStatus:
    """A binding as its host's agent reports it (``reason``: why it waits or is refused)."""

    state: State
    interface: str
    reason: str = ""
    mtu: int | None = None

    def encode(self) -> bytes:
        body: dict[str, object] = {"state": self.state.value, "interface": self.interface}
        if self.reason:
            body["reason"] = self.reason
        if self.mtu is not None:
            body["mtu"] = self.mtu
        return json.dumps(body).encode()


class LinkControl(Protocol):
    """What the agent does to a host link before binding it (``links.HostLinks``)."""

    def set_mtu(self, index: int, mtu: int) -> None: ...

    def set_up(self, index: int) -> None: ...

    def resolve(self, name: str) -> int | None:
        """The index of the link with ``name`` (an altname too), if there is one."""
        ...


@dataclass
class Bindings:
    host_id: uuid.UUID
    datapath: Datapath
    invalidate: Callable[[set[Tag]], object]
    # shared with AgentCore: local port id <-> datapath port number, tunnel keys mapped
    port_no: dict[uuid.UUID, int] = field(default_factory=dict)
    port_id: dict[int, uuid.UUID] = field(default_factory=dict)
    keys: dict[uuid.UUID, int] = field(default_factory=dict)
    links: LinkTable | None = None
    control: LinkControl | None = None
    underlay: IPv4Address | None = None
    tunnel_names: frozenset[str] = frozenset({VXLAN_IFNAME})
    status: dict[uuid.UUID, PortStatus] = field(default_factory=dict)
    _bound: dict[uuid.UUID, Link] = field(default_factory=dict)
    _changed: set[uuid.UUID] = field(default_factory=set)
    _detached: bool = False

    # -- the reconciliation --------------------------------------------------------------
    def sync(self, records: Mapping[uuid.UUID, Record]) -> None:
        """Make every binding of this host the state its interface allows."""
        wanted: dict[uuid.UUID, str] = {}
        for record in records.values():
            if isinstance(record, PortBinding) and record.host_id == self.host_id:
                wanted[record.port_id] = record.interface
        for port_id in list(self.status):
            if port_id not in wanted:
                self._release(port_id)
        for _ in range(2):  # again if a port let go of a link another one wants
            self._detached = False
            # a link stays with the port bound to it; then to a binding by its own name
            # before one by an altname; then by port id
            claimed: dict[int | str, uuid.UUID] = {
                _claim(link): p for p, link in self._bound.items() if p in wanted
            }
            for port_id in sorted(wanted, key=lambda p: self._rank(p, wanted[p])):
                self._settle(port_id, wanted[port_id], claimed)
            if not self._detached:
                break
        for port_id in wanted:
            port = records.get(port_id)
            key = port.tunnel_key if isinstance(port, Port) else 0
            old = self.keys.get(port_id)
            if port_id in self.port_no and key and old != key:
                if old:  # the port's key changed: the old one maps nothing now
                    self.datapath.clear_tunnel_port(old)
                self.datapath.set_tunnel_port(key, self.port_no[port_id])
                self.keys[port_id] = key

    def _rank(self, port_id: uuid.UUID, ifname: str) -> tuple[bool, bool, str]:
        link = self.links.lookup(ifname) if self.links is not None else None
        by_altname = link is None or link.name != ifname
        return port_id not in self._bound, by_altname, str(port_id)

    def _settle(self, port_id: uuid.UUID, ifname: str, claimed: dict[int | str, uuid.UUID]) -> None:
        seen, link, reason = self._look(port_id, ifname, claimed)
        current = self.status.get(port_id)
        bound = self._bound.get(port_id)
        if current is not None and current.state is State.BOUND:
            if seen is Seen.PRESENT and link is not None and _same(bound, link, ifname, current):
                try:
                    mtu = self._fit(link)
                except OSError:  # kept as it is; the status says which MTU it has
                    mtu = link.mtu
                self._publish(port_id, PortStatus(State.BOUND, ifname, "", mtu))
                return
            self._detach(port_id)
            if bound is not None and claimed.get(_claim(bound)) == port_id:
                del claimed[_claim(bound)]
            if seen is Seen.PRESENT:  # another link under that name now: through waiting
                self._move(port_id, Seen.ABSENT, ifname, "its interface changed")
        if seen is Seen.PRESENT and link is not None:
            problem = self._attach(port_id, link, ifname)
            if problem is None:
                claimed[_claim(link)] = port_id
                return
            seen, reason = Seen.ABSENT, problem
        self._move(port_id, seen, ifname, reason)

    def _look(
        self, port_id: uuid.UUID, ifname: str, claimed: Mapping[int | str, uuid.UUID]
    ) -> tuple[Seen, Link | None, str]:
        """What the host has for ``ifname``: usable (the link), absent, or refused (why)."""
        try:
            check_ifname(ifname, "interface")
        except ValidationError as exc:
            return Seen.REFUSE, None, f"not a valid interface name: {exc.reason}"
        if ifname == "lo":
            return Seen.REFUSE, None, "the loopback interface"
        if ifname in self.tunnel_names:
            return Seen.REFUSE, None, "the host's tunnel device"
        link = self._find(ifname)
        if link is None:
            return Seen.ABSENT, None, f"no interface {ifname} on the host yet"
        if link.loopback:
            return Seen.REFUSE, None, "the loopback interface"
        if link.kind == "vxlan" or link.name in self.tunnel_names:
            return Seen.REFUSE, None, "a tunnel device"
        if link.index and link.index in self._underlay_indexes():
            return Seen.REFUSE, None, f"the host's underlay interface (it has {self.underlay})"
        other = claimed.get(_claim(link))
        if other is not None and other != port_id:
            return Seen.REFUSE, None, f"interface {link.name} is already bound to port {other}"
        return Seen.PRESENT, link, ""

    def _underlay_indexes(self) -> set[int]:
        if self.links is None or self.underlay is None:
            return set()
        return {link.index for link in self.links.holding(self.underlay)}

    def _find(self, ifname: str) -> Link | None:
        if self.links is None:  # no picture of the host: the datapath will tell
            return Link(0, ifname)
        link = self.links.lookup(ifname)
        if link is None and self.control is not None:
            index = self.control.resolve(ifname)  # an altname: the kernel announces none
            if index is not None:
                link = self.links.alias(ifname, index)
        return link

    # -- datapath ports -------------------------------------------------------------------
    def _attach(self, port_id: uuid.UUID, link: Link, ifname: str) -> str | None:
        """Bind ``link`` as ``port_id``'s datapath port; what went wrong, if anything."""
        try:
            mtu = self._fit(link)
            number = self.datapath.add_port(link.name)
        except OSError as exc:  # gone meanwhile, or the kernel refused: wait for a change
            return f"cannot attach {link.name}: {exc.strerror or exc}"
        self.port_no[port_id], self.port_id[number] = number, port_id
        self._bound[port_id] = link
        self._move(port_id, Seen.PRESENT, ifname, "", mtu)
        self.invalidate({tags.binding(port_id)})  # flows that output to it had no port
        return None

    def _fit(self, link: Link) -> int | None:
        """The link up, and its MTU no more than the tunnel carries (raises OSError);
        its MTU then (None with no picture of the host's links)."""
        if self.control is None or self.links is None:
            return None
        if not link.up:
            self.control.set_up(link.index)
        limit = self.mtu_limit()
        if link.mtu > limit:
            self.control.set_mtu(link.index, limit)
            return limit
        return link.mtu

    def mtu_limit(self) -> int:
        """The largest frame a bound interface may carry: the underlay's MTU less VXLAN's."""
        underlay_mtu = DEFAULT_UNDERLAY_MTU
        if self.links is not None and self.underlay is not None:
            held = self.links.holding(self.underlay)
            if held:
                underlay_mtu = min(link.mtu for link in held)
        return underlay_mtu - VXLAN_OVERHEAD

    def _detach(self, port_id: uuid.UUID) -> None:
        """Leave bound: flows through the port removed, key unmapped, port removed."""
        number = self.port_no.pop(port_id)
        self.port_id.pop(number, None)
        self._bound.pop(port_id, None)
        self._detached = True
        key = self.keys.pop(port_id, None)
        if key:
            self.datapath.clear_tunnel_port(key)
        self.invalidate({tags.of_id(port_id), tags.binding(port_id)})
        self.datapath.remove_port(number)

    def _release(self, port_id: uuid.UUID) -> None:
        if port_id in self.port_no:
            self._detach(port_id)
        del self.status[port_id]
        self._changed.add(port_id)

    # -- status -----------------------------------------------------------------------------
    def _move(
        self, port_id: uuid.UUID, seen: Seen, ifname: str, reason: str, mtu: int | None = None
    ) -> None:
        current = self.status.get(port_id)
        state = next_state(current.state if current else None, seen)
        self._publish(port_id, PortStatus(state, ifname, reason, mtu))

    def _publish(self, port_id: uuid.UUID, status: PortStatus) -> None:
        if self.status.get(port_id) != status:
            self.status[port_id] = status
            self._changed.add(port_id)

    def take_changes(self) -> dict[uuid.UUID, PortStatus | None]:
        """The statuses that changed since the last call (None: the binding left)."""
        changed, self._changed = self._changed, set()
        return {p: self.status.get(p) for p in sorted(changed, key=str)}

    def republish(self) -> None:
        """Every status counts as changed (a new lease: publish them all again)."""
        self._changed |= set(self.status)


def _claim(link: Link) -> int | str:
    return link.index or link.name


def _same(bound: Link | None, link: Link, ifname: str, current: PortStatus) -> bool:
    """Whether ``link`` is the very link the binding is bound to."""
    if bound is None or current.interface != ifname:
        return False
    return bound.index == link.index if link.index else bound.name == link.name


def describe(status: PortStatus | None) -> str:
    """A binding's status in words, for the agent's log."""
    if status is None:
        return "no longer bound to this host"
    words = f"{status.state.value} ({status.interface}"
    return words + (f": {status.reason})" if status.reason else ")")
