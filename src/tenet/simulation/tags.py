"""Flow tags: the names of what an outcome depended on, one constructor per kind.

The simulation tags every result with what its decision read; the agent maps
every change (a record, a learned entry) to the tags it touches and removes the
flows that carry them. Both sides build tags only here, so they cannot disagree.

====================  =================================  ==============================
kind                  text                               tagged by / touched by
====================  =================================  ==============================
object id             ``<uuid>``                         any record read (device, port,
                                                         chain, rule, route, group, host)
learned MAC entry     ``mac/<bridge>/<mac>``             a bridge lookup, found or not /
                                                         a MAC learned or forgotten
ARP entry             ``arp/<router>/<ip>``              a next-hop lookup / an ARP entry
port binding          ``binding/<port>``                 an output to a port / its binding
connection            ``ct/<zone>/<proto>/<version>      a conntrack lookup, found or
                      /<src hex>/<sport>/<dst hex>       not, or an entry committed / an
                      /<dport>``                         entry learned, expired or deleted
route lookup          ``route/<router>/<dst hex>``       a router's lookup of one
                                                         destination (local delivery or a
                                                         route) / a route, or a router
                                                         port's subnet or address, whose
                                                         prefix holds the destination
====================  =================================  ==============================

``<dst hex>`` is the packed destination address in hex (8 digits for IPv4, 32
for IPv6): cheap to build on every routed packet, exact to parse back.

Route lookups are **scoped**: :func:`scope_of` gives ``route/<router>`` for them
(None for every other tag), and the flow table indexes tags by scope, so a route
change finds the live lookups of its own router, and among them those inside
its prefix, without scanning every tag.

Invariants: a tag is a ``str`` (:data:`Tag`); the same inputs always give the
same text; :func:`of_id` remembers the text of recent ids, a pure function cache
(``str`` of an immutable UUID), bounded, that only saves work.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterable
from ipaddress import IPv4Network, IPv6Network, ip_address
from typing import TYPE_CHECKING, NewType

from tenet.model import IPAddress
from tenet.packets import mac_to_str

if TYPE_CHECKING:
    from tenet.simulation.state import ConnectionKey

Tag = NewType("Tag", str)

_ROUTE = "route/"
_ROUTE_SCOPE_LEN = len(_ROUTE) + 36  # "route/" and a UUID's 36 characters


@functools.lru_cache(maxsize=1 << 16)
def of_id(ident: uuid.UUID) -> Tag:
    """The tag of a record: its id as text."""
    return Tag(str(ident))


def mac(bridge_id: uuid.UUID, address: bytes) -> Tag:
    """A bridge's learned-MAC entry for ``address``, present or not."""
    return Tag(f"mac/{of_id(bridge_id)}/{mac_to_str(address)}")


def arp(router_id: uuid.UUID, ip: IPAddress) -> Tag:
    """A router's ARP entry for ``ip``, present or not."""
    return Tag(f"arp/{of_id(router_id)}/{ip}")


def binding(port_id: uuid.UUID) -> Tag:
    """Where a port is bound (which host an output to it goes to)."""
    return Tag(f"binding/{of_id(port_id)}")


CT_TAG = "ct/"


def connection(key: ConnectionKey) -> Tag:
    """A conntrack entry (one direction of a connection in one zone), present or not.
    Addresses as hexadecimal integers (with their IP version): built for every key a
    tracked packet reads or writes, so cheap rather than pretty."""
    src, dst = key.src, key.dst
    return Tag(
        f"{CT_TAG}{of_id(key.zone)}/{key.proto}/{src.version}"
        f"/{int(src):x}/{key.src_port}/{int(dst):x}/{key.dst_port}"
    )


def untracked(tags: frozenset[Tag]) -> frozenset[Tag]:
    """``tags`` without the connections' (what a result holds for any connection)."""
    return frozenset(t for t in tags if not t.startswith(CT_TAG))


def route_lookup(router_id: uuid.UUID, dst: IPAddress | bytes) -> Tag:
    """A router's lookup of destination ``dst`` (an address, or its packed bytes):
    whether it is the router's own address, and which route it takes."""
    packed = dst if isinstance(dst, bytes) else dst.packed
    return Tag(f"{_ROUTE}{of_id(router_id)}/{packed.hex()}")


def route_scope(router_id: uuid.UUID) -> str:
    """The scope of one router's route lookups (what :func:`scope_of` gives them)."""
    return f"{_ROUTE}{of_id(router_id)}"


def scope_of(tag: str) -> str | None:
    """The scope a flow table indexes ``tag`` under, or None (unscoped)."""
    if tag.startswith(_ROUTE):
        return tag[:_ROUTE_SCOPE_LEN]
    return None


def lookup_destination(tag: Tag) -> IPAddress:
    """The destination of a route-lookup tag."""
    return ip_address(bytes.fromhex(tag[_ROUTE_SCOPE_LEN + 1 :]))


def lookups_within(
    lookups: Iterable[Tag], networks: Iterable[IPv4Network | IPv6Network]
) -> set[Tag]:
    """The route-lookup tags (of one scope) whose destination lies in any of ``networks``."""
    # (bytes of the address, mask, network) as integers: one parse per tag
    nets = {(4 if n.version == 4 else 16, int(n.netmask), int(n.network_address)) for n in networks}
    found: set[Tag] = set()
    for tag in lookups:
        raw = bytes.fromhex(tag[_ROUTE_SCOPE_LEN + 1 :])
        value, size = int.from_bytes(raw, "big"), len(raw)
        if any(size == s and value & mask == base for s, mask, base in nets):
            found.add(tag)
    return found
