"""``GET /metrics`` on the API: no token needed, requests counted by route template and
status (never an id), their latency, and the store's call latency."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from apiworld import Server

from tenet.metrics import CONTENT_TYPE, parse

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture
def metered(tmp_path: Path) -> Iterator[Server]:
    made = Server(tmp_path / "store.db", metered=True)
    try:
        yield made
    finally:
        made.close()


def scrape(server: Server) -> Samples:
    with server.client() as anonymous:
        answer = anonymous.get("/metrics")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == CONTENT_TYPE
    return parse(answer.text)


def requests(method: str, route: str, status: int) -> tuple[str, tuple[tuple[str, str], ...]]:
    labels = (("method", method), ("route", route), ("status", str(status)))
    return "tenet_api_requests_total", labels


def test_metrics_need_no_token_and_count_requests_by_route_template(metered: Server) -> None:
    secret, _ = metered.tokens.create("admin", None, "test admin")
    port = str(uuid.uuid4())
    with metered.client(secret) as admin, metered.client() as anonymous:
        assert admin.get("/v1/health").status_code == 200
        assert admin.get(f"/v1/ports/{port}").status_code == 404
        assert anonymous.get("/v1/tenants").status_code == 401
        assert anonymous.get("/no/such/path").status_code == 404
    samples = scrape(metered)
    assert samples[requests("GET", "/v1/health", 200)] == 1
    assert samples[requests("GET", "/v1/ports/{item_id}", 404)] == 1
    assert samples[requests("GET", "/v1/tenants", 401)] == 1
    assert samples[requests("GET", "unmatched", 404)] == 1
    text = " ".join(name + str(labels) for name, labels in samples)
    assert port not in text  # ids never become labels
    latency = ("tenet_api_request_seconds_count", (("method", "GET"), ("route", "/v1/health")))
    assert samples[latency] == 1
    assert samples[("tenet_api_store_request_seconds_count", (("op", "revision"),))] >= 1
    # the counter moves
    with metered.client(secret) as admin:
        admin.get("/v1/health")
    assert scrape(metered)[requests("GET", "/v1/health", 200)] == 2


def test_metrics_are_not_in_the_openapi_document(metered: Server) -> None:
    with metered.client() as anonymous:
        paths = anonymous.get("/openapi.json").json()["paths"]
    assert "/metrics" not in paths


def test_an_unmetered_store_still_serves_request_metrics(server: Server) -> None:
    samples = scrape(server)
    assert not any(name.startswith("tenet_api_store_") for name, _ in samples)
    with server.client() as anonymous:
        anonymous.get("/v1/health")
    assert scrape(server)[requests("GET", "/v1/health", 200)] == 1
