"""What every route depends on: who is calling, and the app's object layer and clock.

The principal comes from the bearer token (``Authorization: Bearer tnt_...``) or,
with authentication off, is an anonymous admin; it acts on the object layer as an
:class:`~tenet.store.boundary.Actor`: ``ADMIN`` for admin tokens, a member of its
tenant otherwise. :func:`allowed` is the route dependency that asks the policy
(:func:`tenet.api.policy.check`) before a handler runs, and before the body is
validated, so a refused route answers the same whatever was sent.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Body, Depends, Request

from tenet.api.auth import ANONYMOUS_ADMIN, Principal, Tokens
from tenet.api.errors import Unauthorized
from tenet.api.policy import Op, check, check_admin
from tenet.clock import Clock
from tenet.model import Record
from tenet.store.boundary import ADMIN, Actor
from tenet.store.objects import ObjectStore


def principal(request: Request) -> Principal:
    """Who sent ``request``: the role and tenant of its bearer token."""
    if not request.app.state.auth:
        return ANONYMOUS_ADMIN
    header = request.headers.get("authorization", "")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret:
        raise Unauthorized("send an API token: Authorization: Bearer <token>")
    tokens: Tokens = request.app.state.tokens
    found = tokens.lookup(secret.strip())
    if found is None:
        raise Unauthorized("the API token is not valid (unknown or deleted)")
    return found


def actor_of(p: Principal) -> Actor:
    """What ``p`` acts as on the object layer."""
    if p.admin:
        return ADMIN
    assert p.tenant_id is not None, "a member token belongs to a tenant"
    return Actor.member(p.tenant_id)


def _caller(p: Annotated[Principal, Depends(principal)]) -> Actor:
    return actor_of(p)


def _objects(request: Request) -> ObjectStore:
    objects: ObjectStore = request.app.state.objects
    return objects


def _tokens(request: Request) -> Tokens:
    tokens: Tokens = request.app.state.tokens
    return tokens


def _clock(request: Request) -> Clock:
    clock: Clock = request.app.state.clock
    return clock


Who = Annotated[Principal, Depends(principal)]
Caller = Annotated[Actor, Depends(_caller)]
JsonBody = Annotated[dict[str, Any], Body()]
Objects = Annotated[ObjectStore, Depends(_objects)]
TokenStore = Annotated[Tokens, Depends(_tokens)]
AppClock = Annotated[Clock, Depends(_clock)]


def allowed(kind: type[Record], op: Op) -> Any:
    """A route dependency: the caller may ``op`` records of ``kind`` (the policy)."""

    def dependency(actor: Caller) -> None:
        check(actor, kind, op)

    return Depends(dependency)


def admin_only() -> Any:
    """A route dependency: admin tokens only."""

    def dependency(actor: Caller) -> None:
        check_admin(actor)

    return Depends(dependency)


__all__ = [
    "AppClock",
    "Caller",
    "JsonBody",
    "Objects",
    "TokenStore",
    "Who",
    "actor_of",
    "admin_only",
    "allowed",
    "principal",
]
