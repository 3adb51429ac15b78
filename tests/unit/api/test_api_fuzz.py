"""The API fuzzed from its own OpenAPI document (schemathesis): no request, however odd,
gets a 5xx. Bounded: a few examples per operation."""

from __future__ import annotations

import pytest
import schemathesis
from apiworld import Server, build_world
from hypothesis import HealthCheck, settings

EXAMPLES = 3


@pytest.fixture
def api(server: Server) -> tuple[schemathesis.BaseSchema, dict[str, str]]:
    secret, _ = server.tokens.create("admin", None, "fuzz")
    with server.client(secret) as admin:
        build_world(admin)  # something to find, refer to and conflict with
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    return schema, {"Authorization": f"Bearer {secret}"}


@pytest.fixture
def api_schema(
    api: tuple[schemathesis.BaseSchema, dict[str, str]],
) -> schemathesis.BaseSchema:
    return api[0]


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_no_request_gets_a_5xx(
    case: schemathesis.Case, api: tuple[schemathesis.BaseSchema, dict[str, str]]
) -> None:
    response = case.call(headers=api[1])
    assert response.status_code < 500, (case.method, case.formatted_path, response.text)
