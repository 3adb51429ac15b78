"""The agent cut off from its store (a SeverableStore over a memory store): it goes on,
says it is disconnected, and once the store answers again takes a new lease, writes
what it holds again and applies what changed meanwhile, without a restart."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from test_agent_daemon import UNDERLAY, no_interfaces, world

from tenet.agent.daemon import Agent
from tenet.clock import FakeClock
from tenet.datapath.fake import FakeDatapath
from tenet.model import Port
from tenet.services.status import StatusService
from tenet.store import MemoryStore
from tenet.store.keys import alive_key, applied_key, stats_key
from tenet.store.objects import ObjectStore
from tenet.store.severable import SeverableStore


def eventually(check: Callable[[], bool]) -> None:
    limit = time.monotonic() + 10
    while not check():
        assert time.monotonic() < limit, "not within 10 s"
        time.sleep(0.01)


def test_an_agent_cut_off_from_its_store_goes_on_and_catches_up() -> None:
    clock = FakeClock()
    inner = MemoryStore(clock)
    hosts, ports = world(inner)
    store = SeverableStore(inner)
    status = StatusService(interfaces=no_interfaces)
    agent = Agent(hosts[0], store, UNDERLAY, datapath=FakeDatapath(), clock=clock,
                  services=[status], lease_ttl=5)  # fmt: skip
    thread = threading.Thread(target=agent.run)
    thread.start()
    try:
        eventually(lambda: agent.started and inner.get(stats_key(hosts[0])) is not None)
        first = inner.get(alive_key(hosts[0]))
        assert first is not None
        assert agent.counters()["store_connected"] == 1

        store.cut()
        clock.advance(10)  # the lease expires on the store's clock; the agent's tick is due
        eventually(lambda: agent.counters()["store_connected"] == 0)
        assert inner.get(alive_key(hosts[0])) is None
        changed = ObjectStore(inner, clock).patch(Port, ports[0].id, {"admin_state_up": False})
        assert thread.is_alive()

        store.heal()
        applied = applied_key(hosts[0])

        def caught_up() -> bool:
            kv = inner.get(applied)
            return kv is not None and int(kv.value) >= changed.revision

        eventually(caught_up)
        alive = inner.get(alive_key(hosts[0]))
        assert alive is not None
        assert alive.lease != first.lease
        counters = agent.counters()
        assert (counters["store_connected"], counters["store_disconnects"]) == (1, 1)
        clock.advance(2)  # the status service publishes again, under the new lease
        eventually(lambda: (inner.get(stats_key(hosts[0])) or alive).lease == alive.lease)
        assert thread.is_alive()
    finally:
        agent.stop.set()
        thread.join(timeout=10)
    assert inner.get(alive_key(hosts[0])) is None  # revoked on the way out
