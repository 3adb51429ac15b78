"""The tenant boundary: what a writer may name and change, checked in every transaction.

Every change goes through the object layer with an :class:`Actor`: the operator
(``ADMIN``, also what agents and internal code act as) or a member of one tenant.
For a member, in the one transaction that makes the change:

1. every record the change writes, creates or deletes, including what it does as
   a side effect (the far side of a link, a cascade, a cleared reference), is a
   record of the member's own tenant, of a kind its tenants own
   (:class:`~tenet.model.kinds.Owner`); anything else refuses the whole change
   with PermissionDenied, which does not say what the other record is;
2. every reference the change *adds* (in any field, at any depth: every
   :class:`~tenet.model.kinds.Ref` of the kind) names a record of the member's
   tenant, or one the operator marked ``shared`` where the Ref allows it. Anything
   else is answered exactly as a reference to nothing: NotFoundError naming the
   field, so a member learns nothing about other tenants' ids;
3. only the operator marks records ``shared``.

References an admin made (a cross-tenant link at the edge) stay valid when a
member changes something else of its record; what a member may not do is add one,
or change the other side.

For everyone, a ``same_tenant`` reference must name a record of the referrer's own
tenant (or a shared one where the Ref allows it); other references may cross
tenants only when an admin writes them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from tenet.errors import NotFoundError, PermissionDenied, ValidationError
from tenet.model import Record, Tenant, TenantRecord
from tenet.model.kinds import SPECS, Owner, Ref


@dataclass(frozen=True, slots=True)
class Actor:
    """Who makes a change: an admin (``tenant_id`` None) or a member of one tenant."""

    tenant_id: uuid.UUID | None = None
    admin: bool = True

    @classmethod
    def member(cls, tenant_id: uuid.UUID) -> Actor:
        return cls(tenant_id, admin=False)

    def __str__(self) -> str:
        return "admin" if self.admin else f"member of tenant {self.tenant_id}"


ADMIN = Actor()


def tenant_of(record: Record) -> uuid.UUID | None:
    """The tenant a record belongs to (a tenant belongs to itself); None: the operator's."""
    if isinstance(record, TenantRecord):
        return record.tenant_id
    if isinstance(record, Tenant):
        return record.id
    return None


def is_shared(record: Record) -> bool:
    return bool(getattr(record, "shared", False))


def owns(actor: Actor, record: Record) -> bool:
    """Whether ``actor`` may write ``record`` (as it is, or was)."""
    if actor.admin:
        return True
    return (
        isinstance(record, TenantRecord)
        and record.tenant_id == actor.tenant_id
        and SPECS[type(record)].owner is Owner.TENANT
    )


def visible(actor: Actor, record: Record) -> bool:
    """Whether ``actor`` may read ``record``: its tenant's records (and the tenant
    itself), or records the operator shared."""
    if actor.admin:
        return True
    if isinstance(record, Tenant):
        return record.id == actor.tenant_id
    if isinstance(record, TenantRecord):
        return record.tenant_id == actor.tenant_id or is_shared(record)
    return False


def check_reference(
    actor: Actor, ref: Ref, source: Record, target: Record | None, ident: uuid.UUID
) -> None:
    """``source`` names ``target`` (``None``: nothing has id ``ident``) through ``ref``."""
    label = SPECS[ref.target].label
    if target is None:
        raise NotFoundError(label, ident, ref.field)
    shared = ref.shared_ok and is_shared(target)
    if not actor.admin and not shared and tenant_of(target) != actor.tenant_id:
        raise NotFoundError(label, ident, ref.field)  # as if there were nothing
    if (
        ref.same_tenant
        and not shared
        and isinstance(source, TenantRecord)
        and isinstance(target, TenantRecord)
        and target.tenant_id != source.tenant_id
    ):
        raise ValidationError(ref.field, f"{label} {ident} belongs to another tenant")


def check_changes(actor: Actor, changes: list[tuple[Record | None, Record | None]]) -> None:
    """Rules 1 and 3 over everything one transaction changes (see the module doc)."""
    if actor.admin:
        return
    for old, new in changes:
        for record in (old, new):
            if record is not None and not owns(actor, record):
                raise PermissionDenied(
                    "this change reaches records outside the token's tenant "
                    f"({actor.tenant_id}); only an admin may make it"
                )
        if new is not None and is_shared(new) != (old is not None and is_shared(old)):
            raise PermissionDenied("shared: only the operator shares records")
