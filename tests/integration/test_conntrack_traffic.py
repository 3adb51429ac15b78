"""Connection tracking with real packets, both datapaths: replies pass a "replies
only" policy, new inbound connections do not, the state reaches the reply's host
before the reply, a policy change cuts a connection both ways, an agent killed
mid-transfer keeps its connections, ICMP errors are related, connections expire.

The policies are rule chains on the VMs' ports, as a security group compiles to:
to the VM (the port's outbound chain), replies and what a rule allows, else drop;
from the VM (the port's inbound chain), ask the connection state and go on (the
ask is what makes the connection tracked).
"""

from __future__ import annotations

import ipaddress
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tenet.model import (
    Chain,
    Condition,
    CtState,
    Port,
    PortRange,
    Route,
    Rule,
    RuleAction,
    Tenant,
)

from .netns import Lab, Vm, netns_exec
from .topo import World, listening, one_bridge_two_hosts, ping, wait_for

pytestmark = [
    pytest.mark.integration,
    pytest.mark.parametrize("datapath", ["userspace", "kernel"], indirect=True),
]


def guard(world: World, tenant: Tenant, vm: Vm, allow_tcp: tuple[int, ...] = ()) -> list[Rule]:
    """Replies-only toward ``vm`` (plus TCP ``allow_tcp``), every connection it opens
    tracked; returns the allow rules."""
    o = world.objects
    into = o.create(Chain(tenant_id=tenant.id, name=f"to-{vm.name}")).record
    o.create(Rule(tenant_id=tenant.id, chain_id=into.id, name="replies",
                  condition=Condition(ct_state=CtState.RETURN)))  # fmt: skip
    allows = [
        o.create(Rule(tenant_id=tenant.id, chain_id=into.id, name=f"tcp-{p}",
                      condition=Condition(nw_proto=6, tp_dst=PortRange(start=p, end=p)))).record
        for p in allow_tcp
    ]  # fmt: skip
    o.create(Rule(tenant_id=tenant.id, chain_id=into.id, name="deny", action=RuleAction.DROP))
    out = o.create(Chain(tenant_id=tenant.id, name=f"from-{vm.name}")).record
    track = Condition(ct_state=CtState.RETURN)
    o.create(Rule(tenant_id=tenant.id, chain_id=out.id, name="track", condition=track,
                  action=RuleAction.CONTINUE))  # fmt: skip
    port = o.get(Port, world.ports[vm.name]).record
    o.update(port.replace(outbound_chain_id=into.id, inbound_chain_id=out.id))
    return allows


def stop(*procs: subprocess.Popen[str]) -> None:
    for proc in procs:
        proc.kill()
        proc.communicate(timeout=10)  # reaped, its pipe closed


def total(world: World, name: str) -> int:
    return sum(world.stats(n).get(name, 0) for n in range(len(world.hosts)))


def settle(world: World) -> None:
    for n in range(len(world.hosts)):
        wait_for("counters", lambda n=n: "state_sent" in world.stats(n), timeout=15)


TCP_SERVER = """
    import socket, sys
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", int(sys.argv[1]))); srv.listen(4)
    print("listening", flush=True)
    while True:
        conn, _ = srv.accept()
        conn.sendall(b"hello\\n")
        conn.close()
"""

TCP_CLIENT = """
    import socket, sys
    try:
        sock = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)
        print(sock.recv(16).decode().strip())
    except OSError as exc:
        print(type(exc).__name__)
"""

UDP_ECHO = """
    import socket, sys
    srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    srv.bind(("0.0.0.0", int(sys.argv[1])))
    print("listening", flush=True)
    while True:
        data, peer = srv.recvfrom(2048)
        srv.sendto(data, peer)
"""

UDP_CLIENT = """
    import socket, sys
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(3)
    sock.connect((sys.argv[1], int(sys.argv[2])))
    try:
        sock.send(b"ping")
        print(sock.recv(64).decode())
    except OSError as exc:
        print(type(exc).__name__)
"""


def run(vm: Vm, code: str, *args: str) -> str:
    done = subprocess.run(
        netns_exec(vm.ns, sys.executable, "-c", textwrap.dedent(code), *args),
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    return done.stdout.strip() or done.stderr.strip()


def test_replies_pass_and_new_inbound_connections_do_not(lab: Lab, tmp_path: Path) -> None:
    world = World(lab, tmp_path / "store.db")
    try:
        acme, _, (vm1, vm2) = one_bridge_two_hosts(world)
        guard(world, acme, vm1)
        world.start_agents()
        servers = [listening(vm2, TCP_SERVER, "7000"), listening(vm2, UDP_ECHO, "7001")]
        servers += [listening(vm1, TCP_SERVER, "7000")]
        try:
            # vm1's own connections get their replies although inbound is default-deny
            assert ping(vm1, vm2.ip).returncode == 0
            assert run(vm1, TCP_CLIENT, vm2.ip, "7000") == "hello"
            assert run(vm1, UDP_CLIENT, vm2.ip, "7001") == "ping"
            # nothing vm2 starts reaches vm1
            assert ping(vm2, vm1.ip, count=2).returncode != 0
            assert run(vm2, TCP_CLIENT, vm1.ip, "7000") in ("TimeoutError", "timeout")
            settle(world)
            # ping, TCP, UDP: one message each at least, received before any reply
            wait_for("state sent and received", lambda: total(world, "state_received") >= 3)
            assert total(world, "state_sent") >= 3
            assert total(world, "state_late") == 0
            assert total(world, "state_rejected") == 0
            assert total(world, "state_malformed") == 0
        finally:
            stop(*servers)
    finally:
        world.store.close()


def test_a_udp_port_unreachable_is_related_and_reaches_the_client(lab: Lab, tmp_path: Path) -> None:
    world = World(lab, tmp_path / "store.db")
    try:
        acme, _, (vm1, vm2) = one_bridge_two_hosts(world)
        guard(world, acme, vm1)
        world.start_agents()
        assert ping(vm1, vm2.ip).returncode == 0
        # nothing listens on vm2's port 7999: its kernel answers ICMP port unreachable,
        # which passes vm1's replies-only policy as related to vm1's query
        assert run(vm1, UDP_CLIENT, vm2.ip, "7999") == "ConnectionRefusedError"
    finally:
        world.store.close()


EXCHANGE = """
    import socket, sys, threading, time
    def exchange(sock, byte, seconds):
        # send 1 KiB every 10 ms (on through an outage: a full buffer times out, and
        # that is all) and print the bytes received so far, stamped, for ``seconds``
        sock.settimeout(0.2)
        def send():
            while True:
                try:
                    sock.sendall(byte * 1024)
                except socket.timeout:
                    continue
                except OSError:
                    return
                time.sleep(0.01)
        threading.Thread(target=send, daemon=True).start()
        got, start = 0, time.monotonic()
        while time.monotonic() - start < seconds:
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                chunk = b"."
            if not chunk:
                break
            if chunk != b".":
                got += len(chunk)
            print(f"{time.monotonic():.3f} {got}", flush=True)
"""

STREAM_SERVER = (
    EXCHANGE
    + """
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", int(sys.argv[1]))); srv.listen(1)
    print("listening", flush=True)
    exchange(srv.accept()[0], b"s", float(sys.argv[2]))
"""
)

STREAM_CLIENT = (
    EXCHANGE
    + """
    exchange(socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5), b"c",
             float(sys.argv[3]))
"""
)


def last_count(lines: list[str], before: float) -> int:
    count = 0
    for line in lines:
        stamp, value = line.split()
        if float(stamp) <= before:
            count = int(value)
    return count


def test_removing_the_rule_that_allowed_a_connection_cuts_it_both_ways(
    lab: Lab, tmp_path: Path
) -> None:
    world = World(lab, tmp_path / "store.db")
    try:
        acme, _, (vm1, vm2, vm3) = one_bridge_two_hosts(world, vms=3)  # vm3 on vm1's host
        (allow,) = guard(world, acme, vm1, allow_tcp=(7100,))
        guard(world, acme, vm2)
        world.start_agents()
        assert ping(vm2, vm1.ip, count=1).returncode != 0
        server = listening(vm1, STREAM_SERVER, "7100", "8")
        client = subprocess.Popen(
            netns_exec(vm2.ns, sys.executable, "-c", textwrap.dedent(STREAM_CLIENT),
                       vm1.ip, "7100", "8"),
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        other = listening(vm3, TCP_SERVER, "7000")
        try:
            time.sleep(2.0)
            cut = time.monotonic()
            world.objects.delete(Rule, allow.id)
            time.sleep(1.0)
            # a connection the policy still allows keeps working
            assert run(vm1, TCP_CLIENT, vm3.ip, "7000") == "hello"
            server_out, _ = server.communicate(timeout=30)
            client_out, _ = client.communicate(timeout=30)
        finally:
            stop(server, client, other)
        s_lines, c_lines = server_out.split("\n")[:-1], client_out.split("\n")[:-1]
        # both directions flowed before, and stopped within a second of the change
        assert last_count(s_lines, cut) > 10_000
        assert last_count(c_lines, cut) > 10_000
        assert last_count(s_lines, cut + 60) - last_count(s_lines, cut + 1.0) == 0
        assert last_count(c_lines, cut + 60) - last_count(c_lines, cut + 1.0) == 0
    finally:
        world.store.close()


@pytest.mark.parametrize("victim", [0, 1])
def test_an_agent_killed_mid_transfer_keeps_its_connections(
    lab: Lab, tmp_path: Path, victim: int
) -> None:
    """SIGKILL of the agent on the server's (0) or the client's (1) host during a
    10 s transfer: it completes, and the connection is still accepted afterwards."""
    lab.log_dir = tmp_path
    world = World(lab, tmp_path / "store.db")
    try:
        acme, _, (vm1, vm2) = one_bridge_two_hosts(world)
        guard(world, acme, vm1, allow_tcp=(7100,))
        guard(world, acme, vm2)
        world.start_agents()
        server = listening(vm1, STREAM_SERVER, "7100", "10")
        client = subprocess.Popen(
            netns_exec(vm2.ns, sys.executable, "-c", textwrap.dedent(STREAM_CLIENT),
                       vm1.ip, "7100", "10"),
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            time.sleep(2.5)  # established, and saved to the state file (every change)
            agent = lab.agents[victim]
            agent.send_signal(signal.SIGKILL)
            agent.wait(timeout=10)
            time.sleep(1.0)
            ns, host_id = world.hosts[victim]
            restarted = lab.run_agent(ns, str(host_id), world.path, lab.addresses[ns])
            lab.started(restarted)
            server_out, _ = server.communicate(timeout=40)
            client_out, _ = client.communicate(timeout=40)
        finally:
            stop(server, client)
        s_lines, c_lines = server_out.split("\n")[:-1], client_out.split("\n")[:-1]
        end = float(s_lines[-1].split()[0])
        # data still flowed both ways in the last seconds, after the restart
        assert last_count(s_lines, end) - last_count(s_lines, end - 2.0) > 0
        assert last_count(c_lines, end) - last_count(c_lines, end - 2.0) > 0
        wait_for("counters", lambda: "ct_restored" in world.stats(victim), timeout=15)
        assert world.stats(victim)["ct_restored"] >= 1
    finally:
        world.store.close()


FORGED_REPLY = """
    import socket, sys, time
    # the client: a query from a fixed port (unless told "listen"), then any reply on it
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("0.0.0.0", 40123))
    sock.settimeout(float(sys.argv[3]))
    if sys.argv[1] != "listen":
        sock.sendto(b"q", (sys.argv[1], int(sys.argv[2])))
    else:
        print("listening", flush=True)
    try:
        print(sock.recvfrom(64)[0].decode())
    except socket.timeout:
        print("nothing")
"""

LATE_SENDER = """
    import socket, sys
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("0.0.0.0", int(sys.argv[2])))
    sock.sendto(b"late", (sys.argv[1], 40123))
"""


def test_a_reply_after_the_connection_expired_is_dropped(lab: Lab, tmp_path: Path) -> None:
    lab.agent_args = ["--ct-timeout", "udp=2", "--ct-timeout", "tcp_closing=2"]
    world = World(lab, tmp_path / "store.db")
    try:
        acme, _, (vm1, vm2) = one_bridge_two_hosts(world)
        guard(world, acme, vm1)
        world.start_agents()
        echo = listening(vm2, UDP_ECHO, "7001")
        try:
            assert run(vm1, FORGED_REPLY, vm2.ip, "7001", "3") == "q"  # the reply passes
            # a TCP connection, closed: forgotten too
            tcp = listening(vm2, TCP_SERVER, "7000")
            assert run(vm1, TCP_CLIENT, vm2.ip, "7000") == "hello"
            settle(world)
            wait_for("connections tracked", lambda: total(world, "ct_committed") >= 2)
            wait_for("connections forgotten", lambda: total(world, "ct_entries") == 0, 30)
            # on the reply's host too, by a counter that moved (not a snapshot taken
            # before the state arrived there)
            wait_for(
                "forgotten where the replies enter",
                lambda: (
                    world.stats(1)["ct_expired"] + world.stats(1)["ct_deleted"] >= 1
                    and world.stats(1)["ct_entries"] == 0
                ),
                30,
            )
            assert total(world, "ct_expired") >= 2, [world.stats(n) for n in (0, 1)]
            # a "reply" from the old server port, after the connection is gone
            stop(tcp, echo)
            listener = listening(vm1, FORGED_REPLY, "listen", "0", "3")
            run(vm2, LATE_SENDER, vm1.ip, "7001")
            out, _ = listener.communicate(timeout=10)
            assert out.strip() == "nothing"
        finally:
            stop(echo)
    finally:
        world.store.close()


def test_three_hosts_two_routers_replies_only_as_return_traffic(lab: Lab, tmp_path: Path) -> None:
    """vm1 (front, host 0) - r1 - vm2 (middle, host 1) - r2 - vm3 (back, host 2), each
    replies-only but for TCP 7000: for 10 s every VM fetches from every other VM; all
    fetches work, the state of each reached the reply's host before the reply (no
    flow was ever found simulated without it), and no port but 7000 opens inbound."""
    lab.log_dir = tmp_path
    world = World(lab, tmp_path / "store.db")
    try:
        world.add_hosts(3)
        acme = world.tenant("acme")
        front, middle, back = (world.bridge(acme, n) for n in ("front", "middle", "back"))
        r1 = world.router(acme, "r1", {
            "r1-front": (front, "10.0.0.1/24", "02:00:00:00:01:01"),
            "r1-middle": (middle, "10.0.1.1/24", "02:00:00:00:01:02"),
        })  # fmt: skip
        r2 = world.router(acme, "r2", {
            "r2-middle": (middle, "10.0.1.2/24", "02:00:00:00:02:01"),
            "r2-back": (back, "10.0.2.1/24", "02:00:00:00:02:02"),
        })  # fmt: skip
        for router, dst, port, gateway in (
            (r1, "10.0.2.0/24", "r1-middle", "10.0.1.2"),
            (r2, "10.0.0.0/24", "r2-middle", "10.0.1.1"),
        ):
            world.objects.create(Route(
                tenant_id=acme.id, router_id=router.id, dst=ipaddress.ip_network(dst),
                next_hop_port_id=world.ports[port], next_hop_gateway=ipaddress.ip_address(gateway),
            ))  # fmt: skip
        vm1 = world.vm(acme, front, 0, "02:00:00:00:00:11", "10.0.0.11/24", "10.0.0.1")
        vm2 = world.vm(acme, middle, 1, "02:00:00:00:00:21", "10.0.1.21/24", "10.0.1.1")
        vm3 = world.vm(acme, back, 2, "02:00:00:00:00:31", "10.0.2.31/24", "10.0.2.1")
        subprocess.run(netns_exec(vm2.ns, "ip", "route", "add", "10.0.2.0/24", "via", "10.0.1.2"),
                       check=True)  # fmt: skip
        vms = (vm1, vm2, vm3)
        for vm in vms:
            guard(world, acme, vm, allow_tcp=(7000,))
        world.start_agents()
        servers = [listening(vm, TCP_SERVER, "7000") for vm in vms]
        servers += [listening(vm, UDP_ECHO, "7001") for vm in vms]
        try:
            fetches = 0
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                for client in vms:
                    for server in vms:
                        if client is not server:
                            assert run(client, TCP_CLIENT, server.ip, "7000") == "hello"
                            fetches += 1
            # UDP 7001 is not allowed inbound: a new flow there gets nothing back
            for client in vms:
                for server in vms:
                    if client is not server:
                        assert run(client, UDP_CLIENT, server.ip, "7001") == "TimeoutError"
            settle(world)
            wait_for("state received", lambda: total(world, "state_received") >= fetches)
            assert total(world, "state_late") == 0
            assert total(world, "state_rejected") + total(world, "state_malformed") == 0
        finally:
            stop(*servers)
    finally:
        world.store.close()
