"""The kernel datapath: a tc eBPF program forwards installed flows; Python sees only misses.

``ebpf/tenet_dp.c`` is attached at clsact ingress of every local port (the host
side of a VM's veth) and of one VXLAN device in ``external`` mode per host. It
computes the same flow key as :func:`tenet.packets.extract_match` for untagged
IPv4 and IPv6 frames and, on a hit in the ``flows`` hash map, rewrites headers
(with checksum updates), decrements the TTL or hop limit, and redirects to a
local port or, with a tunnel key, to the VXLAN device; it counts and stamps
every flow. Most flows are *loose* (``install(..., ttl_above=n)``): their key
leaves out the TCP flags and the TTL, so a TCP connection costs one upcall per
direction rather than one per flag combination, and a packet whose TTL is at or
under the floor is left to an exact flow or the agent (a router on its way answers
it).
A miss, or a frame it does not read (ARP, neighbor discovery, VLAN tags, IPv4
options, IPv6 extension headers), goes to this process through a ring buffer and
is dropped in the kernel::

    ring record -> extract_match -> a flow installed here? apply it in Python
                                    otherwise             -> upcall (bounded, fair)

So the agent sees the same protocol as with the userspace datapath: flows whose
match or actions the program cannot hold (an ARP flow, a flood to more than
``MAX_OUT`` ports) are kept here and applied in userspace.

The maps are pinned under ``<pin_root>/<name>`` on bpffs, and the program stays
attached when the process dies: flows keep forwarding while the agent is down,
and a restarted datapath finds them (:attr:`KernelDatapath.adopted`), for the
agent to re-validate against the store. ``close()`` removes everything: the
filters, the VXLAN device and the pins. Port numbers are interface indexes, so
they stay the same across restarts.

The object file is compiled from the C source with clang on first use (or by
``./dev setup``) into a cache named by the source's hash; it is never committed.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import platform
import shutil
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from ipaddress import IPv4Address
from pathlib import Path

from tenet.datapath.base import DpAction, FlowStats, Output, Tunnel, Upcall
from tenet.datapath.libbpf import BpfError, BpfMap, BpfObject, RingBuffer, possible_cpus
from tenet.datapath.pytx import BURST, PythonSender, SoftFlow, deep_buffers, soft_flow
from tenet.datapath.upcalls import UpcallQueue
from tenet.errors import DatapathUnavailable, PacketError
from tenet.packets import FlowMatch, extract_match
from tenet.packets.actions import (
    DecTtl,
    SetEthDst,
    SetEthSrc,
    SetIpDst,
    SetIpSrc,
    SetL4Dst,
    SetL4Src,
)
from tenet.packets.checksum import l4_checksum, udp_fixup
from tenet.packets.vxlan import VXLAN_PORT

SOURCE = Path(__file__).with_name("ebpf") / "tenet_dp.c"
PROGRAM = "tenet_ingress"
PINNED = ("flows", "tunnel_ports", "config", "counters", "upcalls")
BPFFS = "/sys/fs/bpf"
PIN_ROOT = BPFFS + "/tenet"
VXLAN_IFNAME = "tenet-vx"
CACHE_DIR = "/var/cache/tenet"

# Mirrors of the C structs (little-endian hosts; addresses in network order).
KEY = struct.Struct("<II6s6sHBBBBHHH16s16s")
VALUE_HEAD = struct.Struct("<QQQIBBHH6s6sBx4s4s")
OUT = struct.Struct("<III")
STAMP = struct.Struct("<Q")  # last_used, at offset 16 of the value
MAX_OUT = 8
VALUE_SIZE = VALUE_HEAD.size + MAX_OUT * OUT.size
UPCALL = struct.Struct("<IIIHHH6x")
CONFIG = struct.Struct("<II")
U32 = struct.Struct("<I")
COUNTERS = (
    "rx",
    "hits",
    "misses",
    "punted",
    "ring_full",
    "tunnel_rx",
    "tunnel_tx",
    "tx",
    "errors",
    "oversize",
)
F_ETH_SRC, F_ETH_DST, F_IP_SRC, F_IP_DST, F_L4_SRC, F_L4_DST, F_USERSPACE = (
    1 << i for i in range(7)
)
ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD
R_MISS = 1  # enum reason in the C source
LOOSE_FLAGS = 0xFFFF  # tcp_flags of a loose flow's key (its ip_ttl is 0)
LOOSE_TTL = 255  # the TTL a loose key stands for, when read back with no owner
ZERO4 = bytes(4)
ZERO6 = bytes(6)


# -- the object file and the host -----------------------------------------------------


def build_object(cache_dir: str | None = None) -> Path:
    """The compiled program, built with clang if the cache does not hold this source's build."""
    source = SOURCE.read_bytes()
    digest = hashlib.sha256(source).hexdigest()[:16]
    cache = Path(cache_dir or os.environ.get("TENET_CACHE_DIR", CACHE_DIR))
    out = cache / f"tenet_dp-{digest}.o"
    if out.exists():
        return out
    clang = shutil.which("clang")
    if clang is None:
        raise DatapathUnavailable("clang is not installed (Debian packages: clang, libbpf-dev)")
    cache.mkdir(parents=True, exist_ok=True)
    multiarch = f"/usr/include/{platform.machine()}-linux-gnu"
    tmp = out.with_suffix(f".{os.getpid()}.tmp")
    cmd = [clang, "-O2", "-g", "-target", "bpf", "-I", multiarch, "-c", str(SOURCE), "-o", str(tmp)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise DatapathUnavailable(f"building the eBPF program failed:\n{done.stderr.strip()}")
    os.replace(tmp, out)
    for old in cache.glob("tenet_dp-*.o"):  # builds of other versions of the source
        if old != out:
            old.unlink(missing_ok=True)
    return out


def _bpffs_mounted(path: str = BPFFS) -> bool:
    with open("/proc/self/mountinfo") as mounts:
        for line in mounts:
            fields = line.split(" - ")
            if len(fields) == 2 and fields[0].split()[4] == path and fields[1].split()[0] == "bpf":
                return True
    return False


def ensure_bpffs(path: str = BPFFS) -> None:
    """bpffs mounted at ``path`` (mounted here if it is not)."""
    if _bpffs_mounted(path):
        return
    done = subprocess.run(
        ["mount", "-t", "bpf", "bpf", path], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise DatapathUnavailable(f"bpffs is not mounted at {path}: {done.stderr.strip()}")


def unsupported() -> str | None:
    """Why this host cannot run the kernel datapath, or None if it can."""
    if os.geteuid() != 0:
        return "the kernel datapath needs root"
    try:
        from tenet.datapath.libbpf import lib

        lib()
    except BpfError as exc:
        return str(exc)
    if shutil.which("clang") is None and not any(Path(CACHE_DIR).glob("tenet_dp-*.o")):
        return "clang is not installed (Debian packages: clang, libbpf-dev)"
    return None


# -- flows in kernel terms --------------------------------------------------------------


def kernel_key(match: FlowMatch, loose: bool = False) -> bytes | None:
    """The program's key for ``match``, or None when the program does not read such frames
    (see the C source: untagged IPv4 and IPv6, no neighbor discovery, no IPv6 fragments).
    A ``loose`` key leaves out the TCP flags and the TTL (the program looks it up first)."""
    if match.vlan:
        return None
    if match.eth_type == ETH_P_IP:
        if len(match.ip_src) != 4:
            return None
    elif match.eth_type == ETH_P_IPV6:
        if len(match.ip_src) != 16 or match.ip_frag:
            return None
        if match.ip_proto == 58 and match.l4_src in (135, 136):
            return None
    else:
        return None
    return KEY.pack(
        match.in_port,
        match.tunnel_key,
        match.eth_src,
        match.eth_dst,
        match.eth_type,
        match.ip_proto,
        match.ip_tos,
        0 if loose else match.ip_ttl,
        match.ip_frag,
        match.l4_src,
        match.l4_dst,
        LOOSE_FLAGS if loose else match.tcp_flags,
        match.ip_src,
        match.ip_dst,
    )


def match_of_key(key: bytes) -> FlowMatch:
    """The match a key was made from; for a loose key, a match it stands for (no TCP
    flags, TTL 255): what a restarted agent re-simulates to adopt it."""
    (
        in_port,
        tkey,
        eth_src,
        eth_dst,
        eth_type,
        proto,
        tos,
        ttl,
        frag,
        l4s,
        l4d,
        flags,
        src,
        dst,
    ) = KEY.unpack(key)
    if eth_type == ETH_P_IP:
        src, dst = src[:4], dst[:4]
    if flags == LOOSE_FLAGS:
        flags, ttl = 0, LOOSE_TTL
    return FlowMatch(
        in_port, tkey, eth_src, eth_dst, 0, 0, eth_type, src, dst, proto, tos, ttl, frag,
        l4s, l4d, flags,
    )  # fmt: skip


def kernel_value(
    actions: Sequence[DpAction], vxlan_ifindex: int, now_ns: int, ttl_above: int = 0
) -> bytes:
    """The program's value for ``actions``; F_USERSPACE if it cannot apply them itself.
    ``ttl_above`` is a loose flow's TTL floor."""
    value = _value(tuple(actions), vxlan_ifindex, ttl_above)
    return value[:16] + STAMP.pack(now_ns) + value[24:]


@lru_cache(maxsize=4096)  # flows set up in a burst share a few action lists
def _value(actions: tuple[DpAction, ...], vxlan_ifindex: int, ttl_above: int) -> bytes:
    flags = dec_ttl = l4_src = l4_dst = 0
    eth_src = eth_dst = ZERO6
    ip_src = ip_dst = ZERO4
    outs: list[tuple[int, int, int]] = []
    for action in actions:
        if isinstance(action, Output):
            outs.append((action.port_no, 0, 0))
        elif isinstance(action, Tunnel):
            outs.append((vxlan_ifindex, int(action.remote), action.key))
        elif isinstance(action, SetEthSrc):
            flags, eth_src = flags | F_ETH_SRC, action.mac
        elif isinstance(action, SetEthDst):
            flags, eth_dst = flags | F_ETH_DST, action.mac
        elif isinstance(action, SetIpSrc) and action.ip.version == 4:
            flags, ip_src = flags | F_IP_SRC, action.ip.packed
        elif isinstance(action, SetIpDst) and action.ip.version == 4:
            flags, ip_dst = flags | F_IP_DST, action.ip.packed
        elif isinstance(action, SetL4Src):
            flags, l4_src = flags | F_L4_SRC, action.port
        elif isinstance(action, SetL4Dst):
            flags, l4_dst = flags | F_L4_DST, action.port
        elif isinstance(action, DecTtl):
            dec_ttl += action.hops
        else:
            flags |= F_USERSPACE
    if len(outs) > MAX_OUT or dec_ttl > 255:
        flags |= F_USERSPACE
        outs, dec_ttl = [], 0
    head = VALUE_HEAD.pack(
        0, 0, 0, flags, dec_ttl, len(outs), l4_src, l4_dst, eth_src, eth_dst,
        min(ttl_above, 255), ip_src, ip_dst,
    )  # fmt: skip
    padded = outs + [(0, 0, 0)] * (MAX_OUT - len(outs))
    return head + b"".join(OUT.pack(*o) for o in padded)


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


def value_stats(value: bytes) -> tuple[int, int, float]:
    packets, nbytes, last_ns = struct.unpack_from("<QQQ", value)
    return packets, nbytes, last_ns / 1e9


def _shortened(frame: bytes) -> bytes:
    """An IPv4 frame whose total length is cut to the bytes present (a truncated GSO frame)."""
    if len(frame) < 34 or frame[12:14] != b"\x08\x00":
        return frame
    buf = bytearray(frame)
    buf[16:18] = (len(frame) - 14).to_bytes(2, "big")
    return bytes(buf)


# -- the datapath ----------------------------------------------------------------------------


@dataclass
class Counters:
    upcalls: int = 0
    user_hits: int = 0
    kernel_full: int = 0
    malformed: int = 0
    oversize: int = 0
    tx: int = 0
    tunnel_tx: int = 0
    errors: int = 0


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
        os.makedirs(self.pin_dir, exist_ok=True)
        self.adopted = os.path.exists(os.path.join(self.pin_dir, "flows"))
        self._obj = self._open(build_object())
        self._prog = self._obj.program_fd(PROGRAM)
        self._flows = BpfMap(self._obj.map_fd("flows"), KEY.size, VALUE_SIZE)
        self._tunnel_ports = BpfMap(self._obj.map_fd("tunnel_ports"), 4, 4)
        self._config = BpfMap(self._obj.map_fd("config"), 4, CONFIG.size)
        self._cpus = possible_cpus()
        self._counter_map = BpfMap(self._obj.map_fd("counters"), 4, 8 * self._cpus)
        self._ipr = IPRoute()
        self._soft: dict[FlowMatch, SoftFlow] = {}
        # the kernel key each match was installed under, and the match owning each key
        # (loose keys stand for many matches: the one installed last owns it)
        self._kkey: dict[FlowMatch, bytes] = {}
        self._owner: dict[bytes, FlowMatch] = {}
        self._upcalls = UpcallQueue(upcall_bound)
        self._udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        deep_buffers(self._udp)
        self._tx = PythonSender(self._udp, vxlan_port, self.counters)
        try:
            self._udp.bind((str(underlay), 0))
            self.vxlan_ifindex = self._ensure_vxlan()
            self._config.update(U32.pack(0), CONFIG.pack(self.vxlan_ifindex, int(underlay)))
            self._attach(self.vxlan_ifindex)
        except OSError as exc:
            self._udp.close()
            self._obj.close()
            raise DatapathUnavailable(f"cannot set up the kernel datapath: {exc}") from exc
        # tunnel keys a previous run mapped: kept until the agent has set its own
        self._stale_keys = {U32.unpack(k)[0] for k in self._tunnel_ports.all_keys()}
        self._ring = RingBuffer(self._obj.map_fd("upcalls"), self._on_record)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="datapath-ring", daemon=True)
        self._thread.start()

    def _open(self, path: Path) -> BpfObject:
        try:
            return BpfObject(str(path), self.pin_dir, PINNED)
        except BpfError:
            if not self.adopted:
                raise
        # pinned by a program of another layout: start afresh (its flows are lost)
        self._unpin()
        os.makedirs(self.pin_dir, exist_ok=True)
        self.adopted = False
        return BpfObject(str(path), self.pin_dir, PINNED)

    def _ensure_vxlan(self) -> int:
        """The host's VXLAN device in external mode, kept if it is already right."""
        found = self._ipr.link_lookup(ifname=self.vxlan_ifname)
        if found:
            link = self._ipr.get_links(found[0])[0]
            info = dict(link.get_attr("IFLA_LINKINFO").get_attr("IFLA_INFO_DATA")["attrs"])
            if (
                info.get("IFLA_VXLAN_COLLECT_METADATA") == 1
                and info.get("IFLA_VXLAN_PORT") == self.vxlan_port
                and info.get("IFLA_VXLAN_LOCAL") == str(self.underlay)
            ):
                return int(found[0])
            self._ipr.link("del", index=found[0])
        self._ipr.link(
            "add",
            ifname=self.vxlan_ifname,
            kind="vxlan",
            vxlan_collect_metadata=1,
            vxlan_port=self.vxlan_port,
            vxlan_local=str(self.underlay),
            vxlan_learning=0,
        )
        index = int(self._ipr.link_lookup(ifname=self.vxlan_ifname)[0])
        self._ipr.link("set", index=index, state="up")
        return index

    def _attach(self, index: int) -> None:
        from pyroute2 import NetlinkError

        try:
            self._ipr.tc("add", "clsact", index)
        except NetlinkError as exc:
            if exc.code != errno.EEXIST:
                raise
        self._ipr.tc(
            "replace-filter",
            "bpf",
            index,
            ":1",
            fd=self._prog,
            name="tenet",
            parent="ffff:fff2",
            classid=1,
            direct_action=True,
            prio=1,
        )

    def _detach(self, index: int) -> None:
        from pyroute2 import NetlinkError

        with contextlib.suppress(NetlinkError):  # the interface is gone, or had no qdisc
            self._ipr.tc("del", "clsact", index)

    # -- ports ----------------------------------------------------------------------------
    def add_port(self, ifname: str) -> int:
        index = socket.if_nametoindex(ifname)
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        try:
            sock.bind((ifname, 0))
            self._attach(index)
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
            self._detach(port_no)

    # -- flows ------------------------------------------------------------------------------
    def install(
        self, match: FlowMatch, actions: Sequence[DpAction], *, ttl_above: int | None = None
    ) -> None:
        compiled = soft_flow(actions, self.vxlan_port, time.monotonic())
        compiled.ttl_above = ttl_above
        key = kernel_key(match, loose=ttl_above is not None)
        old = self._kkey.get(match)
        if old is not None and old != key:  # it was installed loose and is exact now, or back
            self._forget(match, old)
        self._soft[match] = compiled
        if key is None:
            return
        self._kkey[match] = key
        self._owner[key] = match
        value = kernel_value(actions, self.vxlan_ifindex, time.monotonic_ns(), ttl_above or 0)
        try:
            self._flows.update(key, value)
        except BpfError as exc:
            if exc.errno not in (errno.E2BIG, errno.ENOMEM):
                raise
            self.counters.kernel_full += 1  # the kernel's table is full: forwarded from here

    def _forget(self, match: FlowMatch, key: bytes) -> bytes | None:
        """Remove ``match``'s kernel entry under ``key`` if ``match`` owns it; its value."""
        self._kkey.pop(match, None)
        if self._owner.get(key, match) != match:
            return None  # a later match installed the same loose flow: it stays
        self._owner.pop(key, None)
        value = self._flows.lookup(key)
        if value is not None:
            self._flows.delete(key)
        return value

    def delete(self, match: FlowMatch) -> FlowStats | None:
        soft = self._soft.pop(match, None)
        key = self._kkey.get(match) or kernel_key(match)
        value = self._forget(match, key) if key is not None else None
        if soft is None and value is None:
            return None
        packets, nbytes, last_used = value_stats(value) if value is not None else (0, 0, 0.0)
        if soft is not None:
            packets, nbytes = packets + soft.packets, nbytes + soft.bytes
            last_used = max(last_used, soft.last_used)
        return FlowStats(match, packets, nbytes, last_used)

    def dump(self) -> list[FlowStats]:
        out: list[FlowStats] = []
        seen: set[FlowMatch] = set()
        for key, value in self._flows.items():
            match = self._owner.get(key) or self._adopt(key)
            packets, nbytes, last_used = value_stats(value)
            soft = self._soft.get(match)
            if soft is not None:
                packets, nbytes = packets + soft.packets, nbytes + soft.bytes
                last_used = max(last_used, soft.last_used)
            seen.add(match)
            out.append(FlowStats(match, packets, nbytes, last_used))
        for match, soft in list(self._soft.items()):
            if match not in seen:
                out.append(FlowStats(match, soft.packets, soft.bytes, soft.last_used))
        return out

    def _adopt(self, key: bytes) -> FlowMatch:
        """A kernel flow no match of this run installed (a previous run's): the match it
        stands for from now on."""
        match = match_of_key(key)
        self._owner[key] = match
        self._kkey[match] = key
        return match

    def execute(self, frame: bytes, in_port: int, actions: Sequence[DpAction]) -> None:
        if in_port:  # a VM's frame, handed over as the kernel had it (see complete_checksum)
            try:
                frame = complete_checksum(frame, extract_match(frame, in_port))
            except PacketError:
                self.counters.malformed += 1
                return
        self._tx.execute(actions, frame)

    def set_tunnel_port(self, key: int, port_no: int) -> None:
        self._stale_keys.discard(key)
        self._tunnel_ports.update(U32.pack(key), U32.pack(port_no))

    def prune_tunnel_ports(self) -> int:
        """Remove the tunnel keys a previous run mapped that this one has not (ports
        unbound while the agent was down); returns how many."""
        stale, self._stale_keys = self._stale_keys, set()
        for key in stale:
            self._tunnel_ports.delete(U32.pack(key))
        return len(stale)

    def clear_tunnel_port(self, key: int) -> None:
        self._tunnel_ports.delete(U32.pack(key))

    def upcalls(self, timeout: float) -> list[Upcall]:
        return self._upcalls.take(BURST, timeout)

    def wake(self) -> None:
        self._upcalls.wake()

    def kernel_counters(self) -> dict[str, int]:
        out = {}
        for index, name in enumerate(COUNTERS):
            raw = self._counter_map.lookup(U32.pack(index)) or b""
            out[name] = sum(struct.unpack(f"<{len(raw) // 8}Q", raw))
        return out

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
            "flows": len(self._soft),
            "kernel_hits": k["hits"],
            "kernel_to_agent": k["misses"] + k["punted"],
            "oversize": k["oversize"],
            "kernel_table_full": c.kernel_full,
        }

    def close(self, *, keep: bool = False) -> None:
        """Stop; unless ``keep``, also detach the program and remove the device and the pins."""
        self._stop.set()
        self._thread.join(timeout=5)
        self._ring.close()
        ports = self._tx.numbers()
        for number in ports:
            if keep:
                sock = self._tx.remove(number)
                if sock is not None:
                    sock.close()
            else:
                self.remove_port(number)
        if not keep:
            self._detach(self.vxlan_ifindex)
            with contextlib.suppress(OSError):
                self._ipr.link("del", index=self.vxlan_ifindex)
        self._obj.close()
        if not keep:
            self._unpin()
        self._udp.close()
        self._ipr.close()

    def _unpin(self) -> None:
        for name in PINNED:
            with_path = os.path.join(self.pin_dir, name)
            if os.path.exists(with_path):
                os.unlink(with_path)
        with contextlib.suppress(OSError):
            os.rmdir(self.pin_dir)

    # -- the ring reader ------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self._ring.poll(100)
        except BaseException as exc:  # crash-only: the agent sees it and ends
            self.failure = exc
            raise

    def _on_record(self, data: bytes) -> None:
        try:
            self._from_kernel(data)
        except BaseException as exc:  # raised inside a ctypes callback: hand it to the agent
            self.failure = exc
            self._stop.set()

    def _loose_soft(self, match: FlowMatch) -> SoftFlow | None:
        """The loose flow serving ``match`` if its TTL is above the flow's floor."""
        key = kernel_key(match, loose=True)
        owner = self._owner.get(key) if key is not None else None
        flow = self._soft.get(owner) if owner is not None else None
        if flow is None or flow.ttl_above is None:
            return None
        if flow.ttl_above and match.ip_ttl <= flow.ttl_above:
            return None  # it runs out on the way: the agent's simulation answers it
        return flow

    def _from_kernel(self, data: bytes) -> None:
        in_port, tunnel_key, length, reason, tci, vlan_proto = UPCALL.unpack_from(data)
        if reason == R_MISS and self._upcalls.full(in_port):
            return  # its port's upcalls are backed up: dropped (and counted) before any work
        frame = data[UPCALL.size :]
        truncated = length > len(frame)  # a GSO frame: all its headers are there
        if truncated:
            self.counters.oversize += 1
        if tci:  # the tag was offloaded into the skb: put it back where the frame had it
            frame = frame[:12] + struct.pack("!HH", vlan_proto, tci & 0x0FFF) + frame[12:]
        if truncated:  # a GSO frame cut short: its IP length runs past the bytes we have
            frame = _shortened(frame)
        try:
            match = extract_match(frame, in_port, tunnel_key)
        except PacketError:
            self.counters.malformed += 1
            return
        if truncated:  # the agent sets up the flow; the sender retransmits this one
            self.counters.upcalls += 1
            self._upcalls.put(Upcall(in_port, frame, match, tunnel_key, truncated=True))
            return
        flow = self._soft.get(match) or self._loose_soft(match)
        if flow is not None:  # installed here, or raced its install: applied in userspace
            if in_port:
                frame = complete_checksum(frame, match)
            self.counters.user_hits += 1
            flow.packets += 1
            flow.bytes += len(frame)
            flow.last_used = time.monotonic()
            self._tx.apply(flow, frame)
            return
        self.counters.upcalls += 1
        self._upcalls.put(Upcall(in_port, frame, match, tunnel_key))
