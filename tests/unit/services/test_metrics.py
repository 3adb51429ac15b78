"""Prometheus metrics: the exposition format, the metered store, the agent's address."""

from __future__ import annotations

import math

import pytest

from tenet.clock import FakeClock
from tenet.errors import ValidationError
from tenet.metrics import Family, Histogram, Sample, parse, render, single
from tenet.services.metrics import parse_address
from tenet.store import MemoryStore
from tenet.store.base import Event, EventType, KeyValue
from tenet.store.keys import OBJECTS, STATUS
from tenet.store.metered import MeteredStore


# -- the format --------------------------------------------------------------------------
def test_render_then_parse_gives_the_samples_back_with_labels_escaped() -> None:
    odd = 'a "quoted" \\ value\nwith a newline'
    families = [
        single("x_total", "counter", "An x.", 3),
        Family("y", "gauge", "A y.", (Sample((("k", odd),), 0.25), Sample((("k", "b"),), -1))),
    ]
    text = render(families).decode()
    assert "# TYPE x_total counter" in text
    assert parse(text) == {
        ("x_total", ()): 3.0,
        ("y", (("k", odd),)): 0.25,
        ("y", (("k", "b"),)): -1.0,
    }


def test_a_name_twice_or_a_bad_name_is_refused() -> None:
    with pytest.raises(ValueError, match="twice"):
        render([single("a", "gauge", "", 1), single("a", "gauge", "", 2)])
    with pytest.raises(ValueError, match="not a Prometheus name"):
        single("a-b", "gauge", "", 1)


def test_histogram_buckets_are_cumulative_and_end_at_inf() -> None:
    h = Histogram(("op",), buckets=(0.1, 1.0))
    for value in (0.05, 0.5, 0.5, 7.0):
        h.observe(value, "get")
    samples = parse(render([h.family("s", "Seconds.")]).decode())
    assert samples[("s_bucket", (("le", "0.1"), ("op", "get")))] == 1
    assert samples[("s_bucket", (("le", "1"), ("op", "get")))] == 3
    assert samples[("s_bucket", (("le", "+Inf"), ("op", "get")))] == 4
    assert samples[("s_count", (("op", "get"),))] == 4
    assert math.isclose(samples[("s_sum", (("op", "get"),))], 8.05)


def test_metrics_address_is_host_and_port() -> None:
    assert parse_address("127.0.0.1:9741") == ("127.0.0.1", 9741)
    assert parse_address("[::1]:9741") == ("::1", 9741)
    for bad in ("9741", "host:", "host:port", "h:70000"):
        with pytest.raises(ValidationError) as info:
            parse_address(bad)
        assert info.value.field == "metrics_address"


# -- the metered store -------------------------------------------------------------------
def test_the_metered_store_times_calls_and_counts_failures() -> None:
    store = MeteredStore(MemoryStore(FakeClock()))
    store.put("/k", b"v")
    assert store.get("/k") is not None
    with pytest.raises(Exception, match="lease"):
        store.keepalive(12345)
    assert store.latency.count("put") == store.latency.count("get") == 1
    samples = parse(render(store.families("p")).decode())
    assert samples[("p_store_request_seconds_count", (("op", "put"),))] == 1
    assert samples[("p_store_failures_total", (("op", "keepalive"),))] == 1


def _event(key: str, revision: int) -> Event:
    return Event(EventType.PUT, KeyValue(key, b"", revision, revision, 1, 0))


def test_watch_lag_is_the_oldest_delivered_object_change_not_yet_applied() -> None:
    now = [100.0]
    store = MeteredStore(MemoryStore(FakeClock()), clock=lambda: now[0])
    assert store.lag(0) == (0, 0.0)
    store.delivered([_event(OBJECTS + "ports/a", 5), _event(STATUS + "hosts/x/stats", 6)])
    now[0] = 101.0
    store.delivered([_event(OBJECTS + "ports/b", 7)])
    now[0] = 103.0
    assert store.lag(4) == (2, 3.0)  # status keys are not what the agent applies
    assert store.lag(5) == (1, 2.0)
    assert store.lag(7) == (0, 0.0)


def test_the_watch_reports_its_batches() -> None:
    store = MeteredStore(MemoryStore(FakeClock()))
    with store.watch(OBJECTS, store.revision() + 1) as watch:
        store.put(OBJECTS + "ports/a", b"v")
        assert watch.get(timeout=1)
    assert store.lag(0)[0] == 1
