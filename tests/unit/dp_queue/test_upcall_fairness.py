"""Upcalls are bounded per port and served round robin, so one VM cannot starve another."""

from __future__ import annotations

import threading
import time

import pytest

from tenet.datapath.base import Upcall
from tenet.datapath.upcalls import UpcallQueue
from tenet.packets import FlowMatch


def upcall(port: int, n: int = 0) -> Upcall:
    return Upcall(port, b"", FlowMatch(in_port=port, l4_src=n))


def test_each_port_has_its_own_bound_and_drops_are_counted_per_port() -> None:
    queue = UpcallQueue(bound=3)
    accepted = [queue.put(upcall(1, n)) for n in range(10)]
    assert accepted == [True] * 3 + [False] * 7
    assert queue.put(upcall(2))
    assert queue.dropped == {1: 7}
    assert len(queue) == 4


def test_a_flooding_port_does_not_starve_a_quiet_one() -> None:
    queue = UpcallQueue(bound=10_000)
    for n in range(10_000):
        queue.put(upcall(1, n))
    for n in range(3):
        queue.put(upcall(2, n))
    taken = queue.take(limit=6, timeout=0)
    assert sorted(u.match.l4_src for u in taken if u.port_no == 2) == [0, 1, 2]
    assert [u.match.l4_src for u in taken if u.port_no == 1] == [0, 1, 2]


def test_take_waits_for_a_put_from_another_thread() -> None:
    queue = UpcallQueue()
    assert queue.take(limit=5, timeout=0.01) == []
    timer = threading.Timer(0.05, lambda: queue.put(upcall(7)))
    timer.start()
    start = time.monotonic()
    got = queue.take(limit=5, timeout=5)
    timer.join()
    assert [u.port_no for u in got] == [7]
    assert time.monotonic() - start < 4


def test_a_queue_holds_at_least_one() -> None:
    with pytest.raises(ValueError, match="at least one"):
        UpcallQueue(bound=0)


def test_wake_ends_a_wait_at_once() -> None:
    queue = UpcallQueue(4)
    threading.Timer(0.05, queue.wake).start()
    start = time.monotonic()
    assert queue.take(8, timeout=10) == []
    assert time.monotonic() - start < 5  # woken, not timed out


def test_a_wake_before_the_wait_is_not_lost() -> None:
    queue = UpcallQueue(4)
    queue.wake()
    start = time.monotonic()
    assert queue.take(8, timeout=10) == []
    assert time.monotonic() - start < 5
    assert queue.take(8, timeout=0) == []  # and it is used up


def test_a_full_port_is_seen_before_the_upcall_is_built() -> None:
    queue = UpcallQueue(1)
    assert not queue.full(3)
    queue.put(Upcall(3, b"", FlowMatch(3)))
    assert queue.full(3)
    assert queue.dropped == {3: 1}
