"""``/v1/trace``: what a described packet would do, entering a port.

Thin: the body is checked here (every field named in its error) and becomes a
:class:`~tenet.services.trace.Probe`; the caller must be able to see the ingress
port; :func:`tenet.services.trace.trace` does the rest at the app clock's
``now``; the result is rendered as ``{"verdict", "actions", "match_fields",
"ttl_above", "trace": [{"kind", "id", "name", "detail"}]}``.
"""

from __future__ import annotations

import dataclasses
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Any

from fastapi import APIRouter

from tenet.api.deps import AppClock, Caller, JsonBody, Objects, allowed
from tenet.api.native.common import body_schema, parse_id, readable
from tenet.api.policy import Op
from tenet.errors import PacketError, ValidationError
from tenet.model import Port
from tenet.packets import mac_from_str
from tenet.services import trace as service
from tenet.services.trace import CT_STATES, PROTOCOLS, Probe
from tenet.simulation import SimulationResult

router = APIRouter()

PROPERTIES: dict[str, dict[str, Any]] = {
    "ingress_port_id": {"type": "string", "format": "uuid"},
    "eth_src": {"type": "string"},
    "eth_dst": {"type": "string"},
    "ip_src": {"type": "string"},
    "ip_dst": {"type": "string"},
    "protocol": {"type": "string", "enum": list(PROTOCOLS)},
    "src_port": {"type": "integer", "minimum": 0, "maximum": 65535},
    "dst_port": {"type": "integer", "minimum": 0, "maximum": 65535},
    "ttl": {"type": "integer", "minimum": 1, "maximum": 255},
    "ct_state": {"type": "string", "enum": list(CT_STATES)},
}
TRACE_BODY = {
    "type": "object",
    "properties": PROPERTIES,
    "required": ["ingress_port_id", "ip_dst"],
    "additionalProperties": False,
}
LIMITS = {"src_port": (0, 65535), "dst_port": (0, 65535), "ttl": (1, 255)}
DEFAULTS = {f.name: f.default for f in dataclasses.fields(Probe)}


@router.post("/v1/trace", tags=["trace"], openapi_extra=body_schema(TRACE_BODY),
             dependencies=[allowed(Port, Op.READ)])  # fmt: skip
def trace(body: JsonBody, actor: Caller, objects: Objects, clock: AppClock) -> dict[str, Any]:
    probe = probe_of(body)
    readable(objects, actor, Port, str(probe.ingress_port_id), "ingress_port_id")
    return render(service.trace(objects, probe, clock.monotonic()))


def probe_of(body: dict[str, Any]) -> Probe:
    """The probe ``body`` describes; a ValidationError names the first bad field."""
    for name in body:
        if name not in PROPERTIES:
            raise ValidationError(name, "unknown field")
    raw_port = body.get("ingress_port_id")
    if not isinstance(raw_port, str):
        raise ValidationError("ingress_port_id", "is required: the port the packet enters")
    protocol = body.get("protocol", "icmp")
    if protocol not in PROTOCOLS:
        raise ValidationError("protocol", "must be icmp, tcp or udp")
    ct_state = body.get("ct_state", "new")
    if ct_state not in CT_STATES:
        raise ValidationError("ct_state", "must be new, established or return")
    numbers: dict[str, int] = {}
    for name, (low, high) in LIMITS.items():
        value = body.get(name, DEFAULTS[name])
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValidationError(name, "must be an integer")
        if not low <= value <= high:
            raise ValidationError(name, f"must be {low} to {high}")
        numbers[name] = value
    ip_dst = _address(body, "ip_dst")
    if ip_dst is None:
        raise ValidationError("ip_dst", "is required: where the packet goes")
    return Probe(
        ingress_port_id=parse_id(raw_port, "ingress_port_id"),
        ip_dst=ip_dst,
        ip_src=_address(body, "ip_src"),
        eth_src=_mac(body, "eth_src"),
        eth_dst=_mac(body, "eth_dst"),
        protocol=protocol,
        ct_state=ct_state,
        **numbers,
    )


def _address(body: dict[str, Any], name: str) -> IPv4Address | IPv6Address | None:
    raw = body.get(name)
    if raw is None:
        return None
    try:
        if not isinstance(raw, str):
            raise ValueError(raw)
        return ip_address(raw)
    except ValueError:
        raise ValidationError(name, f"{raw!r} is not an IP address") from None


def _mac(body: dict[str, Any], name: str) -> bytes | None:
    raw = body.get(name)
    if raw is None:
        return None
    try:
        return mac_from_str(raw)
    except PacketError:
        raise ValidationError(name, f"{raw!r} is not a MAC address") from None


def render(result: SimulationResult) -> dict[str, Any]:
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
