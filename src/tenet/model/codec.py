"""Conversion between model records and JSON-shaped values (dicts, lists, str...).

``from_dict`` is the edge where untrusted input becomes frozen model records
(CONVENTIONS.md point 7): it rejects unknown fields, converts strings to typed
values (UUID, IP address, CIDR, MAC, enum) and reports the first problem as a
:class:`~tenet.errors.ValidationError` whose field is the full path
(``condition.nw_src``, ``nat_targets[1].port_start``). ``to_dict`` is its
inverse: ``from_dict(type(r), to_dict(r)) == r`` for every record ``r``.

Converters are compiled once per record class from its type hints.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import ipaddress
import json
import math
import types
import typing
import uuid
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from tenet.errors import ValidationError
from tenet.model.types import (
    MAC,
    IPAddress,
    IPNetwork,
    parse_ip,
    parse_mac,
    parse_network,
    parse_uuid,
)

T = TypeVar("T")
Converter = Callable[[object, str], Any]

_CONVERTERS: dict[object, Converter] = {}
_FIELDS: dict[type, dict[str, tuple[Converter, bool]]] = {}


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _expect(kind: type | tuple[type, ...], what: str) -> Converter:
    def convert(value: object, path: str) -> object:
        if isinstance(value, bool) and kind is not bool:
            raise ValidationError(path, f"expected {what}, got a boolean")
        if not isinstance(value, kind):
            raise ValidationError(path, f"expected {what}, got {type(value).__name__}")
        return value

    return convert


def _convert_float(value: object, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError(path, f"expected a number, got {type(value).__name__}")
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise ValidationError(path, f"expected a finite number, got {value!r:.40}")
    return number


def _enum_converter(kind: type[enum.Enum]) -> Converter:
    allowed = ", ".join(repr(m.value) for m in kind)

    def convert(value: object, path: str) -> enum.Enum:
        if isinstance(value, kind):
            return value
        try:
            return kind(value)
        except ValueError:
            raise ValidationError(path, f"{value!r} is not one of {allowed}") from None

    return convert


def _tuple_converter(item: Converter) -> Converter:
    def convert(value: object, path: str) -> tuple[object, ...]:
        if not isinstance(value, list | tuple):
            raise ValidationError(path, f"expected a list, got {type(value).__name__}")
        return tuple(item(v, f"{path}[{i}]") for i, v in enumerate(value))

    return convert


def _optional_converter(item: Converter) -> Converter:
    def convert(value: object, path: str) -> object:
        return None if value is None else item(value, path)

    return convert


def _record_converter(kind: type) -> Converter:
    def convert(value: object, path: str) -> object:
        if isinstance(value, kind):
            return value
        if not isinstance(value, Mapping):
            raise ValidationError(path, f"expected an object, got {type(value).__name__}")
        return from_dict(kind, value, path)

    return convert


def converter_for(tp: object) -> Converter:
    """The converter for one type hint (cached)."""
    with contextlib.suppress(KeyError, TypeError):  # TypeError: an unhashable hint
        return _CONVERTERS[tp]
    conv = _build_converter(tp)
    with contextlib.suppress(TypeError):
        _CONVERTERS[tp] = conv
    return conv


def _build_converter(tp: object) -> Converter:
    simple: dict[object, Converter] = {
        MAC: parse_mac,
        IPAddress: parse_ip,
        IPNetwork: parse_network,
        uuid.UUID: parse_uuid,
        str: _expect(str, "a string"),
        bool: _expect(bool, "true or false"),
        int: _expect(int, "an integer"),
        float: _convert_float,
    }
    if tp in simple:
        return simple[tp]
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (types.UnionType, typing.Union) and type(None) in args:
        rest = tuple(a for a in args if a is not type(None))
        inner = rest[0] if len(rest) == 1 else typing.Union[rest]  # noqa: UP007
        return _optional_converter(converter_for(inner))
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return _tuple_converter(converter_for(args[0]))
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return _enum_converter(tp)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _record_converter(tp)
    if tp in (ipaddress.IPv4Address, ipaddress.IPv6Address):
        return lambda v, p: _same_version(parse_ip(v, p), tp, p)
    raise TypeError(f"the model codec has no converter for {tp!r}")


def _same_version(value: IPAddress, tp: object, path: str) -> IPAddress:
    if not isinstance(value, tp):  # type: ignore[arg-type]
        raise ValidationError(path, f"{value} is not an {getattr(tp, '__name__', tp)}")
    return value


def _fields(kind: type) -> dict[str, tuple[Converter, bool]]:
    cached = _FIELDS.get(kind)
    if cached is not None:
        return cached
    hints = typing.get_type_hints(kind)
    table: dict[str, tuple[Converter, bool]] = {}
    # a record may read some fields its own way (a protocol given by name or number)
    parsers: dict[str, Converter] = getattr(kind, "PARSERS", {})
    for f in dataclasses.fields(kind):
        if not f.init:
            continue
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        table[f.name] = (parsers.get(f.name) or converter_for(hints[f.name]), required)
    _FIELDS[kind] = table
    return table


def from_dict(kind: type[T], data: Mapping[str, object], path: str = "") -> T:
    """Build a ``kind`` record from JSON-shaped ``data``; errors name the field path."""
    if not isinstance(data, Mapping):
        raise ValidationError(path, f"expected an object, got {type(data).__name__}")
    table = _fields(kind)
    for name in data:
        if name not in table:
            raise ValidationError(_join(path, str(name)), "unknown field")
    kwargs: dict[str, object] = {}
    for name, (conv, required) in table.items():
        if name in data:
            kwargs[name] = conv(data[name], _join(path, name))
        elif required:
            raise ValidationError(_join(path, name), "is required")
    try:
        return kind(**kwargs)
    except ValidationError as exc:
        raise exc.within(path) from None


def to_value(value: object) -> object:
    """A model value as JSON-shaped data."""
    if isinstance(value, enum.Enum):  # first: a StrEnum is also a str
        return value.value
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, tuple | list):
        return [to_value(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_dict(value)
    return str(value)  # UUID, addresses, networks


def to_dict(record: object) -> dict[str, object]:
    return {
        f.name: to_value(getattr(record, f.name))
        for f in dataclasses.fields(record)  # type: ignore[arg-type]
    }


def dumps(record: object) -> bytes:
    return json.dumps(to_dict(record), separators=(",", ":"), sort_keys=True).encode()


def loads(kind: type[T], raw: bytes) -> T:
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise ValidationError("", f"not valid JSON: {exc}") from None
    return from_dict(kind, data)
