"""JSON schemas of the model's records, for the OpenAPI document (what clients and the
fuzzer read); validation itself is the model codec's (``tenet.model.from_dict``)."""

from __future__ import annotations

import dataclasses
import enum
import ipaddress
import types
import typing
import uuid
from typing import Any

from tenet.model import MAC, IPAddress, IPNetwork, Record

READ_ONLY = ("created_at", "updated_at")


def schema_of(tp: object) -> dict[str, Any]:
    simple: dict[object, dict[str, Any]] = {
        MAC: {"type": "string", "example": "02:00:00:00:00:01"},
        IPAddress: {"type": "string", "example": "10.0.0.1"},
        ipaddress.IPv4Address: {"type": "string", "example": "10.0.0.1"},
        ipaddress.IPv6Address: {"type": "string", "example": "2001:db8::1"},
        IPNetwork: {"type": "string", "example": "10.0.0.0/24"},
        uuid.UUID: {"type": "string", "format": "uuid"},
        str: {"type": "string"},
        bool: {"type": "boolean"},
        int: {"type": "integer"},
        float: {"type": "number"},
    }
    if tp in simple:
        return dict(simple[tp])
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (types.UnionType, typing.Union):
        options = [schema_of(a) for a in args if a is not type(None)]
        if type(None) in args:
            options.append({"type": "null"})
        return options[0] if len(options) == 1 else {"anyOf": options}
    if origin is tuple:
        return {"type": "array", "items": schema_of(args[0])}
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return {"type": "string", "enum": [m.value for m in tp]}
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return object_schema(tp)
    return {}


def object_schema(kind: type, *, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    hints = typing.get_type_hints(kind)
    props: dict[str, Any] = {}
    required = []
    for f in dataclasses.fields(kind):
        if not f.init or f.name in skip:
            continue
        props[f.name] = schema_of(hints[f.name])
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            required.append(f.name)
    out: dict[str, Any] = {"type": "object", "properties": props, "additionalProperties": False}
    if required:
        out["required"] = required
    return out


def create_schema(kind: type[Record]) -> dict[str, Any]:
    return object_schema(kind, skip=READ_ONLY)


def replace_schema(kind: type[Record]) -> dict[str, Any]:
    schema = object_schema(kind, skip=READ_ONLY)
    schema["properties"]["revision"] = {"type": "integer", "minimum": 1}
    schema["required"] = [*schema.get("required", ()), "revision"]
    return schema


def patch_schema(kind: type[Record]) -> dict[str, Any]:
    schema = object_schema(kind, skip=READ_ONLY)
    schema["properties"]["revision"] = {"type": "integer", "minimum": 1}
    schema.pop("required", None)
    return schema


def object_response(kind: type[Record]) -> dict[str, Any]:
    schema = object_schema(kind)
    schema["properties"]["revision"] = {"type": "integer"}
    schema.pop("additionalProperties", None)
    return schema
