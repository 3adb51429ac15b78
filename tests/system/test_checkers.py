"""The fault tests' checkers catch what they are for (no cluster needed)."""

from __future__ import annotations

from .checkers import Op, check_linearizable, check_watchers, linearizable_register

A, B = b"a", b"b"


def test_a_sequential_history_is_linearizable() -> None:
    ops = [
        Op("k", "write", A, invoked=0, returned=1),
        Op("k", "read", result=A, invoked=2, returned=3),
        Op("k", "cas", A, B, True, 4, 5),
        Op("k", "read", result=B, invoked=6, returned=7),
    ]
    assert linearizable_register(ops)


def test_a_stale_read_is_not() -> None:
    ops = [
        Op("k", "write", A, invoked=0, returned=1),
        Op("k", "write", B, invoked=2, returned=3),
        Op("k", "read", result=A, invoked=4, returned=5),  # after B returned
    ]
    assert not linearizable_register(ops)
    assert check_linearizable(ops) == ["k"]


def test_overlapping_ops_may_go_either_way() -> None:
    ops = [
        Op("k", "write", A, invoked=0, returned=10),
        Op("k", "read", result=None, invoked=1, returned=2),
        Op("k", "read", result=A, invoked=3, returned=4),
    ]
    assert linearizable_register(ops)


def test_a_write_seen_twice_around_another_is_not() -> None:
    """What a blind retry of a write can do: v1, v2, v1 for one write of v1."""
    ops = [
        Op("k", "write", A, invoked=0, returned=10),
        Op("k", "write", B, invoked=0.5, returned=1.5),
        Op("k", "read", result=A, invoked=1, returned=1.2),
        Op("k", "read", result=B, invoked=2, returned=3),
        Op("k", "read", result=A, invoked=4, returned=5),
    ]
    assert not linearizable_register(ops)


def test_an_unknown_write_may_have_happened_or_not() -> None:
    lost = Op("k", "write", A, invoked=0)
    assert linearizable_register([lost, Op("k", "read", result=A, invoked=5, returned=6)])
    assert linearizable_register([lost, Op("k", "read", result=None, invoked=5, returned=6)])


def test_a_failed_cas_must_have_seen_another_value() -> None:
    ops = [
        Op("k", "write", A, invoked=0, returned=1),
        Op("k", "cas", A, B, False, 2, 3),  # nothing else wrote: it had to swap
    ]
    assert not linearizable_register(ops)


def test_watchers_must_agree_and_miss_nothing() -> None:
    good = [(3, "put", "/a"), (4, "put", "/b"), (4, "put", "/c"), (5, "delete", "/a")]
    assert check_watchers([good, list(good)], 3, 5, every_key=True) == []
    gap = [e for e in good if e[0] != 4]
    assert check_watchers([good, gap], 3, 5, every_key=True)
    swapped = [good[0], good[2], good[1], good[3]]
    assert check_watchers([good, swapped], 3, 5, every_key=True)
    twice = [*good[:2], good[1], *good[2:]]
    assert check_watchers([twice], 3, 5, every_key=True)
    short = good[:3]
    assert check_watchers([short], 3, 5, every_key=True)
