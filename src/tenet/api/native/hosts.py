"""A host's status as its agent reports it (admins only, as hosts are the operator's).

Read from the keys the host's agent writes under its lease
(:mod:`tenet.store.keys`: ``alive``, ``applied``, ``stats``, ``interfaces``), so
they vanish when the agent stops; a host with no agent running answers as such.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter

from tenet.api.deps import Caller, Objects, allowed
from tenet.api.native.common import readable
from tenet.api.policy import Op
from tenet.model import Host
from tenet.store.keys import alive_key, applied_key, interfaces_key, stats_key

router = APIRouter()


@router.get("/v1/hosts/{item_id}/interfaces", tags=["hosts"],
            dependencies=[allowed(Host, Op.READ)])  # fmt: skip
def host_interfaces(item_id: str, actor: Caller, objects: Objects) -> dict[str, Any]:
    """The host's network interfaces, as its agent reports them (empty while no agent
    runs there): what port bindings name."""
    host_id = readable(objects, actor, Host, item_id).record.id
    kv = objects.store.get(interfaces_key(host_id))
    return {"items": json.loads(kv.value) if kv else []}


@router.get("/v1/hosts/{item_id}/status", tags=["hosts"],
            dependencies=[allowed(Host, Op.READ)])  # fmt: skip
def host_status(item_id: str, actor: Caller, objects: Objects) -> dict[str, Any]:
    """Whether the host's agent is alive, the store revision it has applied, and its
    counters."""
    host_id = readable(objects, actor, Host, item_id).record.id
    alive = objects.store.get(alive_key(host_id))
    applied = objects.store.get(applied_key(host_id))
    stats = objects.store.get(stats_key(host_id))
    return {
        "alive": alive is not None,
        "underlay": alive.value.decode() if alive else None,
        "applied_revision": int(applied.value) if applied else None,
        "stats": json.loads(stats.value) if stats else {},
    }
