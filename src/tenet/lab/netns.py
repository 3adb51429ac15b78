"""Network namespaces on one machine: hosts on an underlay, VMs on hosts.

Used by ``tenet demo`` and by the integration tests. Everything a :class:`Lab`
makes carries its prefix (by default ``t`` + 5 hex characters, unique per lab;
the demo uses a fixed one), so it is removed by name when the lab closes, also
after a failure, and a crashed run's leftovers can be found and swept
(:func:`sweep`). Layout::

    namespace <p>ul: bridge "ul" (the underlay switch)
    namespace <p>h<N>: "ul0" (10.250.0.N/24) — veth — a port of the underlay bridge
    namespace <p>v<M> (or <p><name>): "eth0" (the VM's MAC and address) — veth —
        "<p>p<M>" in its host

No interface is made in the caller's namespace: every veth is created with both
ends inside lab namespaces. Traffic only ever flows between these namespaces.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from pathlib import Path
from typing import IO

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
    # where agents write their output (<host ns>.out/.err); None: pipes to the caller
    log_dir: Path | None = None
    logs: dict[int, Path] = field(default_factory=dict)  # agent pid -> its log (no suffix)
    agent_args: list[str] = field(default_factory=list)  # more options for every agent
    # where agents keep their connections across a restart (removed by close)
    state_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="tenet-lab-")))

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

    def add_vm(
        self,
        host_ns: str,
        mac: str,
        cidr: str,
        gateway: str | None = None,
        name: str | None = None,
    ) -> Vm:
        """A VM: a namespace ``<prefix>v<M>`` (``<prefix><name>`` when named) whose
        eth0 is a veth to ``<prefix>p<M>`` in the host's namespace."""
        index = len(self.vms) + 1
        ns = f"{self.prefix}{name}" if name else f"{self.prefix}v{index}"
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
        vm = Vm(name or f"vm{index}", ns, host_if, mac, cidr.split("/", maxsplit=1)[0])
        self.vms[vm.name] = vm  # known (and removed by close) from here on
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
        return vm

    def run_agent(
        self,
        host_ns: str,
        host_id: str,
        store: Path | str,
        underlay: IPv4Address,
        vxlan_port: int | None = None,
    ) -> subprocess.Popen[str]:
        """An agent for the host; ``store`` is an SQLite file or a store URL."""
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
            store if isinstance(store, str) else f"sqlite://{store}",
            "--underlay",
            str(underlay),
            "--datapath",
            self.datapath,
            "--state-file",
            str(self.state_dir / f"flowstate-{host_id}"),
        ]
        if vxlan_port is not None:
            cmd += ["--vxlan-port", str(vxlan_port)]
        cmd += self.agent_args
        out: int | IO[str] = subprocess.PIPE
        err: int | IO[str] = subprocess.PIPE
        if self.log_dir is not None:
            out = (self.log_dir / f"{host_ns}.out").open("w")
            err = (self.log_dir / f"{host_ns}.err").open("w")
        # its own session: a Ctrl-C meant for the caller does not stop it behind its back
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True, start_new_session=True)
        if self.log_dir is not None:
            self.logs[proc.pid] = self.log_dir / host_ns
            out.close()  # type: ignore[union-attr]
            err.close()  # type: ignore[union-attr]
        self.agents.append(proc)
        self.pins.append(Path(PIN_ROOT) / host_id)
        return proc

    def started(self, proc: subprocess.Popen[str], timeout: float = 30) -> str:
        """Wait for an agent's first line (printed once it is up); returns it."""
        if proc.stdout is None:  # its output goes to a file in log_dir
            line = self._first_line(proc, timeout)
        else:
            ready, _, _ = select.select([proc.stdout], [], [], timeout)
            line = proc.stdout.readline() if ready else ""
        if not line.startswith("tenet agent:"):
            raise RuntimeError(f"the agent did not start: {line!r}")
        return line

    def _first_line(self, proc: subprocess.Popen[str], timeout: float) -> str:
        path = self.logs[proc.pid].with_suffix(".out")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = path.read_text() if path.exists() else ""
            if "\n" in text:
                return text.split("\n", 1)[0] + "\n"
            if proc.poll() is not None:
                err = self.stderr(proc).strip()
                return err.splitlines()[-1] if err else ""
            time.sleep(0.05)
        return ""

    def stderr(self, proc: subprocess.Popen[str]) -> str:
        """What an agent wrote to stderr so far, when it writes to a log file."""
        log = self.logs.get(proc.pid)
        if log is None:
            return ""
        try:
            return log.with_suffix(".err").read_text()
        except OSError:
            return ""

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
            errors.append(err if err is not None else self.stderr(proc))
        for ns in [*(v.ns for v in self.vms.values()), *self.hosts, self.underlay_ns]:
            remove_namespace(ns)
        for pin in self.pins:  # what a killed kernel-datapath agent left pinned
            shutil.rmtree(pin, ignore_errors=True)
        shutil.rmtree(self.state_dir, ignore_errors=True)
        return errors


def leftovers(prefix: str) -> list[str]:
    """The namespaces whose name starts with ``prefix``."""
    names = sh("ip", "netns", "list").stdout.split()
    return [n for n in names if n.startswith(prefix)]


def namespace_pids(ns: str) -> list[int]:
    """The processes running in namespace ``ns``."""
    out = sh("ip", "netns", "pids", ns, check=False).stdout
    return [int(p) for p in out.split() if p.isdigit()]


def stop_pids(pids: list[int], grace: float = 5.0) -> None:
    """SIGTERM each process, wait up to ``grace`` seconds, then SIGKILL the rest."""
    for pid in pids:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.05)
    for pid in pids:
        _signal(pid, signal.SIGKILL)


def remove_namespace(ns: str) -> None:
    """Stop what still runs in ``ns`` (a namespace lives on while a process holds
    it), then delete it."""
    pids = namespace_pids(ns)
    if pids:
        stop_pids(pids)
    sh("ip", "netns", "del", ns, check=False)


def sweep(prefix: str) -> list[str]:
    """Remove every namespace named with ``prefix`` (and stop the processes in them),
    what a crashed run left behind; returns the names removed."""
    found = leftovers(prefix)
    for ns in found:
        remove_namespace(ns)
    return found


def start_time(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks since boot), None if there is none:
    with its PID, what names one process, even after the PID is reused."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[19])  # field 22 of stat; fields[0] here is field 3


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child of ours counts as gone
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signum)
