"""``tenet demo``: tenet's main job on one machine, as root (the set-up; the checks and
the report are :mod:`tenet.cli.demo_checks`).

It starts the embedded SQLite store (or, ``--store etcd``, a three-member etcd
cluster in namespaces of its own on the underlay, the API server beside it,
published on loopback), the API server and three agents, each in a
host namespace on a shared underlay; builds through the REST API two tenants
(each a router joining two networks, the same address ranges in both) with VMs
(namespaces) spread over the hosts; then sends real traffic: ping and TCP inside
each tenant, across hosts and across its router, and probes that the tenants
never see each other. It prints what it checked, where the API is and what to
try, and stays up until Ctrl-C (``--check``: it does not stay up, and exits
non-zero when a check failed). Everything it made is removed when it ends.

Everything is named so that a crashed run's leftovers are found and removed
before the next run starts: namespaces carry :data:`PREFIX`, and
:data:`STATE_DIR` holds the store, the token file, the logs and ``state.json``
(the PIDs it started and its hosts' ids, whose kernel datapath pins live under
``/sys/fs/bpf/tenet``). Only things named so, or recorded there, are removed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from ipaddress import IPv4Address, ip_interface
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
from rich.console import Console

from tenet.cli.client import Client, CliError, Config
from tenet.cli.demo_checks import TCP_PORT, Check, DemoChecks, DemoVm
from tenet.lab import Lab, stop_pids, sweep
from tenet.lab.etcd import EtcdCluster, Relay, server_namespace
from tenet.lab.state import RunState
from tenet.lab.traffic import start_server

PREFIX = "tdemo-"
STATE_DIR = Path("/run/tenet-demo")
API_PORT = 8740  # the tenet command's default URL, when free
ETCD_ADDRESS = "10.250.0.20{}"  # --store etcd: the members on the underlay, and the API
API_ADDRESS = "10.250.0.200"
STORES = ("sqlite", "etcd")
HOSTS = 3


class DemoFailed(Exception):
    """A step of the set-up failed (the message says which and why)."""


@dataclass(frozen=True)
class VmSpec:
    name: str
    network: str  # the network's suffix: "web" or "db"
    host: int  # 0, 1 or 2
    ip: str


# The same address ranges and VM addresses in both tenants; hosts spread differently.
NETWORKS = {"web": "10.0.1.1/24", "db": "10.0.2.1/24"}
TENANTS: dict[str, list[VmSpec]] = {
    "acme": [
        VmSpec("web1", "web", 0, "10.0.1.10"),
        VmSpec("web2", "web", 1, "10.0.1.11"),
        VmSpec("db1", "db", 2, "10.0.2.10"),
    ],
    "globex": [
        VmSpec("web1", "web", 1, "10.0.1.10"),
        VmSpec("web2", "web", 2, "10.0.1.11"),
        VmSpec("db1", "db", 0, "10.0.2.10"),
        VmSpec("db2", "db", 1, "10.0.2.20"),  # an address only globex has
    ],
}


def _mac(tenant: int, network: int, last: int) -> str:
    return f"02:{0xA0 + tenant:02x}:00:00:{network:02x}:{last:02x}"


class Api:
    """The few REST calls the demo makes, through the ``tenet`` command's client; each
    fails loudly with the API's message."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self.client = Client(Config(url, token, "the demo"))

    def create(self, collection: str, **body: Any) -> dict[str, Any]:
        return self._call("POST", f"/v1/{collection}", body)

    def link(self, port_id: str, peer_id: str) -> dict[str, Any]:
        return self._call("POST", f"/v1/ports/{port_id}/link", {"peer_id": peer_id})

    def _call(self, method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            found = self.client.call(method, path, body)
        except CliError as exc:
            raise DemoFailed(f"{method} {path}: {exc}") from exc
        assert isinstance(found, dict)
        return found

    def close(self) -> None:
        self.client.close()


# -- the demo ------------------------------------------------------------------------------
@dataclass
class Demo(DemoChecks):
    console: Console
    run: RunState = field(default_factory=lambda: RunState(STATE_DIR, PREFIX))
    lab: Lab = field(default_factory=lambda: Lab(prefix=PREFIX, datapath="auto", tx_offload=False))
    api_proc: subprocess.Popen[bytes] | None = None
    api: Api | None = None
    url: str = ""
    host_ids: list[str] = field(default_factory=list)
    datapaths: list[str] = field(default_factory=list)
    vms: dict[str, DemoVm] = field(default_factory=dict)
    servers: list[subprocess.Popen[str]] = field(default_factory=list)
    router_macs: dict[str, list[str]] = field(default_factory=dict)
    ids: dict[str, str] = field(default_factory=dict)  # tenants, routers, bridges by name
    tenants: dict[str, list[VmSpec]] = field(default_factory=lambda: TENANTS)
    networks: dict[str, str] = field(default_factory=lambda: NETWORKS)
    state_dir: Path = STATE_DIR
    store: str = "sqlite"  # or etcd
    etcd: EtcdCluster | None = None
    relay: Relay | None = None

    @contextlib.contextmanager
    def step(self, what: str) -> Iterator[None]:
        start = time.monotonic()
        with self.console.status(what):
            yield
        took = time.monotonic() - start
        self.console.print(f"  [green]✓[/] {what} [dim]({took:.1f} s)[/]")

    # -- set-up -------------------------------------------------------------------------
    def start(self) -> None:
        self.run.begin()
        (STATE_DIR / "logs").mkdir()
        self.lab.log_dir = STATE_DIR / "logs"
        self.lab.start()
        if self.store == "etcd":
            with self.step("a 3-member etcd cluster and the API server on the underlay"):
                self._start_etcd()
                self._start_api()
        else:
            with self.step("the API server, on an SQLite store file"):
                self._start_api()
        with self.step(f"{HOSTS} hosts on an underlay, their tunnel zone (through the API)"):
            self._hosts()
        with self.step(f"{HOSTS} agents, one in each host's namespace"):
            self._agents()
        vms = sum(len(v) for v in TENANTS.values())
        what = f"2 tenants, each a router and 2 networks, {vms} VMs, a security group"
        with self.step(f"{what} (through the API)"):
            for index, tenant in enumerate(TENANTS):
                self._tenant(index, tenant)
        with self.step(f"a TCP server in each of the {vms} VMs"):
            for vm in self.vms.values():
                self.servers.append(start_server(vm.vm.ns, vm.vm.name, TCP_PORT))
            self.run.started(*self.servers)

    @property
    def store_url(self) -> str:
        return self.etcd.url if self.etcd is not None else f"sqlite://{self.store_path}"

    def _start_etcd(self) -> None:
        """Members in namespaces of their own on the underlay (the agents reach them
        there); the API in another, published on loopback by a relay."""
        places: list[tuple[str | None, str]] = [
            (server_namespace(self.lab, f"e{n}", ETCD_ADDRESS.format(n)), ETCD_ADDRESS.format(n))
            for n in (1, 2, 3)
        ]
        self.etcd = EtcdCluster(size=3, places=places, root=STATE_DIR / "etcd")
        try:
            self.etcd.start()
        finally:
            self.run.started(*(m.proc for m in self.etcd.members if m.proc is not None))

    def _start_api(self) -> None:
        port = API_PORT if _port_free(API_PORT) else _free_port()
        self.url = f"http://127.0.0.1:{port}"
        command = _api_command(self.store_url, port, self.token_file)
        if self.etcd is not None:
            ns = server_namespace(self.lab, "api", API_ADDRESS)
            command = ["nsenter", f"--net=/run/netns/{ns}", *command]
            command[command.index("127.0.0.1")] = API_ADDRESS
            self.relay = Relay(ns, API_ADDRESS, port, port)
        log = (STATE_DIR / "logs" / "api.log").open("wb")
        self.api_proc = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C is the demo's to handle
        )
        log.close()
        self.run.started(self.api_proc)
        self.run.save(api_url=self.url)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.api_proc.poll() is not None:
                raise DemoFailed(f"the API server ended:\n{_tail(STATE_DIR / 'logs' / 'api.log')}")
            with contextlib.suppress(httpx.HTTPError):
                health = httpx.get(f"{self.url}/v1/health", timeout=1)
                if health.status_code == 200 and self.token_file.exists():
                    token = self.token_file.read_text().strip()
                    if token:
                        self.api = Api(self.url, token)
                        return
            time.sleep(0.1)
        raise DemoFailed(f"the API server did not answer:\n{_tail(STATE_DIR / 'logs' / 'api.log')}")

    def _hosts(self) -> None:
        assert self.api is not None
        zone = self.api.create("tunnel-zones", name="underlay")
        for index in range(HOSTS):
            ns, address = self.lab.add_host()
            host = self.api.create("hosts", name=f"host{index + 1}", description=f"namespace {ns}")
            self.api.create(
                "tunnel-zone-members",
                tunnel_zone_id=zone["id"],
                host_id=host["id"],
                address=str(address),
            )
            self.host_ids.append(host["id"])
            self.lab.addresses[ns] = address
        self.run.save(host_ids=self.host_ids)

    def _agents(self) -> None:
        procs = [
            self.lab.run_agent(ns, host_id, self.store_url, self.lab.addresses[ns])
            for ns, host_id in zip(self.lab.hosts, self.host_ids, strict=True)
        ]
        self.run.started(*procs)
        for proc in procs:
            try:
                line = self.lab.started(proc)
            except RuntimeError as exc:
                raise DemoFailed(f"{exc}\n{self.lab.stderr(proc)[-2000:]}") from exc
            self.datapaths.append(line.split(", ", 2)[-1].strip())

    def _tenant(self, index: int, name: str) -> None:
        assert self.api is not None
        tenant = self.api.create("tenants", name=name, description="a tenet demo tenant")["id"]
        router = self.api.create("routers", tenant_id=tenant, name=f"{name}-router")["id"]
        self.ids.update({name: tenant, f"{name}-router": router})
        bridges = {}
        self.router_macs[name] = []
        for number, (network, gateway) in enumerate(NETWORKS.items(), start=1):
            bridge = self.api.create("bridges", tenant_id=tenant, name=f"{name}-{network}")["id"]
            iface = ip_interface(gateway)
            mac = _mac(index, number, 1)
            rport = self.api.create(
                "ports",
                tenant_id=tenant,
                device_id=router,
                device_type="router",
                name=f"{name}-router-{network}",
                mac=mac,
                address=str(iface.ip),
                subnet=str(iface.network),
            )
            bport = self.api.create(
                "ports",
                tenant_id=tenant,
                device_id=bridge,
                device_type="bridge",
                name=f"{name}-{network}-uplink",
            )
            self.api.link(bport["id"], rport["id"])
            bridges[network] = (bridge, number, iface)
            self.ids[f"{name}-{network}"] = bridge
            self.router_macs[name].append(mac)
        groups = self._make_security_group(tenant, name)
        for spec in TENANTS[name]:
            bridge, number, iface = bridges[spec.network]
            mac = _mac(index, number, int(IPv4Address(spec.ip)) & 0xFF)
            vm_name = f"{name}-{spec.name}"
            host_ns = self.lab.hosts[spec.host]
            vm = self.lab.add_vm(
                host_ns,
                mac,
                f"{spec.ip}/{iface.network.prefixlen}",
                str(iface.ip),
                name=vm_name,
            )
            port = self.api.create(
                "ports",
                tenant_id=tenant,
                device_id=bridge,
                device_type="bridge",
                name=vm_name,
                mac=mac,
                fixed_ips=[spec.ip],
                security_group_ids=groups.get(spec.name, []),
            )
            # bound once its interface exists: the agent takes it into its datapath
            self.api.create(
                "port-bindings",
                port_id=port["id"],
                host_id=self.host_ids[spec.host],
                interface=vm.host_if,
            )
            self.vms[vm_name] = DemoVm(vm, name, f"{name}-{spec.network}", spec.host, port["id"])

    def _make_security_group(self, tenant: str, name: str) -> dict[str, list[str]]:
        """globex's databases take TCP only from its web network (and ping from anyone): a
        stateful security group on db1 (inbound default-deny otherwise; db1's own
        connections get their replies).
        Returns the groups of each VM by its short name."""
        if name != "globex":
            return {}
        assert self.api is not None
        group = self.api.create(
            "security-groups",
            tenant_id=tenant,
            name="globex-db",
            description="databases: TCP from the web network only",
        )["id"]
        self.api.create(
            "security-group-rules",
            tenant_id=tenant,
            security_group_id=group,
            direction="ingress",
            protocol="tcp",
            port_range_min=TCP_PORT,
            port_range_max=TCP_PORT,
            remote_ip_prefix=NETWORKS["web"].rsplit(".", 1)[0] + ".0/24",
        )
        self.api.create(
            "security-group-rules",
            tenant_id=tenant,
            security_group_id=group,
            direction="ingress",
            protocol="icmp",
        )
        self.ids["globex-db"] = group
        return {"db1": [group]}

    def stay_up(self) -> None:
        """Until SIGINT or SIGTERM (either raises KeyboardInterrupt); says when a
        process of the demo ends on its own."""
        reported: set[int] = set()
        while True:
            time.sleep(1)
            procs: list[subprocess.Popen[Any]] = [*self.lab.agents]
            if self.api_proc is not None:
                procs.append(self.api_proc)
            for proc in procs:
                if proc.pid not in reported and proc.poll() is not None:
                    reported.add(proc.pid)
                    self.console.print(f"[red]process {proc.pid} ended ({proc.returncode})[/]")

    # -- clean-up -------------------------------------------------------------------------
    def close(self) -> None:
        if self.api is not None:
            self.api.close()
        for server in self.servers:
            server.kill()
            server.wait()
        errors = self.lab.close()
        for err in errors:
            if "Traceback" in err:
                self.console.print(f"[red]an agent failed:[/]\n{err[-3000:]}")
        if self.api_proc is not None:
            stop_pids([self.api_proc.pid])
            self.api_proc.wait()
        if self.relay is not None:
            self.relay.close()
        if self.etcd is not None:
            self.etcd.close()
        sweep(PREFIX)
        self.run.end()


def _api_command(store_url: str, port: int, token_file: Path) -> list[str]:
    return [
        *(sys.executable, "-m", "tenet", "api", "--store", store_url),
        *("--host", "127.0.0.1", "--port", str(port), "--token-file", str(token_file)),
    ]


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server will
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run(check: bool = False, store: str = "sqlite") -> int:
    """Run the demo; with ``check``, do not stay up. 0 when every check passed.
    ``store``: sqlite (a file) or etcd (a three-member cluster)."""
    console = Console() if sys.stdout.isatty() else Console(width=160)
    if os.geteuid() != 0:
        console.print("tenet demo needs root: it makes network namespaces (try: sudo)")
        return 2
    tools = ("ip", "ping", "nsenter", "ethtool", *(("etcd", "etcdctl") if store == "etcd" else ()))
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        console.print(f"tenet demo needs {', '.join(missing)} (./dev setup installs them)")
        return 2
    main = threading.current_thread() is threading.main_thread()
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)} if main else {}
    if main:
        signal.signal(signal.SIGTERM, _interrupt)
    demo = Demo(console, store=store)
    if not demo.run.acquire():
        pid = demo.run.recorded().get("pid", "?")
        console.print(f"a tenet demo is already running (pid {pid}); stop it first (Ctrl-C)")
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
        return 2
    console.print("[bold]tenet demo[/]: tenet's main job on this machine")
    results: list[Check] = []
    try:
        removed = demo.run.sweep()
        if removed:
            console.print("  [yellow]removed what an earlier demo left[/]: " + "; ".join(removed))
        demo.start()
        results = demo.checks()
        demo.report(results, check)
        if not check:
            demo.stay_up()
    except KeyboardInterrupt:
        console.print("\nstopping")
    except (DemoFailed, OSError, RuntimeError, subprocess.SubprocessError, httpx.HTTPError) as exc:
        console.print(f"[bold red]tenet demo failed:[/] {exc}")
        results.append(Check("set-up", False, str(exc)))
    finally:
        for signum in handlers:  # clean-up is not to be cut short
            signal.signal(signum, signal.SIG_IGN)
        with console.status("removing everything the demo made"):
            demo.close()
        console.print("removed everything the demo made")
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
    return 0 if results and all(r.ok for r in results) else 1
