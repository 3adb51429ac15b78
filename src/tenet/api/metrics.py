"""The API's Prometheus endpoint, ``GET /metrics``: requests by route and status, their
latency, and (when the app's store is a :class:`~tenet.store.metered.MeteredStore`)
the store's call latency.

``/metrics`` needs no token: a Prometheus scraper has none. It exposes nothing a
tenant owns: routes appear as their templates (``/v1/ports/{port_id}``, never an id),
a path no route matches as ``unmatched``; the store's numbers are by operation. It
is left out of the OpenAPI document (its answer is text, not JSON).

The counting is an ASGI middleware (:class:`RequestMetrics`) around the whole app,
so errors answered by the handlers count with their status; an exception nothing
answered counts as 500.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response

from tenet.metrics import CONTENT_TYPE, Family, Histogram, Sample, render
from tenet.store.metered import MeteredStore

PREFIX = "tenet_api"

Scope = dict[str, Any]
Message = dict[str, Any]


class RequestCounts:
    """Requests by (method, route template, status) and their latency by route."""

    def __init__(self) -> None:
        self.latency = Histogram(("method", "route"))
        self._counts: dict[tuple[str, str, str], int] = {}
        self._lock = threading.Lock()

    def record(self, method: str, route: str, status: int, seconds: float) -> None:
        with self._lock:
            key = (method, route, str(status))
            self._counts[key] = self._counts.get(key, 0) + 1
        self.latency.observe(seconds, method, route)

    def count(self, method: str, route: str, status: int) -> int:
        with self._lock:
            return self._counts.get((method, route, str(status)), 0)

    def families(self) -> list[Family]:
        with self._lock:
            counts = sorted(self._counts.items())
        samples = tuple(
            Sample((("method", m), ("route", r), ("status", s)), n) for (m, r, s), n in counts
        )
        return [
            Family(
                f"{PREFIX}_requests_total",
                "counter",
                "Requests answered, by method, route template and status.",
                samples,
            ),
            self.latency.family(
                f"{PREFIX}_request_seconds", "Time to answer a request, by method and route."
            ),
        ]


class RequestMetrics:
    """ASGI middleware: each HTTP request counted and timed into ``counts``."""

    def __init__(self, app: Any, counts: RequestCounts) -> None:
        self.app = app
        self.counts = counts

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = str(scope.get("method", ""))
            self.counts.record(method, template, status, time.perf_counter() - start)


def install(app: FastAPI) -> RequestCounts:
    """Count the app's requests and answer ``GET /metrics``."""
    counts = RequestCounts()
    app.state.request_counts = counts
    app.add_middleware(RequestMetrics, counts=counts)

    @app.get("/metrics", include_in_schema=False)
    def metrics(request: Request) -> Response:
        families = counts.families()
        store = request.app.state.objects.store
        if isinstance(store, MeteredStore):
            families.extend(store.families(PREFIX))
        return Response(render(families), media_type=CONTENT_TYPE)

    return counts
