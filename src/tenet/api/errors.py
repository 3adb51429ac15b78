"""How the API answers errors: always JSON, ``{"error": {"code", "message", "field"}}``,
never a traceback.

Owns the error body, the code each HTTP status is named by, and the exception
handlers :func:`install` puts on an app. tenet's own errors (:mod:`tenet.errors`)
answer with their status; ``field`` is the field a :class:`ValidationError` or a
:class:`NotFoundError` (a reference that names nothing the caller may see) names;
a store failure is a 503 with ``Retry-After``; a request FastAPI cannot parse is
a 422 naming where; anything else is a logged 500 that says nothing more.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from tenet.errors import NotFoundError, StoreError, TenetError, ValidationError

log = logging.getLogger("tenet.api")

CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
         405: "method_not_allowed", 409: "conflict", 410: "gone", 422: "validation",
         501: "not_implemented", 503: "unavailable"}  # fmt: skip


class Unauthorized(Exception):
    """No token, or one the store does not know: a 401."""


def error_body(code: str, message: str, field: str | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "field": field}}


def _tenet_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, TenetError)
    status = exc.status if 400 <= exc.status < 600 else 500
    field = exc.field if isinstance(exc, ValidationError | NotFoundError) else None
    headers = None
    if isinstance(exc, StoreError):
        status, headers = 503, {"Retry-After": "1"}
        log.warning("store failure on %s %s: %s", request.method, request.url.path, exc)
    return JSONResponse(
        error_body(CODES.get(status, "error"), str(exc), field), status, headers=headers
    )


def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {}
    where = ".".join(str(p) for p in first.get("loc", ())[1:]) or "body"
    return JSONResponse(
        error_body("validation", f"{where}: {first.get('msg', 'invalid')}", where), 422
    )


def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return JSONResponse(
        error_body(CODES.get(exc.status_code, "error"), str(exc.detail)),
        exc.status_code,
        headers=getattr(exc, "headers", None),
    )


def _unauthorized(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse(
        error_body("unauthorized", str(exc)), 401, headers={"WWW-Authenticate": "Bearer"}
    )


def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return JSONResponse(error_body("internal", "internal error; the server log has details"), 500)


def install(app: FastAPI) -> None:
    """Answer every error ``app`` meets as described in the module doc."""
    app.add_exception_handler(TenetError, _tenet_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Unauthorized, _unauthorized)
    app.add_exception_handler(Exception, _unexpected)
