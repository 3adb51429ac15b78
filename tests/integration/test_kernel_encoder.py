"""The kernel's encoder against the reference interpreter: the program, run on a frame
with a flow installed, leaves it byte for byte as :func:`interpret` does.

The real program is loaded (unpinned, unattached) and run with ``BPF_PROG_TEST_RUN``
on generated frames (IPv4 and IPv6; TCP, UDP with and without a checksum, ICMP)
under a flow made by :func:`kernel_key` / :func:`kernel_value` from a list of
rewrites (every kind, several TTL decrements) and one local output, exact or loose.
The context is a ``struct __sk_buff`` whose ``ifindex`` is a veth in this test's own
namespace: the program reads it as the in_port, which the key holds. Runs happen
on a thread that has entered that namespace (the kernel resolves the ifindex in the
caller's). Tunnel outputs are not run here (the tunnel key needs a real route).

What the program leaves to the agent is checked as such: a flow with an IPv6
address rewrite (``F_USERSPACE``) and a loose flow's frame at or under its TTL floor
are dropped in the kernel and handed over in the ring, unchanged.
"""

from __future__ import annotations

import ctypes
import os
import socket
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context

from tenet.datapath.base import Output
from tenet.datapath.kernel import (
    R_MISS,
    R_USERSPACE,
    UPCALL,
    build_object,
    kernel_key,
    kernel_value,
    unsupported,
    value_stats,
)
from tenet.datapath.kernel.maps import checked
from tenet.datapath.libbpf import BpfMap, BpfObject, Btf, RingBuffer, prog_test_run
from tenet.packets import ICMP, TCP, UDP, Ethernet, ICMPv6, IPv4, IPv6, Packet, extract_match
from tenet.packets.actions import (
    DecTtl,
    DpAction,
    SetEthDst,
    SetEthSrc,
    SetIpDst,
    SetIpSrc,
    SetL4Dst,
    SetL4Src,
    interpret,
)

from .netns import Lab, leftovers, sh

pytestmark = pytest.mark.integration

TC_ACT_SHOT = 2
TC_ACT_REDIRECT = 7
CLONE_NEWNET = 0x40000000
VMLINUX = "/sys/kernel/btf/vmlinux"
PROTOS = {4: ("tcp", "udp", "udp-no-checksum", "icmp"), 6: ("tcp", "udp", "icmp")}


@dataclass
class Ran:
    retval: int
    frame: bytes
    handed_over: list[tuple[int, int, bytes]]  # (reason, in_port, frame) of each ring record


class Program:
    """The program loaded, run in the namespace of two veths: frames come in on
    ``in_port``, flows output to ``out_port``."""

    def __init__(self, ns: str) -> None:
        self.obj: BpfObject = checked(build_object())
        self.obj.load()
        self.fd = self.obj.program_fd("tenet_ingress")
        self.flows: BpfMap = self.obj.map("flows")
        self.records: list[bytes] = []
        self.ring = RingBuffer(self.obj.map_fd("upcalls"), self.records.append)
        self.inside = ThreadPoolExecutor(1, initializer=_enter, initargs=(ns,))
        self.in_port, self.out_port = self.inside.submit(_indexes).result()
        self.ctx = self._skb_with_ifindex(self.in_port)

    def _skb_with_ifindex(self, ifindex: int) -> bytes:
        btf = Btf.parse(VMLINUX) if os.path.exists(VMLINUX) else self.obj.btf()
        assert btf is not None
        try:
            skb = btf.struct("__sk_buff")
        finally:
            btf.close()
        assert skb is not None
        field = next(m for m in skb.members if m.name == "ifindex")
        ctx = bytearray(skb.size)
        ctx[field.offset : field.offset + field.size] = ifindex.to_bytes(field.size, "little")
        return bytes(ctx)

    def run(self, frame: bytes, actions: Sequence[DpAction], floor: int | None) -> Ran:
        """``frame`` through the program with a flow for it (loose above ``floor``, or
        exact when None) that does ``actions``."""
        key = kernel_key(extract_match(frame, self.in_port), loose=floor is not None)
        assert key is not None
        self.flows.update(key, kernel_value(actions, 0, 0, floor or 0))
        try:
            ran = self.inside.submit(prog_test_run, self.fd, frame, self.ctx).result()
        finally:
            self.flows.delete(key)
        self.records.clear()
        self.ring.consume()
        handed = []
        for record in self.records:
            in_port, _, length, reason, _, _, _ = UPCALL.unpack_from(record)
            handed.append((reason, in_port, record[UPCALL.size : UPCALL.size + length]))
        return Ran(ran.retval, ran.data, handed)

    def close(self) -> None:
        self.inside.shutdown()
        self.ring.close()
        self.obj.close()


def _enter(ns: str) -> None:
    """Move the calling thread (only) into namespace ``ns``."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns into {ns}")
    finally:
        os.close(fd)


def _indexes() -> tuple[int, int]:
    return socket.if_nametoindex("in0"), socket.if_nametoindex("out0")


@pytest.fixture(scope="module")
def program() -> Iterator[Program]:
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces, BPF_PROG_TEST_RUN)")
    reason = unsupported()
    if reason is not None:
        pytest.skip(reason)
    lab = Lab()
    lab.start()
    made: Program | None = None
    try:
        ns = lab.underlay_ns
        sh("ip", "-n", ns, "link", "add", "in0", "type", "veth", "peer", "out0")
        made = Program(ns)
        yield made
    finally:
        if made is not None:
            made.close()
        lab.close()
        assert not leftovers(lab.prefix), "namespaces left behind"


# -- frames and actions ---------------------------------------------------------------


def build(version: int, proto: str, ttl: int, fields: dict[str, Any]) -> bytes:
    """A frame of ``version`` and ``proto`` with hop count ``ttl``; ``fields`` holds the
    addresses, ports, TCP flags, type of service and payload."""
    f = fields
    if version == 4:
        eth = Ethernet(f["eth_src"], f["eth_dst"], 0x0800)
        number = {"tcp": 6, "udp": 17, "udp-no-checksum": 17, "icmp": 1}[proto]
        net: Any = IPv4(f["src4"], f["dst4"], number, ttl=ttl, tos=f["tos"])
    else:
        eth = Ethernet(f["eth_src"], f["eth_dst"], 0x86DD)
        number = {"tcp": 6, "udp": 17, "icmp": 58}[proto]
        net = IPv6(f["src6"], f["dst6"], number, hop_limit=ttl, traffic_class=f["tos"])
    l4: Any
    if proto == "tcp":
        l4 = TCP(f["sport"], f["dport"], seq=f["seq"], flags=f["tcp_flags"])
    elif proto.startswith("udp"):
        l4 = UDP(f["sport"], f["dport"])
    else:
        # an echo's identifier is in the key: the program must read it where Python does
        kind, rest = f["icmp_type"], f["icmp_rest"]
        l4 = ICMP(kind, 0, rest) if version == 4 else ICMPv6(kind + 120, 0, rest)
    frame = Packet(eth, net, l4, f["payload"]).build()
    if proto == "udp-no-checksum":  # IPv4 lets UDP go without one: 0 in the field
        frame = frame[:40] + b"\0\0" + frame[42:]
    return frame


macs = st.binary(min_size=6, max_size=6)
ports = st.integers(0, 0xFFFF)
header_fields = st.fixed_dictionaries(
    {
        "eth_src": macs,
        "eth_dst": macs,
        "src4": st.ip_addresses(v=4),
        "dst4": st.ip_addresses(v=4),
        "src6": st.ip_addresses(v=6),
        "dst6": st.ip_addresses(v=6),
        "tos": st.integers(0, 255),
        "sport": ports,
        "dport": ports,
        "seq": st.integers(0, 2**32 - 1),
        "tcp_flags": st.integers(0, 0x1FF),
        # echo reply, request, timestamp (ICMPv6: 120 more: -, echo request, router solicit)
        "icmp_type": st.sampled_from([0, 8, 13]),
        "icmp_rest": st.integers(0, 2**32 - 1),  # an echo's identifier and sequence
        "payload": st.binary(max_size=48),
    }
)


def rewrites(version: int, proto: str) -> st.SearchStrategy[DpAction]:
    addresses = st.ip_addresses(v=version)
    kinds: list[st.SearchStrategy[Any]] = [
        st.builds(SetEthSrc, macs),
        st.builds(SetEthDst, macs),
        st.builds(SetIpSrc, addresses),
        st.builds(SetIpDst, addresses),
        st.builds(DecTtl, st.integers(1, 3)),
    ]
    if proto != "icmp":  # ports are TCP's and UDP's (the interpreter refuses them on ICMP)
        kinds += [st.builds(SetL4Src, ports), st.builds(SetL4Dst, ports)]
    return st.one_of(kinds)


@st.composite
def cases(draw: st.DrawFn) -> tuple[bytes, list[DpAction], int | None]:
    """(frame, rewrites, loose floor or None): the output is added by the test."""
    version = draw(st.sampled_from([4, 6]))
    proto = draw(st.sampled_from(PROTOS[version]))
    actions = draw(st.lists(rewrites(version, proto), max_size=6))
    hops = sum(a.hops for a in actions if isinstance(a, DecTtl))
    ttl = draw(st.integers(hops, 255))  # never decremented past 0 (a router answers first)
    floor = draw(st.none() | st.just(0) | st.integers(1, 255))
    return build(version, proto, ttl, draw(header_fields)), actions, floor


def _ipv6_address_rewrite(frame: bytes, actions: Sequence[DpAction]) -> bool:
    return frame[12:14] == b"\x86\xdd" and any(isinstance(a, SetIpSrc | SetIpDst) for a in actions)


def _event(what: str) -> None:
    """Counted in Hypothesis's statistics (--hypothesis-show-statistics), when under it."""
    if currently_in_test_context():
        event(what)


def check(program: Program, frame: bytes, rewrites: list[DpAction], floor: int | None) -> None:
    actions = [*rewrites, Output(program.out_port)]
    ran = program.run(frame, actions, floor)
    ttl = frame[22] if frame[12:14] == b"\x08\x00" else frame[21]
    if floor and ttl <= floor:  # runs out on the way: not the loose flow's
        _event("at or under the loose flow's floor: handed over")
        assert (ran.retval, ran.handed_over) == (TC_ACT_SHOT, [(R_MISS, program.in_port, frame)])
    elif _ipv6_address_rewrite(frame, actions):  # F_USERSPACE: the agent applies it
        _event("IPv6 address rewrite: handed over")
        assert ran.retval == TC_ACT_SHOT
        assert ran.handed_over == [(R_USERSPACE, program.in_port, frame)]
    else:
        _event("forwarded " + ("loose" if floor is not None else "exact"))
        [(output, expected)] = interpret(frame, actions)
        assert output == Output(program.out_port)
        assert ran.retval == TC_ACT_REDIRECT
        assert ran.handed_over == []
        assert ran.frame.hex() == expected.hex()


@settings(
    max_examples=600,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(case=cases())
def test_the_program_rewrites_as_the_interpreter_does(
    program: Program, case: tuple[bytes, list[DpAction], int | None]
) -> None:
    check(program, *case)


SAMPLE = {
    "eth_src": b"\x02\x00\x00\x00\x00\x01",
    "eth_dst": b"\x02\x00\x00\x00\x00\x02",
    "src4": IPv4Address("10.0.0.1"),
    "dst4": IPv4Address("10.0.1.2"),
    "src6": IPv6Address("2001:db8::1"),
    "dst6": IPv6Address("2001:db8:1::2"),
    "tos": 0,
    "sport": 40000,
    "dport": 80,
    "seq": 1,
    "tcp_flags": 0x18,
    "icmp_type": 8,
    "icmp_rest": 0x1234_0001,
    "payload": b"0123456789",
}
EACH_KIND = [
    SetEthSrc(b"\x06\x00\x00\x00\x00\x09"),
    SetEthDst(b"\x06\x00\x00\x00\x00\x0a"),
    SetIpSrc(IPv4Address("192.0.2.7")),
    SetIpDst(IPv4Address("198.51.100.3")),
    SetIpSrc(IPv6Address("2001:db8:ffff::7")),
    SetIpDst(IPv6Address("2001:db8:ffff::3")),
    SetL4Src(1234),
    SetL4Dst(65535),
    DecTtl(1),
]


def _fits(version: int, proto: str, rewrite: DpAction) -> bool:
    if isinstance(rewrite, SetIpSrc | SetIpDst):
        return rewrite.ip.version == version
    return not (isinstance(rewrite, SetL4Src | SetL4Dst) and proto == "icmp")


@pytest.mark.parametrize("floor", [None, 0, 5])
@pytest.mark.parametrize(
    ("version", "proto", "rewrite"),
    [(v, p, r) for v in PROTOS for p in PROTOS[v] for r in EACH_KIND if _fits(v, p, r)],
    ids=lambda x: repr(x) if not isinstance(x, str | int) else str(x),
)
def test_each_rewrite_kind_alone(
    program: Program, version: int, proto: str, rewrite: DpAction, floor: int | None
) -> None:
    """Every kind of rewrite on every kind of frame (no ports on ICMP), exact and
    loose, one at a time."""
    check(program, build(version, proto, 64, SAMPLE), [rewrite], floor)


def test_several_routers_and_every_rewrite_at_once(program: Program) -> None:
    """A frame crossing three routers (one DecTtl each) with NAT-like rewrites, to its
    last TTL: the program's fixed order of rewrites gives the interpreter's frame."""
    for version, proto in [(4, "tcp"), (4, "udp"), (4, "udp-no-checksum"), (6, "tcp")]:
        src = IPv4Address("203.0.113.5") if version == 4 else None
        actions: list[DpAction] = [DecTtl(1), SetEthDst(b"\x06" * 6), SetL4Dst(8080), DecTtl(1)]
        if src is not None:
            actions += [SetIpSrc(src), SetIpDst(IPv4Address("10.9.9.9"))]
        actions += [SetL4Src(1), SetEthSrc(b"\x0a" * 6), DecTtl(1)]
        check(program, build(version, proto, 3, SAMPLE), actions, None)
        check(program, build(version, proto, 200, SAMPLE), actions, 2)


def test_a_drop_flow_drops_in_the_kernel(program: Program) -> None:
    frame = build(4, "tcp", 64, SAMPLE)
    ran = program.run(frame, [SetEthSrc(b"\x06" * 6)], None)  # no output: a drop
    assert (ran.retval, ran.handed_over) == (TC_ACT_SHOT, [])


def test_a_rewrite_after_an_output_is_left_to_the_agent(program: Program) -> None:
    """The program rewrites once, before every output; a list that sends a copy before
    a rewrite (interpret sends it unrewritten) is handed over, not misapplied."""
    frame = build(4, "udp", 64, SAMPLE)
    out = Output(program.out_port)
    ran = program.run(frame, [out, SetEthDst(b"\x06" * 6), out], None)
    assert (ran.retval, ran.handed_over) == (TC_ACT_SHOT, [(R_USERSPACE, program.in_port, frame)])


def test_a_loose_flow_ors_the_tcp_flags_of_the_frames_it_serves(program: Program) -> None:
    """SYN, data, FIN through one loose flow: its tcp_flags_seen is their OR."""
    syn = build(4, "tcp", 64, SAMPLE | {"tcp_flags": 0x02})
    key = kernel_key(extract_match(syn, program.in_port), loose=True)
    assert key is not None
    program.flows.update(key, kernel_value([Output(program.out_port)], 0, 0, 1))
    try:
        for flags, ttl in ((0x02, 64), (0x18, 63), (0x10, 9), (0x11, 64)):
            frame = build(4, "tcp", ttl, SAMPLE | {"tcp_flags": flags})
            ran = program.inside.submit(prog_test_run, program.fd, frame, program.ctx).result()
            assert ran.retval == TC_ACT_REDIRECT
        value = program.flows.lookup(key)
    finally:
        program.flows.delete(key)
    assert value is not None
    packets, _, _, seen = value_stats(value)
    assert (packets, seen) == (4, 0x02 | 0x18 | 0x10 | 0x01)


def test_pings_with_other_identifiers_miss_each_others_flow(program: Program) -> None:
    """A flow installed for echo identifier 1 does not serve identifier 2: handed over."""
    one = build(4, "icmp", 64, SAMPLE | {"icmp_rest": 0x0001_0001})
    two = build(4, "icmp", 64, SAMPLE | {"icmp_rest": 0x0002_0001})
    ran = program.run(two, [Output(program.out_port)], 0)
    assert ran.retval == TC_ACT_REDIRECT  # its own flow serves it
    key = kernel_key(extract_match(one, program.in_port), loose=True)
    assert key is not None
    program.flows.update(key, kernel_value([Output(program.out_port)], 0, 0, 0))
    try:
        ran = program.inside.submit(prog_test_run, program.fd, two, program.ctx).result()
        program.records.clear()
        program.ring.consume()
    finally:
        program.flows.delete(key)
    assert ran.retval == TC_ACT_SHOT
    [record] = program.records
    in_port, _, length, reason, _, _, _ = UPCALL.unpack_from(record)
    assert (reason, in_port, record[UPCALL.size : UPCALL.size + length]) == (
        R_MISS, program.in_port, two,
    )  # fmt: skip
