"""Validation rules that need more than one record.

The object layer calls these inside the transaction that writes the change, with
the records it read at that revision, so the rule holds for what is stored.
Each raises :class:`~tenet.errors.ValidationError` naming the field of the
record being written.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping

from tenet.errors import ValidationError
from tenet.model.devices import DeviceType, Port, Route, RouteType
from tenet.model.services import DhcpHost, DhcpSubnet
from tenet.model.types import is_usable_host


def check_router_port_subnets(port: Port, siblings: Iterable[Port]) -> None:
    """A router's ports face disjoint subnets and hold distinct addresses."""
    if port.device_type is not DeviceType.ROUTER or port.subnet is None:
        return
    for other in siblings:
        if other.id == port.id or other.subnet is None:
            continue
        if other.subnet.version != port.subnet.version:
            continue
        if port.subnet.overlaps(other.subnet):
            raise ValidationError(
                "subnet",
                f"{port.subnet} overlaps {other.subnet} of port {other.id} on the same router",
            )


def check_peering(port: Port, peer: Port, *, shared_bridge: bool = False) -> None:
    """``port`` may be linked to ``peer``: different devices, not bridge to bridge, and a
    bridge only to a router of its own tenant, unless the bridge is shared (the
    operator's external network, onto which tenants' routers get their gateways)."""
    if peer.id == port.id:
        raise ValidationError("peer_id", "a port cannot be peered to itself")
    if peer.device_id == port.device_id:
        raise ValidationError(
            "peer_id", f"port {peer.id} is on the same device {port.device_id}; peer another device"
        )
    if port.device_type is DeviceType.BRIDGE and peer.device_type is DeviceType.BRIDGE:
        raise ValidationError("peer_id", "two bridge ports cannot be peered; put a router between")
    if (
        port.tenant_id != peer.tenant_id
        and DeviceType.BRIDGE in (port.device_type, peer.device_type)
        and not shared_bridge
    ):
        raise ValidationError("peer_id", f"port {peer.id} belongs to another tenant")


def check_route_next_hop(route: Route, port: Port | None) -> None:
    """A normal route leaves through a port of its own router."""
    if route.type is not RouteType.NORMAL:
        return
    if port is None:
        raise ValidationError("next_hop_port_id", f"port {route.next_hop_port_id} does not exist")
    if port.device_type is not DeviceType.ROUTER or port.device_id != route.router_id:
        raise ValidationError(
            "next_hop_port_id", f"port {port.id} is not a port of router {route.router_id}"
        )
    gateway = route.next_hop_gateway
    if gateway is not None and port.subnet is not None and gateway not in port.subnet:
        raise ValidationError(
            "next_hop_gateway", f"{gateway} is not in {port.subnet}, the subnet of port {port.id}"
        )


def find_jump_cycle(
    start: uuid.UUID, jumps: Mapping[uuid.UUID, Iterable[uuid.UUID]]
) -> list[uuid.UUID] | None:
    """A chain path ``start -> ... -> start`` through jump rules, or None.

    ``jumps`` maps a chain id to the chains its rules jump to (with the change
    being checked already applied).
    """
    path: list[uuid.UUID] = []
    done: set[uuid.UUID] = set()

    def visit(chain: uuid.UUID) -> bool:
        path.append(chain)
        for target in jumps.get(chain, ()):
            if target == start:
                path.append(target)
                return True
            if target not in done and target not in path and visit(target):
                return True
        done.add(path.pop())
        return False

    return path if visit(start) else None


def check_dhcp_host(host: DhcpHost, subnet: DhcpSubnet) -> None:
    if not is_usable_host(host.ip, subnet.cidr):
        raise ValidationError(
            "ip", f"{host.ip} is not a usable address in the subnet {subnet.cidr}"
        )
