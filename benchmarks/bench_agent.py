"""Agent benchmarks with real packets: latency, flow setup, throughput (root).

Builds two hosts on an underlay and one VM on each (the integration tests' lab),
runs one agent per host, and measures, with baselines taken in the same run:

* ping RTT: the first packet (simulated, flow installed) against the median of
  the later ones (fast path), and against a bare veth pair between two namespaces;
* flow setup: UDP packets from new source ports (each a new flow, so an upcall
  and a simulation or megaflow hit), flows per second the agent sustains;
* TCP throughput VM to VM across hosts, against the bare veth pair.

Run: ``.venv/bin/python -m benchmarks.bench_agent [--quick] [--json PATH]``.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from tests.integration.netns import Lab, netns_exec, sh
from tests.integration.topo import World

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
    import socket, sys, time
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", 6000))
    s.settimeout(1.0); print("ready", flush=True); n = 0
    while True:
        try:
            s.recv(64); n += 1
        except TimeoutError:
            if n: break
    print(n, flush=True)
"""
UDP_SOURCE = """
    import socket, sys, time
    end = time.monotonic() + float(sys.argv[2]); n = 0; port = 10000
    while time.monotonic() < end:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("0.0.0.0", port)); s.sendto(b"x", (sys.argv[1], 6000)); s.close()
        n += 1; port = 10000 + n % 50000
    print(n, flush=True)
"""


def rtts(ns: str, address: str, count: int) -> list[float]:
    out = sh(*netns_exec(ns, "ping", "-c", str(count), "-i", "0.05", address), timeout=60).stdout
    return [float(x) for x in re.findall(r"time=([\d.]+) ms", out)]


def tcp(server_ns: str, client_ns: str, address: str, seconds: float) -> float:
    server = subprocess.Popen(
        netns_exec(server_ns, sys.executable, "-c", textwrap.dedent(SERVER)),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None
    server.stdout.readline()
    sh(
        *netns_exec(
            client_ns, sys.executable, "-c", textwrap.dedent(CLIENT), address, str(seconds)
        ),
        timeout=seconds + 30,
    )
    total, elapsed = server.communicate(timeout=30)[0].split()
    return int(total) * 8 / float(elapsed) / 1e9


def flow_setup(
    world: World, src_ns: str, dst_ns: str, address: str, seconds: float
) -> dict[str, float]:
    sink = subprocess.Popen(
        netns_exec(dst_ns, sys.executable, "-c", textwrap.dedent(UDP_SINK)),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert sink.stdout is not None
    sink.stdout.readline()
    before = world.stats(0)["upcalls"]
    start = time.monotonic()
    sent = sh(
        *netns_exec(
            src_ns, sys.executable, "-c", textwrap.dedent(UDP_SOURCE), address, str(seconds)
        ),
        timeout=seconds + 30,
    ).stdout
    elapsed = time.monotonic() - start
    received = int(sink.communicate(timeout=30)[0])
    time.sleep(1.2)
    upcalls = world.stats(0)["upcalls"] - before
    return {"sent": int(sent), "received": received, "upcalls_per_s": upcalls / elapsed}


def baseline_veth(lab: Lab) -> tuple[str, str]:
    a, b = f"{lab.prefix}ba", f"{lab.prefix}bb"
    for ns in (a, b):
        sh("ip", "netns", "add", ns)
        lab.hosts.append(ns)  # removed with the lab
    sh("ip", "link", "add", "eth0", "netns", a, "type", "veth", "peer", "eth0", "netns", b)
    for ns, ip in ((a, "192.168.77.1/24"), (b, "192.168.77.2/24")):
        sh("ip", "-n", ns, "addr", "add", ip, "dev", "eth0")
        sh("ip", "-n", ns, "link", "set", "eth0", "up")
    return a, b


def run(quick: bool) -> dict[str, object]:
    seconds = 2.0 if quick else 5.0
    lab = Lab()
    lab.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            world = World(lab, Path(tmp) / "store.db")
            world.add_hosts(2)
            acme = world.tenant("bench")
            net = world.bridge(acme, "net")
            vm1 = world.vm(acme, net, 0, "02:00:00:00:00:01", "10.0.0.1/24")
            vm2 = world.vm(acme, net, 1, "02:00:00:00:00:02", "10.0.0.2/24")
            world.start_agents()
            tenet_rtt = rtts(vm1.ns, vm2.ip, 20)
            a, b = baseline_veth(lab)
            veth_rtt = rtts(a, "192.168.77.2", 20)
            setup = flow_setup(world, vm1.ns, vm2.ns, vm2.ip, seconds)
            tenet_tcp = tcp(vm2.ns, vm1.ns, vm2.ip, seconds)
            veth_tcp = tcp(b, a, "192.168.77.2", seconds)
            world.store.close()
    finally:
        lab.close()
    return {
        "machine": platform.platform(),
        "ping_first_ms": tenet_rtt[0],
        "ping_later_median_ms": statistics.median(tenet_rtt[1:]),
        "veth_ping_median_ms": statistics.median(veth_rtt[1:]),
        "flow_setup": setup,
        "tcp_gbit_s": tenet_tcp,
        "veth_tcp_gbit_s": veth_tcp,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    r = run(args.quick)
    setup = r["flow_setup"]
    assert isinstance(setup, dict)
    print(f"{'figure':<44}{'tenet':>12}{'baseline':>12}{'ratio':>8}")
    rows = [
        (
            "ping RTT, first packet (ms) vs later median",
            r["ping_first_ms"],
            r["ping_later_median_ms"],
        ),
        (
            "ping RTT, later median (ms) vs bare veth",
            r["ping_later_median_ms"],
            r["veth_ping_median_ms"],
        ),
        ("TCP VM to VM across hosts (Gbit/s) vs veth", r["tcp_gbit_s"], r["veth_tcp_gbit_s"]),
    ]
    for name, value, base in rows:
        assert isinstance(value, float)
        assert isinstance(base, float)
        print(f"{name:<44}{value:>12.3f}{base:>12.3f}{value / base:>8.2f}")
    print(
        f"new flows: {setup['upcalls_per_s']:.0f} upcalls/s handled; "
        f"{setup['received']}/{setup['sent']} UDP packets arrived"
    )
    if args.json:
        args.json.write_text(json.dumps(r, indent=2))


if __name__ == "__main__":
    main()
