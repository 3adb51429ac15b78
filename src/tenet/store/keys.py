"""The store's key layout: every key tenet writes, in one place.

::

    /tenet/v1/net/                         what agents watch, and nothing else
        objects/<kind>/<id>                  a model record (JSON)               config
        learned/macs/<bridge>/<mac>          -> port id, under the writer's lease  learned
        learned/arps/<router>/<ip>           -> MAC, under the writer's lease      learned
    /tenet/v1/index/                       kept by the object layer, in the same transactions
        refs/<target>/<kind>/<id>            <id> (of <kind>) refers to <target> (field names)
        guard/<target>                       rewritten whenever a record referring to
                                             <target> changes: a reader of refs/<target>/
                                             compares this one key instead of every referrer
        tunnel_key/<n>                       -> the record holding 24-bit key <n>
        binding/port/<port>                  -> the binding of <port>
        binding/iface/<host>/<interface>     -> the binding of that interface
        tz_member/<zone>/<host>              -> the membership of <host> in <zone>
    /tenet/v1/meta/tunnel_key_next         where the next tunnel key search starts
    /tenet/v1/status/hosts/<id>/           written by the host's agent under its lease
        alive                                -> its underlay address
        applied                              -> the store revision it has applied (OVN's hv_cfg)
        stats                                -> its counters (JSON), every second
        interfaces                           -> its network interfaces (JSON)
        ports/<port>                         -> the binding of <port> on it: waiting,
                                                bound or refused, and why (JSON)
    /tenet/v1/auth/tokens/<sha256>         API tokens, hashed

Invariant: agents watch ``NET`` only, so what they write about themselves (status)
and what the object layer keeps for itself (index, meta) never wakes another agent;
object keys sort by kind then id, so a kind's records are one range.
"""

from __future__ import annotations

import uuid
from typing import ClassVar, Protocol

ROOT = "/tenet/v1/"
NET = ROOT + "net/"
OBJECTS = NET + "objects/"
LEARNED = NET + "learned/"
MACS = LEARNED + "macs/"
ARPS = LEARNED + "arps/"
INDEX = ROOT + "index/"
REFS = INDEX + "refs/"
GUARDS = INDEX + "guard/"
META = ROOT + "meta/"
TUNNEL_KEY_NEXT = META + "tunnel_key_next"
STATUS = ROOT + "status/"
HOSTS = STATUS + "hosts/"
TOKENS = ROOT + "auth/tokens/"

AGENT_WATCH = NET
"""The one prefix an agent watches: configuration and learned state."""


class _Kind(Protocol):
    KIND: ClassVar[str]


def kind_prefix(kind: type[_Kind] | str) -> str:
    name = kind if isinstance(kind, str) else kind.KIND
    return f"{OBJECTS}{name}/"


def object_key(kind: type[_Kind] | str, ident: uuid.UUID) -> str:
    return f"{kind_prefix(kind)}{ident}"


def parse_object_key(key: str) -> tuple[str, uuid.UUID] | None:
    """(kind name, id) of an object key; None for any other key."""
    if not key.startswith(OBJECTS):
        return None
    kind, _, ident = key.removeprefix(OBJECTS).partition("/")
    try:
        return kind, uuid.UUID(ident)
    except ValueError:
        return None


def refs_prefix(target: uuid.UUID, kind: type[_Kind] | str | None = None) -> str:
    """The index keys of the records referring to ``target`` (of ``kind``, if given)."""
    if kind is None:
        return f"{REFS}{target}/"
    name = kind if isinstance(kind, str) else kind.KIND
    return f"{REFS}{target}/{name}/"


def ref_key(target: uuid.UUID, kind: type[_Kind] | str, ident: uuid.UUID) -> str:
    return f"{refs_prefix(target, kind)}{ident}"


def guard_key(target: uuid.UUID) -> str:
    return f"{GUARDS}{target}"


def tunnel_key_key(key: int) -> str:
    return f"{INDEX}tunnel_key/{key}"


def binding_port_key(port_id: uuid.UUID) -> str:
    return f"{INDEX}binding/port/{port_id}"


def binding_iface_key(host_id: uuid.UUID, interface: str) -> str:
    return f"{INDEX}binding/iface/{host_id}/{interface}"


def tz_member_key(zone_id: uuid.UUID, host_id: uuid.UUID) -> str:
    return f"{INDEX}tz_member/{zone_id}/{host_id}"


def mac_prefix(bridge_id: uuid.UUID) -> str:
    """The learned MAC entries of one bridge."""
    return f"{MACS}{bridge_id}/"


def mac_key(bridge_id: uuid.UUID, mac: str) -> str:
    """A learned MAC entry; ``mac`` as ``aa:bb:cc:dd:ee:ff``."""
    return f"{mac_prefix(bridge_id)}{mac}"


def arp_prefix(router_id: uuid.UUID) -> str:
    """The learned ARP entries of one router."""
    return f"{ARPS}{router_id}/"


def arp_key(router_id: uuid.UUID, ip: object) -> str:
    return f"{arp_prefix(router_id)}{ip}"


def alive_key(host_id: uuid.UUID) -> str:
    """Present (with the host's underlay address) while the host's agent runs."""
    return f"{HOSTS}{host_id}/alive"


def stats_key(host_id: uuid.UUID) -> str:
    return f"{HOSTS}{host_id}/stats"


def interfaces_key(host_id: uuid.UUID) -> str:
    """The host's network interfaces, as its agent last saw them (JSON list)."""
    return f"{HOSTS}{host_id}/interfaces"


def port_status_key(host_id: uuid.UUID, port_id: uuid.UUID) -> str:
    """How the host's agent finds the binding of ``port_id`` (JSON: ``state`` waiting,
    bound or refused, ``interface``, ``reason``, ``mtu``); gone with the agent."""
    return f"{HOSTS}{host_id}/ports/{port_id}"


def applied_key(host_id: uuid.UUID) -> str:
    """The store revision up to which this host's agent has applied object changes
    (its flows invalidated), like OVN's ``hv_cfg``: a client that made a change at
    revision R knows it took effect on a host once this is at least R."""
    return f"{HOSTS}{host_id}/applied"


def token_key(digest: str) -> str:
    return f"{TOKENS}{digest}"


def prefix_end(prefix: str) -> str:
    """The first key after every key starting with ``prefix`` (etcd's range_end)."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)
