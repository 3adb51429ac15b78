"""``tenet demo``'s checks and report: real traffic between the VMs the demo built.

:class:`DemoChecks` is the half of :class:`~tenet.cli.demo.Demo` that probes (ping
and TCP inside each tenant, across hosts and across its router; isolation between
the tenants, with every VM capturing what reaches it) and prints what it found,
where the API is and what to try.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from ipaddress import ip_interface
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn
from rich.table import Table

from tenet.lab import Lab, Vm
from tenet.lab.traffic import Capture, PingResult, Transfer, neighbour_mac, ping
from tenet.lab.traffic import transfer as tcp_transfer

if TYPE_CHECKING:
    from tenet.cli.demo import VmSpec

TCP_PORT = 7000
TRANSFER = 16 << 20


@dataclass
class Check:
    what: str
    ok: bool
    detail: str


@dataclass
class DemoVm:
    vm: Vm
    tenant: str
    network: str
    host: int
    port_id: str = ""


class DemoChecks:
    """What the demo checks and reports; the set-up (:class:`~tenet.cli.demo.Demo`)
    fills these in."""

    console: Console
    lab: Lab
    url: str
    vms: dict[str, DemoVm]
    router_macs: dict[str, list[str]]
    ids: dict[str, str]
    datapaths: list[str]
    tenants: dict[str, list[VmSpec]]
    networks: dict[str, str]
    state_dir: Path

    @property
    def token_file(self) -> Path:
        return self.state_dir / "admin-token"

    @property
    def store_path(self) -> Path:
        return self.state_dir / "store.db"

    @property
    def store_url(self) -> str:
        return f"sqlite://{self.store_path}"

    # -- checks -------------------------------------------------------------------------
    def checks(self) -> list[Check]:
        probes = self._probes()
        results: list[Check] = []
        columns = (
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
        )
        with Progress(*columns, console=self.console, transient=True) as progress:
            task = progress.add_task("checks", total=len(probes) + 1)
            captures = self._captures()
            for what, probe in probes:
                progress.update(task, description=what)
                try:
                    ok, detail = probe()
                except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
                    ok, detail = False, f"{type(exc).__name__}: {exc}"
                results.append(Check(what, ok, detail))
                mark = "[green]PASS[/]" if ok else "[red]FAIL[/]"
                progress.console.print(f"  {mark} {what}")
                progress.advance(task)
            what = "isolation: no VM saw a single frame from the other tenant"
            progress.update(task, description=what)
            seen = {name: capture.stop() for name, capture in captures.items()}
            leaks = {name: n for name, (n, _) in seen.items() if n != 0}
            total = sum(t for _, t in seen.values())
            detail = f"{len(seen)} VMs captured {total} frames during the checks above, " + (
                "none from the other tenant" if not leaks else f"foreign: {leaks} (-1: failed)"
            )
            results.append(Check(what, not leaks, detail))
            mark = "[green]PASS[/]" if not leaks else "[red]FAIL[/]"
            progress.console.print(f"  {mark} {what}")
            progress.advance(task)
        return results

    def _captures(self) -> dict[str, Capture]:
        macs = {t: [v.vm.mac for v in self.vms.values() if v.tenant == t] for t in self.tenants}
        foreign = {
            t: [m for o in self.tenants if o != t for m in (*macs[o], *self.router_macs[o])]
            for t in self.tenants
        }
        return {n: Capture(v.vm.ns, foreign[v.tenant]) for n, v in self.vms.items()}

    def _probes(self) -> list[tuple[str, Callable[[], tuple[bool, str]]]]:
        probes: list[tuple[str, Callable[[], tuple[bool, str]]]] = []
        for tenant in self.tenants:
            web1, web2, db1 = (self.vms[f"{tenant}-{n}"] for n in ("web1", "web2", "db1"))
            probes += [
                (f"{tenant}: every VM answers from its router", partial(self._gw, tenant)),
                (
                    f"{tenant}: ping {web1.vm.name} → {web2.vm.name}, one network, "
                    f"host{web1.host + 1} → host{web2.host + 1}",
                    partial(self._ping, web1, web2, 64),
                ),
                (
                    f"{tenant}: ping {web1.vm.name} → {db1.vm.name} through {tenant}-router, "
                    f"host{web1.host + 1} → host{db1.host + 1}",
                    partial(self._ping, web1, db1, 63),
                ),
                (
                    f"{tenant}: TCP {TRANSFER >> 20} MiB {web1.vm.name} → {db1.vm.name} "
                    f"through {tenant}-router, host{web1.host + 1} → host{db1.host + 1}",
                    partial(self._tcp, web1, db1),
                ),
            ]
        probes.append(
            (
                "globex: db1's security group lets only the web network in (db2 → db1 TCP: "
                "nothing), and db1's own ping to web1 gets its replies",
                self._db_security_group,
            )
        )
        a_web1, b_db2 = self.vms["acme-web1"], self.vms["globex-db2"]
        probes += [
            (
                f"isolation: acme-web1 → {b_db2.vm.ip} (only globex has it): no reply",
                partial(self._unreachable, a_web1, b_db2),
            ),
            (
                "isolation: 10.0.2.10 in both tenants: each tenant's web1 reaches its own db1",
                self._same_address,
            ),
        ]
        return probes

    def _gw(self, tenant: str) -> tuple[bool, str]:
        """Wait (up to 30 s) until every VM of ``tenant`` gets a reply from its gateway:
        its port is bound and its host's agent has the tenant's topology."""
        mine = [v for v in self.vms.values() if v.tenant == tenant]
        deadline = time.monotonic() + 30
        waiting = list(mine)
        while waiting and time.monotonic() < deadline:
            waiting = [
                v for v in waiting if not ping(v.vm.ns, self._gateway(v), count=1, wait=1).ok
            ]
        if waiting:
            return False, "no reply from the gateway to " + ", ".join(v.vm.name for v in waiting)
        return True, f"{len(mine)} VMs on 3 hosts, each answered by {tenant}-router"

    def _gateway(self, vm: DemoVm) -> str:
        return str(ip_interface(self.networks[vm.network.rsplit("-", 1)[1]]).ip)

    def _ping(self, src: DemoVm, dst: DemoVm, ttl: int) -> tuple[bool, str]:
        result = ping(src.vm.ns, dst.vm.ip, count=3)
        ok = result.ok and result.ttls == {ttl}
        detail = _ping_detail(result)
        if ttl == 64:  # the same network: the ARP answer names the VM's own MAC
            mac = neighbour_mac(src.vm.ns, dst.vm.ip)
            ok = ok and mac == dst.vm.mac
            detail += f", {dst.vm.ip} is at {mac} ({dst.vm.name}'s MAC)"
        elif ok:
            detail += " (one router crossed)"
        return ok, detail

    def _tcp(self, src: DemoVm, dst: DemoVm) -> tuple[bool, str]:
        done = tcp_transfer(src.vm.ns, dst.vm.ip, TCP_PORT, TRANSFER)
        ok = done.ok and done.server == dst.vm.name and done.seen_as == src.vm.ip
        return ok, _transfer_detail(done)

    def _unreachable(self, src: DemoVm, other: DemoVm) -> tuple[bool, str]:
        result = ping(src.vm.ns, other.vm.ip, count=2, interval=0.2, wait=1)
        if result.ok:
            return False, f"{result.received} replies reached {src.tenant}"
        return True, f"{result.sent} pings, 0 replies: {src.tenant}-router finds no {other.vm.ip}"

    def _db_security_group(self) -> tuple[bool, str]:
        db1, db2, web1 = (self.vms[f"globex-{n}"] for n in ("db1", "db2", "web1"))
        refused = tcp_transfer(db2.vm.ns, db1.vm.ip, TCP_PORT, 1)
        if refused.ok or refused.server is not None:
            return False, f"{db2.vm.name} reached {db1.vm.name} on TCP {TCP_PORT}"
        pinged = ping(db1.vm.ns, web1.vm.ip, count=2)
        if not pinged.ok:
            return False, f"{db1.vm.name}'s ping to {web1.vm.name}: {_ping_detail(pinged)}"
        return True, (
            f"{db2.vm.name} → {db1.vm.name}:{TCP_PORT}: {refused.error or 'no answer'}; "
            f"{db1.vm.name} → {web1.vm.name}: {_ping_detail(pinged)} (replies of a tracked "
            "connection)"
        )

    def _same_address(self) -> tuple[bool, str]:
        answers = []
        ok = True
        for tenant in self.tenants:
            src, dst = self.vms[f"{tenant}-web1"], self.vms[f"{tenant}-db1"]
            done = tcp_transfer(src.vm.ns, dst.vm.ip, TCP_PORT, 1)
            ok = ok and done.ok and done.server == dst.vm.name
            answers.append(f"{src.vm.name} → {dst.vm.ip}: {done.server or done.error}")
        return ok, "; ".join(answers)

    # -- the report -----------------------------------------------------------------------
    def report(self, results: list[Check], check: bool) -> None:
        table = Table(title="tenet demo: what was checked with real traffic", title_justify="left")
        table.add_column("outcome")
        table.add_column("check")
        table.add_column("detail")
        for result in results:
            mark = "[green]PASS[/]" if result.ok else "[bold red]FAIL[/]"
            table.add_row(mark, result.what, result.detail)
        self.console.print()
        self.console.print(table)
        self.console.print(self._vm_table())
        passed = sum(r.ok for r in results)
        style = "green" if passed == len(results) else "bold red"
        self.console.print(f"[{style}]{passed} of {len(results)} checks passed[/]")
        self.console.print()
        datapaths = ", ".join(f"host{i + 1}: {d}" for i, d in enumerate(self.datapaths))
        for label, value in (
            ("REST API", f"{self.url}/v1/"),
            ("API docs", f"{self.url}/docs  (OpenAPI: {self.url}/openapi.json)"),
            ("admin token", f"{self.token_file}"),
            ("store", self.store_url),
            ("agents", datapaths),
            ("logs", f"{self.state_dir / 'logs'}"),
        ):
            self.console.print(f"  [bold]{label:<12}[/] {value}")
        if check:
            return
        web1 = self.vms["acme-web1"]
        self.console.print("\nTry, as root in another terminal:")
        for line in (
            f"export TENET_URL={self.url} TENET_TOKEN=$(cat {self.token_file})",
            "tenet tenant list",
            f"tenet bridge list --filter tenant_id={self.ids['acme']}",
            f"tenet bridge mac-table {self.ids['acme-web']}",
            f"tenet router ports {self.ids['acme-router']}",
            f"tenet trace --port {web1.port_id} --dst 10.0.2.10",
            f"tenet --json port show {web1.port_id}",
            f"ip netns exec {web1.vm.ns} ping 10.0.2.10",
            f"ip netns exec {web1.vm.ns} ping 10.0.2.20    # globex's; acme never reaches it",
        ):
            self.console.print(f"  [cyan]{line}[/]", soft_wrap=True, highlight=False)
        self.console.print("\n[bold]Up until Ctrl-C[/], which removes everything the demo made.")

    def _vm_table(self) -> Table:
        table = Table(title="the VMs (network namespaces)", title_justify="left")
        for column in ("VM", "tenant", "network", "address", "MAC", "host", "namespace"):
            table.add_column(column)
        for vm in self.vms.values():
            table.add_row(
                vm.vm.name,
                vm.tenant,
                vm.network,
                vm.vm.ip,
                vm.vm.mac,
                f"host{vm.host + 1}",
                vm.vm.ns,
            )
        return table


def _ping_detail(result: PingResult) -> str:
    ttl = ",".join(map(str, sorted(result.ttls))) or "-"
    rtt = f", {result.rtt_ms:.2f} ms" if result.rtt_ms is not None else ""
    return f"{result.received}/{result.sent} replies, ttl {ttl}{rtt}"


def _transfer_detail(done: Transfer) -> str:
    if not done.ok:
        return f"failed: {done.error or 'the digest did not match'} (server {done.server})"
    rate = done.size * 8 / done.seconds / 1e6 if done.seconds else 0.0
    return (
        f"{done.size >> 20} MiB in {done.seconds:.2f} s ({rate:.0f} Mbit/s), SHA-256 matches, "
        f"answered by {done.server}, which saw {done.seen_as}"
    )
