"""The tenant boundary through the API, generated from the reference declarations.

As a member of tenant B, for every kind the API serves and every reference field of
it: create (``POST``), replace (``PUT``) and change (``PATCH``) a record naming a
record of tenant A, and one naming nothing. Each is a 4xx naming the field; the two
answers are the same but for the id (a member cannot tell a foreign id from a
missing one); and the whole store, every tenant's records and every index, is byte
for byte what it was. Naming B's own record instead is accepted, so a refusal is the
boundary's and not a bad body's. Kinds the API does not serve yet (501) are covered
in the object layer (``test_boundary_objects.py``).
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from apiworld import Server
from world import TARGET, build_world, naming, set_field

from tenet.model import SPECS, Port, Ref, TenantRecord
from tenet.model.kinds import REFS

SERVED = [r for r in REFS if issubclass(r.source, TenantRecord) and not SPECS[r.source].planned]


def _id(ref: Ref) -> str:
    return f"{ref.source.KIND}.{ref.field}->{ref.target.KIND}"


def _coll(ref: Ref) -> str:
    return "/v1/" + ref.source.KIND.replace("_", "-")


def dump(server: Server) -> list[tuple[str, bytes]]:
    return [(kv.key, kv.value) for kv in server.store.list("/").items]


def member_of(server: Server, tenant: str) -> httpx.Client:
    secret, _ = server.tokens.create("member", uuid.UUID(tenant), "b")
    return server.client(secret)


def test_the_served_references_are_counted() -> None:
    print(f"\n{len(SERVED)} references of {len({r.source for r in SERVED})} served kinds")
    assert len(SERVED) >= 25


@pytest.mark.parametrize("ref", SERVED, ids=_id)
def test_a_member_names_only_its_own_tenants_records(server: Server, ref: Ref) -> None:
    a, b = build_world(server.objects, "acme"), build_world(server.objects, "globex")
    with member_of(server, b["tenant"]) as m:
        control = m.post(_coll(ref), json=naming(ref, b, b[TARGET[ref.target.KIND]]))
        assert control.status_code == 201, control.text
        mine = control.json()
        before = dump(server)
        foreign, nothing = a[TARGET[ref.target.KIND]], str(uuid.uuid4())
        answers = []
        for target in (foreign, nothing):
            value: Any = [target] if ref.many else target
            replaced = set_field(mine, ref.field, value)
            top = ref.field.split(".")[0]
            responses = [
                m.post(_coll(ref), json=naming(ref, b, target)),
                m.put(f"{_coll(ref)}/{mine['id']}", json=replaced),
                m.patch(f"{_coll(ref)}/{mine['id']}", json={top: replaced[top]}),
            ]
            for response in responses:
                assert 400 <= response.status_code < 500, response.text
            created = responses[0].json()["error"]
            assert responses[0].status_code == 404, created
            assert created["field"] == ref.field, created
            answers.append([(r.status_code, r.text.replace(target, "<id>")) for r in responses])
            assert dump(server) == before, f"a refused write changed the store ({target})"
        assert answers[0] == answers[1], "a foreign id is told apart from a missing one"


def test_the_patch_of_the_issue_is_refused_and_the_other_port_unchanged(server: Server) -> None:
    a, b = build_world(server.objects, "acme"), build_world(server.objects, "globex")
    with member_of(server, b["tenant"]) as m:
        before = dump(server)
        refused = m.patch(f"/v1/ports/{b['rport2']}", json={"peer_id": a["rport2"]})
        assert refused.status_code == 404, refused.text
        assert refused.json()["error"]["field"] == "peer_id"
        linked = m.post(f"/v1/ports/{b['rport2']}/link", json={"peer_id": a["rport2"]})
        assert linked.status_code == 404, linked.text
        assert dump(server) == before
        assert m.get(f"/v1/ports/{a['rport2']}").status_code == 404  # not even visible
    assert server.objects.get(Port, uuid.UUID(a["rport2"])).record.peer_id is None
