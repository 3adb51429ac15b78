"""Routers across three hosts, tenant isolation, changes while traffic flows, agent restarts."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from tenet.model import Chain, Condition, Port, PortBinding, Rule, RuleAction
from tenet.store.keys import MACS, alive_key

from .netns import Lab, Vm, netns_exec
from .topo import World, listening, one_bridge_two_hosts, ping, wait_for

pytestmark = [
    pytest.mark.integration,
    pytest.mark.parametrize("datapath", ["userspace", "kernel"], indirect=True),
]


def ttls(output: str) -> set[int]:
    return {int(t) for t in re.findall(r"ttl=(\d+)", output)}


def test_a_router_joins_two_subnets_across_three_hosts(lab: Lab, tmp_path: Path) -> None:
    world = World(lab, tmp_path / "store.db")
    try:
        world.add_hosts(3)
        acme = world.tenant("acme")
        front, back = world.bridge(acme, "front"), world.bridge(acme, "back")
        world.router(
            acme,
            "r1",
            {
                "r1-front": (front, "10.0.0.1/24", "02:00:00:00:01:01"),
                "r1-back": (back, "10.0.1.1/24", "02:00:00:00:01:02"),
            },
        )
        vm1 = world.vm(acme, front, 0, "02:00:00:00:00:11", "10.0.0.11/24", "10.0.0.1")
        vm2 = world.vm(acme, back, 1, "02:00:00:00:00:21", "10.0.1.21/24", "10.0.1.1")
        vm3 = world.vm(acme, back, 2, "02:00:00:00:00:22", "10.0.1.22/24", "10.0.1.1")
        world.start_agents()
        to_gateway = ping(vm1, "10.0.0.1")
        assert to_gateway.returncode == 0, to_gateway.stdout + to_gateway.stderr
        assert ttls(to_gateway.stdout) == {64}  # answered by the router itself
        for target in (vm2, vm3):
            across = ping(vm1, target.ip)
            assert across.returncode == 0, across.stdout + across.stderr
            assert ttls(across.stdout) == {63}  # one router crossed: TTL decremented once
        back_again = ping(vm3, vm1.ip)
        assert back_again.returncode == 0, back_again.stdout
        # a TTL that runs out at the router, on the flow the pings above set up (ICMP
        # echo: the same key but for the TTL): the flow holds only above its TTL floor,
        # so this one goes to the agent and the router answers
        expiring = ping(vm1, vm2.ip, count=1, ttl=1)
        assert "From 10.0.0.1 icmp_seq=1 Time to live exceeded" in expiring.stdout, expiring.stdout
        # TCP across the router and hosts: MAC rewrites and TTL decrement on every
        # segment (with the kernel datapath, on segmentation-offloaded ones too)
        assert transfer(vm1, vm2, 4 * 1024 * 1024) == 4 * 1024 * 1024
    finally:
        world.store.close()


SINK = """
    import socket
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", 5003)); srv.listen(1)
    print("listening", flush=True)
    conn, _ = srv.accept()
    total = 0
    while chunk := conn.recv(1 << 16):
        total += len(chunk)
    print(total, flush=True)
"""

SEND = """
    import socket, sys
    sock = socket.create_connection((sys.argv[1], 5003), timeout=30)
    sock.sendall(b"x" * int(sys.argv[2]))
    sock.close()
"""


def transfer(src: Vm, dst: Vm, size: int) -> int:
    """How many of ``size`` bytes sent over TCP from ``src`` arrived at ``dst``."""
    sink = listening(dst, SINK)
    try:
        sent = subprocess.run(
            netns_exec(src.ns, sys.executable, "-c", textwrap.dedent(SEND), dst.ip, str(size)),
            check=False,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert sent.returncode == 0, sent.stderr
        out, _ = sink.communicate(timeout=60)
        return int(out.strip())
    finally:
        if sink.poll() is None:
            sink.kill()
            sink.communicate()


CAPTURE = """
    import socket, sys, time
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
    sock.bind(("eth0", 0))
    sock.settimeout(0.2)
    foreign = {bytes.fromhex(m.replace(":", "")) for m in sys.argv[2:]}
    print("capturing", flush=True)
    seen = 0
    end = time.monotonic() + float(sys.argv[1])
    while time.monotonic() < end:
        try:
            frame = sock.recv(2048)
        except TimeoutError:
            continue
        if frame[6:12] in foreign:
            seen += 1
    print(seen, flush=True)
"""


def test_tenants_with_overlapping_addresses_never_see_each_other(lab: Lab, tmp_path: Path) -> None:
    world = World(lab, tmp_path / "store.db")
    try:
        world.add_hosts(2)
        a, b = world.tenant("acme"), world.tenant("globex")
        net_a, net_b = world.bridge(a, "a-net"), world.bridge(b, "b-net")
        a1 = world.vm(a, net_a, 0, "02:00:00:00:0a:01", "10.0.0.1/24")
        a2 = world.vm(a, net_a, 1, "02:00:00:00:0a:02", "10.0.0.2/24")
        b1 = world.vm(b, net_b, 0, "02:00:00:00:0b:01", "10.0.0.1/24")
        b2 = world.vm(b, net_b, 1, "02:00:00:00:0b:02", "10.0.0.2/24")
        world.start_agents()
        capture = subprocess.Popen(
            netns_exec(b2.ns, sys.executable, "-c", textwrap.dedent(CAPTURE), "4", a1.mac, a2.mac),
            stdout=subprocess.PIPE,
            text=True,
        )
        assert capture.stdout is not None
        assert capture.stdout.readline().strip() == "capturing"
        for src, dst in ((a1, a2), (b1, b2), (a2, a1)):
            result = ping(src, dst.ip, count=5, interval=0.1)
            assert result.returncode == 0, result.stdout + result.stderr
        # a broadcast from tenant A (an ARP for an address nobody has) stays in A
        ping(a1, "10.0.0.99", count=2, interval=0.2)
        out, _ = capture.communicate(timeout=30)
        assert int(out.strip()) == 0, "a tenant B VM saw tenant A's frames"
    finally:
        world.store.close()


def test_changes_stop_affected_flows_within_a_second(lab: Lab, tmp_path: Path) -> None:
    world = World(lab, tmp_path / "store.db")
    try:
        acme, net, (vm1, vm2) = one_bridge_two_hosts(world)
        vm3 = world.vm(acme, net, 1, "02:00:00:00:00:03", "10.0.0.3/24")
        world.start_agents()
        for vm in (vm2, vm3):
            assert ping(vm1, vm.ip).returncode == 0
        # a drop rule for ICMP on vm2's port: vm2 goes silent, vm3 does not
        chain = world.objects.create(Chain(tenant_id=acme.id, name="no-icmp")).record
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
        assert ping(vm1, vm2.ip, count=3).returncode != 0, "the drop rule did not take"
        assert ping(vm1, vm3.ip).returncode == 0, "an unaffected flow stopped"
        # unbind vm3's port: its traffic stops too
        (binding,) = world.objects.list(PortBinding, port_id=world.ports[vm3.name])
        world.objects.delete(PortBinding, binding.record.id)
        time.sleep(1.0)
        assert ping(vm1, vm3.ip, count=3).returncode != 0, "an unbound port still answers"
    finally:
        world.store.close()


def test_a_killed_agent_resyncs_and_traffic_resumes(lab: Lab, tmp_path: Path) -> None:
    world = World(lab, tmp_path / "store.db")
    try:
        _, _, (vm1, vm2) = one_bridge_two_hosts(world)
        world.start_agents()
        assert ping(vm1, vm2.ip).returncode == 0
        victim = lab.agents[0]
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)
        ns, host_id = world.hosts[0]
        lab.started(lab.run_agent(ns, str(host_id), world.path, lab.addresses[ns]))
        wait_for("traffic", lambda: ping(vm1, vm2.ip, count=1).returncode == 0, timeout=30)
        assert world.store.get(alive_key(host_id)) is not None
        # learned MAC entries name ports that exist, on the bridge they were learned on
        entries = world.store.list(MACS).items
        assert entries, "no MAC was learned"
        for kv in entries:
            bridge_id = kv.key.removeprefix(MACS).split("/")[0]
            port = world.objects.get(Port, uuid.UUID(kv.value.decode())).record
            assert str(port.device_id) == bridge_id
    finally:
        world.store.close()


INJECT = """
    import socket, sys
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    sock.bind(("eth0", 0))
    src = bytes.fromhex(sys.argv[1].replace(":", ""))
    bad = [
        b"\\xff" * 6 + src + b"\\x86\\xdd" + bytes(10),          # IPv6 header cut short
        b"\\xff" * 6 + src + b"\\x08\\x00" + b"\\x45\\x00",      # IPv4 header cut short
        b"\\xff" * 6 + src + b"\\x08\\x00" + b"\\x4f" + bytes(40),  # IHL past the end
        b"\\xff" * 6 + src + b"\\x08\\x06" + bytes(10),          # ARP cut short
    ]
    for _ in range(25):
        for frame in bad:
            sock.send(frame)
    sock.close()
"""


def test_malformed_frames_are_counted_and_the_agent_keeps_running(lab: Lab, tmp_path: Path) -> None:
    world = World(lab, tmp_path / "store.db")
    try:
        _, _, (vm1, vm2) = one_bridge_two_hosts(world)
        world.start_agents()
        subprocess.run(
            netns_exec(vm1.ns, sys.executable, "-c", textwrap.dedent(INJECT), vm1.mac),
            check=True,
            timeout=30,
        )
        wait_for("the malformed count", lambda: world.stats(0)["malformed"] >= 100, timeout=10)
        assert lab.agents[0].poll() is None, "the agent died"
        assert ping(vm1, vm2.ip).returncode == 0
    finally:
        world.store.close()
