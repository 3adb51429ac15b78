"""Adoption of a previous run's ping flows: each echo identifier is its own flow, and
the frame an adopting agent rebuilds from a flow's match carries that identifier."""

from __future__ import annotations

from test_agent_daemon import agent_for, world

from tenet.clock import FakeClock
from tenet.datapath.fake import FakeDatapath
from tenet.model import Port
from tenet.packets import ETH_TYPE_IPV4, ICMP, Ethernet, IPv4, Packet, extract_match, mac_from_str
from tenet.packets.actions import Output
from tenet.packets.synth import frame_of
from tenet.store import MemoryStore


def ping(src: Port, dst: Port, ident: int, seq: int = 1) -> bytes:
    assert src.mac is not None
    assert dst.mac is not None
    eth = Ethernet(mac_from_str(dst.mac), mac_from_str(src.mac), ETH_TYPE_IPV4)
    ip = IPv4(src.fixed_ips[0], dst.fixed_ips[0], 1)  # type: ignore[arg-type]
    return Packet(eth, ip, ICMP.echo_request(ident, seq), b"ping").build()


def test_adopted_ping_flows_keep_their_identifiers() -> None:
    clock = FakeClock()
    store = MemoryStore(clock)
    hosts, ports = world(store)
    one, two = (extract_match(ping(ports[0], ports[1], n), 1) for n in (1, 2))
    for match in (one, two):
        rebuilt = frame_of(match)
        assert rebuilt is not None
        assert extract_match(rebuilt, 1) == match  # what adoption re-simulates
    dp = FakeDatapath.with_previous_run([(one, [Output(9)]), (two, [Output(9)])])
    agent = agent_for(store, hosts[0], dp, clock)
    agent.start()
    assert agent.adopted == (2, 0)
    assert set(dp.flows) == {one, two}
    dp.sent.clear()
    assert dp.receive(ping(ports[0], ports[1], 2, seq=5), 1) is None  # its own flow
    assert dp.sent == [(Output(2), ping(ports[0], ports[1], 2, seq=5))]
    upcall = dp.receive(ping(ports[0], ports[1], 3), 1)  # no flow of a previous run
    assert upcall is not None
    assert upcall.match.icmp_id == 3
    agent.close()
