"""What the agents learned, per device: a bridge's MAC table and a router's ARP table.

Entries are written by agents under their hosts' leases (:mod:`tenet.agent.learned`)
and read here as they are in the store, by one prefix read per device; the device
must be one the caller may see.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from tenet.api.deps import Caller, Objects, allowed
from tenet.api.native.common import readable
from tenet.api.policy import Op
from tenet.model import Bridge, Router
from tenet.store.keys import arp_prefix, mac_prefix
from tenet.store.objects import ObjectStore

router = APIRouter()


def _entries(objects: ObjectStore, prefix: str, key: str, value: str) -> dict[str, Any]:
    """Entries the agents learned under ``prefix`` (``<key>`` -> ``<value>``)."""
    items = [
        {key: kv.key.removeprefix(prefix), value: kv.value.decode()}
        for kv in objects.store.list(prefix).items
    ]
    return {"items": items}


@router.get("/v1/bridges/{item_id}/mac-table", tags=["bridges"],
            dependencies=[allowed(Bridge, Op.READ)])  # fmt: skip
def mac_table(item_id: str, actor: Caller, objects: Objects) -> dict[str, Any]:
    bridge = readable(objects, actor, Bridge, item_id).record
    return _entries(objects, mac_prefix(bridge.id), "mac", "port_id")


@router.get("/v1/routers/{item_id}/arp-table", tags=["routers"],
            dependencies=[allowed(Router, Op.READ)])  # fmt: skip
def arp_table(item_id: str, actor: Caller, objects: Objects) -> dict[str, Any]:
    found = readable(objects, actor, Router, item_id).record
    return _entries(objects, arp_prefix(found.id), "ip", "mac")
