"""Network namespaces for integration tests: hosts on an underlay, VMs on hosts.

Everything a :class:`Lab` makes carries its unique prefix (``t`` + 5 hex
characters), so it is removed by name when the lab closes, also after a failure,
and a crashed run's leftovers can be found. Layout::

    namespace <p>ul: bridge "ul" (the underlay switch)
    namespace <p>h<N>: "ul0" (10.250.0.N/24) — veth — a port of the underlay bridge
    namespace <p>v<M>: "eth0" (the VM's MAC and address) — veth — "<p>p<M>" in its host

Traffic only ever flows between these namespaces.
"""

from __future__ import annotations

import secrets
import select
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from pathlib import Path

PIN_ROOT = "/sys/fs/bpf/tenet"  # where the kernel datapath pins a host's maps (by host id)
UNDERLAY = "10.250.0.{}"
VM_MTU = 1450  # room for the 50 bytes of VXLAN on a 1500-byte underlay


def sh(*args: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, check=check, capture_output=True, text=True, timeout=timeout)


def netns_exec(ns: str, *args: str) -> list[str]:
    return ["ip", "netns", "exec", ns, *args]


@dataclass
class Vm:
    name: str
    ns: str
    host_if: str
    mac: str
    ip: str


@dataclass
class Lab:
    prefix: str = field(default_factory=lambda: "t" + secrets.token_hex(3)[:5])
    hosts: list[str] = field(default_factory=list)
    vms: dict[str, Vm] = field(default_factory=dict)
    agents: list[subprocess.Popen[str]] = field(default_factory=list)
    datapath: str = "userspace"
    # VMs leave checksums and segmentation to the "NIC" (the veth) unless the agents
    # forward in Python, which must then see whole checksums (PLATFORM.md)
    tx_offload: bool | None = None
    pins: list[Path] = field(default_factory=list)
    addresses: dict[str, IPv4Address] = field(default_factory=dict)

    @property
    def underlay_ns(self) -> str:
        return f"{self.prefix}ul"

    def start(self) -> None:
        sh("ip", "netns", "add", self.underlay_ns)
        sh("ip", "-n", self.underlay_ns, "link", "add", "ul", "type", "bridge")
        sh("ip", "-n", self.underlay_ns, "link", "set", "ul", "up")

    def add_host(self) -> tuple[str, IPv4Address]:
        index = len(self.hosts) + 1
        ns = f"{self.prefix}h{index}"
        sh("ip", "netns", "add", ns)
        sh("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
        outer = f"{self.prefix}u{index}"
        sh(
            "ip",
            "link",
            "add",
            outer,
            "netns",
            self.underlay_ns,
            "type",
            "veth",
            "peer",
            "ul0",
            "netns",
            ns,
        )
        sh("ip", "-n", self.underlay_ns, "link", "set", outer, "master", "ul", "up")
        address = IPv4Address(UNDERLAY.format(index))
        sh("ip", "-n", ns, "addr", "add", f"{address}/24", "dev", "ul0")
        sh("ip", "-n", ns, "link", "set", "ul0", "up")
        self.hosts.append(ns)
        return ns, address

    def add_vm(self, host_ns: str, mac: str, cidr: str, gateway: str | None = None) -> Vm:
        index = len(self.vms) + 1
        ns = f"{self.prefix}v{index}"
        host_if = f"{self.prefix}p{index}"
        sh("ip", "netns", "add", ns)
        sh(
            "ip",
            "link",
            "add",
            host_if,
            "netns",
            host_ns,
            "type",
            "veth",
            "peer",
            "eth0",
            "netns",
            ns,
        )
        sh("ip", "-n", ns, "link", "set", "eth0", "address", mac, "mtu", str(VM_MTU))
        sh("ip", "-n", ns, "addr", "add", cidr, "dev", "eth0")
        for link in ("lo", "eth0"):
            sh("ip", "-n", ns, "link", "set", link, "up")
        sh("ip", "-n", host_ns, "link", "set", host_if, "up")
        offload = self.tx_offload if self.tx_offload is not None else self.datapath == "kernel"
        if not offload:  # partial checksums would reach the far end unfinished
            sh(*netns_exec(ns, "ethtool", "-K", "eth0", "tx", "off"))
        if gateway:
            sh("ip", "-n", ns, "route", "add", "default", "via", gateway)
        vm = Vm(f"vm{index}", ns, host_if, mac, cidr.split("/", maxsplit=1)[0])
        self.vms[vm.name] = vm
        return vm

    def run_agent(
        self, host_ns: str, host_id: str, store: Path, underlay: IPv4Address
    ) -> subprocess.Popen[str]:
        # nsenter joins only the network namespace: `ip netns exec` would also remount
        # /sys and hide bpffs, where the kernel datapath pins its maps across restarts
        cmd = [
            "nsenter",
            f"--net=/run/netns/{host_ns}",
            sys.executable,
            "-m",
            "tenet",
            "agent",
            "--host-id",
            host_id,
            "--store",
            f"sqlite://{store}",
            "--underlay",
            str(underlay),
            "--datapath",
            self.datapath,
        ]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.agents.append(proc)
        self.pins.append(Path(PIN_ROOT) / host_id)
        return proc

    def started(self, proc: subprocess.Popen[str], timeout: float = 30) -> str:
        """Wait for an agent's first line (printed once it is up); returns it."""
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], timeout)
        line = proc.stdout.readline() if ready else ""
        assert line.startswith("tenet agent:"), f"the agent did not start: {line!r}"
        return line

    def close(self) -> list[str]:
        """Stop the agents (by PID) and remove every namespace; returns agents' stderr."""
        errors = []
        for proc in self.agents:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                _, err = proc.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                _, err = proc.communicate()
            errors.append(err)
        for ns in [*(v.ns for v in self.vms.values()), *self.hosts, self.underlay_ns]:
            sh("ip", "netns", "del", ns, check=False)
        for pin in self.pins:  # what a killed kernel-datapath agent left pinned
            shutil.rmtree(pin, ignore_errors=True)
        return errors


def leftovers(prefix: str) -> list[str]:
    names = sh("ip", "netns", "list").stdout.split()
    return [n for n in names if n.startswith(prefix)]
