"""Records the agent cannot use (a route whose next-hop port it does not know, a chain
that is not there): the packets that depend on them drop with a trace line and a
counter, and the agent goes on (its other flows unaffected)."""

from __future__ import annotations

import dataclasses
import uuid

from agent_helpers import udp
from test_agent_routes import R1_B1_MAC, VM1_MAC, Topo, gateway, send, setup

from tenet.simulation import simulate


def trace(topo: Topo, host: object, dst: str) -> list[str]:
    core = host.core  # type: ignore[attr-defined]
    frame = udp(VM1_MAC, R1_B1_MAC, "10.0.0.1", dst)
    result = simulate(frame, topo.vm1.id, core.view, core.state, 1.0)
    return [str(step) for step in result.trace]


def test_a_route_to_a_port_the_agent_does_not_know_drops_with_a_trace_and_a_count() -> None:
    topo, host = setup()
    ghost = uuid.uuid4()
    host.change(dataclasses.replace(topo.route("5.5.0.0/16", "172.16.0.2"), next_hop_port_id=ghost))
    before = host.core.counters.unusable_input
    dropped = send(topo, host, "5.5.5.5")
    assert dropped.upcalled
    assert dropped.out == []
    assert host.core.counters.unusable_input == before + 1
    assert any(
        f"port {ghost} not in the view: drop" in line for line in trace(topo, host, "5.5.5.5")
    )
    assert gateway(topo, host, send(topo, host, "1.1.1.1")) == "gw1"  # the rest still routes


def test_a_chain_that_is_not_there_drops_what_it_guards_with_a_trace_and_a_count() -> None:
    topo, host = setup()
    ghost = uuid.uuid4()
    host.change(dataclasses.replace(topo.r1, inbound_chain_id=ghost))
    before = host.core.counters.unusable_input
    dropped = send(topo, host, "1.1.1.1")
    assert dropped.out == []
    assert host.core.counters.unusable_input == before + 1
    assert any(f"chain {ghost}" in line and "not in the view: drop" in line
               for line in trace(topo, host, "1.1.1.1"))  # fmt: skip
    host.change(dataclasses.replace(topo.r1, inbound_chain_id=None))  # fixed: it routes again
    assert gateway(topo, host, send(topo, host, "1.1.1.1")) == "gw1"
