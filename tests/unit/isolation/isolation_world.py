"""Seeded random multi-tenant worlds: topologies, learned state and packets.

A *world* is what ``isolation_build.build_world`` makes from one integer seed,
always the same for the same seed:

* an **operator** (a tenant record of its own) with a shared **external bridge**
  (an upstream port at ``UPSTREAM``, a bare uplink, both bound to the gateway
  host) and an **edge router** on it that routes each tenant's public /28 and the
  default route upstream; the hosts, one tunnel zone and its members;
* 2 to 4 **tenants that reuse everything**: every tenant has ``SUBNETS`` (and some
  ``INNER`` behind a second router, ``V6``, a ``VPN`` exterior router port), VMs at
  the same addresses with the same MACs, routers whose ports have the same MACs;
  random routes (connected, static, default routes to the upstream address or to
  another tenant's gateway address, ECMP groups, source routes, blackhole and
  reject), chains of random rules on ports, bridges and routers (in and out), port
  security with and without allowed address pairs, port groups, address groups
  (the operator's shared one too), VM ports bound to several hosts;
* each tenant router's **gateway port** faces the operator. Two ways, half the
  worlds each: ``edge`` links it (admin, router to router) to a port of the edge
  router; ``direct`` attaches it to a port of the operator's shared external
  bridge, as DESIGN.md ("The edge") draws it. Both are links the admin makes,
  through the object layer like every record;
* random **learned state**: MAC entries on every bridge (the same MACs on every
  tenant's bridges; a few entries that name a port of another bridge, as a stale
  or corrupted table might), ARP entries and failed ARP on every router.

:func:`draw_case` draws a packet entering an exterior port of one tenant: own,
other tenants' (identical), router, operator, broadcast and random MACs; ARP for
own, foreign and external addresses; IPv4 (TCP, UDP, ICMP, other; some fragments)
and IPv6 with TTLs 0, 1, 2, 3, 64, 255; some VLAN tags; a few mangled frames.
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import random
import uuid
from collections.abc import Sequence
from typing import Any

from tenet.model import Port, Record
from tenet.packets import (
    ARP,
    ICMP,
    TCP,
    UDP,
    Ethernet,
    ICMPv6,
    IPv4,
    IPv6,
    Packet,
    Vlan,
    mac_from_str,
)
from tenet.simulation import DictState, TopologyView

ip = ipaddress.ip_address
net = ipaddress.ip_network

SUBNETS = ("10.0.1.0/24", "10.0.2.0/24")  # every tenant's, on its main router
INNER = "10.0.3.0/24"  # behind an inner router (some tenants)
LINK = ("10.255.0.1", "10.255.0.2", "10.255.0.0/30")  # main <-> inner router
V6 = ("fd00:1::/64", "fd00:2::/64")  # second router ports on the two bridges
VPN = "172.16.0.0/24"  # a tenant router's exterior port (some tenants)
BLACKHOLE, REJECT, ECMP_INSIDE = "10.0.66.0/24", "10.0.77.0/24", "10.0.88.0/24"
EXTERNAL = net("203.0.113.0/24")  # the operator's external network
UPSTREAM = ip("203.0.113.1")  # the upstream port on the external bridge
EDGE_EXT = ip("203.0.113.254")  # the edge router on the external bridge
TRANSIT = net("100.64.0.0/24")  # edge worlds: tenant gateways, a /30 each on the edge
UNDERLAY = "192.0.2.{}"
BROADCAST = "ff:ff:ff:ff:ff:ff"
NOW = 1000.0


def router_mac(router: int, port: int) -> str:
    """Router port MACs: the same in every tenant."""
    return f"02:00:00:00:{router:02x}:{port:02x}"


def vm_mac(bridge: int, vm: int) -> str:
    """VM MACs: the same in every tenant."""
    return f"02:00:00:01:{bridge:02x}:{vm:02x}"


def public_net(i: int) -> ipaddress.IPv4Network:
    """Tenant ``i``'s public /28 (the one range no two tenants share)."""
    return ipaddress.IPv4Network(f"198.51.100.{16 * (i + 1)}/28")


def gw_address(i: int, direct: bool) -> ipaddress.IPv4Address:
    if direct:
        return ipaddress.IPv4Address(f"203.0.113.{10 + i}")
    return ipaddress.IPv4Address(f"100.64.0.{4 * i + 2}")


def world_seed(base: int, index: int) -> int:
    """The seed of world ``index`` of a run seeded ``base``."""
    digest = hashlib.blake2b(f"{base}/{index}".encode(), digest_size=6).digest()
    return int.from_bytes(digest, "big")


def case_rng(seed: int, packet: int) -> random.Random:
    """The generator of packet ``packet`` of world ``seed`` (each case reproducible alone)."""
    return random.Random(seed * 1_000_003 + packet)


@dataclasses.dataclass(eq=False)
class World:
    seed: int
    direct: bool
    records: Sequence[Record]
    view: TopologyView
    state: DictState
    operator: uuid.UUID
    tenants: tuple[uuid.UUID, ...]
    owner: dict[uuid.UUID, uuid.UUID]  # every tenant-owned record -> its tenant
    names: dict[uuid.UUID, str]
    ingress: dict[uuid.UUID, tuple[Port, ...]]  # tenant -> its exterior ports
    macs: tuple[str, ...]
    v4: tuple[str, ...]
    v6: tuple[str, ...]
    outside: tuple[str, ...]  # addresses beyond every tenant's own ranges
    # exterior port -> the MACs and addresses of the router ports its segment reaches
    gateways: dict[uuid.UUID, tuple[tuple[bytes, ...], tuple[Any, ...]]]

    standard: bool = True  # built from the seed alone (run.py --world-seed rebuilds it)

    # derived indexes (filled in by __post_init__)
    # ``owner`` keyed by id and by its text (tags name records by text)
    owner_any: dict[uuid.UUID | str, uuid.UUID] = dataclasses.field(default_factory=dict)
    local_ingress: dict[uuid.UUID, tuple[Port, ...]] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        self.owner_any = {**self.owner, **{str(k): v for k, v in self.owner.items()}}
        local = self.view.local_host_id
        self.local_ingress = {
            t: tuple(p for p in ports if self.view.port_host(p.id) == local)
            for t, ports in self.ingress.items()
        }

    def label(self, ident: uuid.UUID | None) -> str:
        if ident is None:
            return "-"
        return self.names.get(ident) or str(ident)

    def id(self, name: str) -> uuid.UUID:
        """The id of the record named ``name`` (``t1/b1/vm0``, ``op/ext``...)."""
        found = [ident for ident, n in self.names.items() if n == name]
        assert len(found) == 1, f"{len(found)} records are named {name!r}"
        return found[0]


# -- packets ----------------------------------------------------------------------------------


def _rand_mac(rng: random.Random) -> bytes:
    return bytes([rng.randrange(256) & 0xFE | rng.choice((0, 0, 0, 1))]) + rng.randbytes(5)


def _mac(rng: random.Random, world: World, own: str | None, p_own: float) -> bytes:
    if own is not None and rng.random() < p_own:
        return mac_from_str(own)
    if rng.random() < 0.1:
        return _rand_mac(rng)
    return mac_from_str(rng.choice(world.macs))


def _v4(
    rng: random.Random, world: World, own: Sequence[Any], p_own: float
) -> ipaddress.IPv4Address:
    mine = [a for a in own if a.version == 4]
    if mine and rng.random() < p_own:
        return ipaddress.IPv4Address(rng.choice(mine))
    if rng.random() < 0.08:
        return ipaddress.IPv4Address(rng.getrandbits(32))
    return ipaddress.IPv4Address(rng.choice(world.v4))


def _dst4(rng: random.Random, world: World, gateway: Sequence[Any]) -> ipaddress.IPv4Address:
    """A destination: outside (other tenants, the external network), the segment's router,
    or any known or random address."""
    pick = rng.random()
    if pick < 0.4:
        return ipaddress.IPv4Address(rng.choice(world.outside))
    mine = [a for a in gateway if a.version == 4]
    if pick < 0.5 and mine:
        return ipaddress.IPv4Address(rng.choice(mine))
    return _v4(rng, world, (), 0)


def _v6(
    rng: random.Random, world: World, own: Sequence[Any], p_own: float
) -> ipaddress.IPv6Address:
    mine = [a for a in own if a.version == 6]
    if mine and rng.random() < p_own:
        return ipaddress.IPv6Address(rng.choice(mine))
    if rng.random() < 0.1:
        return ipaddress.IPv6Address(rng.getrandbits(128))
    return ipaddress.IPv6Address(rng.choice(world.v6))


_TTLS = (0, 1, 2, 3, 64, 64, 64, 64, 64, 255)
_L4_PORTS = (22, 53, 67, 80, 443, 8080)


def _transport(rng: random.Random, v6: bool) -> tuple[int, Any]:
    proto = rng.choices((6, 17, 58 if v6 else 1, 47), weights=(35, 30, 30, 5))[0]
    sport = rng.randrange(65536)
    dport = rng.choice(_L4_PORTS) if rng.random() < 0.6 else rng.randrange(65536)
    if proto == 6:
        flags = rng.choice((0x02, 0x10, 0x12, 0x04, 0x11, rng.randrange(0x200)))
        return proto, TCP(sport, dport, seq=rng.getrandbits(32), flags=flags)
    if proto == 17:
        return proto, UDP(sport, dport)
    if proto in (1, 58):
        echo = 128 if v6 else 8
        kind = rng.choice((echo, echo, echo, 0, 3, 11, rng.randrange(256)))
        cls = ICMPv6 if v6 else ICMP
        return proto, cls(kind, rng.choice((0, 0, 1, rng.randrange(256))), rng.getrandbits(32))
    return proto, None


def _vlans(rng: random.Random) -> tuple[Vlan, ...]:
    """Mostly none; sometimes an 802.1Q tag, or two (QinQ)."""
    pick = rng.random()
    if pick < 0.04:
        return (Vlan(rng.randrange(1, 4095)),)
    if pick < 0.05:
        return (Vlan(rng.randrange(1, 4095), tpid=0x88A8), Vlan(rng.randrange(1, 4095)))
    return ()


def _fragment(rng: random.Random, frame: bytes, eth: Ethernet, layer: IPv4) -> bytes:
    """Sometimes ``frame`` made a first fragment (more fragments, the transport header
    inside) or a later one (an offset, no transport header); else ``frame``."""
    pick = rng.random()
    if pick >= 0.06:
        return frame
    segment = frame[14 + 4 * len(eth.vlans) + layer.header_length :]
    if pick < 0.03:
        first = dataclasses.replace(layer, flags=0b001, ident=rng.randrange(65536))
        return Packet(eth, first, None, segment).build()
    later = dataclasses.replace(layer, flags=rng.choice((0, 0b001)), frag_offset=185)
    return Packet(eth, later, None, segment[8:]).build()


def draw_case(world: World, rng: random.Random) -> tuple[Port, bytes]:
    """A port of some tenant and a frame entering it."""
    tenant = rng.choice(world.tenants)
    ports = world.ingress[tenant]
    local = world.local_ingress[tenant]
    port = rng.choice(local if local and rng.random() < 0.8 else ports)
    own = (*port.fixed_ips, *((port.address,) if port.address is not None else ()))
    src_mac = _mac(rng, world, port.mac, 0.7)
    kind = rng.choices(("arp", "ipv4", "ipv6", "other", "mangled"), weights=(28, 52, 12, 3, 5))[0]
    if kind == "arp":
        gw_addresses = world.gateways.get(port.id, ((), ()))[1]
        mine = [a for a in gw_addresses if a.version == 4]
        target = rng.choice(mine) if mine and rng.random() < 0.3 else _v4(rng, world, (), 0)
        op = rng.choice((1, 1, 1, 2, 2, rng.randrange(65536)))
        tha = bytes(6) if op == 1 else _mac(rng, world, None, 0)
        msg = ARP(
            op,
            src_mac if rng.random() < 0.85 else _mac(rng, world, None, 0),
            _v4(rng, world, own, 0.7),
            tha,
            target,
        )
        dst_mac = mac_from_str(BROADCAST) if rng.random() < 0.6 else _mac(rng, world, None, 0)
        return port, Packet(Ethernet(dst_mac, src_mac, 0x0806, _vlans(rng)), msg).build()
    gw_macs, gw_addresses = world.gateways.get(port.id, ((), ()))
    to_router = gw_macs and rng.random() < 0.5
    dst_mac = rng.choice(gw_macs) if to_router else _mac(rng, world, None, 0)
    if kind == "other":
        return port, Packet(
            Ethernet(dst_mac, src_mac, 0x88B5), None, None, rng.randbytes(46)
        ).build()
    v6 = kind == "ipv6"
    proto, transport = _transport(rng, v6)
    ttl = rng.choice(_TTLS)
    layer: IPv4 | IPv6
    if v6:
        layer = IPv6(_v6(rng, world, own, 0.7), _v6(rng, world, (), 0), proto, hop_limit=ttl)
    else:
        layer = IPv4(_v4(rng, world, own, 0.7), _dst4(rng, world, gw_addresses), proto, ttl=ttl)
    eth = Ethernet(dst_mac, src_mac, 0x86DD if v6 else 0x0800, _vlans(rng))
    frame = Packet(eth, layer, transport, b"isolation").build()
    if isinstance(layer, IPv4):
        frame = _fragment(rng, frame, eth, layer)
    if kind == "mangled":
        raw = bytearray(frame)
        for _ in range(rng.randint(1, 3)):
            raw[rng.randrange(14, len(raw))] = rng.randrange(256)
        frame = bytes(raw[: rng.randint(14, len(raw))]) if rng.random() < 0.3 else bytes(raw)
    return port, frame
