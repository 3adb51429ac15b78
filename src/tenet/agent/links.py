"""The host's network interfaces as the agent sees them: netlink events, a table, control.

Port bindings name interfaces that come and go (Nova binds a port before it makes
the tap). The agent follows the host's links through rtnetlink, never by polling:

    kernel --RTM_NEWLINK/DELLINK/NEWADDR/DELADDR--> LinkWatcher (thread, pyroute2's
    parser) --LinkEvent--> queue, wake the agent's loop --> LinkTable.apply (pure)

* :class:`LinkTable` is the picture: links by index, names (altnames too) to
  indexes, and each link's IPv4 addresses (to know the underlay interface). It does
  no I/O; the watcher's events, or a test's, drive it.
* :class:`LinkWatcher` binds a netlink socket to the link and IPv4 address groups
  *before* dumping the current links, so no change falls between the dump and the
  first event; a socket overflow (ENOBUFS: events lost) makes it dump again, as
  one :class:`LinkDump` that replaces the whole table.
* :class:`HostLinks` is what the agent does to a link it binds (MTU, up) and a
  name look-up for altnames (the kernel does not announce added altnames);
  :class:`FakeLinks` stands for it in unit tests.

Invariant: a link's name and altnames map to its index and to nothing else; an
index appears once; a rename is a new :class:`LinkSeen` for the same index.
"""

from __future__ import annotations

import contextlib
import errno
import os
import queue
import select
import socket
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address
from typing import Any

IFF_UP = 0x1
IFF_LOOPBACK = 0x8
RTMGRP_LINK = 0x1
RTMGRP_IPV4_IFADDR = 0x10
NETLINK_ROUTE = 0
RCVBUF = 1 << 21


@dataclass(frozen=True, slots=True)
class Link:
    index: int
    name: str
    mtu: int = 1500
    up: bool = True
    loopback: bool = False
    kind: str = ""  # "veth", "vxlan", "bridge"... ("" for a physical NIC or unknown)
    altnames: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class LinkSeen:
    """A link exists now with these attributes (new, renamed, or changed)."""

    link: Link


@dataclass(frozen=True, slots=True)
class LinkGone:
    index: int


@dataclass(frozen=True, slots=True)
class AddressSeen:
    index: int
    address: IPv4Address


@dataclass(frozen=True, slots=True)
class AddressGone:
    index: int
    address: IPv4Address


@dataclass(frozen=True, slots=True)
class LinkDump:
    """Every link and address of the host: replaces the whole picture."""

    links: tuple[Link, ...]
    addresses: tuple[tuple[int, IPv4Address], ...] = ()


LinkEvent = LinkSeen | LinkGone | AddressSeen | AddressGone | LinkDump


@dataclass
class LinkTable:
    links: dict[int, Link] = field(default_factory=dict)
    names: dict[str, int] = field(default_factory=dict)
    addresses: dict[int, set[IPv4Address]] = field(default_factory=dict)

    def apply(self, event: LinkEvent) -> None:
        if isinstance(event, LinkSeen):
            self._forget(event.link.index)
            self.links[event.link.index] = event.link
            for name in (event.link.name, *event.link.altnames):
                self.names[name] = event.link.index
        elif isinstance(event, LinkGone):
            self._forget(event.index)
            self.addresses.pop(event.index, None)
        elif isinstance(event, AddressSeen):
            self.addresses.setdefault(event.index, set()).add(event.address)
        elif isinstance(event, AddressGone):
            self.addresses.get(event.index, set()).discard(event.address)
        else:
            self.links, self.names, self.addresses = {}, {}, {}
            for link in event.links:
                self.apply(LinkSeen(link))
            for index, address in event.addresses:
                self.apply(AddressSeen(index, address))

    def _forget(self, index: int) -> None:
        old = self.links.pop(index, None)
        if old is None:
            return
        for name in (old.name, *old.altnames):
            if self.names.get(name) == index:
                del self.names[name]

    def lookup(self, name: str) -> Link | None:
        index = self.names.get(name)
        return None if index is None else self.links.get(index)

    def holding(self, address: IPv4Address) -> list[Link]:
        """The links that have ``address``."""
        return [
            self.links[i] for i, a in self.addresses.items() if address in a and i in self.links
        ]

    def alias(self, name: str, index: int) -> Link | None:
        """Record ``name`` as another name of link ``index`` (an altname found by a look-up);
        the link, or None if the table does not know it."""
        link = self.links.get(index)
        if link is not None:
            self.names[name] = index
            self.links[index] = replace(link, altnames=(*link.altnames, name))
        return self.links.get(index)


# -- netlink messages (parsed by pyroute2) ---------------------------------------------


def link_of(msg: Any) -> Link:
    """A :class:`Link` from a pyroute2 ``ifinfmsg``."""
    info = msg.get_attr("IFLA_LINKINFO")
    kind = info.get_attr("IFLA_INFO_KIND") if info is not None else None
    props = msg.get_attr("IFLA_PROP_LIST")
    alts = tuple(props.get_attrs("IFLA_ALT_IFNAME")) if props is not None else ()
    flags = int(msg["flags"])
    return Link(
        index=int(msg["index"]),
        name=str(msg.get_attr("IFLA_IFNAME")),
        mtu=int(msg.get_attr("IFLA_MTU") or 0),
        up=bool(flags & IFF_UP),
        loopback=bool(flags & IFF_LOOPBACK),
        kind=str(kind or ""),
        altnames=alts,
    )


def events_of(messages: Iterable[Any]) -> Iterator[LinkEvent]:
    """The link events in pyroute2 rtnetlink messages (others are skipped)."""
    for msg in messages:
        event = msg.get("event")
        if event == "RTM_NEWLINK":
            yield LinkSeen(link_of(msg))
        elif event == "RTM_DELLINK":
            yield LinkGone(int(msg["index"]))
        elif event in ("RTM_NEWADDR", "RTM_DELADDR"):
            raw = msg.get_attr("IFA_LOCAL") or msg.get_attr("IFA_ADDRESS")
            if raw is None:
                continue
            address = IPv4Address(raw)
            if event == "RTM_NEWADDR":
                yield AddressSeen(int(msg["index"]), address)
            else:
                yield AddressGone(int(msg["index"]), address)


def dump_links() -> LinkDump:
    """Every link and IPv4 address of this network namespace, now."""
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        links = tuple(link_of(m) for m in ipr.get_links())
        addresses = tuple(
            (int(m["index"]), IPv4Address(m.get_attr("IFA_LOCAL") or m.get_attr("IFA_ADDRESS")))
            for m in ipr.get_addr(family=socket.AF_INET)
        )
    return LinkDump(links, addresses)


class LinkWatcher:
    """The host's link events, read on a thread of its own and queued for the agent's
    loop (which ``wake`` wakes). The first item is a :class:`LinkDump`; an exception
    that ended the thread is queued too, for the loop to raise (crash-only)."""

    def __init__(self, wake: Callable[[], None]) -> None:
        from pyroute2.netlink.rtnl.marshal import MarshalRtnl

        self._queue: queue.SimpleQueue[LinkEvent | BaseException] = queue.SimpleQueue()
        self._wake = wake
        self._marshal = MarshalRtnl()
        self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
        with contextlib.suppress(OSError):
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        self._sock.bind((0, RTMGRP_LINK | RTMGRP_IPV4_IFADDR))  # before the dump: no gap
        self._queue.put(dump_links())
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="link-watch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                ready, _, _ = select.select([self._sock], [], [], 0.5)
                if not ready:
                    continue
                try:
                    data = self._sock.recv(1 << 16)
                except OSError as exc:
                    if exc.errno != errno.ENOBUFS:
                        raise
                    self._queue.put(dump_links())  # events were lost: start over
                else:
                    for event in events_of(self._marshal.parse(data)):
                        self._queue.put(event)
                self._wake()
        except BaseException as exc:  # handed to the agent's loop, which ends on it
            if not self._stop.is_set():
                self._queue.put(exc)
                self._wake()

    def drain(self) -> list[LinkEvent | BaseException]:
        out: list[LinkEvent | BaseException] = []
        while True:
            try:
                out.append(self._queue.get_nowait())
            except queue.Empty:
                return out

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sock.close()


class HostLinks:
    """What the agent does to the links it binds, through rtnetlink (pyroute2)."""

    def __init__(self) -> None:
        from pyroute2 import IPRoute

        self._ipr = IPRoute()

    def set_mtu(self, index: int, mtu: int) -> None:
        self._set(index, mtu=mtu)

    def set_up(self, index: int) -> None:
        self._set(index, state="up")

    def _set(self, index: int, **attrs: object) -> None:
        """Change link ``index``; an OSError if the kernel refuses (it may be gone)."""
        from pyroute2 import NetlinkError

        try:
            self._ipr.link("set", index=index, **attrs)
        except NetlinkError as exc:
            raise OSError(exc.code, os.strerror(exc.code)) from exc

    def resolve(self, name: str) -> int | None:
        try:
            return socket.if_nametoindex(name)
        except OSError:
            return None

    def close(self) -> None:
        self._ipr.close()


@dataclass
class FakeLinks:
    """:class:`HostLinks` for unit tests: it changes a :class:`LinkTable` and records."""

    table: LinkTable
    calls: list[tuple[str, int, int]] = field(default_factory=list)
    fail: bool = False

    def set_mtu(self, index: int, mtu: int) -> None:
        if self.fail:
            raise OSError(errno.EPERM, "Operation not permitted")
        self.calls.append(("mtu", index, mtu))
        link = self.table.links[index]
        self.table.apply(LinkSeen(replace(link, mtu=mtu)))

    def set_up(self, index: int) -> None:
        self.calls.append(("up", index, 1))
        link = self.table.links[index]
        self.table.apply(LinkSeen(replace(link, up=True)))

    def resolve(self, name: str) -> int | None:
        return self.table.names.get(name)

    def close(self) -> None:
        """Nothing to release: the table is in memory."""
