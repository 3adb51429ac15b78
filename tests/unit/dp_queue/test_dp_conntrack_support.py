"""What connection tracking needs of a datapath, on the fake one and the upcall queue:
TCP flags OR-ed per flow (loose flows too), echo identifiers telling flows apart, and
flow-state frames (STATE_VNI) always handed up, with their sender, ahead of later
upcalls. (The real datapaths: tests/integration/test_datapath_contract.py.)"""

from __future__ import annotations

from ipaddress import IPv4Address

from tenet.datapath.base import STATE_VNI, Output, Upcall
from tenet.datapath.fake import FakeDatapath
from tenet.datapath.upcalls import UpcallQueue
from tenet.packets import ICMP, TCP, UDP, Ethernet, FlowMatch, IPv4, Packet, extract_match
from tenet.packets.l4 import TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN

MAC1, MAC2 = bytes.fromhex("020000000001"), bytes.fromhex("020000000002")
A, B = IPv4Address("10.0.0.1"), IPv4Address("10.0.0.2")
PEER = IPv4Address("10.250.0.7")


def tcp(flags: int, ttl: int = 64, payload: bytes = b"") -> bytes:
    return Packet(
        Ethernet(MAC2, MAC1, 0x0800), IPv4(A, B, 6, ttl=ttl), TCP(40000, 80, flags=flags), payload
    ).build()


def ping(ident: int, seq: int = 1) -> bytes:
    eth, ip = Ethernet(MAC2, MAC1, 0x0800), IPv4(A, B, 1)
    return Packet(eth, ip, ICMP.echo_request(ident, seq), b"ping").build()


def test_a_loose_flow_ors_the_flags_of_every_packet_it_carries() -> None:
    dp = FakeDatapath()
    syn = tcp(TCP_SYN)
    match = extract_match(syn, 1)
    dp.install(match, [Output(2)], ttl_above=1)
    for frame in (tcp(TCP_ACK, 63, b"data"), tcp(TCP_ACK | TCP_PSH, 20), tcp(TCP_FIN | TCP_ACK)):
        assert dp.receive(frame, 1) is None  # served by the loose flow: other flags, TTLs
    (stats,) = dp.dump()
    assert (stats.match, stats.packets) == (match, 3)
    assert stats.tcp_flags == TCP_ACK | TCP_PSH | TCP_FIN
    assert dp.receive(tcp(TCP_ACK, ttl=1), 1) is not None  # at the floor: the agent's
    assert dp.receive(tcp(TCP_RST), 1) is None
    assert dp.dump()[0].tcp_flags == TCP_ACK | TCP_PSH | TCP_FIN | TCP_RST
    dp.install(match, [Output(2)], ttl_above=1)  # installed again: counted from there
    assert dp.dump()[0].tcp_flags == 0
    dp.receive(tcp(TCP_ACK), 1)
    deleted = dp.delete(match)
    assert deleted is not None
    assert deleted.tcp_flags == TCP_ACK


def test_an_exact_flow_serves_only_its_own_flags() -> None:
    dp = FakeDatapath()
    dp.install(extract_match(tcp(TCP_ACK), 1), [Output(2)])
    assert dp.receive(tcp(TCP_ACK, payload=b"x"), 1) is None
    assert dp.receive(tcp(TCP_FIN | TCP_ACK), 1) is not None
    assert [s.tcp_flags for s in dp.dump()] == [TCP_ACK]


def test_pings_with_other_identifiers_are_other_flows() -> None:
    dp = FakeDatapath()
    one = extract_match(ping(1), 1)
    dp.install(one, [Output(2)], ttl_above=0)
    assert dp.receive(ping(1, seq=2), 1) is None
    upcall = dp.receive(ping(2), 1)
    assert upcall is not None
    assert upcall.match.icmp_id == 2
    assert upcall.match == one._replace(icmp_id=2)
    assert [(s.match.icmp_id, s.packets) for s in dp.dump()] == [(1, 1)]


def test_a_state_frame_is_always_an_upcall_with_its_sender() -> None:
    dp = FakeDatapath()
    frame = Packet(Ethernet(MAC2, MAC1, 0x0800), IPv4(A, B, 17), UDP(1, 2), b"state").build()
    dp.set_tunnel_port(STATE_VNI, 5)  # never a port's key; even so, not forwarded
    dp.install(extract_match(frame, 0, STATE_VNI), [Output(5)])
    upcall = dp.receive(frame, 0, STATE_VNI, tunnel_src=PEER)
    assert upcall is not None
    assert (upcall.tunnel_key, upcall.tunnel_src, upcall.frame) == (STATE_VNI, PEER, frame)
    assert dp.sent == []
    other = dp.receive(frame, 0, 77, tunnel_src=PEER)  # a tunnelled miss: its sender too
    assert other is not None
    assert other.tunnel_src == PEER
    assert dp.inject(frame, 1).tunnel_src is None  # a local frame has none


def _upcall(port: int, n: int, key: int = 0) -> Upcall:
    return Upcall(port, b"", FlowMatch(in_port=port, l4_src=n), key)


def test_state_frames_are_taken_before_any_upcall_queued_after_them() -> None:
    """However the ports' turns fall: port 0 (the tunnel) has a backlog, a state frame
    arrives, then the reply it prepares for, from a VM's port."""
    queue = UpcallQueue(bound=8)
    for n in range(3):
        queue.put(_upcall(0, n, key=77))
    queue.put(_upcall(0, 100, key=STATE_VNI))
    queue.put(_upcall(4, 200))
    assert len(queue) == 5
    order = [u.match.l4_src for u in queue.take(limit=2, timeout=0)]
    order += [u.match.l4_src for u in queue.take(limit=10, timeout=0)]
    assert order.index(100) < order.index(200)
    assert order[0] == 100
    assert sorted(order) == [0, 1, 2, 100, 200]


def test_state_frames_are_bounded_and_their_drops_counted() -> None:
    queue = UpcallQueue(bound=2)
    assert [queue.put(_upcall(0, n, key=STATE_VNI)) for n in range(3)] == [True, True, False]
    assert queue.dropped == {0: 1}
    assert queue.put(_upcall(0, 9, key=77))  # the tunnel's other upcalls have their own room
