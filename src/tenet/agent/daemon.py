"""``tenet agent``: the per-host daemon, a thin shell around :class:`AgentCore`.

It owns the I/O: the store (a lease for the host's liveness and everything it
writes; one watch on what agents act on, ``tenet.store.keys.AGENT_WATCH``), the
datapath, the clock, and the services it runs (``tenet.services``). One
loop does all the work, on one thread; the datapath has its own for packets and
the store watch one that only reads and wakes the loop (a change is applied at
once, not at the loop's next turn):

    store events  -> reach.accept + core.apply (objects this host's ports reach, fetched
                     on demand) / learned.apply + core.invalidate (learned state)
    upcalls       -> core.handle -> learned state written under the lease
    host links    -> LinkTable + core.sync_ports (a binding waits for its interface,
                     is bound when it appears, waits again when it goes); each port's
                     binding status written under the lease
    every second  -> lease keepalive, services ticked (the status service publishes the
                     counters), idle flows expired every 5 s

Crash-only (CONVENTIONS.md point 8): an unexpected exception ends the process;
on restart it resyncs from the store. A watch that finds its history compacted
reloads everything.

Cut off from the store (``StoreUnavailable``, or ``LeaseExpired`` once it answers
again) is the environment, not a bug: the agent goes *disconnected* and keeps serving
its datapath from the picture it has. It makes no store call from the loop then:
learned state and binding statuses are kept (newest per key) instead of written, and
a thread of its own (:class:`Reconnect`) asks the store for its revision until it
answers. Then the loop resyncs: the lease kept or a new one granted, everything it
holds written again under it, services restarted on the new lease, and the watch
resumed after the last revision it applied (a full reload only if that was
compacted). ``store_connected`` and ``store_disconnects`` in :meth:`Agent.counters`
say so.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import uuid
from collections.abc import Sequence
from dataclasses import asdict
from ipaddress import IPv4Address
from pathlib import Path
from types import FrameType

from tenet.agent.bindings import describe
from tenet.agent.core import AgentCore
from tenet.agent.flowstate import FlowStateTable, Timeouts
from tenet.agent.learned import LearnedState, to_put
from tenet.agent.links import HostLinks, LinkTable, LinkWatcher
from tenet.agent.storelink import Reconnect, Watcher
from tenet.clock import Clock, SystemClock
from tenet.datapath.base import Datapath
from tenet.datapath.kernel import KernelDatapath
from tenet.datapath.userspace import UserspaceDatapath
from tenet.errors import (
    DatapathUnavailable,
    LeaseExpired,
    PacketError,
    StoreUnavailable,
    TenetError,
    WatchCompacted,
)
from tenet.model import Host
from tenet.services.base import Service, ServiceContext
from tenet.services.metrics import MetricsService
from tenet.services.status import StatusService
from tenet.simulation.result import StateWrite
from tenet.store import Event, Store, open_store
from tenet.store.base import Delete, Op, Put
from tenet.store.keys import (
    LEARNED,
    alive_key,
    applied_key,
    port_status_key,
)
from tenet.store.metered import MeteredStore
from tenet.store.objects import ObjectStore, decode_event
from tenet.store.reach import Reach

LEASE_TTL = 5.0
TICK = 1.0
EXPIRE_EVERY = 5.0  # idle flows go within this of their timeout (60 s by default)
SAVE_EVERY = 10.0  # the flow-state file is rewritten at least this often while it changes
SAVE_BIG = 20_000  # entries above which it is rewritten only that often
WAIT = 0.05  # longest sleep of the loop: a store change or an upcall wakes it sooner
WATCH_POLL = 0.25  # the agent's watch reads at least this often (SQLite wakes it on commits)
DATAPATHS = ("auto", "kernel", "userspace")
STORE_DEADLINE = 3.0  # an agent's store call gives up after this (below the lease's TTL)
RESYNC_BATCH = 100  # puts per transaction when writing everything again
CUT_OFF = (StoreUnavailable, LeaseExpired)


def open_datapath(
    kind: str, underlay: IPv4Address, vxlan_port: int, name: str
) -> tuple[KernelDatapath | UserspaceDatapath, str]:
    """The datapath ``kind`` names (``auto``: kernel if this host can run it), and a
    sentence saying which one it is and, for ``auto`` falling back, why."""
    if kind not in DATAPATHS:
        raise DatapathUnavailable(f"datapath: must be one of {', '.join(DATAPATHS)}, not {kind!r}")
    if kind in ("auto", "kernel"):
        try:
            return KernelDatapath(underlay, vxlan_port=vxlan_port, name=name), "kernel datapath"
        except DatapathUnavailable as exc:
            if kind == "kernel":
                raise
            why = str(exc)
        return (
            UserspaceDatapath(underlay, vxlan_port=vxlan_port),
            f"userspace datapath (the kernel datapath is unavailable: {why})",
        )
    return UserspaceDatapath(underlay, vxlan_port=vxlan_port), "userspace datapath"


class Agent:
    """The daemon. Constructing it does no I/O; :meth:`start` opens the datapath, takes
    the host's lease, loads what the host's ports reach, adopts a previous run's flows
    and starts the services; :meth:`run` starts it if need be and loops until ``stop``."""

    def __init__(
        self,
        host_id: uuid.UUID,
        store: Store,
        underlay: IPv4Address,
        *,
        vxlan_port: int = 4789,
        datapath: str | Datapath = "userspace",
        pin_name: str | None = None,
        clock: Clock | None = None,
        stop: threading.Event | None = None,
        lease_ttl: float = LEASE_TTL,
        services: Sequence[Service] | None = None,
        state_file: Path | None = None,
        ct_timeouts: Timeouts | None = None,
        watch_links: bool | None = None,
    ) -> None:
        """``datapath`` names one (see :func:`open_datapath`) or is one already open
        (a FakeDatapath for agents simulated in one process). ``services`` default to
        the host's status publisher. ``state_file`` keeps the connections this host
        tracks across a restart (None: not kept); ``ct_timeouts`` their lifetimes.
        ``watch_links`` (by default: with a named datapath) follows the host's
        interfaces, so bindings wait for theirs."""
        self.host_id = host_id
        self.store = store
        self.underlay = underlay
        self.objects = ObjectStore(store)
        self.clock = clock or SystemClock()
        self.stop = stop or threading.Event()
        self.services: list[Service] = [StatusService()] if services is None else list(services)
        self._datapath_spec = datapath
        self._vxlan_port = vxlan_port
        self._pin_name = pin_name or str(host_id)
        self._lease_ttl = lease_ttl
        self.datapath_kind = ""
        self.adopted = (0, 0)
        self.started = False
        self.learned = LearnedState()
        self.reach = Reach(self.objects, host_id)
        self._written: dict[str, bytes] = {}
        self._next_expiry = 0.0
        self._revision = 0  # the last store revision whose events were applied
        self.applied_revision = 0  # the store revision whose changes are applied
        self.connected = True
        self.disconnects = 0
        self._watcher: Watcher | None = None
        self._reconnect: Reconnect | None = None
        self.state_file = state_file
        self.ct_timeouts = ct_timeouts or Timeouts()
        self.restored = 0
        self._saved: tuple[int, float] = (-1, 0.0)
        self._watch_links = isinstance(datapath, str) if watch_links is None else watch_links
        self.links: LinkWatcher | None = None
        self._link_control: HostLinks | None = None

    # -- start -----------------------------------------------------------------------
    def start(self) -> None:
        if self.started:
            return
        self.datapath: Datapath
        if isinstance(self._datapath_spec, str):
            self.datapath, self.datapath_kind = open_datapath(
                self._datapath_spec, self.underlay, self._vxlan_port, self._pin_name
            )
        else:
            self.datapath = self._datapath_spec
            self.datapath_kind = type(self._datapath_spec).__name__
        self.lease = self.store.grant_lease(self._lease_ttl)
        self.store.put(alive_key(self.host_id), str(self.underlay).encode(), lease=self.lease)
        self.core = AgentCore(
            self.host_id,
            self.datapath,
            self.learned,
            flowstate=FlowStateTable(self.ct_timeouts),
        )
        if self._watch_links:
            self._follow_links()
        self._revision = self._load()
        self._applied(self._revision)
        self.restored = self._restore()
        if self.datapath.adopted:
            kept, removed, writes = self.core.adopt(self.clock.monotonic())
            self.datapath.prune_tunnel_ports()
            self.adopted = (kept, removed)
            self._write(writes)
        context = ServiceContext(self.host_id, self.store, self.lease, self.clock, self.counters)
        for service in self.services:
            service.start(context)
        self.started = True

    def _follow_links(self) -> None:
        """Bindings see the host's links (a first dump, then events) and may change them."""
        self.links = LinkWatcher(self.datapath.wake)
        self._link_control = HostLinks()
        bindings = self.core.bindings
        bindings.links, bindings.control = LinkTable(), self._link_control
        bindings.underlay = self.underlay
        self._apply_links()

    def _apply_links(self) -> None:
        """The link events seen since the last turn, then the bindings settled again."""
        if self.links is None or self.core.bindings.links is None:
            return
        events = self.links.drain()
        for event in events:
            if isinstance(event, OSError):  # the host's netlink socket: its environment
                raise event
            if isinstance(event, BaseException):
                raise RuntimeError("the link watch failed") from event
            self.core.bindings.links.apply(event)
        if events and self.started:
            self.core.sync_ports()

    def publish_bindings(self) -> None:
        """Each changed binding's status, under the lease (deleted when it left). Cut off
        from the store, the changes wait (the bindings keep the newest)."""
        if not self.connected:
            return
        ops: list[Op] = []
        for port_id, status in self.core.bindings.take_changes().items():
            key = port_status_key(self.host_id, port_id)
            if status is None:
                ops.append(Delete(key))
            else:
                ops.append(Put(key, status.encode(), self.lease))
            print(f"tenet agent: port {port_id}: {describe(status)}", file=sys.stderr, flush=True)
        if ops:
            self._send(ops)

    def counters(self) -> dict[str, int]:
        """The agent's and its datapath's counters (what the status service publishes)."""
        stats = {**asdict(self.core.counters), **self.datapath.stats()}
        stats["flows_in_table"] = len(self.core.flows)
        hops = self.core.nexthops
        stats |= {f"nexthops_{k}": v for k, v in asdict(hops.counters).items()}
        stats["nexthops_resolving"] = len(hops)
        stats["flows_adopted"], stats["flows_adoption_removed"] = self.adopted
        stats |= asdict(self.core.flowstate.counters)
        stats["ct_restored"] = self.restored
        stats["applied_revision"] = self.applied_revision
        stats |= {f"drops_at_{site}": n for site, n in self.core.drops.items()}
        stats["store_connected"] = int(self.connected)
        stats["store_disconnects"] = self.disconnects
        return stats

    # -- flow state across a restart -------------------------------------------------------
    def _restore(self) -> int:
        """Load the connections a previous run saved (before its flows are adopted)."""
        if self.state_file is None or not self.state_file.exists():
            return 0
        try:
            return self.core.flowstate.restore(self.state_file.read_bytes(), self.clock.monotonic())
        except (PacketError, OSError) as exc:
            print(f"tenet agent: flow state in {self.state_file} not restored: {exc}", flush=True)
            return 0

    def save_state(self, now: float, *, force: bool = False) -> None:
        """Write the connections to the state file (atomically) when they changed, and
        at least every SAVE_EVERY seconds while they are used."""
        if self.state_file is None:
            return
        table = self.core.flowstate
        version, at = self._saved
        if not force and table.version == version and now - at < SAVE_EVERY:
            return
        # a big table is not rewritten every second: what a restart loses meanwhile,
        # the peers' refreshes bring back (each sends its used connections every 30 s)
        if not force and len(table) > SAVE_BIG and now - at < SAVE_EVERY:
            return
        if not force and table.version == version and not len(table):
            return
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        temp = self.state_file.with_name(self.state_file.name + ".tmp")
        temp.write_bytes(table.snapshot(now))
        os.replace(temp, self.state_file)
        self._saved = (table.version, now)

    def _load(self) -> int:
        """Load what this host's ports reach; returns the revision to watch after."""
        revision = self.store.revision()  # changes while loading are replayed by the watch
        records = self.reach.load()
        self.learned.load(self.store.list(LEARNED).items)
        self.core.load(records.values())
        self.publish_bindings()
        return revision

    # -- the loop ----------------------------------------------------------------------
    def run(self) -> None:
        self.start()
        next_tick = 0.0
        self._watcher = Watcher(self.store, self._revision + 1, self.datapath.wake)
        try:
            while not self.stop.is_set():
                self._take_events()
                if self._reconnect is not None and self._reconnect.ready.is_set():
                    self._resync()
                self._apply_links()
                self.publish_bindings()
                failure = self.datapath.failure
                if failure is not None:
                    raise RuntimeError("the datapath thread failed") from failure
                for upcall in self.datapath.upcalls(timeout=WAIT):
                    self._write(self.core.handle(upcall, self.clock.monotonic()))
                now = self.clock.monotonic()
                if now >= next_tick:
                    self.tick(now)
                    next_tick = now + TICK
        finally:
            if self._watcher is not None:
                self._watcher.close(wait=self.connected)
            self.close()

    def _take_events(self) -> None:
        """Apply what the watch delivered; a compacted history reloads everything (or,
        cut off, once back); a watch that lost the store leaves the agent cut off."""
        watcher = self._watcher
        if watcher is None:
            return
        for item in watcher.drain():
            if isinstance(item, list):
                try:
                    self.apply_events(item)
                except CUT_OFF as exc:  # a record it newly reaches could not be fetched
                    watcher.close(wait=False)
                    self._watcher = None
                    self._revision = -1  # what it holds may be half updated: reload, once back
                    self._cut_off(exc)
                    return
                continue
            watcher.close(wait=False)
            self._watcher = None
            if isinstance(item, WatchCompacted):  # history gone: reload everything
                self._revision = -1
                if self.connected:
                    self._reload()
            elif isinstance(item, StoreUnavailable):
                self._cut_off(item)
            else:
                raise item
            return

    def _reload(self) -> None:
        try:
            self._revision = self._load()
            self._applied(self._revision)
        except CUT_OFF as exc:
            self._revision = -1
            self._cut_off(exc)
            return
        self._watcher = Watcher(self.store, self._revision + 1, self.datapath.wake)

    # -- cut off from the store ----------------------------------------------------------
    def _cut_off(self, exc: BaseException) -> None:
        """The store stopped answering (or our lease is gone): keep forwarding, keep
        what should be written, and look for the store on another thread."""
        if self.connected:
            self.connected = False
            self.disconnects += 1
            print(
                f"tenet agent: cut off from the store ({exc}); forwarding goes on, "
                "changes wait until it is back",
                file=sys.stderr,
                flush=True,
            )
        if self._reconnect is None or self._reconnect.ready.is_set():
            self._reconnect = Reconnect(self.store, self.stop, self.datapath.wake)

    def _resync(self) -> None:
        """The store answers again: the lease kept (or a new one), everything this agent
        holds in the store written again, and the watch resumed where it stopped."""
        self._reconnect = None
        try:
            renewed = False
            try:
                self.store.keepalive(self.lease)
            except LeaseExpired:
                self.lease = self.store.grant_lease(self._lease_ttl)
                renewed = True
            puts = [Put(alive_key(self.host_id), str(self.underlay).encode(), self.lease)]
            puts += self._learned_again(renewed)
            if self._revision > 0:
                puts.append(
                    Put(applied_key(self.host_id), str(self._revision).encode(), self.lease)
                )
            for start in range(0, len(puts), RESYNC_BATCH):
                self.store.txn([], puts[start : start + RESYNC_BATCH])
        except CUT_OFF as exc:
            self._cut_off(exc)
            return
        self.connected = True
        if renewed:
            self.core.bindings.republish()
            context = ServiceContext(
                self.host_id, self.store, self.lease, self.clock, self.counters
            )
            for service in self.services:
                service.close()
                service.start(context)
        print(
            f"tenet agent: the store answers again ({'a new' if renewed else 'the same'} "
            f"lease); watching from revision {self._revision + 1}",
            file=sys.stderr,
            flush=True,
        )
        if self._watcher is None:
            if self._revision < 0:
                self._reload()
            else:
                self._watcher = Watcher(self.store, self._revision + 1, self.datapath.wake)

    def _learned_again(self, renewed: bool) -> list[Put]:
        """What this agent learned, to write again: each key the store lacks (its lease
        expired, or it was never sent), or holds under the old lease. A key another
        agent has written since holds newer news: it is left alone and forgotten here
        (the watch brings it). A write landing between the read and ours is overwritten
        (the learning agent writes it again on its next upcall)."""
        held = {kv.key: kv.value for kv in self.store.list(LEARNED).items}
        puts = []
        for key, value in list(self._written.items()):
            now = held.get(key)
            if now is None or (now == value and renewed):
                puts.append(Put(key, value, self.lease))
            elif now != value:
                del self._written[key]
        return puts

    def _send(self, ops: Sequence[Op]) -> None:
        """One write to the store, unless cut off (then it waits for the resync)."""
        if not self.connected:
            return
        try:
            self.store.txn([], ops)
        except CUT_OFF as exc:
            self._cut_off(exc)

    def apply_events(self, events: list[Event]) -> None:
        """Apply store events (object changes, learned state) to the host's picture."""
        applied = 0
        for event in events:
            self._revision = max(self._revision, event.revision)
            obj = decode_event(event)
            if obj is not None:
                applied = event.revision
                more = self.reach.accept(obj)
                if more is not None:  # a record this host holds, or now needs
                    self.core.apply(obj)
                    self.core.hold(more)
                continue
            tag = self.learned.apply(event)
            if tag is not None:
                self.core.invalidate({tag})
                self._write(self.core.release(tag, self.clock.monotonic()))
        if applied:
            self._applied(applied)

    def _applied(self, revision: int) -> None:
        self.applied_revision = revision
        self._send([Put(applied_key(self.host_id), str(revision).encode(), self.lease)])

    def _write(self, writes: list[StateWrite]) -> None:
        """Learned state, under the lease; kept newest per key (and written again by a
        resync), sent at once unless cut off."""
        puts = []
        for write in writes:
            put = to_put(write, self.lease)
            if self._written.get(put.key) != put.value:
                self._written[put.key] = put.value
                puts.append(put)
        if puts:
            self._send(puts)

    def tick(self, now: float) -> None:
        """Once a second: keep the lease, expire idle flows (every few seconds), and
        tick the services (not while cut off from the store)."""
        if self.connected:
            try:
                self.store.keepalive(self.lease)
            except CUT_OFF as exc:
                self._cut_off(exc)
        self._write(self.core.tick(now))
        if now >= self._next_expiry:  # reads every flow's counters: not every second
            self.core.expire(now)
            self._next_expiry = now + EXPIRE_EVERY
        for service in self.services:
            if not self.connected:
                break
            try:
                service.tick(now)
            except CUT_OFF as exc:
                self._cut_off(exc)
        self.save_state(now)

    def close(self) -> None:
        if not self.started:
            self.store.close()
            return
        for service in self.services:
            service.close()
        self.save_state(self.clock.monotonic(), force=True)
        if self.links is not None:
            self.links.close()
        if self._link_control is not None:
            self._link_control.close()
        self.datapath.close()
        if self.connected:
            with contextlib.suppress(*CUT_OFF):  # the lease expires on its own
                self.store.revoke(self.lease)
        self.store.close()


def main(
    host_id: uuid.UUID,
    store_url: str,
    underlay: IPv4Address,
    vxlan_port: int,
    datapath: str = "auto",
    pin_name: str | None = None,
    state_file: Path | None = None,
    ct_timeouts: Timeouts | None = None,
    metrics_address: tuple[str, int] | None = None,
) -> int:
    """Run an agent until a signal; ``metrics_address``: serve /metrics there."""
    stopping = threading.Event()  # a signal while starting up stops it cleanly too

    def stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    store = open_store(store_url, poll_interval=WATCH_POLL, deadline=STORE_DEADLINE)
    services: list[Service] = [StatusService()]
    if metrics_address is not None:  # the store's calls timed, for the metrics
        store = metered = MeteredStore(store)
        services.append(MetricsService(metrics_address, metered))
    agent = Agent(
        host_id,
        store,
        underlay,
        vxlan_port=vxlan_port,
        datapath=datapath,
        pin_name=pin_name,
        stop=stopping,
        state_file=state_file,
        ct_timeouts=ct_timeouts,
        services=services,
    )
    agent.start()
    print(f"tenet agent: host {host_id}, underlay {underlay}, {agent.datapath_kind}", flush=True)
    if agent.adopted != (0, 0):
        kept, removed = agent.adopted
        print(
            f"tenet agent: found {kept + removed} flows of a previous run still forwarding: "
            f"{kept} re-validated against the store and kept, {removed} removed",
            flush=True,
        )
    if agent.objects.find(Host, host_id) is None:
        print(
            f"tenet agent: no host {host_id} in the store yet; ports are bound once it "
            "exists and bindings name it",
            file=sys.stderr,
            flush=True,
        )
    try:
        agent.run()
    except (TenetError, OSError) as exc:  # the store or the host failed it: not a bug
        print(f"tenet agent: stopped by its environment: {exc}", file=sys.stderr, flush=True)
        raise
    except Exception as exc:  # crash-only: a bug ends the agent, and says so
        print(f"tenet agent: internal error (a bug): {exc!r}", file=sys.stderr, flush=True)
        raise
    return 0
