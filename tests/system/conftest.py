"""System fixtures: an etcd cluster, API replicas and agents, each in namespaces of
the test's own on one underlay bridge (a :class:`~tenet.lab.Lab`), and a client
namespace the test's own calls go out from.

The test process stays in its namespace; the threads that talk to the cluster and
the API enter the client namespace first (``setns`` changes the calling thread
only, and threads they start inherit it), through :class:`InNamespace`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from tenet.lab import Lab, leftovers
from tenet.lab.etcd import EtcdCluster, enter_namespace, etcd_available
from tenet.model.devices import Tenant
from tenet.store import EtcdStore
from tenet.store.keys import kind_prefix

API_PORT = 8740
T = TypeVar("T")


class InNamespace:
    """Threads in one namespace: ``run(fn, *args)`` calls fn in one of them."""

    def __init__(self, ns: str, workers: int = 16) -> None:
        self.ns = ns
        self._pool = ThreadPoolExecutor(workers, initializer=enter_namespace, initargs=(ns,))

    def run(self, fn: Callable[..., T], *args: Any) -> T:
        return self._pool.submit(fn, *args).result()

    def submit(self, fn: Callable[..., T], *args: Any) -> Any:
        return self._pool.submit(fn, *args)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


@dataclass
class World:
    lab: Lab
    cluster: EtcdCluster
    client: InNamespace
    tmp: Path
    apis: list[subprocess.Popen[bytes]] = field(default_factory=list)
    api_urls: list[str] = field(default_factory=list)
    token: str = ""
    agents: dict[str, subprocess.Popen[str]] = field(default_factory=dict)  # host id -> proc

    def store(self, rotate: int = 0) -> EtcdStore:
        """A store client in the client namespace (its members listed from ``rotate``)."""
        members = self.cluster.members[rotate:] + self.cluster.members[:rotate]
        url = "etcd://" + ",".join(m.endpoint for m in members)
        return self.client.run(EtcdStore, url)

    def start_apis(self, count: int) -> None:
        for index in range(count):
            ns, address = self.lab.add_host()
            log = (self.tmp / f"api{index}.log").open("wb")
            cmd = [
                *("nsenter", f"--net=/run/netns/{ns}", sys.executable, "-m", "tenet", "api"),
                *("--store", self.cluster.url, "--host", str(address)),
                *("--port", str(API_PORT), "--token-file", str(self.tmp / "token")),
            ]
            self.apis.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT))
            log.close()
            self.api_urls.append(f"http://{address}:{API_PORT}")
            self.client.run(self._wait_api, self.api_urls[-1], self.apis[-1])
        self.token = (self.tmp / "token").read_text().strip()

    def _wait_api(self, url: str, proc: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"the API ended: {(self.tmp / 'api0.log').read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/v1/health", timeout=1, trust_env=False).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"the API at {url} did not answer")

    def start_agents(self, count: int) -> None:
        import uuid

        for _ in range(count):
            ns, address = self.lab.add_host()
            host_id = str(uuid.uuid4())
            proc = self.lab.run_agent(ns, host_id, self.cluster.url, IPv4Address(address))
            self.lab.started(proc, timeout=60)
            self.agents[host_id] = proc

    def close(self) -> None:
        for proc in self.apis:
            proc.terminate()
        for proc in self.apis:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.client.close()


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    """Three etcd members on hosts of a lab, and a client namespace."""
    if os.geteuid() != 0:
        pytest.skip("system tests need root (network namespaces)")
    if etcd_available() is None:
        pytest.skip("etcd is not installed (./dev setup installs Debian's etcd-server)")
    lab = Lab(datapath="userspace")
    lab.log_dir = tmp_path
    lab.start()
    cluster: EtcdCluster | None = None
    made: World | None = None
    try:
        places: list[tuple[str | None, str]] = []
        for _ in range(3):
            ns, address = lab.add_host()
            places.append((ns, str(address)))
        client_ns, _ = lab.add_host()
        cluster = EtcdCluster(size=3, places=places, root=tmp_path / "etcd")
        cluster.start()
        made = World(lab, cluster, InNamespace(client_ns), tmp_path)
        yield made
    finally:
        if made is not None:
            made.close()
        if cluster is not None:
            cluster.close()
        lab.close()
        assert not leftovers(lab.prefix), "namespaces left behind"


def tenant_names(store: EtcdStore) -> list[str]:
    """The names of every tenant in the store (a name twice if two tenants have it)."""
    names = []
    for kv in store.list(kind_prefix(Tenant)).items:
        names.append(json.loads(kv.value)["name"])
    return names
