"""Building tenants' virtual networks for integration tests, through the object layer."""

from __future__ import annotations

import ipaddress
import json
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tenet.model import (
    Bridge,
    DeviceType,
    Host,
    Port,
    PortBinding,
    Router,
    Tenant,
    TunnelZone,
    TunnelZoneMember,
)
from tenet.model.types import MAC
from tenet.store import SqliteStore
from tenet.store.keys import alive_key, stats_key
from tenet.store.objects import ObjectStore

from .netns import Lab, Vm, netns_exec


def wait_for(what: str, check: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@dataclass
class World:
    lab: Lab
    path: Path
    store: SqliteStore = field(init=False)
    objects: ObjectStore = field(init=False)
    hosts: list[tuple[str, uuid.UUID]] = field(default_factory=list)
    ports: dict[str, uuid.UUID] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.store = SqliteStore(self.path)
        self.objects = ObjectStore(self.store)
        self.zone = self.objects.create(TunnelZone(name="underlay")).record

    def add_hosts(self, count: int) -> None:
        for _ in range(count):
            ns, address = self.lab.add_host()
            host = self.objects.create(Host(name=ns)).record
            member = TunnelZoneMember(tunnel_zone_id=self.zone.id, host_id=host.id, address=address)
            self.objects.create(member)
            self.hosts.append((ns, host.id))
            self.lab.addresses[ns] = address

    def start_agents(self) -> None:
        procs = [
            self.lab.run_agent(ns, str(host_id), self.path, self.lab.addresses[ns])
            for ns, host_id in self.hosts
        ]
        for proc in procs:  # up: its datapath open, its state loaded (and flows adopted)
            self.lab.started(proc)
        for _, host_id in self.hosts:
            wait_for(f"agent {host_id}", lambda h=host_id: self.store.get(alive_key(h)) is not None)

    def tenant(self, name: str) -> Tenant:
        return self.objects.create(Tenant(name=name)).record

    def bridge(self, tenant: Tenant, name: str) -> Bridge:
        return self.objects.create(Bridge(tenant_id=tenant.id, name=name)).record

    def vm(
        self,
        tenant: Tenant,
        bridge: Bridge,
        host: int,
        mac: str,
        cidr: str,
        gateway: str | None = None,
    ) -> Vm:
        ns, host_id = self.hosts[host]
        vm = self.lab.add_vm(ns, mac, cidr, gateway)
        port = self.objects.create(
            Port(
                tenant_id=tenant.id,
                device_id=bridge.id,
                device_type=DeviceType.BRIDGE,
                name=vm.name,
                mac=MAC(mac),
                fixed_ips=(ipaddress.ip_address(vm.ip),),
            )
        ).record
        self.objects.create(PortBinding(port_id=port.id, host_id=host_id, interface=vm.host_if))
        self.ports[vm.name] = port.id
        return vm

    def router(
        self, tenant: Tenant, name: str, links: dict[str, tuple[Bridge, str, str]]
    ) -> Router:
        """A router with one port per (bridge, gateway cidr, mac) in ``links``."""
        router = self.objects.create(Router(tenant_id=tenant.id, name=name)).record
        for label, (bridge, cidr, mac) in links.items():
            iface = ipaddress.ip_interface(cidr)
            rport = self.objects.create(
                Port(
                    tenant_id=tenant.id,
                    device_id=router.id,
                    device_type=DeviceType.ROUTER,
                    name=label,
                    mac=MAC(mac),
                    address=iface.ip,
                    subnet=iface.network,
                )
            ).record
            bport = self.objects.create(
                Port(tenant_id=tenant.id, device_id=bridge.id, device_type=DeviceType.BRIDGE)
            ).record
            self.objects.link(bport.id, rport.id)
            self.ports[label] = rport.id
        return router

    def stats(self, host: int) -> dict[str, int]:
        kv = self.store.get(stats_key(self.hosts[host][1]))
        assert kv is not None, "the agent publishes no counters"
        return json.loads(kv.value)  # type: ignore[no-any-return]


def ping(
    vm: Vm, address: str, count: int = 3, interval: float = 0.2, ttl: int | None = None
) -> subprocess.CompletedProcess[str]:
    extra = ("-t", str(ttl)) if ttl is not None else ()
    return subprocess.run(
        netns_exec(
            vm.ns, "ping", "-c", str(count), "-i", str(interval), "-W", "2", *extra, address
        ),
        check=False,
        capture_output=True,
        text=True,
        timeout=30 + count * interval,
    )


def listening(vm: Vm, code: str, *args: str) -> subprocess.Popen[str]:
    """``code`` run by Python in ``vm`` with ``args``, once it printed "listening"
    (stdout is a pipe)."""
    proc = subprocess.Popen(
        netns_exec(vm.ns, sys.executable, "-c", textwrap.dedent(code), *args),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "listening"
    return proc


def one_bridge_two_hosts(world: World, vms: int = 2) -> tuple[Tenant, Bridge, list[Vm]]:
    """Tenant "acme", one bridge, 10.0.0.N on alternate hosts (vm1 on host 0, ...)."""
    world.add_hosts(2)
    acme = world.tenant("acme")
    net = world.bridge(acme, "net")
    made = [
        world.vm(acme, net, n % 2, f"02:00:00:00:00:0{n + 1}", f"10.0.0.{n + 1}/24")
        for n in range(vms)
    ]
    return acme, net, made
