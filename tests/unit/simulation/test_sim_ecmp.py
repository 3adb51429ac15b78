"""ECMP: one flow always takes the same path; many flows spread over the equal routes.

Reads the golden router topology (``golden/router.toml``): 100.64.0.0/24 has two
routes of weight 100 (gateways 172.31.0.3 and .4, MACs ...:ee:03 and ...:ee:04)
and one of weight 200 (gateway .5), all out of r1's uplink r1-ext.
"""

from __future__ import annotations

from collections import Counter

from golden_loader import GOLDEN_DIR, Topology, apply_actions, build_frame, load

from tenet.packets import mac_to_str
from tenet.simulation import simulate
from tenet.simulation.result import Verdict

TOPO, _ = load(GOLDEN_DIR / "router.toml")
EQUAL = {"02:00:00:00:ee:03", "02:00:00:00:ee:04"}


def _gateway_mac(topo: Topology, sport: int, dport: int = 80, dst: str = "100.64.0.9") -> str:
    desc = {
        "type": "ipv4",
        "proto": "tcp",
        "eth_src": "vm-a1",
        "eth_dst": "r1-a",
        "src": "10.0.0.1",
        "dst": dst,
        "sport": sport,
        "dport": dport,
    }
    frame = build_frame(topo, desc)
    result = simulate(frame, topo.id("vm-a1"), topo.view, topo.state(), 1000.0)
    assert result.verdict is Verdict.FORWARD, result.trace_text()
    [(output, out_frame)] = apply_actions(frame, result.actions)
    assert output.port_id == topo.id("r1-ext")
    return mac_to_str(out_frame[0:6])


def test_one_flow_always_takes_the_same_route() -> None:
    for sport in (33000, 40001, 51234):
        first = _gateway_mac(TOPO, sport)
        assert first in EQUAL
        again = {_gateway_mac(TOPO, sport) for _ in range(5)}
        assert again == {first}


def test_the_choice_does_not_depend_on_the_view_instance() -> None:
    """Stable hashing: a rebuilt view (another process, another agent) chooses the same."""
    other, _ = load(GOLDEN_DIR / "router.toml")
    for sport in range(40000, 40020):
        assert _gateway_mac(TOPO, sport) == _gateway_mac(other, sport)


def test_flows_spread_over_the_equal_routes_only() -> None:
    counts = Counter(_gateway_mac(TOPO, sport) for sport in range(20000, 20200))
    assert set(counts) == EQUAL, counts  # never the heavier route, never the /16
    # 200 flows over two paths: each gets a fair share (binomial, far from the edges)
    assert min(counts.values()) >= 60, counts


def test_flows_that_differ_only_in_destination_port_spread_too() -> None:
    counts = Counter(_gateway_mac(TOPO, 33000, dport) for dport in range(1000, 1100))
    assert set(counts) == EQUAL, counts
