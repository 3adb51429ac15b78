"""API tokens: who is calling, and what they may see and change.

A token is ``tnt_`` and 43 random URL-safe characters, shown once when it is
created; the store keeps only its SHA-256 (under ``/tenet/v1/auth/tokens/``), with
its role: ``admin`` (everything) or ``member`` of one tenant (that tenant's
records only; hosts, tunnel zones, their members and port bindings are the
operator's, and so are creating and deleting tenants).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import uuid
from dataclasses import asdict, dataclass

from tenet.clock import Clock, SystemClock
from tenet.errors import NotFoundError, ValidationError
from tenet.store.base import Store
from tenet.store.keys import TOKENS, token_key

ROLES = ("admin", "member")


@dataclass(frozen=True)
class Principal:
    """Who a request comes from."""

    token_id: str
    role: str
    tenant_id: uuid.UUID | None = None
    name: str = ""

    @property
    def admin(self) -> bool:
        return self.role == "admin"


ANONYMOUS_ADMIN = Principal("no-auth", "admin", None, "authentication disabled")


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Tokens:
    def __init__(self, store: Store, clock: Clock | None = None) -> None:
        self.store = store
        self._clock = clock or SystemClock()

    def create(
        self, role: str, tenant_id: uuid.UUID | None = None, name: str = ""
    ) -> tuple[str, dict[str, object]]:
        """A new token (the secret, returned once) and its record."""
        if role not in ROLES:
            raise ValidationError("role", f"must be one of {', '.join(ROLES)}, not {role!r}")
        if role == "member" and tenant_id is None:
            raise ValidationError("tenant_id", "a member token belongs to a tenant: give its id")
        if role == "admin" and tenant_id is not None:
            raise ValidationError("tenant_id", "an admin token belongs to no tenant")
        secret = "tnt_" + secrets.token_urlsafe(32)
        record: dict[str, object] = {
            "id": str(uuid.uuid4()),
            "role": role,
            "tenant_id": str(tenant_id) if tenant_id else None,
            "name": name,
            "created_at": self._clock.time(),
        }
        self.store.put(token_key(digest(secret)), json.dumps(record).encode())
        return secret, record

    def lookup(self, secret: str) -> Principal | None:
        kv = self.store.get(token_key(digest(secret)))
        if kv is None:
            return None
        record = json.loads(kv.value)
        tenant = uuid.UUID(record["tenant_id"]) if record.get("tenant_id") else None
        return Principal(record["id"], record["role"], tenant, record.get("name", ""))

    def list(self) -> list[dict[str, object]]:
        return [json.loads(kv.value) for kv in self.store.list(TOKENS).items]

    def delete(self, token_id: str) -> None:
        for kv in self.store.list(TOKENS).items:
            if json.loads(kv.value)["id"] == token_id:
                self.store.delete(kv.key)
                return
        raise NotFoundError("token", token_id)

    def any(self) -> bool:
        return bool(self.store.list(TOKENS).items)


def principal_dict(p: Principal) -> dict[str, object]:
    out = asdict(p)
    out["tenant_id"] = str(p.tenant_id) if p.tenant_id else None
    return out
