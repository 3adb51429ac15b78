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
agent to re-validate against the store. Port numbers are interface indexes, so
they stay the same across restarts.

The package, by concern::

    build.py     the clang build into a cache (named by a hash of the source and
                 every header), the bpffs mount, unsupported()
    layout.py    the C structs as Python field lists, checked against the
                 object's BTF and the maps' sizes; the key and value codecs
    maps.py      the program loaded, its maps pinned, checked, typed access
    netlink.py   the filters on the ports and the VXLAN device
    table.py     the flows this process installed (locked: two threads)
    ring.py      the ring reader thread: frames the kernel hands over
    datapath.py  KernelDatapath, which puts them together

The eBPF program (``ebpf/tenet_dp.c`` and ``ebpf/lib/*.h``) is dual licensed
GPL-2.0-only OR BSD-2-Clause (its ``license`` section says "Dual BSD/GPL", so the
kernel lets it use GPL-only helpers); the Python code is Apache-2.0 like the rest
of tenet.
"""

from tenet.datapath.kernel.build import (
    BPFFS,
    CACHE_DIR,
    PROGRAM,
    SOURCE,
    build_object,
    ensure_bpffs,
    source_digest,
    unsupported,
)
from tenet.datapath.kernel.datapath import PIN_ROOT, VXLAN_IFNAME, KernelDatapath
from tenet.datapath.kernel.layout import (
    CONFIG,
    COUNTERS,
    F_ETH_DST,
    F_ETH_SRC,
    F_IP_DST,
    F_IP_SRC,
    F_L4_DST,
    F_L4_SRC,
    F_USERSPACE,
    KEY,
    LOOSE_FLAGS,
    LOOSE_TTL,
    MAX_OUT,
    OUT,
    R_MISS,
    R_UNREAD,
    R_USERSPACE,
    STAMP,
    UPCALL,
    VALUE_HEAD,
    VALUE_SIZE,
    kernel_key,
    kernel_value,
    layout_problems,
    map_problems,
    match_of_key,
    value_stats,
)
from tenet.datapath.kernel.maps import PINNED
from tenet.datapath.kernel.ring import Counters, complete_checksum

__all__ = [
    "BPFFS",
    "CACHE_DIR",
    "CONFIG",
    "COUNTERS",
    "F_ETH_DST",
    "F_ETH_SRC",
    "F_IP_DST",
    "F_IP_SRC",
    "F_L4_DST",
    "F_L4_SRC",
    "F_USERSPACE",
    "KEY",
    "LOOSE_FLAGS",
    "LOOSE_TTL",
    "MAX_OUT",
    "OUT",
    "PINNED",
    "PIN_ROOT",
    "PROGRAM",
    "R_MISS",
    "R_UNREAD",
    "R_USERSPACE",
    "SOURCE",
    "STAMP",
    "UPCALL",
    "VALUE_HEAD",
    "VALUE_SIZE",
    "VXLAN_IFNAME",
    "Counters",
    "KernelDatapath",
    "build_object",
    "complete_checksum",
    "ensure_bpffs",
    "kernel_key",
    "kernel_value",
    "layout_problems",
    "map_problems",
    "match_of_key",
    "source_digest",
    "unsupported",
    "value_stats",
]
