"""Learned state in the store: MAC tables of bridges and ARP tables of routers.

Agents write what their simulations learn under their host's lease, so an
entry vanishes when its writer dies; every agent reads every entry through a
watch, so a MAC learned on one host is known on all. Keys::

    /tenet/v1/net/learned/macs/<bridge>/<mac>   -> port id     (MAC table entry)
    /tenet/v1/net/learned/arps/<router>/<ip>    -> mac         (ARP table entry)

(the layout is :mod:`tenet.store.keys`'.)

:class:`LearnedState` is the cache an agent keeps of them; it implements the
simulation's :class:`~tenet.simulation.state.StateView`, and says which flow tag
each change touches (:func:`tenet.simulation.tags.mac`, :func:`~tenet.simulation.tags.arp`:
the very tags the simulation puts on the flows that looked the entry up).
Connections and NAT mappings are flow state, never in the store: until the
conntrack issue keeps them, it knows none.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from ipaddress import ip_address

from tenet.model import IPAddress
from tenet.packets import mac_from_str, mac_to_str
from tenet.simulation import tags
from tenet.simulation.result import ArpLearned, MacLearned, StateWrite
from tenet.simulation.state import Connection, ConnectionKey, NatBinding, NatKey
from tenet.simulation.tags import Tag
from tenet.store import keys
from tenet.store.base import Event, EventType, KeyValue, Put
from tenet.store.keys import LEARNED


def mac_key(bridge_id: uuid.UUID, mac: bytes) -> str:
    return keys.mac_key(bridge_id, mac_to_str(mac))


def arp_key(router_id: uuid.UUID, ip: IPAddress) -> str:
    return keys.arp_key(router_id, ip)


def to_put(write: StateWrite, lease: int) -> Put:
    """The store write for one learned entry, under ``lease``."""
    if isinstance(write, MacLearned):
        return Put(mac_key(write.bridge_id, write.mac), str(write.port_id).encode(), lease)
    return Put(arp_key(write.router_id, write.ip), mac_to_str(write.mac).encode(), lease)


class LearnedState:
    """Every learned MAC and ARP entry, as last seen in the store."""

    def __init__(self) -> None:
        self.macs: dict[tuple[uuid.UUID, bytes], uuid.UUID] = {}
        self.arps: dict[tuple[uuid.UUID, IPAddress], bytes] = {}

    def mac_port(self, bridge_id: uuid.UUID, mac: bytes) -> uuid.UUID | None:
        return self.macs.get((bridge_id, mac))

    def arp_mac(self, router_id: uuid.UUID, ip: IPAddress) -> bytes | None:
        return self.arps.get((router_id, ip))

    def arp_failed(self, router_id: uuid.UUID, ip: IPAddress) -> bool:
        return False  # unanswered ARP is tracked by the agent that sent the requests

    def connection(self, key: ConnectionKey) -> Connection | None:
        return None  # no conntrack table yet: the conntrack issue brings the agent's

    def nat_mapping(self, key: NatKey) -> NatBinding | None:
        return None  # likewise: NAT mappings come with the conntrack issue

    def load(self, items: Iterable[KeyValue]) -> None:
        self.macs.clear()
        self.arps.clear()
        for kv in items:
            self._set(kv.key, kv.value)

    def apply(self, event: Event) -> Tag | None:
        """Apply one store event; returns the flow tag it touches (None if unrelated)."""
        if event.type is EventType.PUT:
            return self._set(event.key, event.kv.value)
        return self._unset(event.key)

    def _set(self, key: str, value: bytes) -> Tag | None:
        parsed = _parse(key)
        if parsed is None:
            return None
        table, device, item = parsed
        if table == "macs":
            mac = mac_from_str(item)
            self.macs[(device, mac)] = uuid.UUID(value.decode())
            return tags.mac(device, mac)
        ip = ip_address(item)
        self.arps[(device, ip)] = mac_from_str(value.decode())
        return tags.arp(device, ip)

    def _unset(self, key: str) -> Tag | None:
        parsed = _parse(key)
        if parsed is None:
            return None
        table, device, item = parsed
        if table == "macs":
            mac = mac_from_str(item)
            self.macs.pop((device, mac), None)
            return tags.mac(device, mac)
        ip = ip_address(item)
        self.arps.pop((device, ip), None)
        return tags.arp(device, ip)


def _parse(key: str) -> tuple[str, uuid.UUID, str] | None:
    if not key.startswith(LEARNED):
        return None
    parts = key.removeprefix(LEARNED).split("/", 2)
    if len(parts) != 3 or parts[0] not in ("macs", "arps"):
        return None
    try:
        return parts[0], uuid.UUID(parts[1]), parts[2]
    except ValueError:
        return None


__all__ = ["ArpLearned", "LearnedState", "MacLearned", "to_put"]
