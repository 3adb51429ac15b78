"""What the native routers share: a record's JSON form, ids from paths and bodies,
reading a record the caller may see, and a page of records from the store.

Invariants: a record the caller may not see is answered exactly as one that does
not exist (404), whatever the reason; a page is read from the store a chunk at a
time (:meth:`~tenet.store.objects.ObjectStore.page`), in id order, and its
``next_cursor`` is the last id of the page when more follow (else null).
"""

from __future__ import annotations

import dataclasses
import typing
import uuid
from typing import Any

from tenet.errors import NotFoundError, ValidationError
from tenet.model import Record, to_dict
from tenet.model.codec import converter_for
from tenet.model.kinds import SPECS
from tenet.store.boundary import Actor, visible
from tenet.store.objects import ObjectStore, Stored

LIMIT_DEFAULT, LIMIT_MAX = 100, 1000


def out(stored: Stored[Any]) -> dict[str, Any]:
    """A stored record as the API returns it: its fields and its revision."""
    body = to_dict(stored.record)
    body["revision"] = stored.revision
    return body


def parse_id(raw: str, field: str = "id") -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise ValidationError(field, f"{raw!r} is not a UUID") from None


def readable(
    objects: ObjectStore, actor: Actor, kind: type[Record], raw_id: str, field: str = "id"
) -> Stored[Any]:
    """The record ``raw_id`` of ``kind``, if ``actor`` may see it; else a 404 (naming
    ``field`` when the id came in a body)."""
    found = objects.find(kind, parse_id(raw_id, field))
    if found is None or not visible(actor, found.record):
        raise NotFoundError(SPECS[kind].label, raw_id, None if field == "id" else field)
    return found


def paging(params: dict[str, str]) -> tuple[uuid.UUID | None, int]:
    """Take ``limit`` and ``cursor`` out of ``params``: (after, limit)."""
    raw_limit = params.pop("limit", str(LIMIT_DEFAULT))
    try:
        limit = int(raw_limit)
    except ValueError:
        raise ValidationError("limit", f"{raw_limit!r} is not an integer") from None
    if not 1 <= limit <= LIMIT_MAX:
        raise ValidationError("limit", f"must be between 1 and {LIMIT_MAX}")
    cursor = params.pop("cursor", "")
    return (parse_id(cursor, "cursor") if cursor else None), limit


def page(
    objects: ObjectStore,
    actor: Actor,
    kind: type[Record],
    params: dict[str, str],
    **fixed: object,
) -> dict[str, Any]:
    """A page of the records of ``kind`` ``actor`` may see: ``params`` holds the
    paging and equality filters on fields (as query text); ``fixed`` more filters."""
    after, limit = paging(params)
    filters = {name: filter_value(kind, name, raw) for name, raw in params.items()}
    items, cursor = objects.page(kind, actor=actor, after=after, limit=limit, **filters, **fixed)
    return {"items": [out(s) for s in items], "next_cursor": str(cursor) if cursor else None}


def filter_value(kind: type[Record], name: str, raw: str) -> object:
    """The value of field ``name`` of ``kind`` that the query text ``raw`` says."""
    hints = typing.get_type_hints(kind)
    if name not in hints or name not in {f.name for f in dataclasses.fields(kind)}:
        raise ValidationError(name, f"{SPECS[kind].label} has no such field to filter on")
    tp = hints[name]
    args = typing.get_args(tp)
    if type(None) in args:
        if raw in ("", "null"):
            return None
        rest = [a for a in args if a is not type(None)]
        tp = rest[0] if len(rest) == 1 else tp
    try:
        if tp is bool:
            if raw not in ("true", "false"):
                raise ValidationError(name, f"{raw!r} is not true or false")
            return raw == "true"
        if tp is int:
            return int(raw)
        if tp is float:
            return float(raw)
        if typing.get_origin(tp) is tuple:
            raise ValidationError(name, "lists cannot be filtered on")
        return converter_for(tp)(raw, name)
    except ValueError:
        raise ValidationError(name, f"{raw!r} is not a valid value") from None


def body_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """``openapi_extra`` for a route whose JSON body is ``schema``."""
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}
