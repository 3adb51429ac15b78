"""Linking ports, a port's binding status, and the sub-collections that read
naturally under a parent.

``POST /v1/ports/{id}/link`` peers two ports (both sides, one transaction) and
``DELETE`` unlinks them, as the caller: both ports must be ones it may see, and
the object layer refuses a member's link that reaches another tenant's port.
``/v1/bridges/{id}/ports``, ``/v1/routers/{id}/ports``, ``/v1/routers/{id}/routes``
and ``/v1/chains/{id}/rules`` are pages of the children the caller may see (only
``limit`` and ``cursor`` as query parameters). ``GET /v1/ports/{id}/status`` is how
the agent of the port's host finds its binding (``status/hosts/<host>/ports/<port>``,
written under the agent's lease, so "host down" is that key gone while the binding
stands).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from fastapi import APIRouter, Request

from tenet.api.deps import Caller, JsonBody, Objects, allowed
from tenet.api.native.common import body_schema, out, page, readable
from tenet.api.policy import Op
from tenet.errors import ValidationError
from tenet.model import (
    Bridge,
    Chain,
    Port,
    PortBinding,
    Record,
    Route,
    Router,
    Rule,
    TenantRecord,
)
from tenet.store.keys import alive_key, binding_port_key, parse_object_key, port_status_key
from tenet.store.objects import ObjectStore

router = APIRouter()

LINK_BODY = {
    "type": "object",
    "properties": {"peer_id": {"type": "string", "format": "uuid"}},
    "required": ["peer_id"],
    "additionalProperties": False,
}


@router.post("/v1/ports/{item_id}/link", tags=["ports"], openapi_extra=body_schema(LINK_BODY),
             dependencies=[allowed(Port, Op.UPDATE)])  # fmt: skip
def link(item_id: str, body: JsonBody, actor: Caller, objects: Objects) -> Any:
    port = readable(objects, actor, Port, item_id).record
    raw_peer = body.get("peer_id")
    if not isinstance(raw_peer, str):
        raise ValidationError("peer_id", "is required: the id of the port to link to")
    peer = readable(objects, actor, Port, raw_peer, "peer_id").record
    return out(objects.link(port.id, peer.id, actor=actor))


@router.delete("/v1/ports/{item_id}/link", tags=["ports"],
               dependencies=[allowed(Port, Op.UPDATE)])  # fmt: skip
def unlink(item_id: str, actor: Caller, objects: Objects) -> Any:
    port = readable(objects, actor, Port, item_id).record
    return out(objects.unlink(port.id, actor=actor))


@router.get("/v1/ports/{item_id}/status", tags=["ports"],
            dependencies=[allowed(Port, Op.READ)])  # fmt: skip
def port_status(item_id: str, actor: Caller, objects: Objects) -> dict[str, Any]:
    """The port's binding as its host's agent finds it. ``state``: ``unbound`` (no
    binding), ``host down`` (no agent runs on the binding's host), ``pending`` (the
    agent has not reported it yet), ``waiting`` (no such interface on the host yet),
    ``bound``, or ``refused``; ``reason`` says why it waits or is refused; ``status``
    is Neutron's: ACTIVE when bound, else DOWN. Admins also see the host and the
    interface (hosts are the operator's)."""
    port = readable(objects, actor, Port, item_id).record
    binding = _binding(objects, port.id)
    body: dict[str, Any] = {"port_id": str(port.id), "state": "unbound", "reason": ""}
    if binding is not None:
        kv = objects.store.get(port_status_key(binding.host_id, port.id))
        if kv is not None:
            found = json.loads(kv.value)
            body["state"], body["reason"] = found["state"], found.get("reason", "")
            if "mtu" in found:
                body["mtu"] = found["mtu"]
        elif objects.store.get(alive_key(binding.host_id)) is None:
            body["state"], body["reason"] = "host down", "no agent runs on the port's host"
        else:
            body["state"] = "pending"
        if actor.admin:
            body["host_id"], body["interface"] = str(binding.host_id), binding.interface
    body["status"] = "ACTIVE" if body["state"] == "bound" else "DOWN"
    return body


def _binding(objects: ObjectStore, port_id: uuid.UUID) -> PortBinding | None:
    kv = objects.store.get(binding_port_key(port_id))
    parsed = parse_object_key(kv.value.decode()) if kv is not None else None
    found = objects.find(PortBinding, parsed[1]) if parsed is not None else None
    return found.record if found is not None else None


def _sub(parent: type[Record], child: type[Record], field: str) -> None:
    coll = parent.KIND.replace("_", "-")
    path = f"/v1/{coll}/{{item_id}}/{child.KIND.replace('_', '-')}"

    def handler(item_id: str, request: Request, actor: Caller, objects: Objects) -> dict[str, Any]:
        found = readable(objects, actor, parent, item_id).record
        params = dict(request.query_params)
        unknown = sorted(set(params) - {"limit", "cursor"})
        if unknown:
            raise ValidationError(unknown[0], "unknown query parameter")
        fixed: dict[str, object] = {field: found.id}
        if isinstance(found, TenantRecord):
            # a child names its parent through a same-tenant reference: reading the
            # parent's tenant index bounds the read to that tenant's records
            fixed["tenant_id"] = found.tenant_id
        return page(objects, actor, child, params, **fixed)

    name = path.strip("/").replace("/", "_").replace("{item_id}", "id")
    checks = [allowed(parent, Op.READ), allowed(child, Op.READ)]
    router.add_api_route(
        path, handler, methods=["GET"], tags=[coll], name=name, dependencies=checks
    )


_sub(Bridge, Port, "device_id")
_sub(Router, Port, "device_id")
_sub(Router, Route, "router_id")
_sub(Chain, Rule, "chain_id")
