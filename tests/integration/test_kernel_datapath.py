"""The kernel datapath's promises: steady state never reaches Python, and a dead agent
leaves its flows forwarding, adopted against the store when it comes back."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tenet.model import Chain, Condition, Port, Rule, RuleAction
from tenet.store.keys import alive_key

from .netns import Lab, Vm, netns_exec
from .topo import World, listening, one_bridge_two_hosts, ping, wait_for

pytestmark = [
    pytest.mark.integration,
    pytest.mark.parametrize("datapath", ["kernel"], indirect=True),
]

# Prints, every 0.2 s, the time (CLOCK_MONOTONIC, the same in every namespace) and the
# bytes that arrived in those 0.2 s.
SINK = """
    import socket, time
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", 5002)); srv.listen(1)
    print("listening", flush=True)
    conn, _ = srv.accept()
    conn.settimeout(0.05)
    got, mark = 0, time.monotonic()
    while True:
        try:
            chunk = conn.recv(1 << 16)
        except TimeoutError:
            chunk = None
        if chunk == b"":
            break
        got += len(chunk or b"")
        now = time.monotonic()
        if now - mark >= 0.2:
            print(f"{now:.3f} {got}", flush=True)
            got, mark = 0, now
    print(f"{time.monotonic():.3f} {got}", flush=True)
"""

# Sends for argv[2] seconds, as fast as it can.
SOURCE = """
    import socket, sys, time
    sock = socket.create_connection((sys.argv[1], 5002), timeout=30)
    end = time.monotonic() + float(sys.argv[2])
    block = b"x" * 65536
    while time.monotonic() < end:
        sock.sendall(block)
    sock.close()
"""


def received_by_interval(out: str) -> list[tuple[float, int]]:
    return [(float(t), int(n)) for t, n in (line.split() for line in out.splitlines())]


def transfer(src: Vm, dst: Vm, seconds: int) -> tuple[subprocess.Popen[str], subprocess.Popen[str]]:
    """TCP from ``src`` to ``dst`` for ``seconds``: the sink (listening already), the source."""
    sink = listening(dst, SINK)
    source = subprocess.Popen(
        netns_exec(src.ns, sys.executable, "-c", textwrap.dedent(SOURCE), dst.ip, str(seconds)),
        text=True,
    )
    return sink, source


def test_a_steady_tcp_transfer_never_reaches_the_agent(lab: Lab, tmp_path: Path) -> None:
    """10 s of TCP between VMs on two hosts: after the first packets every segment is
    forwarded by the program; the agents' count of packets the kernel handed them stands
    still while the kernel's hit counter climbs."""
    world = World(lab, tmp_path / "store.db")
    try:
        _, _, (vm1, vm2) = one_bridge_two_hosts(world)
        for vm in (vm1, vm2):  # no IPv6 chatter (DAD, MLD reports) beside the transfer
            for scope in ("all", "default", "eth0"):
                subprocess.run(
                    netns_exec(vm.ns, "sysctl", "-qw", f"net.ipv6.conf.{scope}.disable_ipv6=1"),
                    check=True,
                )
        world.start_agents()
        assert ping(vm1, vm2.ip).returncode == 0
        sink, source = transfer(vm1, vm2, 10)

        def kernel(counter: str) -> int:
            return world.stats(0)[counter] + world.stats(1)[counter]

        # the agents publish their counters every second: 2.5 s in, the snapshot is from
        # the transfer's stride, past its first packets; 9.5 s in, it is still running
        time.sleep(2.5)
        to_agent, hits = kernel("kernel_to_agent"), kernel("kernel_hits")
        time.sleep(7.0)
        to_agent_later, hits_later = kernel("kernel_to_agent"), kernel("kernel_hits")
        assert source.wait(timeout=60) == 0
        out, _ = sink.communicate(timeout=60)
        assert sum(n for _, n in received_by_interval(out)) > 100 * 65536
        assert to_agent > 0, "the first packets (ping, SYN) reached the agents: counted"
        assert hits_later - hits > 10_000, "the kernel did not forward the transfer"
        assert to_agent_later == to_agent, (
            f"{to_agent_later - to_agent} packets of a steady TCP transfer reached the agents"
        )
    finally:
        world.store.close()


def test_a_killed_agent_leaves_the_kernel_forwarding(lab: Lab, tmp_path: Path) -> None:
    world = World(lab, tmp_path / "store.db")
    try:
        acme, _, (vm1, vm2) = one_bridge_two_hosts(world)
        world.start_agents()
        assert ping(vm1, vm2.ip).returncode == 0
        sink, source = transfer(vm1, vm2, 9)
        # 9 s: past the killed agents' leases (5 s), whose learned MACs then expire and
        # invalidate the adopted flows while the transfer runs
        time.sleep(1.5)  # the transfer is in its stride: flows are in the kernel
        killed_at = time.monotonic()
        for agent in lab.agents:
            agent.send_signal(signal.SIGKILL)
            agent.wait(timeout=10)
        time.sleep(2.0)  # both agents down: only the kernel forwards
        restarted_at = time.monotonic()
        world.start_agents()
        assert source.wait(timeout=60) == 0
        out, _ = sink.communicate(timeout=60)
        arrivals = received_by_interval(out)
        down = [n for t, n in arrivals if killed_at + 0.2 < t < restarted_at]
        assert sum(down) > 10 * 65536, "the transfer stalled while the agents were down"
        assert 0 not in down, "0.2 s without a byte while the agents were down"
        # the restarted agents adopted the kernel's flows: few upcalls, and a change to the
        # topology still invalidates them (a drop rule stops the adopted ping flows)
        for n in (0, 1):
            wait_for("counters", lambda n=n: "upcalls" in world.stats(n), timeout=10)
        assert world.stats(0)["flows_adopted"] + world.stats(1)["flows_adopted"] > 0
        upcalls_after = world.stats(0)["upcalls"] + world.stats(1)["upcalls"]
        # a handful per flow, twice: at the start, and once the dead agents' MAC entries
        # expired (thousands of packets went by meanwhile)
        assert upcalls_after < 100, upcalls_after
        chain = world.objects.create(Chain(tenant_id=acme.id, name="stop")).record
        world.objects.create(
            Rule(
                tenant_id=acme.id,
                chain_id=chain.id,
                condition=Condition(nw_proto=1),
                action=RuleAction.DROP,
            )
        )
        port = world.objects.get(Port, world.ports[vm2.name])
        world.objects.update(port.record.replace(outbound_chain_id=chain.id))
        time.sleep(1.0)
        assert ping(vm1, vm2.ip, count=3).returncode != 0, "an adopted flow outlived the change"
        for _, host_id in world.hosts:
            assert world.store.get(alive_key(host_id)) is not None
    finally:
        world.store.close()
