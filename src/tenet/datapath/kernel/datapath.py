"""KernelDatapath: the agent's handle on the tc eBPF fast path.

Owns the datapath's parts and their order of setup and teardown: the loaded
program and its maps (:mod:`maps`), the VXLAN device and the filters
(:mod:`netlink`), the flows this process installed (:mod:`table`), the ring
reader thread (:mod:`ring`), the Python sender for first packets and userspace
flows, and the bounded, fair upcall queue.

Threads: every public method runs on the agent's thread (one caller at a time);
the ring thread runs :class:`RingReader`. They share the :class:`FlowTable`
(locked), the sender's port table (locked, :mod:`tenet.datapath.pytx`), the upcall
queue (thread-safe), the counters (statistics) and ``failure`` (set once by the
ring thread; the agent ends on it). The kernel maps, the netlink socket and the
stale tunnel keys are the agent thread's alone.

A flow is installed in Python first (its SoftFlow) and then in the kernel, and
deleted from both; a flow whose match or actions the program cannot hold stays in
Python only. ``close()`` removes everything: the filters, the VXLAN device and
the pins; ``close(keep=True)`` leaves the program forwarding for a restart.
"""

from __future__ import annotations

import errno
import os
import socket
import time
from collections.abc import Sequence
from ipaddress import IPv4Address

from tenet.datapath.base import DpAction, FlowStats, Upcall
from tenet.datapath.kernel import netlink
from tenet.datapath.kernel.build import BPFFS, build_object, ensure_bpffs, unsupported
from tenet.datapath.kernel.layout import kernel_key, kernel_value, value_stats
from tenet.datapath.kernel.maps import LoadedProgram
from tenet.datapath.kernel.ring import Counters, RingReader, complete_checksum
from tenet.datapath.kernel.table import FlowTable
from tenet.datapath.libbpf import BpfError
from tenet.datapath.pytx import BURST, PythonSender, SoftFlow, deep_buffers, soft_flow
from tenet.datapath.upcalls import UpcallQueue
from tenet.errors import DatapathUnavailable, PacketError
from tenet.packets import FlowMatch, extract_match
from tenet.packets.vxlan import VXLAN_PORT

PIN_ROOT = BPFFS + "/tenet"
VXLAN_IFNAME = "tenet-vx"
DUMP_CHUNK = 1024  # kernel keys resolved per acquisition of the table's lock


def _stats(
    match: FlowMatch, kernel: tuple[int, int, float, int], soft: SoftFlow | None
) -> FlowStats:
    """A flow's counters: the kernel's (``value_stats``) plus what Python forwarded of it."""
    packets, nbytes, last_used, tcp_flags = kernel
    if soft is not None:
        packets, nbytes = packets + soft.packets, nbytes + soft.bytes
        last_used, tcp_flags = max(last_used, soft.last_used), tcp_flags | soft.tcp_flags
    return FlowStats(match, packets, nbytes, last_used, tcp_flags)


class KernelDatapath:
    counters: Counters

    def __init__(
        self,
        underlay: IPv4Address,
        *,
        vxlan_port: int = VXLAN_PORT,
        upcall_bound: int = 256,
        name: str = "default",
        pin_root: str = PIN_ROOT,
        vxlan_ifname: str = VXLAN_IFNAME,
    ) -> None:
        from pyroute2 import IPRoute

        reason = unsupported()
        if reason is not None:
            raise DatapathUnavailable(reason)
        ensure_bpffs()
        self.underlay = underlay
        self.vxlan_port = vxlan_port
        self.vxlan_ifname = vxlan_ifname
        self.pin_dir = os.path.join(pin_root, name)
        self.counters = Counters()
        self.failure: BaseException | None = None
        self._prog = LoadedProgram(build_object(), self.pin_dir)
        self.adopted = self._prog.adopted
        self._ipr = IPRoute()
        self._table = FlowTable()
        self._upcalls = UpcallQueue(upcall_bound)
        self._udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        deep_buffers(self._udp)
        self._tx = PythonSender(self._udp, vxlan_port, self.counters)
        try:
            self._udp.bind((str(underlay), 0))
            self.vxlan_ifindex = netlink.ensure_vxlan(self._ipr, vxlan_ifname, vxlan_port, underlay)
            self._prog.set_config(self.vxlan_ifindex, int(underlay))
            netlink.attach(self._ipr, self.vxlan_ifindex, self._prog.prog_fd)
        except OSError as exc:
            self._udp.close()
            self._ipr.close()
            self._prog.close()
            raise DatapathUnavailable(f"cannot set up the kernel datapath: {exc}") from exc
        # tunnel keys a previous run mapped: kept until the agent has set its own
        self._stale_keys = self._prog.tunnel_keys()
        self._reader = RingReader(
            self._prog.upcalls_fd,
            self._table,
            self._upcalls,
            self._tx,
            self.counters,
            self._failed,
        )
        self._reader.start()

    def _failed(self, exc: BaseException) -> None:
        self.failure = exc

    # -- ports ----------------------------------------------------------------------------
    def add_port(self, ifname: str) -> int:
        index = socket.if_nametoindex(ifname)
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        try:
            sock.bind((ifname, 0))
            netlink.attach(self._ipr, index, self._prog.prog_fd)
        except OSError:
            sock.close()
            raise
        old = self._tx.add(index, sock)
        if old is not None:
            old.close()
        return index

    def remove_port(self, port_no: int) -> None:
        sock = self._tx.remove(port_no)
        if sock is not None:
            sock.close()
            netlink.detach(self._ipr, port_no)

    # -- flows ------------------------------------------------------------------------------
    def install(
        self, match: FlowMatch, actions: Sequence[DpAction], *, ttl_above: int | None = None
    ) -> None:
        now_ns = time.monotonic_ns()
        compiled = soft_flow(actions, self.vxlan_port, now_ns / 1e9)
        compiled.ttl_above = ttl_above
        key = kernel_key(match, loose=ttl_above is not None)
        stale = self._table.put(match, compiled, key)
        if stale is not None:  # it was installed loose and is exact now, or back
            self._prog.flows.delete(stale)
        if key is None:
            return
        value = kernel_value(actions, self.vxlan_ifindex, now_ns, ttl_above or 0)
        try:
            self._prog.flows.update(key, value)
        except BpfError as exc:
            if exc.errno not in (errno.E2BIG, errno.ENOMEM):
                raise
            self.counters.kernel_full += 1  # the kernel's table is full: forwarded from here

    def delete(self, match: FlowMatch) -> FlowStats | None:
        soft, key = self._table.pop(match)
        value = self._prog.flows.pop(key) if key is not None else None
        if soft is None and value is None:
            return None
        stats = value_stats(value) if value is not None else (0, 0, 0.0, 0)
        return _stats(match, stats, soft)

    def dump(self) -> list[FlowStats]:
        out: list[FlowStats] = []
        seen: set[FlowMatch] = set()
        entries = self._prog.flows.items()
        for start in range(0, len(entries), DUMP_CHUNK):
            chunk = entries[start : start + DUMP_CHUNK]
            owners = self._table.owners([key for key, _ in chunk])
            for (_, value), (match, soft) in zip(chunk, owners, strict=True):
                seen.add(match)
                out.append(_stats(match, value_stats(value), soft))
        for match, soft in self._table.soft_flows():
            if match not in seen:
                out.append(_stats(match, (0, 0, 0.0, 0), soft))
        return out

    def execute(self, frame: bytes, in_port: int, actions: Sequence[DpAction]) -> None:
        if in_port:  # a VM's frame, handed over as the kernel had it (see complete_checksum)
            try:
                frame = complete_checksum(frame, extract_match(frame, in_port))
            except PacketError:
                self.counters.malformed += 1
                return
        self._tx.execute(actions, frame)

    # -- tunnel ports ---------------------------------------------------------------------
    def set_tunnel_port(self, key: int, port_no: int) -> None:
        self._stale_keys.discard(key)
        self._prog.set_tunnel_port(key, port_no)

    def prune_tunnel_ports(self) -> int:
        """Remove the tunnel keys a previous run mapped that this one has not (ports
        unbound while the agent was down); returns how many."""
        stale, self._stale_keys = self._stale_keys, set()
        for key in stale:
            self._prog.clear_tunnel_port(key)
        return len(stale)

    def clear_tunnel_port(self, key: int) -> None:
        self._prog.clear_tunnel_port(key)

    # -- upcalls and counters ---------------------------------------------------------------
    def upcalls(self, timeout: float) -> list[Upcall]:
        return self._upcalls.take(BURST, timeout)

    def wake(self) -> None:
        self._upcalls.wake()

    def kernel_counters(self) -> dict[str, int]:
        return self._prog.kernel_counters()

    def stats(self) -> dict[str, int]:
        k = self.kernel_counters()
        c = self.counters
        return {
            "rx": k["rx"],
            "tx": k["tx"] + c.tx,
            "hits": k["hits"] + c.user_hits,
            "misses": c.upcalls,
            "malformed": c.malformed,
            "tunnel_rx": k["tunnel_rx"],
            "tunnel_tx": k["tunnel_tx"] + c.tunnel_tx,
            "errors": k["errors"] + c.errors,
            "upcalls_dropped": sum(self._upcalls.dropped.values()) + k["ring_full"],
            "flows": len(self._table),
            "kernel_hits": k["hits"],
            "kernel_to_agent": k["misses"] + k["punted"],
            "oversize": k["oversize"],
            "kernel_table_full": c.kernel_full,
        }

    def close(self, *, keep: bool = False) -> None:
        """Stop; unless ``keep``, also detach the program and remove the device and the pins."""
        self._reader.close()
        for number in self._tx.numbers():
            if keep:
                sock = self._tx.remove(number)
                if sock is not None:
                    sock.close()
            else:
                self.remove_port(number)
        if not keep:
            netlink.detach(self._ipr, self.vxlan_ifindex)
            netlink.delete_link(self._ipr, self.vxlan_ifindex)
        self._prog.close()
        if not keep:
            self._prog.unpin()
        self._udp.close()
        self._ipr.close()
