"""Builders shared by the rule-chain tests: frames, a small topology, a walk over it.

Every test builds a real TopologyView from model records and a Ctx from the flow
match that tenet.packets.extract_match reads off a frame built with tenet.packets.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from ipaddress import IPv4Address, IPv6Address, ip_address

from tenet.model import (
    MAC,
    Chain,
    Condition,
    CtState,
    DeviceType,
    Port,
    PortGroup,
    Record,
    Rule,
)
from tenet.model import RuleAction as A
from tenet.packets import ARP, ICMP, TCP, UDP, Ethernet, ICMPv6, IPv4, IPv6, Packet, extract_match
from tenet.simulation.chains import ChainVerdict, run_chain
from tenet.simulation.conntrack import Tracking
from tenet.simulation.context import Ctx
from tenet.simulation.view import TopologyView


def uid(n: int) -> uuid.UUID:
    return uuid.UUID(int=n)


TENANT = uid(1)
BRIDGE = uid(2)
P1, P2, P3 = uid(11), uid(12), uid(13)  # P1 is in port group G1; P2, P3 in none
G1, G2 = uid(21), uid(22)
MAC_A = bytes.fromhex("020000000001")
MAC_B = bytes.fromhex("020000000002")
MAC_C = bytes.fromhex("020000000003")
MAC_A_STR = MAC("02:00:00:00:00:01")
MAC_B_STR = MAC("02:00:00:00:00:02")

PORTS: tuple[Record, ...] = (
    Port(
        id=P1,
        tenant_id=TENANT,
        name="vm1",
        device_id=BRIDGE,
        device_type=DeviceType.BRIDGE,
        port_group_ids=(G1,),
    ),
    Port(id=P2, tenant_id=TENANT, name="vm2", device_id=BRIDGE, device_type=DeviceType.BRIDGE),
    Port(id=P3, tenant_id=TENANT, name="vm3", device_id=BRIDGE, device_type=DeviceType.BRIDGE),
    PortGroup(id=G1, tenant_id=TENANT, name="web"),
)


# -- frames -------------------------------------------------------------------------


def _ip(src: str, dst: str, proto: int) -> IPv4 | IPv6:
    s, d = ip_address(src), ip_address(dst)
    if isinstance(s, IPv4Address) and isinstance(d, IPv4Address):
        return IPv4(s, d, proto)
    assert isinstance(s, IPv6Address)
    assert isinstance(d, IPv6Address)
    return IPv6(s, d, proto)


def _eth(ip: IPv4 | IPv6 | ARP, src: bytes, dst: bytes) -> Ethernet:
    eth_type = {IPv4: 0x0800, IPv6: 0x86DD, ARP: 0x0806}[type(ip)]
    return Ethernet(dst, src, eth_type)


def tcp(
    src: str = "10.0.0.1",
    dst: str = "10.0.0.2",
    sport: int = 40000,
    dport: int = 22,
    eth_src: bytes = MAC_A,
    eth_dst: bytes = MAC_B,
) -> bytes:
    ip = _ip(src, dst, 6)
    return Packet(_eth(ip, eth_src, eth_dst), ip, TCP(sport, dport)).build()


def udp(src: str = "10.0.0.1", dst: str = "10.0.0.2", sport: int = 5353, dport: int = 53) -> bytes:
    ip = _ip(src, dst, 17)
    return Packet(_eth(ip, MAC_A, MAC_B), ip, UDP(sport, dport)).build()


def icmp(icmp_type: int = 8, code: int = 0, src: str = "10.0.0.1", dst: str = "10.0.0.2") -> bytes:
    ip = _ip(src, dst, 1)
    return Packet(_eth(ip, MAC_A, MAC_B), ip, ICMP(icmp_type, code), b"ping").build()


def icmp6(icmp_type: int = 128, code: int = 0) -> bytes:
    ip = _ip("2001:db8::1", "2001:db8::2", 58)
    return Packet(_eth(ip, MAC_A, MAC_B), ip, ICMPv6(icmp_type, code), b"ping").build()


def arp() -> bytes:
    msg = ARP.request(MAC_A, IPv4Address("10.0.0.1"), IPv4Address("10.0.0.2"))
    return Packet(_eth(msg, MAC_A, b"\xff" * 6), msg).build()


# -- topology and walk ----------------------------------------------------------------


def rule(
    chain: uuid.UUID,
    n: int,
    action: A = A.DROP,
    condition: Condition | None = None,
    **fields: object,
) -> Rule:
    """Rule ``uid(n)`` in ``chain`` (named ``r<n>``)."""
    return Rule(
        id=uid(n),
        tenant_id=TENANT,
        name=f"r{n}",
        chain_id=chain,
        condition=condition if condition is not None else Condition(),
        action=action,
        **fields,  # type: ignore[arg-type]
    )


def chain(chain_id: uuid.UUID, rules: Sequence[Rule | uuid.UUID], name: str = "") -> Chain:
    rule_ids = tuple(r if isinstance(r, uuid.UUID) else r.id for r in rules)
    return Chain(id=chain_id, tenant_id=TENANT, name=name, rule_ids=rule_ids)


def records(chains: Iterable[Chain], rules: Iterable[Rule], *extra: Record) -> list[Record]:
    return [*PORTS, *chains, *rules, *extra]


def make_ctx(
    frame: bytes,
    in_port: uuid.UUID = P1,
    out_port: uuid.UUID | None = None,
    ct_state: CtState = CtState.NEW,
) -> Ctx:
    ctx = Ctx(extract_match(frame, in_port=1), frame, in_port, now=0.0)
    ctx.out_port_id = out_port
    # the connection state as if a lookup had found it (conntrack's own tests look up)
    ctx.ct = Tracking(in_port, None, ct_state)
    return ctx


def walk(
    recs: Iterable[Record], top: uuid.UUID | None, frame: bytes, **ctx_args: object
) -> tuple[ChainVerdict, Ctx]:
    view = TopologyView.build(recs)
    ctx = make_ctx(frame, **ctx_args)  # type: ignore[arg-type]
    return run_chain(ctx, view, top, "port vm1 inbound"), ctx


def lines(ctx: Ctx) -> list[str]:
    return [str(step) for step in ctx.trace]


TOP = uid(100)


def one_rule(
    condition: Condition, frame: bytes, *extra: Record, **ctx_args: object
) -> tuple[ChainVerdict, Ctx]:
    """A chain with one DROP rule: DROP when ``condition`` matches, else ACCEPT."""
    r = rule(TOP, 1000, A.DROP, condition)
    return walk(records([chain(TOP, [r])], [r], *extra), TOP, frame, **ctx_args)


def ipv4_proto_0() -> bytes:
    """An IPv4 datagram of protocol 0 (ip_proto 0, like every non-IP frame)."""
    ip = IPv4(IPv4Address("10.0.0.1"), IPv4Address("10.0.0.2"), 0)
    return Packet(_eth(ip, MAC_A, MAC_B), ip, None, b"data").build()
