"""tenet's REST API: ``/v1/`` resources for every model record, over the object layer.

One collection per record kind (``/v1/bridges``, ``/v1/port-bindings``...), each
with create, list (equality filters on its fields, pagination by cursor), read,
replace (``PUT`` with the revision read), patch and delete; ports link and
unlink; sub-collections where they read naturally; the agents' learned MAC and
ARP tables; ``/v1/trace``, the simulation of a described packet. Every error is
JSON, ``{"error": {"code", "message", "field"}}``, with the status of the error
(``tenet.errors``): never a traceback.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
import typing
import uuid
from collections.abc import Callable
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Annotated, Any

from fastapi import Body, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from tenet import __version__
from tenet.agent.learned import LearnedState
from tenet.api.auth import ANONYMOUS_ADMIN, Principal, Tokens, principal_dict
from tenet.api.schema import create_schema, object_response, patch_schema, replace_schema
from tenet.errors import (
    NotFoundError,
    PermissionDenied,
    StoreError,
    TenetError,
    ValidationError,
)
from tenet.model import (
    KINDS,
    Chain,
    Host,
    Port,
    PortBinding,
    Record,
    Route,
    Router,
    Rule,
    Tenant,
    TenantRecord,
    TunnelZone,
    TunnelZoneMember,
    from_dict,
    to_dict,
)
from tenet.model.codec import converter_for
from tenet.model.devices import Bridge
from tenet.packets import ICMP, TCP, UDP, Ethernet, IPv4, IPv6, Packet, mac_from_str
from tenet.simulation import TopologyView, simulate
from tenet.store.boundary import ADMIN, Actor
from tenet.store.keys import ARPS, LEARNED, MACS, alive_key, applied_key, interfaces_key, stats_key
from tenet.store.objects import ObjectStore, Stored

log = logging.getLogger("tenet.api")

COLLECTIONS: dict[str, type[Record]] = {k.replace("_", "-"): cls for k, cls in KINDS.items()}
ADMIN_ONLY: tuple[type[Record], ...] = (Host, TunnelZone, TunnelZoneMember, PortBinding)
LIMIT_DEFAULT, LIMIT_MAX = 100, 1000
READ_ONLY = ("created_at", "updated_at", "revision")


# -- errors -----------------------------------------------------------------------------


def error_body(code: str, message: str, field: str | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "field": field}}


CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
         405: "method_not_allowed", 409: "conflict", 410: "gone", 422: "validation",
         503: "unavailable"}  # fmt: skip


def _tenet_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, TenetError)
    status = exc.status if 400 <= exc.status < 600 else 500
    field = exc.field if isinstance(exc, ValidationError | NotFoundError) else None
    headers = {"Retry-After": "1"} if isinstance(exc, StoreError) else None
    if isinstance(exc, StoreError):
        status = 503
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


def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return JSONResponse(error_body("internal", "internal error; the server log has details"), 500)


# -- helpers ----------------------------------------------------------------------------


def _label(kind: type[Record]) -> str:
    return kind.KIND.removesuffix("s").replace("_", " ")


def _uuid(raw: str, field: str = "id") -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise ValidationError(field, f"{raw!r} is not a UUID") from None


def _out(stored: Stored[Any]) -> dict[str, Any]:
    body = to_dict(stored.record)
    body["revision"] = stored.revision
    return body


def _visible(principal: Principal, record: Record) -> bool:
    if principal.admin:
        return True
    if isinstance(record, Tenant):
        return record.id == principal.tenant_id
    return isinstance(record, TenantRecord) and record.tenant_id == principal.tenant_id


def _actor(p: Principal) -> Actor:
    return ADMIN if p.admin else Actor.member(p.tenant_id)  # type: ignore[arg-type]


def _guard_kind(principal: Principal, kind: type[Record]) -> None:
    if not principal.admin and issubclass(kind, ADMIN_ONLY):
        raise PermissionDenied(f"{kind.KIND.replace('_', '-')} are managed by the operator (admin)")


def _filter_value(kind: type[Record], name: str, raw: str) -> object:
    hints = typing.get_type_hints(kind)
    if name not in hints or name not in {f.name for f in dataclasses.fields(kind)}:
        raise ValidationError(name, f"{_label(kind)} has no such field to filter on")
    tp = hints[name]
    args = typing.get_args(tp)
    if type(None) in args:
        if raw in ("", "null"):
            return None
        rest = [a for a in args if a is not type(None)]
        tp = rest[0] if len(rest) == 1 else tp
    try:
        if tp is bool:
            if raw not in ("true", "false"):
                raise ValidationError(name, f"{raw!r} is not true or false")
            return raw == "true"
        if tp is int:
            return int(raw)
        if tp is float:
            return float(raw)
        if typing.get_origin(tp) is tuple:
            raise ValidationError(name, "lists cannot be filtered on")
        return converter_for(tp)(raw, name)
    except ValueError:
        raise ValidationError(name, f"{raw!r} is not a valid value") from None


def _page(items: list[Stored[Any]], params: dict[str, str]) -> dict[str, Any]:
    raw_limit = params.pop("limit", str(LIMIT_DEFAULT))
    try:
        limit = int(raw_limit)
    except ValueError:
        raise ValidationError("limit", f"{raw_limit!r} is not an integer") from None
    if not 1 <= limit <= LIMIT_MAX:
        raise ValidationError("limit", f"must be between 1 and {LIMIT_MAX}")
    cursor = params.pop("cursor", "")
    ordered = sorted(items, key=lambda s: str(s.record.id))
    if cursor:
        ordered = [s for s in ordered if str(s.record.id) > cursor]
    page = ordered[:limit]
    more = len(ordered) > limit
    return {
        "items": [_out(s) for s in page],
        "next_cursor": str(page[-1].record.id) if more and page else None,
    }


# -- the app --------------------------------------------------------------------------------


def create_app(objects: ObjectStore, *, auth: bool = True) -> FastAPI:
    """The API over ``objects``; ``auth=False`` lets every request in as an admin."""
    app = FastAPI(
        title="tenet",
        version=__version__,
        description="Network virtualization for multi-tenant clouds: the REST API.",
        openapi_url="/openapi.json",
        docs_url="/docs",
    )
    tokens = Tokens(objects.store)
    app.state.objects = objects
    app.state.tokens = tokens
    app.add_exception_handler(TenetError, _tenet_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)

    if not auth:

        @app.middleware("http")
        async def mark(request: Request, call_next: Callable[..., Any]) -> Response:
            response: Response = await call_next(request)
            response.headers["X-Tenet-Auth"] = "disabled"
            return response

    app.add_exception_handler(_Unauthorized, _unauthorized)
    app.state.auth = auth

    @app.get("/v1/health", tags=["service"])
    def health() -> dict[str, Any]:
        return {"status": "ok", "revision": objects.store.revision()}

    @app.get("/v1/whoami", tags=["auth"])
    def whoami(p: Who) -> dict[str, Any]:
        return principal_dict(p)

    token_body = {
        "type": "object",
        "properties": {
            "role": {"type": "string", "enum": ["admin", "member"]},
            "tenant_id": {"anyOf": [{"type": "string", "format": "uuid"}, {"type": "null"}]},
            "name": {"type": "string"},
        },
        "required": ["role"],
        "additionalProperties": False,
    }

    @app.post("/v1/tokens", status_code=201, tags=["auth"], openapi_extra=_body(token_body))
    def create_token(body: JsonBody, p: Who) -> dict[str, Any]:
        _admin(p)
        unknown = set(body) - {"role", "tenant_id", "name"}
        if unknown:
            raise ValidationError(sorted(unknown)[0], "unknown field")
        role = body.get("role")
        if not isinstance(role, str):
            raise ValidationError("role", "is required: admin or member")
        raw_tenant = body.get("tenant_id")
        tenant = None
        if raw_tenant is not None:
            if not isinstance(raw_tenant, str):
                raise ValidationError("tenant_id", "expected a UUID string")
            tenant = _uuid(raw_tenant, "tenant_id")
            objects.get(Tenant, tenant)
        name = body.get("name", "")
        if not isinstance(name, str):
            raise ValidationError("name", "expected a string")
        secret, record = tokens.create(role, tenant, name)
        return {**record, "token": secret}

    @app.get("/v1/tokens", tags=["auth"])
    def list_tokens(p: Who) -> dict[str, Any]:
        _admin(p)
        return {"items": tokens.list(), "next_cursor": None}

    @app.delete("/v1/tokens/{token_id}", status_code=204, tags=["auth"])
    def delete_token(token_id: str, p: Who) -> Response:
        _admin(p)
        tokens.delete(token_id)
        return Response(status_code=204)

    for coll, kind in COLLECTIONS.items():
        _collection(app, objects, coll, kind)
    _extras(app, objects)
    return app


class _Unauthorized(Exception):
    """No token, or one the store does not know: a 401."""


def principal(request: Request) -> Principal:
    """Who sent ``request``: the role and tenant of its bearer token."""
    if not request.app.state.auth:
        return ANONYMOUS_ADMIN
    header = request.headers.get("authorization", "")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret:
        raise _Unauthorized("send an API token: Authorization: Bearer <token>")
    found = request.app.state.tokens.lookup(secret.strip())
    if found is None:
        raise _Unauthorized("the API token is not valid (unknown or deleted)")
    assert isinstance(found, Principal)
    return found


Who = Annotated[Principal, Depends(principal)]
JsonBody = Annotated[dict[str, Any], Body()]


def _unauthorized(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse(
        error_body("unauthorized", str(exc)), 401, headers={"WWW-Authenticate": "Bearer"}
    )


def _admin(p: Principal) -> None:
    if not p.admin:
        raise PermissionDenied("only an admin token may do this")


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def _collection(app: FastAPI, objects: ObjectStore, coll: str, kind: type[Record]) -> None:
    label, tag = _label(kind), coll
    one_object: dict[str, Any] = {
        "content": {"application/json": {"schema": object_response(kind)}}
    }
    response: dict[int | str, dict[str, Any]] = {"200": one_object}

    def load(p: Principal, raw_id: str) -> Stored[Any]:
        _guard_kind(p, kind)
        found = objects.find(kind, _uuid(raw_id))
        if found is None or not _visible(p, found.record):
            raise NotFoundError(label, raw_id)
        return found

    def build(p: Principal, body: dict[str, Any], base: dict[str, Any] | None) -> Record:
        data = {k: v for k, v in body.items() if k not in READ_ONLY}
        if base is not None:
            data = {**{k: v for k, v in base.items() if k not in READ_ONLY}, **data}
        if issubclass(kind, TenantRecord) and not p.admin:
            data.setdefault("tenant_id", str(p.tenant_id))
        record = from_dict(kind, data)
        if not _visible(p, record):
            raise PermissionDenied(f"this token may only act on tenant {p.tenant_id}")
        return record

    def revision_of(body: dict[str, Any], required: bool) -> int | None:
        rev = body.get("revision")
        if rev is None:
            if required:
                raise ValidationError("revision", "is required: the revision you read")
            return None
        if not isinstance(rev, int) or isinstance(rev, bool) or rev < 1:
            raise ValidationError("revision", "must be a positive integer")
        return rev

    def create(body: JsonBody, p: Who) -> JSONResponse:
        _guard_kind(p, kind)
        if kind is Tenant:
            _admin(p)
        stored = objects.create(build(p, body, None), actor=_actor(p))
        return JSONResponse(_out(stored), 201)

    def list_(request: Request, p: Who) -> dict[str, Any]:
        _guard_kind(p, kind)
        params = dict(request.query_params)
        paging: dict[str, str] = {k: params.pop(k) for k in ("limit", "cursor") if k in params}
        filters = {name: _filter_value(kind, name, raw) for name, raw in params.items()}
        items = [s for s in objects.list(kind, **filters) if _visible(p, s.record)]
        return _page(items, paging)

    def read(item_id: str, p: Who) -> dict[str, Any]:
        return _out(load(p, item_id))

    def replace(item_id: str, body: JsonBody, p: Who) -> Any:
        load(p, item_id)  # visible to this token, or a 404
        if kind is Tenant:
            _admin(p)
        rev = revision_of(body, required=True)
        if str(body.get("id", item_id)) != item_id:
            raise ValidationError("id", "differs from the id in the path")
        data = {**body, "id": item_id}
        record = build(p, data, None)
        return _out(objects.update(record, expected_revision=rev, actor=_actor(p)))

    def patch(item_id: str, body: JsonBody, p: Who) -> Any:
        current = load(p, item_id)
        if kind is Tenant:
            _admin(p)
        rev = revision_of(body, required=False)
        if str(body.get("id", item_id)) != item_id:
            raise ValidationError("id", "differs from the id in the path")
        record = build(p, body, to_dict(current.record))
        return _out(objects.update(record, expected_revision=rev, actor=_actor(p)))

    def delete(item_id: str, p: Who) -> Response:
        load(p, item_id)
        if kind is Tenant:
            _admin(p)
        objects.delete(kind, _uuid(item_id), actor=_actor(p))
        return Response(status_code=204)

    base = f"/v1/{coll}"
    one = base + "/{item_id}"
    app.add_api_route(base, create, methods=["POST"], tags=[tag], status_code=201,
                      summary=f"Create a {label}", openapi_extra=_body(create_schema(kind)),
                      responses={"201": one_object}, name=f"create_{coll}")  # fmt: skip
    app.add_api_route(base, list_, methods=["GET"], tags=[tag], summary=f"List {coll}",
                      name=f"list_{coll}")  # fmt: skip
    app.add_api_route(one, read, methods=["GET"], tags=[tag], summary=f"Read a {label}",
                      responses=response, name=f"read_{coll}")  # fmt: skip
    app.add_api_route(one, replace, methods=["PUT"], tags=[tag],
                      summary=f"Replace a {label} (give the revision you read)",
                      openapi_extra=_body(replace_schema(kind)), responses=response,
                      name=f"replace_{coll}")  # fmt: skip
    app.add_api_route(one, patch, methods=["PATCH"], tags=[tag], summary=f"Change a {label}",
                      openapi_extra=_body(patch_schema(kind)), responses=response,
                      name=f"patch_{coll}")  # fmt: skip
    app.add_api_route(one, delete, methods=["DELETE"], tags=[tag], status_code=204,
                      summary=f"Delete a {label}", name=f"delete_{coll}")  # fmt: skip


def _extras(app: FastAPI, objects: ObjectStore) -> None:
    def owned(p: Principal, kind: type[Record], raw_id: str) -> Stored[Any]:
        found = objects.find(kind, _uuid(raw_id))
        if found is None or not _visible(p, found.record):
            raise NotFoundError(_label(kind), raw_id)
        return found

    link_body = {
        "type": "object",
        "properties": {"peer_id": {"type": "string", "format": "uuid"}},
        "required": ["peer_id"],
        "additionalProperties": False,
    }

    @app.post("/v1/ports/{item_id}/link", tags=["ports"], openapi_extra=_body(link_body))
    def link(item_id: str, body: JsonBody, p: Who) -> Any:
        owned(p, Port, item_id)
        raw_peer = body.get("peer_id")
        if not isinstance(raw_peer, str):
            raise ValidationError("peer_id", "is required: the id of the port to link to")
        peer = owned(p, Port, raw_peer)
        return _out(objects.link(_uuid(item_id), peer.record.id, actor=_actor(p)))

    @app.delete("/v1/ports/{item_id}/link", tags=["ports"])
    def unlink(item_id: str, p: Who) -> Any:
        owned(p, Port, item_id)
        return _out(objects.unlink(_uuid(item_id), actor=_actor(p)))

    def sub(path: str, parent: type[Record], child: type[Record], field: str) -> None:
        def handler(item_id: str, request: Request, p: Who) -> dict[str, Any]:
            found = owned(p, parent, item_id)
            params = dict(request.query_params)
            paging: dict[str, str] = {k: params.pop(k) for k in ("limit", "cursor") if k in params}
            if params:
                raise ValidationError(sorted(params)[0], "unknown query parameter")
            items = objects.list(child, **{field: found.record.id})
            return _page([s for s in items if _visible(p, s.record)], paging)

        name = path.strip("/").replace("/", "_").replace("{item_id}", "id")
        tag = parent.KIND.replace("_", "-")
        app.add_api_route(path, handler, methods=["GET"], tags=[tag], name=name)

    sub("/v1/bridges/{item_id}/ports", Bridge, Port, "device_id")
    sub("/v1/routers/{item_id}/ports", Router, Port, "device_id")
    sub("/v1/routers/{item_id}/routes", Router, Route, "router_id")
    sub("/v1/chains/{item_id}/rules", Chain, Rule, "chain_id")

    def learned(prefix: str, key: str, value: str) -> dict[str, Any]:
        """Entries the agents learned under ``prefix`` (``<key>`` -> ``<value>``)."""
        items = [
            {key: kv.key.removeprefix(prefix), value: kv.value.decode()}
            for kv in objects.store.list(prefix).items
        ]
        return {"items": items}

    @app.get("/v1/bridges/{item_id}/mac-table", tags=["bridges"])
    def mac_table(item_id: str, p: Who) -> dict[str, Any]:
        bridge = owned(p, Bridge, item_id).record
        return learned(f"{MACS}{bridge.id}/", "mac", "port_id")

    @app.get("/v1/routers/{item_id}/arp-table", tags=["routers"])
    def arp_table(item_id: str, p: Who) -> dict[str, Any]:
        router = owned(p, Router, item_id).record
        return learned(f"{ARPS}{router.id}/", "ip", "mac")

    def host_only(p: Principal, raw_id: str) -> uuid.UUID:
        _guard_kind(p, Host)
        host: Record = owned(p, Host, raw_id).record
        return host.id

    @app.get("/v1/hosts/{item_id}/interfaces", tags=["hosts"])
    def host_interfaces(item_id: str, p: Who) -> dict[str, Any]:
        """The host's network interfaces, as its agent reports them (empty while no agent
        runs there): what port bindings name."""
        host_id = host_only(p, item_id)
        kv = objects.store.get(interfaces_key(host_id))
        return {"items": json.loads(kv.value) if kv else []}

    @app.get("/v1/hosts/{item_id}/status", tags=["hosts"])
    def host_status(item_id: str, p: Who) -> dict[str, Any]:
        """Whether the host's agent is alive, the store revision it has applied, and its
        counters."""
        host_id = host_only(p, item_id)
        alive = objects.store.get(alive_key(host_id))
        applied = objects.store.get(applied_key(host_id))
        stats = objects.store.get(stats_key(host_id))
        return {
            "alive": alive is not None,
            "underlay": alive.value.decode() if alive else None,
            "applied_revision": int(applied.value) if applied else None,
            "stats": json.loads(stats.value) if stats else {},
        }

    trace_body = {
        "type": "object",
        "properties": {
            "ingress_port_id": {"type": "string", "format": "uuid"},
            "eth_src": {"type": "string"},
            "eth_dst": {"type": "string"},
            "ip_src": {"type": "string"},
            "ip_dst": {"type": "string"},
            "protocol": {"type": "string", "enum": ["icmp", "tcp", "udp"]},
            "src_port": {"type": "integer", "minimum": 0, "maximum": 65535},
            "dst_port": {"type": "integer", "minimum": 0, "maximum": 65535},
            "ttl": {"type": "integer", "minimum": 1, "maximum": 255},
        },
        "required": ["ingress_port_id", "ip_dst"],
        "additionalProperties": False,
    }

    @app.post("/v1/trace", tags=["trace"], openapi_extra=_body(trace_body))
    def trace(body: JsonBody, p: Who) -> dict[str, Any]:
        return _trace(objects, p, body, owned)


def _trace(
    objects: ObjectStore,
    p: Principal,
    body: dict[str, Any],
    owned: Callable[[Principal, type[Record], str], Stored[Any]],
) -> dict[str, Any]:
    allowed = {"ingress_port_id", "eth_src", "eth_dst", "ip_src", "ip_dst", "protocol",
               "src_port", "dst_port", "ttl"}  # fmt: skip
    for name in body:
        if name not in allowed:
            raise ValidationError(name, "unknown field")
    raw_port = body.get("ingress_port_id")
    if not isinstance(raw_port, str):
        raise ValidationError("ingress_port_id", "is required: the port the packet enters")
    port = owned(p, Port, raw_port).record
    assert isinstance(port, Port)
    records, _ = objects.snapshot()
    binding = next(
        (r for r in records if isinstance(r, PortBinding) and r.port_id == port.id), None
    )
    view = TopologyView.build(records, binding.host_id if binding else None)

    def addr(name: str, default: object = None) -> IPv4Address | IPv6Address:
        raw = body.get(name, default)
        if raw is None:
            raise ValidationError(name, "is required")
        try:
            return ip_address(str(raw))
        except ValueError:
            raise ValidationError(name, f"{raw!r} is not an IP address") from None

    default_src = port.fixed_ips[0] if port.fixed_ips else None
    src, dst = addr("ip_src", default_src), addr("ip_dst")
    if src.version != dst.version:
        raise ValidationError("ip_dst", "is not of the same IP version as ip_src")

    def mac(name: str, default: bytes | None) -> bytes:
        raw = body.get(name)
        if raw is None:
            if default is None:
                raise ValidationError(name, "is required (no default for this port)")
            return default
        try:
            return mac_from_str(str(raw))
        except Exception:
            raise ValidationError(name, f"{raw!r} is not a MAC address") from None

    eth_src = mac("eth_src", mac_from_str(str(port.mac)) if port.mac else None)
    eth_dst = mac("eth_dst", _next_hop_mac(view, port, dst))
    proto = body.get("protocol", "icmp")
    numbers: dict[str, int] = {}
    for name, default in (("src_port", 40000), ("dst_port", 80), ("ttl", 64)):
        value = body.get(name, default)
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValidationError(name, "must be an integer")
        numbers[name] = value
    if not 0 <= numbers["src_port"] <= 65535 or not 0 <= numbers["dst_port"] <= 65535:
        raise ValidationError("dst_port", "ports are 0 to 65535")
    if not 1 <= numbers["ttl"] <= 255:
        raise ValidationError("ttl", "must be 1 to 255")
    transport: Any
    if proto == "tcp":
        ip_proto, transport = 6, TCP(numbers["src_port"], numbers["dst_port"], flags=0x02)
    elif proto == "udp":
        ip_proto, transport = 17, UDP(numbers["src_port"], numbers["dst_port"])
    elif proto == "icmp":
        ip_proto, transport = (1, ICMP.echo_request(1, 1)) if src.version == 4 else (58, None)
    else:
        raise ValidationError("protocol", "must be icmp, tcp or udp")
    net: Any
    if isinstance(src, IPv4Address) and isinstance(dst, IPv4Address):
        net = IPv4(src, dst, ip_proto, ttl=numbers["ttl"])
        eth = Ethernet(eth_dst, eth_src, 0x0800)
    else:
        assert isinstance(src, IPv6Address)
        assert isinstance(dst, IPv6Address)
        if transport is None:
            raise ValidationError("protocol", "use tcp or udp to trace IPv6")
        net = IPv6(src, dst, ip_proto, hop_limit=numbers["ttl"])
        eth = Ethernet(eth_dst, eth_src, 0x86DD)
    frame = Packet(eth, net, transport, b"").build()
    state = LearnedState()
    state.load(objects.store.list(LEARNED).items)
    result = simulate(frame, port.id, view, state, time.monotonic())
    return {
        "verdict": result.verdict.name.lower(),
        "actions": [_action(a) for a in result.actions],
        "match_fields": sorted(result.match_fields),
        # the flow holds for every TTL above this (each router on the way checks it)
        "ttl_above": result.ttl_above,
        "trace": [
            {
                "kind": s.kind,
                "id": str(s.ident) if s.ident else None,
                "name": s.name,
                "detail": s.detail,
            }
            for s in result.trace
        ],
    }


def _action(action: object) -> dict[str, Any]:
    out: dict[str, Any] = {"type": type(action).__name__}
    for f in dataclasses.fields(action):  # type: ignore[arg-type]
        value = getattr(action, f.name)
        out[f.name] = value.hex(":") if isinstance(value, bytes) else str(value)
    return out


def _next_hop_mac(view: TopologyView, port: Port, dst: IPv4Address | IPv6Address) -> bytes | None:
    """The MAC a VM on ``port``'s bridge would send to for ``dst``: the port holding that
    address on the same bridge, else the bridge's router port (the gateway)."""
    gateway = None
    for other in view.ports.values():
        if other.device_id != port.device_id or other.id == port.id:
            continue
        if dst in other.fixed_ips and other.mac:
            return mac_from_str(str(other.mac))
        if other.peer_id is not None:
            peer = view.ports.get(other.peer_id)
            if peer is not None and peer.mac:
                gateway = mac_from_str(str(peer.mac))
    return gateway
