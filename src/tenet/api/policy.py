"""Who may do what to each kind of record through the API: one table, built from the
kinds' specs (:data:`tenet.model.kinds.SPECS`), and :func:`check`, the one function
that answers.

============================  ====================  ==========================
kind                          create/update/delete  read (one, list, sub-lists)
============================  ====================  ==========================
a tenant's (``Owner.TENANT``) admins; members       admins; members: their
                              in their tenant       tenant's and shared records
tenants                       admins                admins; members: their own
the operator's (hosts...)     admins                admins
planned (``spec.planned``)    nobody: 501, naming the kind and why
============================  ====================  ==========================

The object layer enforces the tenant boundary inside every transaction whatever
this table says (:mod:`tenet.store.boundary`: a member's change reaches only its
tenant's records, names only its own or shared ones, never shares); the table adds
what the boundary cannot: that a member may not even list the operator's kinds
(403, not an empty list), and that a planned kind has nothing behind it. Which
records a reader sees is :func:`tenet.store.boundary.visible`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from tenet.errors import NotImplementedYet, PermissionDenied
from tenet.model import Record, Tenant, TenantRecord
from tenet.model.kinds import SPECS, KindSpec, Owner
from tenet.store.boundary import Actor


class Op(enum.Enum):
    CREATE = "create"
    READ = "read"
    UPDATE = "update"
    DELETE = "delete"


class Access(enum.Enum):
    MEMBERS = "members"  # admins, and members within what the boundary lets them reach
    ADMIN = "admin"  # admin tokens only


@dataclass(frozen=True, slots=True)
class KindPolicy:
    kind: type[Record]
    collection: str  # /v1/<collection>
    label: str  # one record, in messages
    read: Access
    write: Access
    planned: str | None  # why nothing implements the kind yet (None: implemented)

    def access(self, op: Op) -> Access:
        return self.read if op is Op.READ else self.write


def _policy(spec: KindSpec) -> KindPolicy:
    # a member reads what belongs to a tenant (its own, or shared): never the operator's
    readable = issubclass(spec.kind, TenantRecord) or spec.kind is Tenant
    return KindPolicy(
        kind=spec.kind,
        collection=spec.kind.KIND.replace("_", "-"),
        label=spec.label,
        read=Access.MEMBERS if readable else Access.ADMIN,
        write=Access.MEMBERS if spec.owner is Owner.TENANT else Access.ADMIN,
        planned=spec.planned,
    )


POLICIES: dict[type[Record], KindPolicy] = {kind: _policy(spec) for kind, spec in SPECS.items()}
COLLECTIONS: dict[str, KindPolicy] = {p.collection: p for p in POLICIES.values()}


def check(actor: Actor, kind: type[Record], op: Op) -> None:
    """Raise unless ``actor`` may ``op`` records of ``kind``: NotImplementedYet (501)
    for a planned kind, whoever asks; PermissionDenied (403) for a member where the
    table says admins only."""
    policy = POLICIES[kind]
    if policy.planned is not None:
        raise NotImplementedYet(f"{policy.collection}: {policy.planned}")
    if not actor.admin and policy.access(op) is Access.ADMIN:
        if op is Op.READ or policy.read is Access.ADMIN:
            raise PermissionDenied(f"{policy.collection} are managed by the operator (admin)")
        raise PermissionDenied(f"only an admin token may {op.value} {policy.collection}")


def check_admin(actor: Actor) -> None:
    """For what is not a record (API tokens): admins only."""
    if not actor.admin:
        raise PermissionDenied("only an admin token may do this")
