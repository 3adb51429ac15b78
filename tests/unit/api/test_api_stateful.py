"""Stateful sequences against the API, with the links of its own OpenAPI document.

Schemathesis builds sequences of calls (create, link, change, delete, in random
orders) by following the document's links (``tenet.api.openapi``): the id a create
returns goes into the next call. They run as a member of tenant A, then as a member
of tenant B, each tenant holding a world of records the other could try to reach.
No call gets a 5xx, no answer shows a record of the other tenant, the other
tenant's records are byte for byte what they were, and every record a member ended
up with names only its own tenant's records (or what the operator shared).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import schemathesis
from apiworld import Server, build_world
from hypothesis import HealthCheck, settings

from tenet.model import KINDS, SPECS, Tenant, loads
from tenet.store.base import Delete, Op, Put
from tenet.store.boundary import is_shared, tenant_of
from tenet.store.keys import OBJECTS

EXAMPLES = 60
STEPS = 12


def records(server: Server) -> list[tuple[str, bytes, Any]]:
    out = []
    for kv in server.store.list(OBJECTS).items:
        kind = KINDS[kv.key.removeprefix(OBJECTS).split("/")[0]]
        out.append((kv.key, kv.value, loads(kind, kv.value)))
    return out


def owned_by(server: Server, tenant: str) -> list[tuple[str, bytes]]:
    return [(k, v) for k, v, r in records(server) if str(tenant_of(r)) == tenant]


def foreign_ids(body: Any, other: str) -> list[str]:
    """Ids of the other tenant's records in an answer."""
    items = body.get("items", [body]) if isinstance(body, dict) else []
    return [
        str(item.get("id"))
        for item in items
        if isinstance(item, dict)
        and other in (item.get("tenant_id"), item.get("id"))
        and not item.get("shared")
    ]


def check_references(server: Server, me: str) -> None:
    """Every record of ``me`` names only records of ``me`` or shared ones."""
    for _, _, record in records(server):
        if str(tenant_of(record)) != me or isinstance(record, Tenant):
            continue
        for ref in SPECS[type(record)].refs:
            for ident in ref.ids(record):
                target = server.objects.find(ref.target, ident)
                assert target is not None, (record, ref.field)
                ok = str(tenant_of(target.record)) == me or is_shared(target.record)
                assert ok, f"{type(record).__name__} {record.id} {ref.field} names {ident}"


def restorer(server: Server) -> Any:
    """A function that puts the store back as it is now (every sequence starts from the
    same state, which Hypothesis needs to replay a sequence)."""
    saved = {kv.key: kv.value for kv in server.store.list("/").items}

    def restore() -> None:
        now = {kv.key: kv.value for kv in server.store.list("/").items}
        ops: list[Op] = [Delete(k) for k in now if k not in saved]
        ops += [Put(k, v) for k, v in saved.items() if now.get(k) != v]
        if ops:
            server.store.txn([], ops)

    return restore


def as_member(
    base: Any, server: Server, token: str, me: str, other: str, calls: list[tuple[str, int]]
) -> Any:
    """The state machine, calling as a member of ``me``: a body's ``tenant_id`` is
    ``me``'s, or (every fourth body that has one) ``other``'s, which must be refused.
    After each sequence the member's records are checked and the store put back.

    Which body gets ``other`` depends only on the call's place in the sequence, never
    on the body: bodies hold ids the server made up in this run, and a choice that
    followed them would make a replayed sequence take other turns (Hypothesis calls
    that a flaky strategy and fails the test)."""
    theirs = owned_by(server, other)
    restore = restorer(server)

    class AsMember(base):  # type: ignore[valid-type, misc]
        def setup(self) -> None:
            self.bodies = 0
            restore()

        def teardown(self) -> None:
            assert owned_by(server, other) == theirs, "a member's sequence changed the other"
            check_references(server, me)
            restore()

        def before_call(self, case: Any) -> None:
            if isinstance(case.body, dict) and "tenant_id" in case.body:
                self.bodies += 1
                case.body["tenant_id"] = other if self.bodies % 4 == 0 else me

        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"headers": {"Authorization": f"Bearer {token}"}}

        def validate_response(self, response: Any, case: Any, **kwargs: Any) -> None:
            calls.append((f"{case.method} {case.path}", response.status_code))
            assert response.status_code < 500, (case.method, case.formatted_path, response.text)
            if response.status_code < 300 and response.content:
                seen = foreign_ids(json.loads(response.content), other)
                assert not seen, f"{case.method} {case.formatted_path} showed {seen}"

    return AsMember


def test_stateful_sequences_as_members_of_two_tenants(server: Server) -> None:
    secret, _ = server.tokens.create("admin", None, "setup")
    with server.client(secret) as admin:
        tenants = [build_world(admin, name)["tenant"]["id"] for name in ("acme", "globex")]
    tokens = [server.tokens.create("member", uuid.UUID(t), "fuzz")[0] for t in tenants]
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    links = sum(
        len(op.get("responses", {}).get("201", {}).get("links", {}))
        for ops in schema.raw_schema["paths"].values()
        for op in ops.values()
        if isinstance(op, dict)
    )
    assert links > 30, "the document has no links to follow"
    calls: list[tuple[str, int]] = []
    for (me, other), token in zip((tenants, tenants[::-1]), tokens, strict=True):
        machine = as_member(schema.as_state_machine(), server, token, me, other, calls)
        machine.run(
            settings=settings(
                max_examples=EXAMPLES,
                stateful_step_count=STEPS,
                deadline=None,
                suppress_health_check=list(HealthCheck),
                derandomize=True,
            )
        )
    writes = sorted({c for c in calls if not c[0].startswith("GET") and c[1] < 300})
    print(f"\n{len(calls)} calls; successful writes: {writes}")
    # the exploration is derandomized, and which writes it reaches moves with every
    # route the document gains: this only checks that members' writes succeed at all
    # (bodies, tokens and the tenant substitution work); the boundary checks above are
    # what the test is for, and test_boundary_api walks every route deterministically
    followed = [w for w in writes if "{" in w[0]]
    print(f"{len(followed)} successful writes to item paths (ids from previous answers)")
    assert len(writes) >= 3, "few sequences made a successful write"
