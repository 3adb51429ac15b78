"""The agent's ``/metrics``: an agent on a fake datapath, scraped over real HTTP on
loopback; an upcall moves its counters."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest
from test_agent_daemon import UNDERLAY, frame, no_interfaces, world

from tenet.agent.core import drop_site
from tenet.agent.daemon import Agent
from tenet.clock import FakeClock
from tenet.datapath.fake import FakeDatapath
from tenet.metrics import CONTENT_TYPE, parse, render
from tenet.services.metrics import MetricsService, agent_families
from tenet.services.status import StatusService
from tenet.simulation.result import SimulationResult, TraceKind, TraceStep, Verdict
from tenet.store import MemoryStore
from tenet.store.metered import MeteredStore


def scrape(url: str) -> tuple[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]]:
    with urllib.request.urlopen(url, timeout=5) as answer:
        text = answer.read().decode()
        return answer.headers["Content-Type"], parse(text)


def test_the_agent_serves_its_counters_and_an_upcall_moves_them() -> None:
    clock = FakeClock()
    memory = MemoryStore(clock)
    hosts, ports = world(memory)
    store = MeteredStore(memory)
    service = MetricsService(("127.0.0.1", 0), store)
    dp = FakeDatapath()
    agent = Agent(
        hosts[0],
        store,
        UNDERLAY,
        datapath=dp,
        clock=clock,
        services=[StatusService(interfaces=no_interfaces), service],
    )
    agent.start()
    try:
        host, port = service.bound
        url = f"http://{host}:{port}/metrics"
        kind, before = scrape(url)
        assert kind == CONTENT_TYPE
        for name in (
            "tenet_agent_upcalls_total",
            "tenet_agent_simulations_total",
            "tenet_agent_flows_in_table",
            "tenet_agent_ct_entries",
            "tenet_agent_state_sent_total",
            "tenet_agent_state_rejected_total",
            "tenet_agent_applied_revision",
            "tenet_agent_watch_lag_seconds",
            "tenet_agent_watch_pending_changes",
        ):
            assert (name, ()) in before, name
        assert ("tenet_agent_info", (("host_id", str(hosts[0])),)) in before
        assert ("tenet_agent_store_request_seconds_count", (("op", "put"),)) in before
        assert before[("tenet_agent_applied_revision", ())] > 0
        upcall = dp.inject(frame(ports[0], ports[1]), 1)
        agent.core.handle(upcall, clock.monotonic())
        stray = dp.inject(frame(ports[0], ports[1]), 9)  # no port 9 on this host
        agent.core.handle(stray, clock.monotonic())
        agent.tick(clock.monotonic())
        _, after = scrape(url)
        assert (
            after[("tenet_agent_upcalls_total", ())]
            == before[("tenet_agent_upcalls_total", ())] + 2
        )
        assert after[("tenet_agent_simulations_total", ())] == 1
        assert after[("tenet_agent_flows_in_table", ())] == 1
        unknown = ("tenet_agent_drops_total", (("reason", "unknown_port"),))
        assert after[unknown] == before[unknown] + 1
        with pytest.raises(urllib.error.HTTPError, match="404"):
            urllib.request.urlopen(f"http://{host}:{port}/", timeout=5)
    finally:
        agent.close()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url, timeout=2)  # closed with the agent


def test_every_counter_is_a_counter_or_a_gauge_and_drops_have_reasons() -> None:
    counters = {"upcalls": 4, "flows_in_table": 2, "tunnel_misses": 1, "state_rejected": 3}
    samples = parse(render(agent_families(counters, "h", None)).decode())
    assert samples[("tenet_agent_upcalls_total", ())] == 4
    assert samples[("tenet_agent_flows_in_table", ())] == 2
    assert samples[("tenet_agent_drops_total", (("reason", "tunnel_key_unknown"),))] == 1
    assert samples[("tenet_agent_drops_total", (("reason", "state_rejected"),))] == 3


def test_simulated_drops_are_reasons_by_where_they_were_decided() -> None:
    counters = {"simulated_drops": 3, "drops_at_rule": 2, "drops_at_router": 1}
    samples = parse(render(agent_families(counters, "h", None)).decode())
    assert samples[("tenet_agent_drops_total", (("reason", "simulated_rule"),))] == 2
    assert samples[("tenet_agent_drops_total", (("reason", "simulated_router"),))] == 1
    assert samples[("tenet_agent_simulated_drops_total", ())] == 3
    assert not any(name.startswith("tenet_agent_drops_at") for name, _ in samples)


def test_drop_site_is_the_last_step_before_the_verdict() -> None:
    rule = TraceStep(TraceKind.RULE, None, "deny", "drop")
    verdict = TraceStep(TraceKind.VERDICT, None, "", "drop")
    port = TraceStep(TraceKind.PORT, None, "p", "in")
    assert drop_site(SimulationResult(Verdict.DROP, trace=(port, rule, verdict))) == "rule"
    assert drop_site(SimulationResult(Verdict.DROP, trace=(verdict,))) == "verdict"
