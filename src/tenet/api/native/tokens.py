"""API tokens: ``/v1/whoami`` for anyone with a token, ``/v1/tokens`` for admins.

A token's secret is returned once, when it is created; the store keeps its hash
(:mod:`tenet.api.auth`). A member token names an existing tenant.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from tenet.api.auth import principal_dict
from tenet.api.deps import JsonBody, Objects, TokenStore, Who, admin_only
from tenet.api.native.common import body_schema, parse_id
from tenet.errors import ValidationError
from tenet.model import Tenant

router = APIRouter()

TOKEN_BODY = {
    "type": "object",
    "properties": {
        "role": {"type": "string", "enum": ["admin", "member"]},
        "tenant_id": {"anyOf": [{"type": "string", "format": "uuid"}, {"type": "null"}]},
        "name": {"type": "string"},
    },
    "required": ["role"],
    "additionalProperties": False,
}


@router.get("/v1/whoami", tags=["auth"])
def whoami(p: Who) -> dict[str, Any]:
    return principal_dict(p)


@router.post("/v1/tokens", status_code=201, tags=["auth"],
             openapi_extra=body_schema(TOKEN_BODY), dependencies=[admin_only()])  # fmt: skip
def create_token(body: JsonBody, tokens: TokenStore, objects: Objects) -> dict[str, Any]:
    unknown = set(body) - {"role", "tenant_id", "name"}
    if unknown:
        raise ValidationError(sorted(unknown)[0], "unknown field")
    role = body.get("role")
    if not isinstance(role, str):
        raise ValidationError("role", "is required: admin or member")
    raw_tenant = body.get("tenant_id")
    tenant = None
    if raw_tenant is not None:
        if not isinstance(raw_tenant, str):
            raise ValidationError("tenant_id", "expected a UUID string")
        tenant = parse_id(raw_tenant, "tenant_id")
        objects.get(Tenant, tenant)
    name = body.get("name", "")
    if not isinstance(name, str):
        raise ValidationError("name", "expected a string")
    secret, record = tokens.create(role, tenant, name)
    return {**record, "token": secret}


@router.get("/v1/tokens", tags=["auth"], dependencies=[admin_only()])
def list_tokens(tokens: TokenStore) -> dict[str, Any]:
    return {"items": tokens.list(), "next_cursor": None}


@router.delete("/v1/tokens/{token_id}", status_code=204, tags=["auth"],
               dependencies=[admin_only()])  # fmt: skip
def delete_token(token_id: str, tokens: TokenStore) -> Response:
    tokens.delete(token_id)
    return Response(status_code=204)
