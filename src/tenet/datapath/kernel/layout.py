"""The program's structs as Python sees them, their encoders, and the check that
they are what the compiler laid out.

Owns the byte layouts of the C structs in ``ebpf/lib/common.h`` (``flow_key``,
``flow_val`` with its ``out``, ``upcall``, ``config``), the sizes of every map
the agent touches, the flag and reason numbers, and the codecs between them and
tenet's values: :func:`kernel_key` / :func:`match_of_key` (FlowMatch <-> key),
:func:`kernel_value` (actions -> value), :func:`value_stats`.

Invariants:

* each struct is written once, as an ordered field list (:class:`Layout`); the
  ``struct.Struct`` that packs it and the member list the check compares are
  both made from that list, never typed twice;
* :func:`layout_problems` compares every field's name, offset and size with the
  object's BTF, and :func:`map_problems` every map's key and value size with the
  map libbpf creates; the datapath refuses to open (``DatapathUnavailable``
  naming the struct and field) unless both are empty, so a C change cannot make
  the kernel read past a Python buffer or a field land in the wrong place;
* little-endian hosts (x86-64, arm64); addresses are in network order as on the
  wire, other multi-byte fields in host order unless a field says otherwise;
* a key is made only of a match the program itself would compute (untagged
  IPv4 and IPv6, no neighbor discovery, no IPv6 fragments): :func:`kernel_key`
  returns None for anything else, and the agent keeps such flows in userspace;
* a value the program cannot apply (IPv6 address rewrites, more than
  ``MAX_OUT`` outputs, more than 255 hops of TTL, a rewrite after an output: the
  program rewrites once, before all outputs) carries ``F_USERSPACE``: the
  program hands its frames to the agent, which applies the actions in Python.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import zip_longest

from tenet.datapath.base import DpAction, Output, Tunnel
from tenet.datapath.libbpf import Btf
from tenet.packets import FlowMatch
from tenet.packets.actions import (
    DecTtl,
    SetEthDst,
    SetEthSrc,
    SetIpDst,
    SetIpSrc,
    SetL4Dst,
    SetL4Src,
)


@dataclass(frozen=True, slots=True)
class Field:
    """One member: its C name and its ``struct`` format (``x`` for a named pad)."""

    name: str
    fmt: str

    @property
    def size(self) -> int:
        return struct.calcsize("<" + self.fmt)


class Layout:
    """A C struct as an ordered list of fields, packed little-endian with no implicit
    padding (the C structs have none: their pads are named members)."""

    def __init__(self, name: str, *fields: tuple[str, str]) -> None:
        self.name = name
        self.fields = tuple(Field(n, f) for n, f in fields)
        self.struct = struct.Struct("<" + "".join(f.fmt for f in self.fields))
        self.size = self.struct.size

    def members(self) -> list[tuple[str, int, int]]:
        """(name, offset, size) of each field, in order."""
        out, offset = [], 0
        for f in self.fields:
            out.append((f.name, offset, f.size))
            offset += f.size
        return out

    def head(self, upto: str) -> struct.Struct:
        """The fields before ``upto``, packed (the fixed part of a struct whose tail is
        an array the caller handles)."""
        names = [f.name for f in self.fields]
        return struct.Struct("<" + "".join(f.fmt for f in self.fields[: names.index(upto)]))

    def offset(self, name: str) -> int:
        return next(off for n, off, _ in self.members() if n == name)


MAX_OUT = 8
MAX_FRAME = 9216

# struct flow_key (68 bytes): the match the program computes from a frame.
#         0        1        2        3        4        5        6        7
#       +--------+--------+--------+--------+--------+--------+--------+--------+
#    0  |              in_port              |             tunnel_key            |
#    8  |                       eth_src                       |   eth_dst ...   |
#   16  |                ...                |     eth_type    |ip_proto| ip_tos |
#   24  | ip_ttl |ip_frag |      l4_src     |      l4_dst     |    tcp_flags    |
#   32  |                  ip_src (16; IPv4: the first 4) ...                   |
#   40  |                                  ...                                  |
#   48  |                  ip_dst (16; IPv4: the first 4) ...                   |
#   56  |                                  ...                                  |
#   64  |     icmp_id     |       pad       |
#       +--------+--------+--------+--------+
FLOW_KEY = Layout(
    "flow_key",
    ("in_port", "I"),  # ifindex of the VM port; 0 for the VXLAN device
    ("tunnel_key", "I"),  # the VNI of a frame from the VXLAN device
    ("eth_src", "6s"),
    ("eth_dst", "6s"),
    ("eth_type", "H"),
    ("ip_proto", "B"),
    ("ip_tos", "B"),
    ("ip_ttl", "B"),  # 0 in a loose key
    ("ip_frag", "B"),
    ("l4_src", "H"),  # ICMP type
    ("l4_dst", "H"),  # ICMP code
    ("tcp_flags", "H"),  # LOOSE_FLAGS in a loose key
    ("ip_src", "16s"),
    ("ip_dst", "16s"),
    ("icmp_id", "H"),  # an ICMP(v6) echo's identifier, else 0 (loose keys keep it)
    ("pad", "2x"),
)

# struct out (12 bytes): one output of a flow.
#         0        1        2        3        4        5        6        7
#       +--------+--------+--------+--------+--------+--------+--------+--------+
#    0  |              ifindex              |         remote (host order)       |
#    8  |                key                |
#       +--------+--------+--------+--------+
OUT_LAYOUT = Layout(
    "out",
    ("ifindex", "I"),  # a local port, or the VXLAN device
    ("remote", "I"),  # tunnel endpoint; 0 for a local port
    ("key", "I"),  # tunnel key
)

# struct flow_val (160 bytes): what a flow does, and its counters (the program
# writes packets, bytes, last_used and tcp_flags_seen; the agent writes the rest).
#         0        1        2        3        4        5        6        7
#       +--------+--------+--------+--------+--------+--------+--------+--------+
#    0  |                                packets                                |
#    8  |                                 bytes                                 |
#   16  |                     last_used (CLOCK_MONOTONIC ns)                    |
#   24  |               flags               |dec_ttl | n_out  |      l4_src     |
#   32  |      l4_dst     |                       eth_src                       |
#   40  |                       eth_dst                       |ttl_abov|  pad   |
#   48  |         ip_src (network order)    |         ip_dst (network order)    |
#   56  |                    outs[0] (struct out, 12 bytes) ...                 |
#   64  |                ...                |            outs[1] ...            |
#   .. ... outs[MAX_OUT - 1] ends at 152
#  152  |    tcp_flags_seen (the OR of the TCP flags of the frames it served)   |
#       +--------+--------+--------+--------+--------+--------+--------+--------+
FLOW_VAL = Layout(
    "flow_val",
    ("packets", "Q"),
    ("bytes", "Q"),
    ("last_used", "Q"),
    ("flags", "I"),  # F_*
    ("dec_ttl", "B"),
    ("n_out", "B"),  # 0: a drop flow
    ("l4_src", "H"),
    ("l4_dst", "H"),
    ("eth_src", "6s"),
    ("eth_dst", "6s"),
    ("ttl_above", "B"),  # a loose flow's floor
    ("pad", "x"),
    ("ip_src", "4s"),
    ("ip_dst", "4s"),
    ("outs", f"{MAX_OUT * OUT_LAYOUT.size}s"),
    ("tcp_flags_seen", "Q"),  # the program ORs each frame's flags in (a u64: atomic OR)
)

# struct upcall (24 bytes of header, then the frame): a ring record.
#         0        1        2        3        4        5        6        7
#       +--------+--------+--------+--------+--------+--------+--------+--------+
#    0  |              in_port              |             tunnel_key            |
#    8  |        len (the frame's)          |      reason     |     vlan_tci    |
#   16  |    vlan_proto   |       pad       |  tunnel_src (host order; 0: local) |
#   24  |            data (min(len, MAX_FRAME) bytes of the frame) ...          |
#       +--------+--------+--------+--------+--------+--------+--------+--------+
UPCALL_LAYOUT = Layout(
    "upcall",
    ("in_port", "I"),
    ("tunnel_key", "I"),
    ("len", "I"),
    ("reason", "H"),  # R_*
    ("vlan_tci", "H"),  # an offloaded VLAN tag, with 0x1000 set if present
    ("vlan_proto", "H"),
    ("pad", "2x"),
    ("tunnel_src", "I"),  # a tunnelled frame's outer source address
    ("data", f"{MAX_FRAME}s"),
)

# struct config (8 bytes): the only entry of the array map "config".
#         0        1        2        3        4        5        6        7
#       +--------+--------+--------+--------+--------+--------+--------+--------+
#    0  |           vxlan_ifindex           |        local_ip (host order)      |
#       +--------+--------+--------+--------+--------+--------+--------+--------+
CONFIG_LAYOUT = Layout("config", ("vxlan_ifindex", "I"), ("local_ip", "I"))

LAYOUTS = (FLOW_KEY, OUT_LAYOUT, FLOW_VAL, UPCALL_LAYOUT, CONFIG_LAYOUT)

KEY = FLOW_KEY.struct
VALUE_HEAD = FLOW_VAL.head("outs")
OUT = OUT_LAYOUT.struct
VALUE_SIZE = FLOW_VAL.size
STAMP = struct.Struct("<Q")  # last_used
STAMP_AT = FLOW_VAL.offset("last_used")
FLAGS_SEEN_AT = FLOW_VAL.offset("tcp_flags_seen")
VALUE_TAIL = bytes(VALUE_SIZE - FLAGS_SEEN_AT)  # no TCP flags seen yet
UPCALL = UPCALL_LAYOUT.head("data")
CONFIG = CONFIG_LAYOUT.struct
U32 = struct.Struct("<I")
U64 = struct.Struct("<Q")

# enum counter, in order (the index of each in the per-CPU array "counters")
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

# map name -> (key size, value size, max_entries or None: any); one CPU's value for
# a per-CPU map. The ring buffer "upcalls" has neither key nor value.
MAPS: Mapping[str, tuple[int, int, int | None]] = {
    "flows": (KEY.size, VALUE_SIZE, None),
    "tunnel_ports": (U32.size, U32.size, None),
    "config": (U32.size, CONFIG.size, 1),
    "counters": (U32.size, U64.size, len(COUNTERS)),
    "scratch": (U32.size, UPCALL_LAYOUT.size, 1),
}

F_ETH_SRC, F_ETH_DST, F_IP_SRC, F_IP_DST, F_L4_SRC, F_L4_DST, F_USERSPACE = (
    1 << i for i in range(7)
)
R_MISS, R_UNREAD, R_USERSPACE = 1, 2, 3  # enum reason
ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD
LOOSE_FLAGS = 0xFFFF  # tcp_flags of a loose flow's key (its ip_ttl is 0)
LOOSE_TTL = 255  # the TTL a loose key stands for, when read back with no owner
ZERO4 = bytes(4)
ZERO6 = bytes(6)


# -- checked against the compiled program ---------------------------------------------


def layout_problems(btf: Btf) -> list[str]:
    """Every difference between the Python layouts and the object's BTF, one sentence
    each naming the struct and the field; empty when they agree."""
    problems: list[str] = []
    for layout in LAYOUTS:
        found = btf.struct(layout.name)
        if found is None:
            problems.append(f"struct {layout.name}: not in the program's BTF")
            continue
        theirs = [(m.name, m.offset, m.size) for m in found.members]
        for index, (mine, c) in enumerate(zip_longest(layout.members(), theirs)):
            if mine is None:
                problems.append(f"struct {layout.name}: field {c[0]!r} is missing in Python")
            elif c is None:
                problems.append(f"struct {layout.name}: field {mine[0]!r} is not in C")
            elif mine != c:
                problems.append(
                    f"struct {layout.name}: field {index} is {mine[0]!r} at offset "
                    f"{mine[1]}, {mine[2]} bytes in Python but {c[0]!r} at offset {c[1]}, "
                    f"{c[2]} bytes in C"
                )
        bitfields = [m.name for m in found.members if m.bits]
        if bitfields:
            problems.append(f"struct {layout.name}: bitfields {bitfields} cannot be mirrored")
        if found.size != layout.size:
            problems.append(
                f"struct {layout.name}: {layout.size} bytes in Python, {found.size} in C"
            )
    return problems


def map_problems(sizes: Mapping[str, tuple[int, int, int]]) -> list[str]:
    """Every map whose key size, value size or entry count ``sizes`` (name -> as
    libbpf reports them) disagrees with :data:`MAPS`; empty when they agree."""
    problems = []
    for name, (key, value, entries) in MAPS.items():
        if name not in sizes:
            problems.append(f"map {name}: not in the program")
            continue
        k, v, n = sizes[name]
        if (k, v) != (key, value):
            problems.append(
                f"map {name}: key {key} and value {value} bytes in Python, "
                f"key {k} and value {v} in C"
            )
        if entries is not None and n != entries:
            problems.append(f"map {name}: {entries} entries in Python, {n} in C")
    return problems


# -- flows in kernel terms --------------------------------------------------------------


def kernel_key(match: FlowMatch, loose: bool = False) -> bytes | None:
    """The program's key for ``match``, or None when the program does not read such frames
    (see ``ebpf/lib/parse.h``: untagged IPv4 and IPv6, no neighbor discovery, no IPv6
    fragments). A ``loose`` key leaves out the TCP flags and the TTL (the program looks
    it up first)."""
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
        match.icmp_id,
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
        icmp_id,
    ) = KEY.unpack(key)
    if eth_type == ETH_P_IP:
        src, dst = src[:4], dst[:4]
    if flags == LOOSE_FLAGS:
        flags, ttl = 0, LOOSE_TTL
    return FlowMatch(
        in_port, tkey, eth_src, eth_dst, 0, 0, eth_type, src, dst, proto, tos, ttl, frag,
        l4s, l4d, flags, icmp_id=icmp_id,
    )  # fmt: skip


def kernel_value(
    actions: Sequence[DpAction], vxlan_ifindex: int, now_ns: int, ttl_above: int = 0
) -> bytes:
    """The program's value for ``actions``; F_USERSPACE if it cannot apply them itself.
    ``ttl_above`` is a loose flow's TTL floor."""
    value = _value(tuple(actions), vxlan_ifindex, ttl_above)
    return value[:STAMP_AT] + STAMP.pack(now_ns) + value[STAMP_AT + STAMP.size :]


@lru_cache(maxsize=4096)  # flows set up in a burst share a few action lists
def _value(actions: tuple[DpAction, ...], vxlan_ifindex: int, ttl_above: int) -> bytes:
    flags = dec_ttl = l4_src = l4_dst = 0
    eth_src = eth_dst = ZERO6
    ip_src = ip_dst = ZERO4
    outs: list[tuple[int, int, int]] = []
    for action in actions:
        if outs and not isinstance(action, Output | Tunnel):
            flags |= F_USERSPACE  # the program rewrites once, before every output
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
    return head + b"".join(OUT.pack(*o) for o in padded) + VALUE_TAIL


def value_stats(value: bytes) -> tuple[int, int, float, int]:
    """A value's (packets, bytes, last used in CLOCK_MONOTONIC seconds, TCP flags seen)."""
    packets, nbytes, last_ns = struct.unpack_from("<QQQ", value)
    (flags,) = U64.unpack_from(value, FLAGS_SEEN_AT)
    return packets, nbytes, last_ns / 1e9, flags
