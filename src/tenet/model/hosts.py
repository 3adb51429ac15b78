"""The physical side: hosts, tunnel zones and port bindings (operator-owned).

A **host** runs an agent. A **tunnel zone** is a set of hosts that reach each
other over the underlay; each **member** gives the host's underlay address in
that zone. A **port binding** ties an exterior virtual port to an interface on a
host; a port is bound to at most one host interface at a time.
"""

from __future__ import annotations

import enum
import uuid

from tenet.model.base import Record, record
from tenet.model.types import IPAddress, check_ifname


@record
class Host(Record):
    KIND = "hosts"

    description: str = ""


class TunnelType(enum.StrEnum):
    VXLAN = "vxlan"


@record
class TunnelZone(Record):
    KIND = "tunnel_zones"

    type: TunnelType = TunnelType.VXLAN


@record
class TunnelZoneMember(Record):
    KIND = "tunnel_zone_members"

    tunnel_zone_id: uuid.UUID
    host_id: uuid.UUID
    address: IPAddress


@record
class PortBinding(Record):
    KIND = "port_bindings"

    port_id: uuid.UUID
    host_id: uuid.UUID
    interface: str

    def check(self) -> None:
        check_ifname(self.interface, "interface")
