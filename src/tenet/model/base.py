"""The base of every topology record.

Records are frozen dataclasses (slots, keyword-only). Why dataclasses rather than
msgspec Structs: msgspec cannot express a field that holds either an IPv4 or an
IPv6 address (a union of two custom types), which the model needs everywhere;
dataclasses keep the model free of dependencies, and the small codec in
``tenet.model.codec`` gives validation errors that name the field path.

A record validates itself in ``__post_init__`` (single-record rules: formats,
ranges, consistency between its own fields) and raises
:class:`~tenet.errors.ValidationError`. Rules that need several records (a port
peered to a port of the same device, a route's next-hop port, chain jump cycles)
live in ``tenet.model.consistency`` and are enforced by the store's object layer.

Every record has ``id`` (a UUID), ``name`` and the two timestamps (seconds since
the epoch, set by the object layer, 0 until stored). Records owned by a tenant
also have ``tenant_id``; infrastructure records (hosts, tunnel zones, bindings)
belong to the operator and have none.
"""

from __future__ import annotations

import dataclasses
import uuid
from typing import ClassVar, Self, TypeVar, dataclass_transform

from tenet.model.types import check_name

_C = TypeVar("_C", bound=type)


@dataclass_transform(frozen_default=True, kw_only_default=True)
def record(cls: _C) -> _C:
    """Make ``cls`` a frozen, slotted, keyword-only dataclass (every model record is)."""
    return dataclasses.dataclass(frozen=True, slots=True, kw_only=True)(cls)  # type: ignore[return-value]


@record
class Record:
    KIND: ClassVar[str] = ""

    id: uuid.UUID = dataclasses.field(default_factory=uuid.uuid4)
    name: str = ""
    created_at: float = 0.0
    updated_at: float = 0.0

    def __post_init__(self) -> None:
        check_name(self.name)
        self.check()

    def check(self) -> None:
        """Single-record validation; subclasses extend it."""

    def replace(self, **changes: object) -> Self:
        """A copy with ``changes`` applied (validated again)."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


@record
class TenantRecord(Record):
    tenant_id: uuid.UUID
