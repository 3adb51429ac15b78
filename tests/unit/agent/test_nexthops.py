"""Next hops being resolved: packets wait, requests are retried, failure is timed."""

from __future__ import annotations

import ipaddress
import uuid

from tenet.agent.nexthops import FAILED_FOR, QUEUE_MAX, RETRY, TRIES, NextHops, Waiting
from tenet.simulation.result import Emit

R = uuid.uuid4()
IP = ipaddress.ip_address("10.0.2.9")
ARP = Emit(uuid.uuid4(), b"arp request", from_device=True)


def test_packets_wait_and_are_released_when_the_next_hop_is_learned() -> None:
    hops = NextHops()
    assert hops.wait(R, IP, Waiting(1, b"a"), ARP, now=0.0)  # the first request goes out
    assert not hops.wait(R, IP, Waiting(1, b"b"), ARP, now=0.5)  # not again so soon
    assert not hops.failed(R, IP)
    assert hops.learned(R, IP) == [Waiting(1, b"a"), Waiting(1, b"b")]
    assert len(hops) == 0
    assert hops.learned(R, IP) == []


def test_requests_are_retried_then_the_next_hop_fails_and_its_packets_come_back() -> None:
    hops = NextHops()
    hops.wait(R, IP, Waiting(1, b"a"), ARP, now=0.0)
    sent = 1
    now = 0.0
    while True:
        now += RETRY
        resend, release = hops.tick(now)
        if release:
            break
        assert resend == [ARP]
        sent += 1
    assert sent == TRIES
    assert release == [Waiting(1, b"a")]  # simulated again: host unreachable now
    assert hops.failed(R, IP)
    assert hops.tick(now + FAILED_FOR - 0.1) == ([], [])
    assert hops.failed(R, IP)
    hops.tick(now + FAILED_FOR)
    assert not hops.failed(R, IP)  # the next packet tries again
    assert hops.wait(R, IP, Waiting(1, b"c"), ARP, now=now + FAILED_FOR + 1)


def test_a_next_hop_keeps_a_bounded_queue_oldest_out() -> None:
    hops = NextHops()
    for n in range(QUEUE_MAX + 3):
        hops.wait(R, IP, Waiting(1, bytes([n])), ARP, now=0.0)
    released = hops.learned(R, IP)
    assert len(released) == QUEUE_MAX
    assert released[0] == Waiting(1, bytes([3]))
    assert hops.counters.overflow == 3


def test_generated_packets_make_a_request_but_are_not_kept() -> None:
    hops = NextHops()
    assert hops.wait(R, IP, None, ARP, now=0.0)
    assert hops.learned(R, IP) == []
