"""What a three-member etcd cluster survives, with tenet's API replicas and agents
on it: real etcd processes in namespaces of the test's own, killed by PID.

Each test prints its numbers (writes acknowledged and found, time to apply) for
the notes; none of them is asserted as a timing.
"""

from __future__ import annotations

import ipaddress
import itertools
import math
import random
import re
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import pytest

from tenet.errors import StoreError, StoreUnavailable, TxnConflict
from tenet.lab import netns_exec
from tenet.lab.traffic import ping
from tenet.model import (
    Bridge,
    DeviceType,
    Host,
    Port,
    PortBinding,
    Tenant,
    TunnelZone,
    TunnelZoneMember,
)
from tenet.model.types import MAC
from tenet.store import Compare, EtcdStore, Put
from tenet.store.keys import applied_key, kind_prefix, object_key
from tenet.store.objects import ObjectStore

from .checkers import Op, Seen, check_linearizable, check_watchers
from .conftest import World, tenant_names

pytestmark = pytest.mark.system


@dataclass
class ApiWrites:
    """Tenants created through the API replicas, by outcome."""

    acked: list[tuple[str, float]] = field(default_factory=list)  # (name, when)
    unknown: list[str] = field(default_factory=list)  # 5xx or no answer: maybe written
    lock: threading.Lock = field(default_factory=threading.Lock)


def api_writer(world: World, number: int, stop: threading.Event, out: ApiWrites) -> None:
    headers = {"Authorization": f"Bearer {world.token}"}
    with httpx.Client(timeout=15, headers=headers, trust_env=False) as http:
        for n in itertools.count():
            if stop.is_set():
                return
            name = f"w{number}-{n}"
            url = world.api_urls[(number + n) % len(world.api_urls)]
            try:
                answer = http.post(f"{url}/v1/tenants", json={"name": name})
            except httpx.HTTPError:
                with out.lock:
                    out.unknown.append(name)
                continue
            with out.lock:
                if answer.status_code in (200, 201):
                    out.acked.append((name, time.monotonic()))
                elif answer.status_code >= 500:
                    out.unknown.append(name)
                else:
                    raise AssertionError(f"{name}: {answer.status_code} {answer.text}")


def check_api_writes(store: EtcdStore, out: ApiWrites) -> dict[str, int]:
    names = tenant_names(store)
    counts: dict[str, int] = {}
    for name in names:
        counts[name] = counts.get(name, 0) + 1
    lost = [name for name, _ in out.acked if counts.get(name, 0) != 1]
    assert not lost, f"acknowledged writes lost or doubled: {lost[:10]}"
    twice = [name for name, count in counts.items() if count > 1]
    assert not twice, f"tenants written twice: {twice[:10]}"
    unknown_found = sum(1 for name in out.unknown if name in counts)
    return {"acked": len(out.acked), "found": len(out.acked), "unknown": len(out.unknown),
            "unknown_found": unknown_found}  # fmt: skip


def run_threads(world: World, targets: list[tuple[object, tuple[object, ...]]]) -> list[object]:
    return [world.client.submit(fn, *args) for fn, args in targets]


def test_a_member_killed_then_restarted(world: World) -> None:
    world.start_apis(2)
    world.start_agents(2)
    store = world.store()
    stop = threading.Event()
    out = ApiWrites()
    futures = run_threads(world, [(api_writer, (world, n, stop, out)) for n in range(2)])
    time.sleep(2)
    victim = world.cluster.members[0]  # every client asks it first
    world.cluster.kill(victim)
    killed_at = time.monotonic()
    time.sleep(4)
    world.client.run(lambda: None)  # the pool is alive
    world.cluster.restart(victim)
    restarted_at = time.monotonic()
    time.sleep(3)
    stop.set()
    for future in futures:
        future.result(timeout=60)  # type: ignore[attr-defined]
    while_down = [name for name, when in out.acked if killed_at <= when < restarted_at]
    assert while_down, "no write was acknowledged while a member was down"

    numbers = world.client.run(check_api_writes, store, out)
    last = max(kv.mod_revision for kv in world.client.run(store.list, kind_prefix(Tenant)).items)
    done = time.monotonic()
    for host_id, proc in world.agents.items():
        assert proc.poll() is None, f"agent {host_id} ended: {world.lab.stderr(proc)[-2000:]}"
        key = applied_key(uuid.UUID(host_id))
        deadline = time.monotonic() + 60
        while True:
            kv = world.client.run(store.get, key)
            if kv is not None and int(kv.value) >= last:
                break
            assert time.monotonic() < deadline, f"agent {host_id} did not apply revision {last}"
            time.sleep(0.05)
    applied_after = time.monotonic() - done
    # the restarted member caught up: reading from it alone finds every tenant
    alone = world.client.run(EtcdStore, f"etcd://{victim.endpoint}")
    assert len(world.client.run(tenant_names, alone)) >= numbers["acked"]
    alone.close()
    store.close()
    print(
        f"\nmember killed and restarted: {numbers}, {len(while_down)} acked while down, "
        f"agents applied the last write {applied_after:.2f} s after the burst ended"
    )


# -- the leader killed during a burst ------------------------------------------------------
KEYS = [f"/lin/k{i}" for i in range(3)]


class Registers:
    """Reads, writes and compare-and-sets on a few keys, straight on the store."""

    def __init__(self) -> None:
        self.history: list[Op] = []
        self.lock = threading.Lock()
        self.values = itertools.count()

    def worker(self, store: EtcdStore, seed: int, stop: threading.Event) -> None:
        rng = random.Random(seed)
        while not stop.is_set():
            key = rng.choice(KEYS)
            kind = rng.choice(["read", "write", "cas"])
            op = self._one(store, key, kind)
            if op is not None:
                with self.lock:
                    self.history.append(op)

    def _one(self, store: EtcdStore, key: str, kind: str) -> Op | None:
        value = f"v{next(self.values)}".encode()
        start = time.monotonic()
        try:
            if kind == "read":
                kv = store.get(key)
                return Op(key, "read", result=kv.value if kv else None, invoked=start,
                          returned=time.monotonic())  # fmt: skip
            if kind == "write":
                try:
                    store.put(key, value)
                except StoreUnavailable:
                    return Op(key, "write", value, invoked=start)
                return Op(key, "write", value, invoked=start, returned=time.monotonic())
            kv = store.get(key)
            expected = kv.value if kv else None
            try:
                store.txn([Compare(key, kv.mod_revision if kv else 0)], [Put(key, value)])
                swapped = True
            except TxnConflict:
                swapped = False
            except StoreUnavailable:
                return Op(key, "cas", expected, value, invoked=start)
            return Op(key, "cas", expected, value, swapped, start, time.monotonic())
        except StoreError:  # a read that failed changed nothing
            return None


def watcher(
    store: EtcdStore, start: int, stop_at: list[int], seen: Seen, errors: list[str]
) -> None:
    try:
        with store.watch("/", start) as watch:
            deadline = math.inf
            while not stop_at or not seen or seen[-1][0] < stop_at[0]:
                if stop_at and deadline == math.inf:
                    deadline = time.monotonic() + 60
                if time.monotonic() > deadline:
                    errors.append(f"the watch stopped at {seen[-1] if seen else None}")
                    return
                for event in watch.get(timeout=1):
                    seen.append((event.revision, event.type.value, event.key))
    except StoreError as exc:
        errors.append(repr(exc))


def test_the_leader_killed_during_a_burst(world: World) -> None:
    world.start_apis(2)
    store = world.store()
    start = world.client.run(store.revision) + 1
    stop = threading.Event()
    stop_at: list[int] = []
    streams: list[Seen] = [[], [], []]
    errors: list[str] = []
    watchers = [world.store(rotate=n) for n in range(3)]  # each asks another member first
    watching = run_threads(
        world, [(watcher, (watchers[n], start, stop_at, streams[n], errors)) for n in range(3)]
    )
    registers = Registers()
    clients = [world.store(rotate=n % 3) for n in range(4)]
    out = ApiWrites()
    working = run_threads(
        world,
        [(api_writer, (world, n, stop, out)) for n in range(2)]
        + [(registers.worker, (clients[n], n, stop)) for n in range(4)],
    )
    time.sleep(2)
    leader = world.cluster.leader()
    world.cluster.kill(leader)
    killed_at = time.monotonic()
    time.sleep(4)
    stop.set()
    for future in working:
        future.result(timeout=60)  # type: ignore[attr-defined]
    world.cluster.restart(leader)
    stop_at.append(world.client.run(store.revision))
    for future in watching:
        future.result(timeout=120)  # type: ignore[attr-defined]

    numbers = world.client.run(check_api_writes, store, out)
    after_kill = sum(1 for _, when in out.acked if when >= killed_at)
    before_kill = len(out.acked) - after_kill
    assert after_kill, "no write was acknowledged after the leader died"
    bad = check_linearizable(registers.history)
    assert not bad, f"not linearizable: {bad}"
    assert not errors, errors
    problems = check_watchers(streams, start, stop_at[0], every_key=True)
    assert not problems, problems
    # what the watchers saw ends where the store is
    final = {kv.key: kv.mod_revision for kv in world.client.run(store.list, "/lin/").items}
    last_seen = {key: rev for rev, _, key in streams[0] if key.startswith("/lin/")}
    assert last_seen == final
    unknown = sum(1 for op in registers.history if not op.known)
    for client in [store, *watchers, *clients]:
        client.close()
    print(
        f"\nleader killed in a burst: API {numbers}, {before_kill} acked before the kill, "
        f"{after_kill} after; "
        f"registers: {len(registers.history)} ops ({unknown} of unknown outcome), "
        f"linearizable; 3 watchers saw the same {len(streams[0])} events, "
        f"revisions {start}..{stop_at[0]} without a gap"
    )


# -- the whole cluster down ------------------------------------------------------------------
def two_vms_on_two_hosts(world: World, store: EtcdStore) -> list[uuid.UUID]:
    """A tenant's bridge with a VM on each of two new hosts, their agents on the cluster."""
    o = ObjectStore(store)
    run = world.client.run
    tenant = run(o.create, Tenant(name="acme")).record
    zone = run(o.create, TunnelZone(name="underlay")).record
    bridge = run(o.create, Bridge(tenant_id=tenant.id, name="net")).record
    host_ids = []
    for n in (1, 2):
        ns, address = world.lab.add_host()
        host = run(o.create, Host(name=ns)).record
        run(o.create, TunnelZoneMember(tunnel_zone_id=zone.id, host_id=host.id, address=address))
        mac = f"02:00:00:00:00:0{n}"
        vm = world.lab.add_vm(ns, mac, f"10.0.0.{n}/24")
        port = Port(
            tenant_id=tenant.id,
            device_id=bridge.id,
            device_type=DeviceType.BRIDGE,
            name=vm.name,
            mac=MAC(mac),
            fixed_ips=(ipaddress.ip_address(vm.ip),),
        )
        port = run(o.create, port).record
        run(o.create, PortBinding(port_id=port.id, host_id=host.id, interface=vm.host_if))
        host_ids.append(host.id)
        proc = world.lab.run_agent(ns, str(host.id), world.cluster.url, address)
        world.lab.started(proc, timeout=60)
        world.agents[str(host.id)] = proc
    return host_ids


def wait_applied(world: World, store: EtcdStore, host_id: uuid.UUID, revision: int) -> float:
    """Seconds until the host's agent has applied ``revision``."""
    start = time.monotonic()
    while True:
        kv = world.client.run(store.get, applied_key(host_id))
        if kv is not None and int(kv.value) >= revision:
            return time.monotonic() - start
        assert time.monotonic() - start < 60, f"agent {host_id} did not apply {revision}"
        time.sleep(0.05)


def cluster_down(
    world: World,
    store: EtcdStore,
    hosts: list[uuid.UUID],
    seconds: float,
    meanwhile: Callable[[], None] = lambda: None,
) -> float:
    """Every member killed for ``seconds`` (``meanwhile`` checked just before they come
    back), then a change made as soon as the cluster is back: seconds until every agent
    of ``hosts`` applied it."""
    for member in world.cluster.members:
        world.cluster.kill(member)
    time.sleep(seconds)
    meanwhile()
    world.cluster.restart_all()
    healed = time.monotonic()
    made = world.client.run(ObjectStore(store).create, Tenant(name="after"))
    written = world.client.run(store.get, object_key(Tenant, made.record.id))
    assert written is not None
    for host in hosts:
        wait_applied(world, store, host, written.mod_revision)
    return time.monotonic() - healed


def test_the_whole_cluster_down_for_10_s(world: World) -> None:
    store = world.store()
    hosts = two_vms_on_two_hosts(world, store)
    vm1, vm2 = world.lab.vms["vm1"], world.lab.vms["vm2"]
    first = ping(vm1.ns, vm2.ip)
    assert first.received == 3, first.output
    # a ping every 0.2 s for 16 s, around an outage of 10 s
    pinger = subprocess.Popen(
        netns_exec(vm1.ns, "ping", "-n", "-i", "0.2", "-c", "80", "-W", "1", vm2.ip),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    time.sleep(2)
    # a change made as soon as the cluster is back reaches both agents
    took = cluster_down(world, store, hosts, 10)
    out, _ = pinger.communicate(timeout=60)
    replies = len(re.findall(r"icmp_seq=\d+ ttl=", out))
    assert replies >= 72, f"the established flow stopped forwarding: {replies}/80 replies\n{out}"
    for host_id, proc in world.agents.items():
        assert proc.poll() is None, f"agent {host_id} ended: {world.lab.stderr(proc)[-2000:]}"
    back = ping(vm2.ns, vm1.ip)  # a new flow: upcalls work again
    assert back.received == 3, back.output
    store.close()
    print(
        f"\nwhole cluster down 10 s: {replies}/80 pings answered across the outage; a change "
        f"made once the cluster was back: written and applied on both agents {took:.2f} s "
        "after the cluster answered again"
    )
