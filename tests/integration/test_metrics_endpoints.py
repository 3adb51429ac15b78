"""``/metrics`` of real daemons: agents (processes in the lab's host namespaces, started
with ``--metrics-address``) scraped as Prometheus would, their upcall and simulation
counters moving after a ping between VMs; and ``tenet api`` as a process, scraped
without a token, its request counter moving after a request."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tenet.metrics import parse

from .netns import Lab, netns_exec
from .topo import World, one_bridge_two_hosts, ping, wait_for

pytestmark = pytest.mark.integration

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
SCRAPE = """
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=5) as answer:
    sys.stdout.write(answer.read().decode())
"""


def scrape_in(ns: str, url: str) -> Samples:
    """What a scraper in the host's namespace reads at ``url``."""
    out = subprocess.run(
        netns_exec(ns, sys.executable, "-c", SCRAPE, url),
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    )
    return parse(out.stdout)


@pytest.mark.parametrize("datapath", ["userspace", "kernel"], indirect=True)
def test_agents_metrics_move_with_traffic(lab: Lab, tmp_path: Path) -> None:
    lab.agent_args += ["--metrics-address", "127.0.0.1:9741"]
    world = World(lab, tmp_path / "store.db")
    _, _, (vm1, vm2) = one_bridge_two_hosts(world)
    world.start_agents()
    ns, host_id = world.hosts[0]
    url = "http://127.0.0.1:9741/metrics"
    wait_for("the agent's metrics", lambda: ("tenet_agent_upcalls_total", ()) in scrape_in(ns, url))
    before = scrape_in(ns, url)
    for name in (
        "tenet_agent_upcalls_total",
        "tenet_agent_simulations_total",
        "tenet_agent_flows_in_table",
        "tenet_agent_ct_entries",
        "tenet_agent_state_rejected_total",
        "tenet_agent_watch_lag_seconds",
        "tenet_agent_applied_revision",
    ):
        assert (name, ()) in before, name
    assert ("tenet_agent_info", (("host_id", str(host_id)),)) in before
    assert ("tenet_agent_drops_total", (("reason", "upcall_queue_full"),)) in before
    assert ("tenet_agent_store_request_seconds_count", (("op", "txn"),)) in before
    assert ping(vm1, vm2.ip).returncode == 0
    upcalls = ("tenet_agent_upcalls_total", ())
    simulations = ("tenet_agent_simulations_total", ())

    def moved() -> bool:
        now = scrape_in(ns, url)
        return now[upcalls] > before[upcalls] and now[simulations] > before[simulations]

    wait_for("the upcall counters to move", moved)
    after = scrape_in(ns, url)
    assert after[("tenet_agent_flows_in_table", ())] >= 1
    assert after[("tenet_agent_watch_pending_changes", ())] == 0  # it applied what it saw


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_api_process_serves_metrics_without_a_token(tmp_path: Path) -> None:
    port = free_port()
    token_file = tmp_path / "admin-token"
    cmd = [sys.executable, "-m", "tenet", "api", "--store", f"sqlite://{tmp_path / 'store.db'}"]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--token-file", str(token_file)]
    log = tmp_path / "api.log"
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:

            def up() -> bool:
                assert proc.poll() is None, log.read_text()
                try:
                    return http.get("/metrics").status_code == 200
                except httpx.TransportError:
                    return False

            wait_for("the API", up)
            before = parse(http.get("/metrics").text)
            health = ("tenet_api_requests_total", (("method", "GET"), ("route", "/v1/health"),
                                                   ("status", "200")))  # fmt: skip
            token = token_file.read_text().strip()
            answer = http.get("/v1/hosts", headers={"Authorization": f"Bearer {token}"})
            assert answer.status_code == 200
            assert http.get("/v1/health", headers={"Authorization": f"Bearer {token}"}).is_success
            after = parse(http.get("/metrics").text)
            assert after[health] == before.get(health, 0) + 1
            hosts = ("tenet_api_requests_total", (("method", "GET"), ("route", "/v1/hosts"),
                                                  ("status", "200")))  # fmt: skip
            assert after[hosts] == 1
            store_list = ("tenet_api_store_request_seconds_count", (("op", "list"),))
            assert after[store_list] >= 1
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
