"""The datapath conformance suite: every backend, real frames through real interfaces.

Each test runs a small driver inside a host namespace that opens the datapath
there, applies what the test asks (flows, tunnel ports), and reports counters and
upcalls as JSON; frames are sent and captured with AF_PACKET sockets inside the
VMs' namespaces. ``BACKENDS`` maps a backend's name to the expression that opens
it in the driver.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from ipaddress import IPv4Address, IPv6Address

import pytest

from tenet.datapath.base import STATE_VNI
from tenet.packets import (
    ARP,
    BROADCAST_MAC,
    ICMP,
    TCP,
    UDP,
    Ethernet,
    IPv4,
    IPv6,
    Packet,
    extract_match,
    mac_from_str,
)
from tenet.packets.ipv4 import header_checksum_ok
from tenet.packets.vxlan import VXLAN, VXLAN_PORT

from .netns import Lab, Vm, netns_exec

pytestmark = pytest.mark.integration

BACKENDS = {
    "userspace": "UserspaceDatapath(IPv4Address(sys.argv[1]))",
    "kernel": "KernelDatapath(IPv4Address(sys.argv[1]), name=f'conformance-{os.getpid()}')",
}
RUNNING: list[subprocess.Popen[str]] = []

DRIVER = """
    import json, os, sys, time
    from ipaddress import IPv4Address
    from tenet.datapath.base import STATE_VNI, Output, Tunnel
    from tenet.datapath.kernel import KernelDatapath
    from tenet.datapath.userspace import UserspaceDatapath
    from tenet.packets import extract_match
    from tenet.packets.actions import DecTtl, SetEthDst, SetEthSrc, SetIpDst, SetL4Dst
    dp = {open}
    plan = json.loads(sys.argv[2])
    ports = [dp.add_port(name) for name in plan["ports"]]
    for frame, actions, *loose in plan.get("flows", []):
        match = extract_match(bytes.fromhex(frame), ports[0])
        dp.install(match, eval(actions), ttl_above=loose[0] if loose else None)
    for key, index in plan.get("tunnel_ports", []):
        dp.set_tunnel_port(key, ports[index])
    print(json.dumps(ports), flush=True)
    sys.stdin.readline()
    for frame, actions in plan.get("execute", []):
        dp.execute(bytes.fromhex(frame), 0, eval(actions))
    deadline = time.monotonic() + plan.get("collect", 0)
    upcalls = []
    while time.monotonic() < deadline:
        upcalls += [
            [u.port_no, u.match.l4_src, u.match.ip_ttl, u.tunnel_key, str(u.tunnel_src),
             u.match.icmp_id, u.frame.hex()]
            for u in dp.upcalls(0.1)
        ]
    dumped = dp.dump()
    flows = [[f.packets, f.bytes] for f in dumped]
    report = {{"stats": dp.stats(), "flows": flows, "upcalls": upcalls,
              "tcp_flags": [f.tcp_flags for f in dumped],
              "icmp_ids": [f.match.icmp_id for f in dumped]}}
    print(json.dumps(report), flush=True)
    dp.close()
"""

SEND = """
    import socket, sys
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    sock.bind(("eth0", 0))
    for frame in sys.argv[1:]:
        sock.send(bytes.fromhex(frame))
    sock.close()
"""

CAPTURE = """
    import socket, sys, time
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
    sock.bind((sys.argv[3], 0)); sock.settimeout(0.1)
    marker = bytes.fromhex(sys.argv[2])
    print("ready", flush=True)
    got = []
    end = time.monotonic() + float(sys.argv[1])
    while time.monotonic() < end:
        try:
            frame = sock.recv(4096)
        except TimeoutError:
            continue
        if marker in frame:
            got.append(frame.hex())
    print(" ".join(got), flush=True)
"""


class Driver:
    """A datapath opened inside ``ns``, set up per ``plan``; ``finish`` returns its report."""

    def __init__(self, backend: str, ns: str, underlay: IPv4Address, plan: dict[str, object]):
        code = textwrap.dedent(DRIVER).format(open=BACKENDS[backend])
        self.proc = subprocess.Popen(
            netns_exec(ns, sys.executable, "-c", code, str(underlay), json.dumps(plan)),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        RUNNING.append(self.proc)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line, self.proc.stderr.read() if self.proc.stderr else "driver died"
        self.ports: list[int] = json.loads(line)

    def finish(self) -> dict[str, object]:
        out, err = self.proc.communicate("go\n", timeout=60)
        RUNNING.remove(self.proc)
        assert self.proc.returncode == 0, err
        report: dict[str, object] = json.loads(out.strip().splitlines()[-1])
        return report


def capture(
    vm: Vm | str, seconds: float, marker: bytes, ifname: str = "eth0"
) -> subprocess.Popen[str]:
    """Frames holding ``marker`` seen on ``ifname`` of a VM (or of a namespace by name)."""
    ns = vm if isinstance(vm, str) else vm.ns
    code = textwrap.dedent(CAPTURE)
    proc = subprocess.Popen(
        netns_exec(ns, sys.executable, "-c", code, str(seconds), marker.hex(), ifname),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    return proc


def captured(proc: subprocess.Popen[str]) -> list[bytes]:
    out, _ = proc.communicate(timeout=60)
    return [bytes.fromhex(h) for h in out.split()]


def send(vm: Vm, *frames: bytes) -> None:
    subprocess.run(
        netns_exec(vm.ns, sys.executable, "-c", textwrap.dedent(SEND), *(f.hex() for f in frames)),
        check=True,
        timeout=30,
    )


def udp(src: Vm, dst: Vm, marker: bytes, sport: int = 4000) -> bytes:
    eth = Ethernet(mac_from_str(dst.mac), mac_from_str(src.mac), 0x0800)
    ip = IPv4(IPv4Address(src.ip), IPv4Address(dst.ip), 17, ttl=30)
    return Packet(eth, ip, UDP(sport, 7000), marker).build()


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest) -> Iterator[str]:
    yield str(request.param)
    while RUNNING:  # a test that failed half-way: stop its drivers by PID
        proc = RUNNING.pop()
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def one_host(lab: Lab) -> tuple[str, IPv4Address, Vm, Vm]:
    ns, address = lab.add_host()
    vm1 = lab.add_vm(ns, "02:00:00:00:00:01", "10.0.0.1/24")
    vm2 = lab.add_vm(ns, "02:00:00:00:00:02", "10.0.0.2/24")
    return ns, address, vm1, vm2


def test_a_flow_rewrites_and_forwards(lab: Lab, backend: str) -> None:
    ns, address, vm1, vm2 = one_host(lab)
    frame = udp(vm1, vm2, b"conformance-rewrite")
    actions = (
        "[SetEthSrc(bytes.fromhex('0200000000aa')), SetEthDst(bytes.fromhex('020000000002')),"
        " SetIpDst(IPv4Address('10.0.0.99')), DecTtl(2), SetL4Dst(7777), Output(ports[1])]"
    )
    driver = Driver(
        backend,
        ns,
        address,
        {"ports": [vm1.host_if, vm2.host_if], "flows": [[frame.hex(), actions]]},
    )
    cap = capture(vm2, 2, b"conformance-rewrite")
    send(vm1, frame)
    (out,) = captured(cap)
    report = driver.finish()
    pkt = Packet.parse(out)
    assert pkt.eth.src == bytes.fromhex("0200000000aa")
    assert isinstance(pkt.net, IPv4)
    assert (str(pkt.net.dst), pkt.net.ttl) == ("10.0.0.99", 28)
    assert isinstance(pkt.transport, UDP)
    assert pkt.transport.dst_port == 7777
    assert header_checksum_ok(out[14:])
    assert pkt.build() == out, "the UDP checksum was not updated"
    assert report["flows"] == [[1, len(frame)]]
    if backend == "kernel":  # forwarded in the kernel, not by the Python side
        assert report["stats"]["kernel_hits"] == 1  # type: ignore[index]


def test_a_drop_flow_drops_and_counts(lab: Lab, backend: str) -> None:
    ns, address, vm1, vm2 = one_host(lab)
    frame = udp(vm1, vm2, b"conformance-drop")
    driver = Driver(
        backend, ns, address, {"ports": [vm1.host_if, vm2.host_if], "flows": [[frame.hex(), "[]"]]}
    )
    cap = capture(vm2, 1.5, b"conformance-drop")
    send(vm1, frame, frame, frame)
    assert captured(cap) == []
    report = driver.finish()
    assert report["flows"] == [[3, 3 * len(frame)]]
    if backend == "kernel":
        assert report["stats"]["kernel_hits"] == 3  # type: ignore[index]


def test_a_miss_is_one_upcall_per_packet(lab: Lab, backend: str) -> None:
    ns, address, vm1, vm2 = one_host(lab)
    driver = Driver(backend, ns, address, {"ports": [vm1.host_if, vm2.host_if], "collect": 1.5})
    frames = [udp(vm1, vm2, b"conformance-miss", sport=5000 + i) for i in range(3)]
    send(vm1, *frames)
    report = driver.finish()
    ours = [u[:2] for u in report["upcalls"] if u[1] >= 5000]  # type: ignore[union-attr]
    assert sorted(ours) == [[driver.ports[0], 5000 + i] for i in range(3)]
    assert extract_match(frames[0], driver.ports[0]).l4_src == 5000


def test_a_tunnel_carries_the_key_to_the_other_host(lab: Lab, backend: str) -> None:
    ns1, addr1 = lab.add_host()
    ns2, addr2 = lab.add_host()
    vm1 = lab.add_vm(ns1, "02:00:00:00:00:01", "10.0.0.1/24")
    vm3 = lab.add_vm(ns2, "02:00:00:00:00:03", "10.0.0.3/24")
    frame = udp(vm1, vm3, b"conformance-tunnel")
    sender = Driver(
        backend,
        ns1,
        addr1,
        {
            "ports": [vm1.host_if],
            "flows": [[frame.hex(), f"[Tunnel(IPv4Address('{addr2}'), 77)]"]],
        },
    )
    receiver = Driver(backend, ns2, addr2, {"ports": [vm3.host_if], "tunnel_ports": [[77, 0]]})
    cap = capture(vm3, 2, b"conformance-tunnel")
    wire = capture(ns2, 2, b"conformance-tunnel", ifname="ul0")
    send(vm1, frame)
    assert captured(cap) == [frame]  # delivered unchanged, straight to the key's port
    (outer,) = captured(wire)
    pkt = Packet.parse(outer)
    assert isinstance(pkt.net, IPv4)
    assert (pkt.net.src, pkt.net.dst) == (addr1, addr2)
    assert isinstance(pkt.transport, UDP)
    assert pkt.transport.dst_port == VXLAN_PORT
    vxlan, inner = VXLAN.parse(pkt.payload)
    assert (vxlan.vni, inner) == (77, frame)
    sent, got = sender.finish(), receiver.finish()
    assert sent["stats"]["tunnel_tx"] == 1  # type: ignore[index]
    assert got["stats"]["tunnel_rx"] == 1  # type: ignore[index]
    assert got["upcalls"] == []


def test_frames_the_fast_path_cannot_hold_are_forwarded_by_the_flow(lab: Lab, backend: str) -> None:
    """An ARP flow (the kernel program does not read ARP) still forwards, and counts."""
    ns, address, vm1, vm2 = one_host(lab)
    arp = ARP.request(mac_from_str(vm1.mac), IPv4Address(vm1.ip), IPv4Address(vm2.ip))
    frame = Packet(Ethernet(BROADCAST_MAC, mac_from_str(vm1.mac), 0x0806), arp, None, b"").build()
    driver = Driver(
        backend,
        ns,
        address,
        {"ports": [vm1.host_if, vm2.host_if], "flows": [[frame.hex(), "[Output(ports[1])]"]]},
    )
    cap = capture(vm2, 1.5, frame[22:42])
    send(vm1, frame, frame)
    assert captured(cap) == [frame, frame]
    report = driver.finish()
    assert report["flows"] == [[2, 2 * len(frame)]]


def test_malformed_frames_are_counted_and_forwarding_goes_on(lab: Lab, backend: str) -> None:
    ns, address, vm1, vm2 = one_host(lab)
    good = udp(vm1, vm2, b"conformance-after-junk")
    bad = [good[: 14 + n] for n in (1, 10, 19)]  # IPv4 headers cut short
    bad.append(bytes([*good[:14], 0x35, *good[15:42]]))  # IP version 3, and cut short
    driver = Driver(
        backend,
        ns,
        address,
        {"ports": [vm1.host_if, vm2.host_if], "flows": [[good.hex(), "[Output(ports[1])]"]]},
    )
    cap = capture(vm2, 1.5, b"conformance-after-junk")
    send(vm1, *bad, good)
    assert captured(cap) == [good]
    report = driver.finish()
    assert report["stats"]["malformed"] >= len(bad)  # type: ignore[index,operator]


def test_an_ipv6_flow_rewrites_and_forwards(lab: Lab, backend: str) -> None:
    ns, address, vm1, vm2 = one_host(lab)
    eth = Ethernet(mac_from_str(vm2.mac), mac_from_str(vm1.mac), 0x86DD)
    ip = IPv6(IPv6Address("2001:db8::1"), IPv6Address("2001:db8::2"), 17, hop_limit=30)
    frame = Packet(eth, ip, UDP(4000, 7000), b"conformance-ipv6").build()
    actions = (
        "[SetEthSrc(bytes.fromhex('0200000000aa')), DecTtl(1), SetL4Dst(7777), Output(ports[1])]"
    )
    driver = Driver(
        backend,
        ns,
        address,
        {"ports": [vm1.host_if, vm2.host_if], "flows": [[frame.hex(), actions]]},
    )
    cap = capture(vm2, 2, b"conformance-ipv6")
    send(vm1, frame)
    (out,) = captured(cap)
    report = driver.finish()
    pkt = Packet.parse(out)
    assert pkt.eth.src == bytes.fromhex("0200000000aa")
    assert isinstance(pkt.net, IPv6)
    assert pkt.net.hop_limit == 29
    assert isinstance(pkt.transport, UDP)
    assert pkt.transport.dst_port == 7777
    assert pkt.build() == out, "the UDP checksum was not updated"
    assert report["flows"] == [[1, len(frame)]]
    if backend == "kernel":
        assert report["stats"]["kernel_hits"] == 1  # type: ignore[index]


# loose flows (Datapath.install's ttl_above): one flow for every TCP flag and every TTL
# above the floor, on both datapaths
def test_a_loose_flow_serves_other_flags_and_ttls_but_never_one_that_runs_out(
    lab: Lab, backend: str
) -> None:
    ns, address, vm1, vm2 = one_host(lab)
    eth = Ethernet(mac_from_str(vm2.mac), mac_from_str(vm1.mac), 0x0800)

    def tcp(ttl: int, flags: int, payload: bytes) -> bytes:
        ip = IPv4(IPv4Address(vm1.ip), IPv4Address(vm2.ip), 6, ttl=ttl)
        return Packet(eth, ip, TCP(40000, 80, flags=flags), payload).build()

    syn = tcp(64, 0x02, b"conformance-loose-syn")  # what the flow was installed from
    ack = tcp(20, 0x10, b"conformance-loose-ack")  # other flags, another TTL: above 1
    dying = tcp(1, 0x10, b"conformance-loose-ttl")  # runs out at the router: the agent's
    driver = Driver(
        backend,
        ns,
        address,
        {
            "ports": [vm1.host_if, vm2.host_if],
            "flows": [[syn.hex(), "[DecTtl(1), Output(ports[1])]", 1]],
            "collect": 1.5,
        },
    )
    cap = capture(vm2, 1.5, b"conformance-loose")
    send(vm1, ack, dying)
    got = captured(cap)
    report = driver.finish()
    upcall_ttls = sorted(u[2] for u in report["upcalls"] if u[1] == 40000)  # type: ignore[union-attr]
    (out,) = got
    pkt = Packet.parse(out)
    assert isinstance(pkt.net, IPv4)
    assert (pkt.payload, pkt.net.ttl) == (b"conformance-loose-ack", 19)
    assert header_checksum_ok(out[14:])
    assert upcall_ttls == [1]
    assert report["flows"] == [[1, len(ack)]]
    if backend == "kernel":
        assert report["stats"]["kernel_hits"] == 1  # type: ignore[index]


# -- what connection tracking reads: TCP flags seen, echo identifiers, flow state -------


def test_a_loose_flow_ors_the_tcp_flags_of_a_connection(lab: Lab, backend: str) -> None:
    """SYN, data and FIN of one connection through the loose flow installed from its
    SYN: the flow's tcp_flags in dump() is the OR of what it carried."""
    ns, address, vm1, vm2 = one_host(lab)
    eth = Ethernet(mac_from_str(vm2.mac), mac_from_str(vm1.mac), 0x0800)

    def tcp(flags: int, payload: bytes, ttl: int = 64) -> bytes:
        ip = IPv4(IPv4Address(vm1.ip), IPv4Address(vm2.ip), 6, ttl=ttl)
        return Packet(eth, ip, TCP(40001, 80, flags=flags), payload).build()

    syn = tcp(0x02, b"conformance-flags-syn")
    data = tcp(0x18, b"conformance-flags-data", ttl=63)  # PSH|ACK
    fin = tcp(0x11, b"conformance-flags-fin")  # FIN|ACK
    driver = Driver(
        backend,
        ns,
        address,
        {
            "ports": [vm1.host_if, vm2.host_if],
            "flows": [[syn.hex(), "[Output(ports[1])]", 1]],
            "collect": 1,
        },
    )
    cap = capture(vm2, 2, b"conformance-flags")
    send(vm1, syn, data, fin)
    assert captured(cap) == [syn, data, fin]
    report = driver.finish()
    assert [u for u in report["upcalls"] if u[1] == 40001] == []  # type: ignore[union-attr]
    assert report["flows"] == [[3, len(syn) + len(data) + len(fin)]]
    assert report["tcp_flags"] == [0x02 | 0x18 | 0x11]
    if backend == "kernel":  # the kernel ORed them, not the Python side
        assert report["stats"]["kernel_hits"] == 3  # type: ignore[index]


def test_pings_with_other_identifiers_are_other_flows(lab: Lab, backend: str) -> None:
    """A flow installed for echo identifier 1 (loose: any TTL) forwards identifier 1 and
    hands identifier 2, the same hosts' other ping, to the agent."""
    ns, address, vm1, vm2 = one_host(lab)
    eth = Ethernet(mac_from_str(vm2.mac), mac_from_str(vm1.mac), 0x0800)
    ip = IPv4(IPv4Address(vm1.ip), IPv4Address(vm2.ip), 1)

    def ping(ident: int, seq: int) -> bytes:
        return Packet(eth, ip, ICMP.echo_request(ident, seq), b"conformance-ping").build()

    driver = Driver(
        backend,
        ns,
        address,
        {
            "ports": [vm1.host_if, vm2.host_if],
            "flows": [[ping(1, 1).hex(), "[Output(ports[1])]", 0]],
            "collect": 1.5,
        },
    )
    cap = capture(vm2, 1.5, b"conformance-ping")
    send(vm1, ping(1, 2), ping(2, 1))
    assert captured(cap) == [ping(1, 2)]
    report = driver.finish()
    assert report["icmp_ids"] == [1]
    assert report["flows"] == [[1, len(ping(1, 2))]]
    ours = [u for u in report["upcalls"] if u[6] == ping(2, 1).hex()]  # type: ignore[union-attr]
    assert [(u[0], u[1], u[5]) for u in ours] == [(driver.ports[0], 8, 2)]


def test_a_state_frame_reaches_the_other_hosts_agent(lab: Lab, backend: str) -> None:
    """execute(frame, 0, [Tunnel(B, STATE_VNI)]) on host A: VXLAN with that VNI on the
    wire; on host B never forwarded (not even to a port mapped to the VNI), but an
    upcall with tunnel_key STATE_VNI and tunnel_src A, before the tunnelled upcall
    sent after it."""
    ns1, addr1 = lab.add_host()
    ns2, addr2 = lab.add_host()
    vm1 = lab.add_vm(ns1, "02:00:00:00:00:01", "10.0.0.1/24")
    vm3 = lab.add_vm(ns2, "02:00:00:00:00:03", "10.0.0.3/24")
    state = udp(vm1, vm3, b"conformance-state", sport=4001)
    after = udp(vm1, vm3, b"conformance-state-after", sport=4002)
    receiver = Driver(
        backend,
        ns2,
        addr2,
        {"ports": [vm3.host_if], "tunnel_ports": [[STATE_VNI, 0]], "collect": 2},
    )
    sender = Driver(
        backend,
        ns1,
        addr1,
        {
            "ports": [vm1.host_if],
            "execute": [
                [state.hex(), f"[Tunnel(IPv4Address('{addr2}'), STATE_VNI)]"],
                [after.hex(), f"[Tunnel(IPv4Address('{addr2}'), 78)]"],
            ],
        },
    )
    cap = capture(vm3, 2, b"conformance-state")
    wire = capture(ns2, 2, b"conformance-state", ifname="ul0")
    sent = sender.finish()
    got = receiver.finish()
    assert captured(cap) == []  # never forwarded
    outer = [Packet.parse(f) for f in captured(wire)]
    assert len(outer) == 2
    first = outer[0]
    assert isinstance(first.net, IPv4)
    assert (first.net.src, first.net.dst) == (addr1, addr2)
    assert VXLAN.parse(first.payload) == (VXLAN(STATE_VNI), state)
    assert sent["stats"]["tunnel_tx"] == 2  # type: ignore[index]
    tunnelled = [(u[3], u[4], u[6]) for u in got["upcalls"] if u[0] == 0]  # type: ignore[union-attr,index]
    assert tunnelled == [(STATE_VNI, str(addr1), state.hex()), (78, str(addr1), after.hex())]
    local = [u for u in got["upcalls"] if u[0] != 0]  # type: ignore[union-attr,index]
    assert all(u[3:5] == [0, "None"] for u in local), local  # a VM's frame: no tunnel source
