"""Real packets through agents, against the physical limit measured in the same run (root).

Builds two hosts on an underlay with one VM on each (the integration tests' lab),
runs one agent per host with the datapath asked for, and measures:

* ping RTT: the first packet (simulated, flow installed) against later ones
  (fast path), p50 and p99;
* flow setup: UDP packets from new source ports (each a new flow, so an upcall
  and a simulation or a megaflow hit), new flows per second that arrive;
* TCP throughput and small-packet (18-byte payload) UDP packets per second VM to
  VM across the hosts, and the upcalls the TCP transfer caused;
* the agents' footprint: RSS and CPU at idle and under the flow-setup load.

Baselines, on the same machine in the same run, with no tenet at all:

* ``kernel VXLAN``: the same layout (VM namespaces on two host namespaces on an
  underlay bridge), with each host bridging its VM's veth to a kernel VXLAN
  device: the physical limit of a tunnelled path here (PLATFORM.md);
* ``veth``: two namespaces joined by one veth pair, the floor of any path.

Run: ``.venv/bin/python -m benchmarks.bench_agent [--quick] [--datapath D ...]``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.integration.netns import Lab, Vm, netns_exec, sh
from tests.integration.topo import World

from tenet.model import Port, SecurityGroup, SecurityGroupRule, Tenant, from_dict

SERVER = """
    import socket, sys, time
    srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", 5001)); srv.listen(1); print("ready", flush=True)
    conn, _ = srv.accept(); total = 0; start = None
    while chunk := conn.recv(1 << 18):
        start = start or time.monotonic(); total += len(chunk)
    print(total, time.monotonic() - start, flush=True)
"""
CLIENT = """
    import socket, sys, time
    sock = socket.create_connection((sys.argv[1], 5001)); data = b"x" * (1 << 18)
    end = time.monotonic() + float(sys.argv[2])
    while time.monotonic() < end:
        sock.sendall(data)
    sock.close()
"""
UDP_SINK = """
    import selectors, socket, sys, time
    sel = selectors.DefaultSelector()
    for port in range(6000, 6010):  # the new-flow source moves to the next one every 50k
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", port))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 24); s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
    print("ready", flush=True); n = 0; first = last = 0.0
    while True:
        ready = sel.select(timeout=1.0)
        if not ready and n:
            break
        for key, _ in ready:
            while True:
                try:
                    key.fileobj.recv(64)
                except BlockingIOError:
                    break
                n += 1; last = time.monotonic(); first = first or last
    print(n, last - first, flush=True)
"""
NEW_FLOWS = """
    import socket, sys, time
    end = time.monotonic() + float(sys.argv[2]); n = 0
    while time.monotonic() < end:  # every packet a new flow: (source port, destination port)
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("0.0.0.0", 10000 + n % 50000))
        s.sendto(b"x", (sys.argv[1], 6000 + n // 50000 % 10)); s.close()
        n += 1
    print(n, flush=True)
"""
ONE_FLOW = """
    import socket, sys, time
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", 9999))
    s.connect((sys.argv[1], 6000)); data = b"x" * 18
    end = time.monotonic() + float(sys.argv[2]); n = 0
    while time.monotonic() < end:
        for _ in range(100):
            try:
                s.send(data); n += 1
            except OSError:
                pass
    print(n, flush=True)
"""


def _python(ns: str, code: str, *args: str) -> list[str]:
    return netns_exec(ns, sys.executable, "-c", textwrap.dedent(code), *args)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def rtts(ns: str, address: str, count: int) -> list[float]:
    out = sh(*netns_exec(ns, "ping", "-c", str(count), "-i", "0.02", address), timeout=60).stdout
    return [float(x) for x in re.findall(r"time=([\d.]+) ms", out)]


def first_packets(ns: str, address: str, count: int) -> list[float]:
    """RTTs of first packets: each ping with a TOS not sent before (up to 63 of them), so
    a new flow both ways (the TOS is part of the match, and the echo reply carries the
    request's): an upcall on the way there and one on the way back. (Not the TTL: the
    kernel datapath's flows hold for any TTL above the routers' floor.)"""
    out = []
    for n in range(count):
        cmd = netns_exec(ns, "ping", "-c", "1", "-Q", str(4 * (1 + n % 63)), address)
        out += [float(x) for x in re.findall(r"time=([\d.]+) ms", sh(*cmd, timeout=30).stdout)]
    return out


def tcp(server_ns: str, client_ns: str, address: str, seconds: float) -> float:
    """TCP Gbit/s from client to server: iperf3 if it is installed, else a Python pair."""
    if shutil.which("iperf3"):
        server = subprocess.Popen(
            netns_exec(server_ns, "iperf3", "-s", "-1", "-p", "5201"),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            for _ in range(50):  # until it listens
                probe = sh(*netns_exec(server_ns, "ss", "-Htln", "sport = :5201"), check=False)
                if probe.stdout.strip():
                    break
                time.sleep(0.05)
            out = sh(
                *netns_exec(
                    client_ns, "iperf3", "-c", address, "-p", "5201", "-t", str(seconds), "-J"
                ),
                timeout=seconds + 30,
            ).stdout
        finally:
            server.wait(timeout=30)
        return float(json.loads(out)["end"]["sum_received"]["bits_per_second"]) / 1e9
    server = subprocess.Popen(_python(server_ns, SERVER), stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None
    server.stdout.readline()
    sh(*_python(client_ns, CLIENT, address, str(seconds)), timeout=seconds + 30)
    total, elapsed = server.communicate(timeout=30)[0].split()
    return int(total) * 8 / float(elapsed) / 1e9


def udp_rate(
    server_ns: str, client_ns: str, address: str, seconds: float, code: str
) -> dict[str, float]:
    sink = subprocess.Popen(_python(server_ns, UDP_SINK), stdout=subprocess.PIPE, text=True)
    assert sink.stdout is not None
    sink.stdout.readline()
    start = time.monotonic()
    sent = int(sh(*_python(client_ns, code, address, str(seconds)), timeout=seconds + 30).stdout)
    elapsed = time.monotonic() - start
    received, span = sink.communicate(timeout=30)[0].split()
    return {
        "sent": sent,
        "received": int(received),
        "seconds": elapsed,
        "received_per_s": int(received) / seconds,  # over the time the sender sent
        "receiving_seconds": float(span),
    }


# -- footprint -------------------------------------------------------------------------


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def cpu_meter(pids: list[int]) -> Iterator[dict[str, float]]:
    """CPU use of ``pids`` (percent of one core, summed) over the ``with`` block."""
    out: dict[str, float] = {}
    before, start = sum(cpu_seconds(p) for p in pids), time.monotonic()
    yield out
    out["cpu_percent"] = (
        100 * (sum(cpu_seconds(p) for p in pids) - before) / (time.monotonic() - start)
    )


# -- tenet -----------------------------------------------------------------------------------


def upcalls(world: World) -> int:
    return sum(world.stats(n)["upcalls"] for n in range(len(world.hosts)))


def guard(world: World, tenant: Tenant, vms: list[Vm]) -> None:
    """A stateful security group on ``vms`` letting TCP, UDP and ICMP in: every packet
    is looked up, every new connection committed and sent to the peer host."""
    o = world.objects
    group = o.create(SecurityGroup(tenant_id=tenant.id, name="bench")).record
    for protocol in ("tcp", "udp", "icmp"):
        body = {"tenant_id": str(tenant.id), "security_group_id": str(group.id),
                "direction": "ingress", "protocol": protocol}  # fmt: skip
        o.create(from_dict(SecurityGroupRule, body))
    for vm in vms:
        port = o.get(Port, world.ports[vm.name]).record
        o.update(port.replace(security_group_ids=(group.id,)))


def settle(world: World, quiet: float = 1.5, longest: float = 30.0) -> None:
    """Until the agents' upcall counters stand still for ``quiet`` seconds (their stats
    are published every second), at most ``longest``."""
    deadline = time.monotonic() + longest
    last, since = upcalls(world), time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - since < quiet:
        time.sleep(0.5)
        now = upcalls(world)
        if now != last:
            last, since = now, time.monotonic()


def run_tenet(
    datapath: str, seconds: float, progress: bool = True, *, stateful: bool = False
) -> dict[str, object]:
    """The datapath figures; ``stateful``: both VMs behind a stateful security group."""
    lab = Lab(datapath=datapath)
    lab.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            world = World(lab, Path(tmp) / "store.db")
            world.add_hosts(2)
            acme = world.tenant("bench")
            net = world.bridge(acme, "net")
            vm1 = world.vm(acme, net, 0, "02:00:00:00:00:01", "10.0.0.1/24")
            vm2 = world.vm(acme, net, 1, "02:00:00:00:00:02", "10.0.0.2/24")
            if stateful:
                guard(world, acme, [vm1, vm2])
            world.start_agents()
            pids = [p.pid for p in lab.agents]
            say = print if progress else (lambda *_: None)
            say(f"  [{datapath}] ping", file=sys.stderr)
            firsts = first_packets(vm1.ns, vm2.ip, 10)
            later = rtts(vm1.ns, vm2.ip, 50 if seconds < 5 else 200)[1:]
            with cpu_meter(pids) as idle:
                time.sleep(min(seconds, 2.0))
            idle_rss = sum(rss_mb(p) for p in pids)
            say(f"  [{datapath}] flow setup", file=sys.stderr)
            before = upcalls(world)
            with cpu_meter(pids) as loaded:
                setup = udp_rate(vm2.ns, vm1.ns, vm2.ip, seconds, NEW_FLOWS)
            loaded_rss = sum(rss_mb(p) for p in pids)
            time.sleep(1.2)  # counters are published every second
            setup["upcalls_per_s"] = (upcalls(world) - before) / setup["seconds"]
            settle(world)  # the flow-setup load's upcalls are drained before TCP counts them
            say(f"  [{datapath}] TCP", file=sys.stderr)
            before = upcalls(world)
            hits_before = sum(world.stats(n).get("kernel_hits", 0) for n in (0, 1))
            gbit = tcp(vm2.ns, vm1.ns, vm2.ip, seconds * 2)
            time.sleep(1.2)
            tcp_upcalls = upcalls(world) - before
            kernel_hits = sum(world.stats(n).get("kernel_hits", 0) for n in (0, 1)) - hits_before
            say(f"  [{datapath}] small UDP packets", file=sys.stderr)
            small = udp_rate(vm2.ns, vm1.ns, vm2.ip, seconds, ONE_FLOW)
            world.store.close()
    finally:
        lab.close()
    return {
        "datapath": datapath,
        "stateful": stateful,
        "ping_first_ms": {"p50": statistics.median(firsts), "p99": percentile(firsts, 99)},
        "ping_later_ms": {"p50": statistics.median(later), "p99": percentile(later, 99)},
        "flow_setup": setup,
        "tcp_gbit_s": gbit,
        "tcp_seconds": seconds * 2,
        "tcp_upcalls": tcp_upcalls,
        "tcp_kernel_hits": kernel_hits,
        "udp_small": small,
        "agents": {
            "count": len(pids),
            "idle_rss_mb": idle_rss,
            "idle_cpu_percent": idle["cpu_percent"],
            "flow_setup_rss_mb": loaded_rss,
            "flow_setup_cpu_percent": loaded["cpu_percent"],
        },
    }


# -- baselines ------------------------------------------------------------------------------


def kernel_vxlan(lab: Lab) -> tuple[Vm, Vm]:
    """Two hosts' VMs joined by plain kernel VXLAN devices and Linux bridges: no tenet."""
    ns1, a1 = lab.add_host()
    ns2, a2 = lab.add_host()
    vms = []
    for n, (ns, local, remote) in enumerate(((ns1, a1, a2), (ns2, a2, a1)), start=1):
        vm = lab.add_vm(ns, f"02:00:00:00:01:0{n}", f"10.9.0.{n}/24")
        sh("ip", "-n", ns, "link", "add", "vxb", "type", "vxlan", "id", "4242", "local", str(local),
           "remote", str(remote), "dstport", "4789", "nolearning")  # fmt: skip
        sh("ip", "-n", ns, "link", "add", "br0", "type", "bridge")
        for dev in ("vxb", vm.host_if):
            sh("ip", "-n", ns, "link", "set", dev, "master", "br0", "up")
        sh("ip", "-n", ns, "link", "set", "br0", "up")
        vms.append(vm)
    return vms[0], vms[1]


def veth_pair(lab: Lab) -> tuple[str, str]:
    a, b = f"{lab.prefix}ba", f"{lab.prefix}bb"
    for ns in (a, b):
        sh("ip", "netns", "add", ns)
        lab.hosts.append(ns)  # removed with the lab
    sh("ip", "link", "add", "eth0", "netns", a, "type", "veth", "peer", "eth0", "netns", b)
    for ns, ip in ((a, "192.168.77.1/24"), (b, "192.168.77.2/24")):
        sh("ip", "-n", ns, "addr", "add", ip, "dev", "eth0")
        sh("ip", "-n", ns, "link", "set", "eth0", "up")
    return a, b


def run_baselines(seconds: float) -> dict[str, dict[str, object]]:
    lab = Lab(tx_offload=True)  # as the VMs of the kernel datapath
    lab.start()
    out: dict[str, dict[str, object]] = {}
    try:
        v1, v2 = kernel_vxlan(lab)
        a, b = veth_pair(lab)
        for name, (src, dst, address) in {
            "kernel_vxlan": (v1.ns, v2.ns, v2.ip),
            "veth": (a, b, "192.168.77.2"),
        }.items():
            print(f"  [{name}] ping, TCP, UDP", file=sys.stderr)
            later = rtts(src, address, 50 if seconds < 5 else 200)[1:]
            out[name] = {
                "ping_ms": {"p50": statistics.median(later), "p99": percentile(later, 99)},
                "tcp_gbit_s": tcp(dst, src, address, seconds * 2),
                "udp_small": udp_rate(dst, src, address, seconds, ONE_FLOW),
                "new_flows": udp_rate(dst, src, address, seconds, NEW_FLOWS),
            }
    finally:
        lab.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--datapath", action="append", choices=("userspace", "kernel"))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    seconds = 2.0 if args.quick else 5.0
    doc = {
        "baselines": run_baselines(seconds),
        "tenet": [run_tenet(d, seconds) for d in args.datapath or ("kernel", "userspace")],
    }
    text = json.dumps(doc, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
