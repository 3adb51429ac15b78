"""``/v1/<collection>``: create, list, read, replace, patch and delete, for every kind.

Each kind's routes ask the policy first (:func:`tenet.api.policy.check`, a route
dependency), then act on the object layer as the caller, so the tenant boundary is
checked in the write's own transaction. A member creating a tenant's record may
leave ``tenant_id`` out (its own is implied). ``PUT`` replaces the record and
needs the revision read; ``PATCH`` merges the fields given into the current record
in one transaction (:meth:`~tenet.store.objects.ObjectStore.patch`), checking the
revision if one is given. ``created_at``, ``updated_at`` and ``revision`` in a body
are ignored; an ``id`` must be the path's.

Kinds nothing implements yet (``spec.planned``) keep their routes, which answer
501 naming the kind and why, and are left out of the OpenAPI document.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from tenet.api.deps import Caller, JsonBody, Objects, allowed
from tenet.api.native.common import body_schema, out, page, parse_id, readable
from tenet.api.policy import POLICIES, KindPolicy, Op
from tenet.api.schema import create_schema, object_response, patch_schema, replace_schema
from tenet.errors import ValidationError
from tenet.model import Record, TenantRecord, from_dict
from tenet.store.boundary import Actor

READ_ONLY = ("created_at", "updated_at", "revision")

router = APIRouter()


def _build(kind: type[Record], actor: Actor, body: dict[str, Any]) -> Record:
    data = {k: v for k, v in body.items() if k not in READ_ONLY}
    if issubclass(kind, TenantRecord) and not actor.admin:
        data.setdefault("tenant_id", str(actor.tenant_id))
    return from_dict(kind, data)


def _revision(body: dict[str, Any], *, required: bool) -> int | None:
    rev = body.get("revision")
    if rev is None:
        if required:
            raise ValidationError("revision", "is required: the revision you read")
        return None
    if not isinstance(rev, int) or isinstance(rev, bool) or rev < 1:
        raise ValidationError("revision", "must be a positive integer")
    return rev


def _same_id(body: dict[str, Any], item_id: str) -> None:
    if str(body.get("id", item_id)) != item_id:
        raise ValidationError("id", "differs from the id in the path")


def _routes(policy: KindPolicy) -> None:
    kind, coll, label = policy.kind, policy.collection, policy.label

    def create(body: JsonBody, actor: Caller, objects: Objects) -> JSONResponse:
        stored = objects.create(_build(kind, actor, body), actor=actor)
        return JSONResponse(out(stored), 201)

    def list_(request: Request, actor: Caller, objects: Objects) -> dict[str, Any]:
        return page(objects, actor, kind, dict(request.query_params))

    def read(item_id: str, actor: Caller, objects: Objects) -> dict[str, Any]:
        return out(readable(objects, actor, kind, item_id))

    def replace(item_id: str, body: JsonBody, actor: Caller, objects: Objects) -> Any:
        readable(objects, actor, kind, item_id)  # a 404 for what the caller may not see
        rev = _revision(body, required=True)
        _same_id(body, item_id)
        record = _build(kind, actor, {**body, "id": item_id})
        return out(objects.update(record, expected_revision=rev, actor=actor))

    def patch(item_id: str, body: JsonBody, actor: Caller, objects: Objects) -> Any:
        readable(objects, actor, kind, item_id)
        rev = _revision(body, required=False)
        _same_id(body, item_id)
        fields = {k: v for k, v in body.items() if k not in (*READ_ONLY, "id")}
        stored = objects.patch(kind, parse_id(item_id), fields, expected_revision=rev, actor=actor)
        return out(stored)

    def delete(item_id: str, actor: Caller, objects: Objects) -> Response:
        readable(objects, actor, kind, item_id)
        objects.delete(kind, parse_id(item_id), actor=actor)
        return Response(status_code=204)

    one_object: dict[str, Any] = {
        "content": {"application/json": {"schema": object_response(kind)}}
    }
    response: dict[int | str, dict[str, Any]] = {"200": one_object}
    base, one = f"/v1/{coll}", f"/v1/{coll}/{{item_id}}"
    common: dict[str, Any] = {"tags": [coll], "include_in_schema": policy.planned is None}
    router.add_api_route(base, create, methods=["POST"], status_code=201,
                         summary=f"Create a {label}", name=f"create_{coll}",
                         openapi_extra=body_schema(create_schema(kind)),
                         responses={"201": one_object},
                         dependencies=[allowed(kind, Op.CREATE)], **common)  # fmt: skip
    router.add_api_route(base, list_, methods=["GET"], summary=f"List {coll}",
                         name=f"list_{coll}", dependencies=[allowed(kind, Op.READ)],
                         **common)  # fmt: skip
    router.add_api_route(one, read, methods=["GET"], summary=f"Read a {label}",
                         name=f"read_{coll}", responses=response,
                         dependencies=[allowed(kind, Op.READ)], **common)  # fmt: skip
    router.add_api_route(one, replace, methods=["PUT"],
                         summary=f"Replace a {label} (give the revision you read)",
                         name=f"replace_{coll}", openapi_extra=body_schema(replace_schema(kind)),
                         responses=response, dependencies=[allowed(kind, Op.UPDATE)],
                         **common)  # fmt: skip
    router.add_api_route(one, patch, methods=["PATCH"], summary=f"Change a {label}",
                         name=f"patch_{coll}", openapi_extra=body_schema(patch_schema(kind)),
                         responses=response, dependencies=[allowed(kind, Op.UPDATE)],
                         **common)  # fmt: skip
    router.add_api_route(one, delete, methods=["DELETE"], status_code=204,
                         summary=f"Delete a {label}", name=f"delete_{coll}",
                         dependencies=[allowed(kind, Op.DELETE)], **common)  # fmt: skip


for _policy in POLICIES.values():
    _routes(_policy)
