"""Frames the kernel hands over: the ring-buffer reader thread.

Owns the ``datapath-ring`` thread, which polls the ``upcalls`` ring and, for each
record (``layout.UPCALL`` then the frame), rebuilds the frame as it arrived (an
offloaded VLAN tag put back, a truncated GSO frame's IP length cut to what is
there), extracts its match and either applies the flow installed for it in Python
(:meth:`FlowTable.serving`) or queues an upcall for the agent (bounded, fair).
A flow-state frame (``STATE_VNI``) is always an upcall, with its sender's
underlay address (``tunnel_src``), queued in ring order like the others.
Also owns :func:`complete_checksum`, for frames a VM left to checksum offload.

Threads and invariants: the reader thread is the only one that touches the ring;
it reads the flow table under the table's lock (once per record) and writes
nothing shared but the SoftFlow counters (its own), the upcall queue (thread-safe)
and :class:`Counters` (both threads add to the counters: statistics, not state).
An exception in the thread, or in the ring's ctypes callback, is handed to the
datapath's owner through ``fail`` and stops the thread (crash-only: the agent
ends on it).
"""

from __future__ import annotations

import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address

from tenet.datapath.base import STATE_VNI, Upcall
from tenet.datapath.kernel.layout import ETH_P_IP, ETH_P_IPV6, R_MISS, UPCALL
from tenet.datapath.kernel.table import FlowTable
from tenet.datapath.libbpf import RingBuffer
from tenet.datapath.pytx import PythonSender
from tenet.datapath.upcalls import UpcallQueue
from tenet.errors import PacketError
from tenet.packets import FlowMatch, extract_match
from tenet.packets.checksum import l4_checksum, udp_fixup


@dataclass
class Counters:
    """What Python did with frames (the kernel counts the rest in its own map)."""

    upcalls: int = 0  # ring thread: frames queued for the agent
    user_hits: int = 0  # ring thread: frames forwarded by a flow kept in Python
    kernel_full: int = 0  # agent's thread: flows the kernel's table had no room for
    malformed: int = 0  # both
    oversize: int = 0  # ring thread: frames handed over truncated (GSO)
    tx: int = 0  # both (the sender)
    tunnel_tx: int = 0  # both (the sender)
    errors: int = 0  # both (the sender)


def complete_checksum(frame: bytes, match: FlowMatch) -> bytes:
    """``frame`` with its TCP or UDP checksum computed in full.

    A VM's stack leaves checksums to the NIC (CHECKSUM_PARTIAL): the frame the
    program hands over holds only the pseudo-header's sum, and sent on as it is it
    would be dropped at the far end. The kernel completes checksums before an
    upcall in OVS too. Frames the kernel forwards itself keep their offload.
    """
    if match.ip_frag or match.vlan or match.ip_proto not in (6, 17):
        return frame
    if match.eth_type == ETH_P_IP:
        ihl = (frame[14] & 0x0F) * 4
        start, end = 14 + ihl, 14 + int.from_bytes(frame[16:18], "big")
    elif match.eth_type == ETH_P_IPV6 and frame[20] == match.ip_proto:  # no extension headers
        start, end = 54, 54 + int.from_bytes(frame[18:20], "big")
    else:
        return frame
    field = start + (16 if match.ip_proto == 6 else 6)
    if match.ip_proto == 17 and frame[field : field + 2] == b"\0\0":
        return frame  # no UDP checksum: nothing to complete
    buf = bytearray(frame)
    buf[field : field + 2] = b"\0\0"
    checksum = l4_checksum(match.ip_src, match.ip_dst, match.ip_proto, buf[start:end])
    if match.ip_proto == 17:
        checksum = udp_fixup(checksum)
    buf[field : field + 2] = checksum.to_bytes(2, "big")
    return bytes(buf)


def shortened(frame: bytes) -> bytes:
    """An IPv4 frame whose total length is cut to the bytes present (a truncated GSO frame)."""
    if len(frame) < 34 or frame[12:14] != b"\x08\x00":
        return frame
    buf = bytearray(frame)
    buf[16:18] = (len(frame) - 14).to_bytes(2, "big")
    return bytes(buf)


class RingReader:
    """Reads the ring at ``ring_fd`` on its own thread (from :meth:`start` to :meth:`close`)."""

    def __init__(
        self,
        ring_fd: int,
        table: FlowTable,
        upcalls: UpcallQueue,
        tx: PythonSender,
        counters: Counters,
        fail: Callable[[BaseException], None],
    ) -> None:
        self._table = table
        self._upcalls = upcalls
        self._tx = tx
        self.counters = counters
        self._fail = fail
        self._ring = RingBuffer(ring_fd, self._on_record)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="datapath-ring", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self._ring.close()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self._ring.poll(100)
        except BaseException as exc:  # crash-only: the agent sees it and ends
            self._fail(exc)
            raise

    def _on_record(self, data: bytes) -> None:
        try:
            self.handle(data)
        except BaseException as exc:  # raised inside a ctypes callback: hand it to the agent
            self._fail(exc)
            self._stop.set()

    def handle(self, data: bytes) -> None:
        """One ring record: forwarded by a flow kept in Python, or an upcall."""
        in_port, tunnel_key, length, reason, tci, vlan_proto, src = UPCALL.unpack_from(data)
        if reason == R_MISS and self._upcalls.full(in_port):
            return  # its port's upcalls are backed up: dropped (and counted) before any work
        frame = data[UPCALL.size :]
        truncated = length > len(frame)  # a GSO frame: all its headers are there
        if truncated:
            self.counters.oversize += 1
        if tci:  # the tag was offloaded into the skb: put it back where the frame had it
            frame = frame[:12] + struct.pack("!HH", vlan_proto, tci & 0x0FFF) + frame[12:]
        if truncated:  # a GSO frame cut short: its IP length runs past the bytes we have
            frame = shortened(frame)
        try:
            match = extract_match(frame, in_port, tunnel_key)
        except PacketError:
            self.counters.malformed += 1
            return
        tunnel_src = IPv4Address(src) if src else None
        if truncated:  # the agent sets up the flow; the sender retransmits this one
            self.counters.upcalls += 1
            self._upcalls.put(Upcall(in_port, frame, match, tunnel_key, True, tunnel_src))
            return
        # flow state from another agent: the agent's, whatever flow its match may have
        flow = self._table.serving(match) if tunnel_key != STATE_VNI else None
        if flow is not None:  # installed here, or raced its install: applied in userspace
            if in_port:
                frame = complete_checksum(frame, match)
            self.counters.user_hits += 1
            flow.packets += 1
            flow.bytes += len(frame)
            flow.last_used = time.monotonic()
            flow.tcp_flags |= match.tcp_flags
            self._tx.apply(flow, frame)
            return
        self.counters.upcalls += 1
        self._upcalls.put(Upcall(in_port, frame, match, tunnel_key, tunnel_src=tunnel_src))
