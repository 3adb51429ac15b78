"""Properties of the simulation over generated packets on the golden topologies.

* deterministic: the same frame, port, view, state and ``now`` give equal
  results, trace included;
* total: no byte string makes ``simulate`` raise; a frame the parser refuses
  is dropped;
* every result obeys the invariants of ``golden_loader.check_invariants``: tags
  cover every device, port, chain and rule the trace names, ``match_fields``
  only names FlowMatch fields, outputs go to live bound exterior ports other
  than the ingress, tunnels carry the port's key and its host's address, and
  rewritten frames keep correct checksums;
* megaflow soundness: a frame that agrees with another on the fields the
  simulation read gets the same decision (verdict, actions, tags, state).

Packets are drawn from what each topology knows (its MACs, addresses, route
destinations) mixed with random values, so that they reach bridges, routers,
chains and responders, not only the parser.
"""

from __future__ import annotations

import ipaddress
import uuid
from typing import Any

from golden_loader import (
    GOLDEN_DIR,
    Topology,
    build_frame,
    check_emitted,
    check_invariants,
    load,
)
from hypothesis import HealthCheck, assume, given, reject, settings
from hypothesis import strategies as st

from tenet.errors import PacketError
from tenet.model import Port, Route
from tenet.packets import FIELDS, extract_match, mac_to_str, masked
from tenet.simulation import simulate
from tenet.simulation.result import SimulationResult, Verdict

TOPOLOGIES = [load(path)[0] for path in sorted(GOLDEN_DIR.glob("*.toml"))]
NOW = 1000.0
SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


# -- what each topology knows ----------------------------------------------------------------


def _ingress_ports(topo: Topology) -> list[uuid.UUID]:
    """Exterior ports bound to the local host (where upcalls come from)."""
    view = topo.view
    return sorted(
        pid
        for pid, port in view.ports.items()
        if port.peer_id is None and view.port_host(pid) == view.local_host_id
    )


def _macs(topo: Topology) -> list[str]:
    macs = {p.mac for p in topo.view.ports.values() if p.mac is not None}
    macs.update(mac_to_str(m) for (_, m) in topo.macs)
    macs.update(mac_to_str(m) for m in topo.arps.values())
    macs.add("ff:ff:ff:ff:ff:ff")
    return sorted(macs)


def _addresses(topo: Topology, version: int) -> list[str]:
    out: set[str] = set()
    for record in topo.records:
        if isinstance(record, Port):
            out.update(str(ip) for ip in record.fixed_ips if ip.version == version)
            if record.address is not None and record.address.version == version:
                out.add(str(record.address))
                out.add(str(record.subnet.network_address + 7))  # type: ignore[union-attr]
        elif isinstance(record, Route) and record.dst.version == version:
            out.add(str(record.dst.network_address + min(9, record.dst.num_addresses - 1)))
    return sorted(out)


_KNOWN = {
    id(topo): (
        _ingress_ports(topo),
        _macs(topo),
        _addresses(topo, 4),
        _addresses(topo, 6),
    )
    for topo in TOPOLOGIES
}


# -- strategies ---------------------------------------------------------------------------


def _mac(known: list[str]) -> st.SearchStrategy[str]:
    random = st.binary(min_size=6, max_size=6).map(mac_to_str)
    return st.one_of(st.sampled_from(known), random)


def _ip(known: list[str], version: int) -> st.SearchStrategy[str]:
    if version == 4:
        random = st.integers(0, 2**32 - 1).map(lambda n: str(ipaddress.IPv4Address(n)))
    else:
        random = st.integers(0, 2**128 - 1).map(lambda n: str(ipaddress.IPv6Address(n)))
    return st.one_of(st.sampled_from(known), random) if known else random


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[Topology, uuid.UUID, dict[str, Any]]:
    """A topology, a local ingress port and the description of a frame."""
    topo = draw(st.sampled_from(TOPOLOGIES))
    ports, macs, v4, v6 = _KNOWN[id(topo)]
    in_port = draw(st.sampled_from(ports))
    kind = draw(st.sampled_from(["ipv4", "ipv4", "ipv4", "ipv6", "arp"]))
    desc: dict[str, Any] = {"type": kind, "eth_src": draw(_mac(macs))}
    if kind == "arp":
        desc.update(
            op=draw(st.sampled_from([1, 1, 2, 3])),
            eth_dst=draw(_mac(macs)),
            sha=draw(_mac(macs)),
            spa=draw(_ip(v4, 4)),
            tpa=draw(_ip(v4, 4)),
        )
        return topo, in_port, desc
    version = 4 if kind == "ipv4" else 6
    known = v4 if version == 4 else v6
    proto = draw(st.sampled_from(["tcp", "udp", "icmp" if version == 4 else "icmpv6", 47]))
    desc.update(
        eth_dst=draw(_mac(macs)),
        src=draw(_ip(known, version)),
        dst=draw(_ip(known, version)),
        ttl=draw(st.sampled_from([0, 1, 2, 64, 255]) | st.integers(0, 255)),
        tos=draw(st.integers(0, 255)),
        proto=proto,
    )
    if proto in ("tcp", "udp"):
        desc.update(
            sport=draw(st.integers(0, 65535)),
            dport=draw(st.sampled_from([22, 23, 25, 53, 69, 80, 8080]) | st.integers(0, 65535)),
        )
        if proto == "tcp":
            desc["tcp_flags"] = draw(st.integers(0, 0x1FF))
    elif proto in ("icmp", "icmpv6"):
        echo = 8 if proto == "icmp" else 128
        desc.update(
            icmp_type=draw(st.sampled_from([echo, 0, 3, 11]) | st.integers(0, 255)),
            icmp_code=draw(st.integers(0, 255)),
        )
    return topo, in_port, desc


def _run(topo: Topology, in_port: uuid.UUID, frame: bytes) -> SimulationResult:
    return simulate(frame, in_port, topo.view, topo.state(), NOW)


# -- properties ---------------------------------------------------------------------------


@SETTINGS
@given(scenarios())
def test_simulation_is_deterministic_and_obeys_the_invariants(
    scenario: tuple[Topology, uuid.UUID, dict[str, Any]],
) -> None:
    topo, in_port, desc = scenario
    frame = build_frame(topo, desc)
    first = _run(topo, in_port, frame)
    second = _run(topo, in_port, frame)
    assert first == second
    assert first.trace == second.trace
    check_invariants(topo, in_port, frame, first)
    check_emitted(topo, frame, first)
    try:
        extract_match(frame, 0)
    except PacketError:  # a frame no datapath matches (a truncated ND option): dropped
        assert first.verdict is Verdict.DROP
        return
    # the ingress port is always something the decision depended on
    assert str(in_port) in first.tags


@SETTINGS
@given(st.sampled_from(TOPOLOGIES), st.data())
def test_random_bytes_never_raise(topo: Topology, data: st.DataObject) -> None:
    ports = _KNOWN[id(topo)][0]
    in_port = data.draw(st.sampled_from(ports))
    frame = data.draw(st.binary(max_size=128))
    result = _run(topo, in_port, frame)
    try:
        extract_match(frame, 0)
    except PacketError:
        assert result.verdict is Verdict.DROP
    check_invariants(topo, in_port, frame, result)


@SETTINGS
@given(scenarios(), st.data())
def test_mangled_frames_never_raise(
    scenario: tuple[Topology, uuid.UUID, dict[str, Any]], data: st.DataObject
) -> None:
    """Valid frames cut short or with bytes overwritten: a verdict, never an exception."""
    topo, in_port, desc = scenario
    frame = bytearray(build_frame(topo, desc))
    cut = data.draw(st.integers(0, len(frame)))
    for _ in range(data.draw(st.integers(0, 4))):
        at = data.draw(st.integers(0, len(frame) - 1))
        frame[at] = data.draw(st.integers(0, 255))
    mangled = bytes(frame[:cut] if data.draw(st.booleans()) else frame)
    result = _run(topo, in_port, mangled)
    try:
        extract_match(mangled, 0)
    except PacketError:
        assert result.verdict is Verdict.DROP
    assert result == _run(topo, in_port, mangled)
    check_invariants(topo, in_port, mangled, result)


# fields of the match -> how to change them in a frame description (per packet type)
_IP_KNOBS: dict[str, tuple[str, ...]] = {
    "eth_src": ("eth_src",),
    "eth_dst": ("eth_dst",),
    "ip_src": ("src",),
    "ip_dst": ("dst",),
    "ip_ttl": ("ttl",),
    "ip_tos": ("tos",),
    "l4_src": ("sport", "icmp_type"),
    "l4_dst": ("dport", "icmp_code"),
    "tcp_flags": ("tcp_flags",),
}
_ARP_KNOBS: dict[str, tuple[str, ...]] = {
    "eth_src": ("eth_src",),
    "eth_dst": ("eth_dst",),
    "arp_op": ("op",),
    "arp_sha": ("sha",),
    "arp_spa": ("spa",),
    "arp_tpa": ("tpa",),
}


def _vary(
    data: st.DataObject, topo: Topology, desc: dict[str, Any], unread: set[str]
) -> dict[str, Any]:
    """``desc`` with some of the knobs of ``unread`` fields given new values."""
    _, macs, v4, v6 = _KNOWN[id(topo)]
    knobs = _ARP_KNOBS if desc["type"] == "arp" else _IP_KNOBS
    version = 6 if desc["type"] == "ipv6" else 4
    known = v6 if version == 6 else v4
    out = dict(desc)
    # draw for every knob, whatever was read, so the data drawn never depends on the
    # simulation's result (Hypothesis needs generation independent of the code under test)
    for field in sorted(knobs):
        for knob in knobs[field]:
            vary = data.draw(st.booleans(), label=f"vary {knob}")
            if knob in ("eth_src", "eth_dst", "sha"):
                value: Any = data.draw(_mac(macs), label=knob)
            elif knob in ("src", "dst", "spa", "tpa"):
                value = data.draw(_ip(known, 4 if knob in ("spa", "tpa") else version))
            elif knob in ("op", "sport", "dport"):
                value = data.draw(st.integers(0, 65535), label=knob)
            elif knob == "tcp_flags":
                value = data.draw(st.integers(0, 0x1FF), label=knob)
            else:  # ttl, tos, icmp type and code
                value = data.draw(st.integers(0, 255), label=knob)
            if vary and knob in desc and field in unread:
                out[knob] = value
    return out


@SETTINGS
@given(scenarios(), st.data())
def test_megaflow_soundness(
    scenario: tuple[Topology, uuid.UUID, dict[str, Any]], data: st.DataObject
) -> None:
    """Frames that agree on the fields a simulation read, with a TTL above its floor, get
    the same decision."""
    topo, in_port, desc = scenario
    frame = build_frame(topo, desc)
    first = _run(topo, in_port, frame)
    read = first.match_fields
    variant_desc = _vary(data, topo, desc, set(FIELDS) - read)
    variant = build_frame(topo, variant_desc)
    try:
        m1, m2 = extract_match(frame, 0), extract_match(variant, 0)
    except PacketError:  # a frame no datapath matches never becomes a flow
        reject()
    fields = frozenset(read) - {"in_port"}
    assume(masked(m1, fields) == masked(m2, fields))
    assume(first.holds_for_ttl(m2.ip_ttl))
    second = _run(topo, in_port, variant)
    assert second.verdict is first.verdict, (desc, variant_desc, read, second.trace_text())
    assert second.actions == first.actions, (desc, variant_desc, read)
    assert second.match_fields == first.match_fields
    assert second.tags == first.tags
    assert second.state == first.state
    assert [e.port_id for e in second.emit] == [e.port_id for e in first.emit], (desc, variant_desc)
