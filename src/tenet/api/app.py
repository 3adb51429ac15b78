"""tenet's REST API, assembled: ``create_app`` puts the routers on a FastAPI app.

The routes are in :mod:`tenet.api.native` (``/v1/``; the OpenStack Networking API
will be :mod:`tenet.api.neutron`); who may do what is :mod:`tenet.api.policy`;
who is calling is :mod:`tenet.api.deps`; how errors are answered is
:mod:`tenet.api.errors`; the OpenAPI document's links are
:mod:`tenet.api.openapi`. The app holds the object layer, the token store, the
clock (``now`` for traces) and whether authentication is on, in ``app.state``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response

from tenet import __version__
from tenet.api import errors, metrics
from tenet.api.auth import Tokens
from tenet.api.native import collections, health, hosts, learned, ports, tokens, trace
from tenet.api.openapi import add_links
from tenet.clock import Clock, SystemClock
from tenet.store.objects import ObjectStore

ROUTERS = (health, tokens, collections, ports, learned, hosts, trace)


def create_app(objects: ObjectStore, *, auth: bool = True, clock: Clock | None = None) -> FastAPI:
    """The API over ``objects``; ``auth=False`` lets every request in as an admin."""
    app = FastAPI(
        title="tenet",
        version=__version__,
        description="Network virtualization for multi-tenant clouds: the REST API.",
        openapi_url="/openapi.json",
        docs_url="/docs",
    )
    clock = clock or SystemClock()
    app.state.objects = objects
    app.state.tokens = Tokens(objects.store, clock)
    app.state.clock = clock
    app.state.auth = auth
    errors.install(app)
    metrics.install(app)  # GET /metrics, without a token (see tenet.api.metrics)
    if not auth:

        @app.middleware("http")
        async def mark(
            request: Request, call_next: Callable[[Request], Awaitable[Response]]
        ) -> Response:
            response = await call_next(request)
            response.headers["X-Tenet-Auth"] = "disabled"
            return response

    for module in ROUTERS:
        app.include_router(module.router)
    default_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = add_links(default_openapi())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
