"""The program loaded into the kernel, its maps pinned on bpffs, checked against Python.

Owns the life of the object (open, check, pin, load, close, unpin) and typed
access to its maps: ``flows`` (:mod:`layout`'s key and value), ``tunnel_ports``
(VNI -> local port), ``config`` (one entry) and the per-CPU ``counters``.

Invariants:

* before anything is pinned or loaded, the object's BTF is compared with the
  Python layouts and its maps' sizes with :data:`layout.MAPS`; any difference
  raises ``DatapathUnavailable`` naming the struct or map and the field;
* maps are pinned under ``pin_dir`` and reused from there, so flows survive the
  process: ``adopted`` says whether this load found a previous run's flows. A
  pinned map libbpf finds incompatible with the object (another layout) is
  unpinned and the program loaded afresh (its flows are lost);
* every :class:`BpfMap` here has the key and value sizes the kernel's map has
  (they come from libbpf, not from Python constants), so no read or write can
  run past a buffer. Only the agent's thread uses these maps.
"""

from __future__ import annotations

import contextlib
import os
import struct
from pathlib import Path

from tenet.datapath.kernel.build import PROGRAM
from tenet.datapath.kernel.layout import (
    CONFIG,
    COUNTERS,
    MAPS,
    U32,
    layout_problems,
    map_problems,
)
from tenet.datapath.libbpf import BpfError, BpfObject, possible_cpus
from tenet.errors import DatapathUnavailable

PINNED = ("flows", "tunnel_ports", "config", "counters", "upcalls")


def object_problems(obj: BpfObject) -> list[str]:
    """How the opened object differs from the Python layouts and map sizes (empty: not)."""
    btf = obj.btf()
    if btf is None:
        return [f"{obj.path} has no BTF (build it with clang -g)"]
    return layout_problems(btf) + map_problems({name: obj.map_sizes(name) for name in MAPS})


def checked(path: Path) -> BpfObject:
    """The object file at ``path``, opened (not loaded) and checked against the layouts."""
    try:
        obj = BpfObject(str(path))
    except BpfError as exc:
        raise DatapathUnavailable(f"cannot open the eBPF program: {exc}") from exc
    try:
        problems = object_problems(obj)
    except BaseException:
        obj.close()
        raise
    if problems:
        obj.close()
        raise DatapathUnavailable(
            "the eBPF program does not match tenet/datapath/kernel/layout.py: "
            + "; ".join(problems)
        )
    return obj


class LoadedProgram:
    """The object at ``path`` checked, its maps pinned under ``pin_dir``, loaded."""

    def __init__(self, path: Path, pin_dir: str) -> None:
        self.pin_dir = pin_dir
        os.makedirs(pin_dir, exist_ok=True)
        self.adopted = os.path.exists(os.path.join(pin_dir, "flows"))
        self._obj = self._load(path)
        self.prog_fd = self._obj.program_fd(PROGRAM)
        self.flows = self._obj.map("flows")
        self.tunnel_ports = self._obj.map("tunnel_ports")
        self.config = self._obj.map("config")
        self.counters = self._obj.map("counters", cpus=possible_cpus())
        self.upcalls_fd = self._obj.map_fd("upcalls")

    def _load(self, path: Path) -> BpfObject:
        obj = checked(path)
        try:
            obj.load(self.pin_dir, PINNED)
            return obj
        except BpfError:
            if not self.adopted:
                raise
        # pinned by a program of another layout: start afresh (its flows are lost)
        self.unpin()
        os.makedirs(self.pin_dir, exist_ok=True)
        self.adopted = False
        obj = checked(path)
        obj.load(self.pin_dir, PINNED)
        return obj

    def set_config(self, vxlan_ifindex: int, local_ip: int) -> None:
        self.config.update(U32.pack(0), CONFIG.pack(vxlan_ifindex, local_ip))

    def tunnel_keys(self) -> set[int]:
        """The tunnel keys mapped to a local port now."""
        return {U32.unpack(k)[0] for k in self.tunnel_ports.all_keys()}

    def set_tunnel_port(self, key: int, port_no: int) -> None:
        self.tunnel_ports.update(U32.pack(key), U32.pack(port_no))

    def clear_tunnel_port(self, key: int) -> None:
        self.tunnel_ports.delete(U32.pack(key))

    def kernel_counters(self) -> dict[str, int]:
        """Each counter of ``enum counter``, summed over the CPUs."""
        out = {}
        for index, name in enumerate(COUNTERS):
            raw = self.counters.lookup(U32.pack(index)) or b""
            out[name] = sum(struct.unpack(f"<{len(raw) // 8}Q", raw))
        return out

    def close(self) -> None:
        """Unload (the pinned maps, and the program while attached, stay)."""
        self._obj.close()

    def unpin(self) -> None:
        for name in PINNED:
            with_path = os.path.join(self.pin_dir, name)
            if os.path.exists(with_path):
                os.unlink(with_path)
        with contextlib.suppress(OSError):
            os.rmdir(self.pin_dir)
