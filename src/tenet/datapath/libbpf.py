"""A small ctypes binding of libbpf (``libbpf.so.1``, Debian's ``libbpf1``).

Only what the kernel datapath needs: open an object file, read its BTF (the
struct layouts the compiler emitted) and its maps' sizes, pin its maps, load it,
find its program and maps, read and write map entries (one at a time and in
batches), consume a ring buffer, and run a program on a frame
(``BPF_PROG_TEST_RUN``, for tests). Every call that fails raises
:class:`BpfError` with the operation and the kernel's reason.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

BPF_ANY = 0
BPF_NOEXIST = 1
BPF_EXIST = 2


class BpfError(OSError):
    """A libbpf call failed."""


_lib: ctypes.CDLL | None = None
RingCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t)


class ProgTestRunOpts(ctypes.Structure):
    """struct bpf_test_run_opts (libbpf 1.1)."""

    _fields_ = [
        ("sz", ctypes.c_size_t),
        ("data_in", ctypes.c_void_p),
        ("data_out", ctypes.c_void_p),
        ("data_size_in", ctypes.c_uint32),
        ("data_size_out", ctypes.c_uint32),
        ("ctx_in", ctypes.c_void_p),
        ("ctx_out", ctypes.c_void_p),
        ("ctx_size_in", ctypes.c_uint32),
        ("ctx_size_out", ctypes.c_uint32),
        ("retval", ctypes.c_uint32),
        ("repeat", ctypes.c_int),
        ("duration", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("cpu", ctypes.c_uint32),
        ("batch_size", ctypes.c_uint32),
    ]


class BtfTypeHead(ctypes.Structure):
    """struct btf_type: ``info`` holds vlen (bits 0-15), kind (24-28), kind_flag (31)."""

    _fields_ = [("name_off", ctypes.c_uint32), ("info", ctypes.c_uint32), ("size", ctypes.c_uint32)]


class BtfMember(ctypes.Structure):
    """struct btf_member, after a struct's btf_type: ``offset`` in bits (with kind_flag,
    the bitfield's size in its top 8 bits)."""

    _fields_ = [
        ("name_off", ctypes.c_uint32),
        ("type", ctypes.c_uint32),
        ("offset", ctypes.c_uint32),
    ]


class BatchOpts(ctypes.Structure):
    _fields_ = [
        ("sz", ctypes.c_size_t),
        ("elem_flags", ctypes.c_uint64),
        ("flags", ctypes.c_uint64),
    ]


def lib() -> ctypes.CDLL:
    """libbpf, loaded once; BpfError if this machine does not have it."""
    global _lib
    if _lib is not None:
        return _lib
    name = ctypes.util.find_library("bpf") or "libbpf.so.1"
    try:
        handle = ctypes.CDLL(name, use_errno=True)
    except OSError as exc:
        raise BpfError(errno.ENOENT, f"libbpf is not installed ({name}): {exc}") from exc
    vp, ci, cs, u64 = ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint64
    u32 = ctypes.c_uint32
    signatures: dict[str, tuple[Any, list[Any]]] = {
        "bpf_object__open_file": (vp, [cs, vp]),
        "bpf_object__load": (ci, [vp]),
        "bpf_object__close": (None, [vp]),
        "bpf_object__find_map_by_name": (vp, [vp, cs]),
        "bpf_object__find_program_by_name": (vp, [vp, cs]),
        "bpf_object__btf": (vp, [vp]),
        "btf__parse": (vp, [cs, vp]),
        "btf__free": (None, [vp]),
        "btf__find_by_name_kind": (ctypes.c_int32, [vp, cs, u32]),
        "btf__type_by_id": (ctypes.POINTER(BtfTypeHead), [vp, u32]),
        "btf__name_by_offset": (cs, [vp, u32]),
        "btf__resolve_size": (ctypes.c_int64, [vp, u32]),
        "bpf_map__key_size": (u32, [vp]),
        "bpf_map__value_size": (u32, [vp]),
        "bpf_map__max_entries": (u32, [vp]),
        "bpf_prog_test_run_opts": (ci, [ci, ctypes.POINTER(ProgTestRunOpts)]),
        "bpf_program__fd": (ci, [vp]),
        "bpf_map__fd": (ci, [vp]),
        "bpf_map__set_pin_path": (ci, [vp, cs]),
        "bpf_map_update_elem": (ci, [ci, vp, vp, u64]),
        "bpf_map_lookup_elem": (ci, [ci, vp, vp]),
        "bpf_map_delete_elem": (ci, [ci, vp]),
        "bpf_map_lookup_and_delete_elem": (ci, [ci, vp, vp]),
        "bpf_map_get_next_key": (ci, [ci, vp, vp]),
        "bpf_map_lookup_batch": (
            ci,
            [ci, vp, vp, vp, vp, ctypes.POINTER(ctypes.c_uint32), ctypes.POINTER(BatchOpts)],
        ),
        "libbpf_num_possible_cpus": (ci, []),
        "ring_buffer__new": (vp, [ci, RingCallback, vp, vp]),
        "ring_buffer__poll": (ci, [vp, ci]),
        "ring_buffer__consume": (ci, [vp]),
        "ring_buffer__free": (None, [vp]),
    }
    for fn, (restype, argtypes) in signatures.items():
        func = getattr(handle, fn)
        func.restype = restype
        func.argtypes = argtypes
    _lib = handle
    return handle


def _check(rc: int, what: str) -> int:
    if rc < 0:
        code = -rc if rc != -1 else ctypes.get_errno()
        raise BpfError(code, f"{what}: {os.strerror(code)}")
    return rc


def _ptr(value: int | None, what: str) -> int:
    if not value:
        code = ctypes.get_errno() or errno.EINVAL
        raise BpfError(code, f"{what}: {os.strerror(code)}")
    return value


BTF_KIND_STRUCT = 4


@dataclass(frozen=True, slots=True)
class Member:
    """A struct member as the compiler laid it out: byte offset and size (``bits``: a
    bitfield's width, 0 for a whole field)."""

    name: str
    offset: int
    size: int
    bits: int = 0


@dataclass(frozen=True, slots=True)
class BtfStruct:
    name: str
    size: int
    members: tuple[Member, ...]


class Btf:
    """BTF type information: a file's own (:meth:`parse`, freed by :meth:`close`) or an
    opened object's (:meth:`BpfObject.btf`, which the object frees)."""

    def __init__(self, handle: int, *, owned: bool) -> None:
        self._btf = handle
        self._owned = owned

    @classmethod
    def parse(cls, path: str) -> Btf:
        """The BTF of an ELF object file (or of a raw BTF file such as the kernel's)."""
        return cls(
            _ptr(lib().btf__parse(path.encode(), None), f"reading BTF of {path}"), owned=True
        )

    def struct(self, name: str) -> BtfStruct | None:
        """``struct name``'s size and members, or None if there is no such struct."""
        bpf = lib()
        type_id = bpf.btf__find_by_name_kind(self._btf, name.encode(), BTF_KIND_STRUCT)
        if type_id < 0:
            return None
        head = bpf.btf__type_by_id(self._btf, type_id).contents
        vlen, kind_flag = head.info & 0xFFFF, head.info >> 31
        raw = (BtfMember * vlen).from_address(ctypes.addressof(head) + ctypes.sizeof(head))
        members = []
        for m in raw:
            bit_offset, bits = (m.offset & 0xFFFFFF, m.offset >> 24) if kind_flag else (m.offset, 0)
            size = _check(bpf.btf__resolve_size(self._btf, m.type), f"size of {name} member")
            label = (bpf.btf__name_by_offset(self._btf, m.name_off) or b"").decode()
            if bit_offset % 8:
                bits = bits or size * 8
            members.append(Member(label, bit_offset // 8, size, bits))
        return BtfStruct(name, head.size, tuple(members))

    def close(self) -> None:
        if self._btf and self._owned:
            lib().btf__free(self._btf)
        self._btf = 0


class BpfObject:
    """An object file opened: its BTF and its maps' sizes can be read before
    :meth:`load` pins the maps and loads it into the kernel."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._obj = _ptr(lib().bpf_object__open_file(path.encode(), None), f"opening {path}")

    def load(self, pin_dir: str | None = None, pinned: tuple[str, ...] = ()) -> None:
        """Pin ``pinned`` maps under ``pin_dir`` (reusing what is pinned there) and load.
        On failure the object is closed."""
        bpf = lib()
        try:
            for name in pinned:
                assert pin_dir is not None, "pinned maps need a pin_dir"
                target = os.path.join(pin_dir, name).encode()
                _check(bpf.bpf_map__set_pin_path(self._map(name), target), f"pinning map {name}")
            _check(bpf.bpf_object__load(self._obj), f"loading {self.path} (see libbpf's log above)")
        except BaseException:
            self.close()
            raise

    def btf(self) -> Btf | None:
        """The object's BTF (valid while the object is open), None if it has none."""
        handle = lib().bpf_object__btf(self._obj)
        return Btf(handle, owned=False) if handle else None

    def map_sizes(self, name: str) -> tuple[int, int, int]:
        """Map ``name``'s key size, value size (one CPU's, for a per-CPU map) and
        max_entries, as the object defines them (or as the pinned map it reuses has them)."""
        bpf, handle = lib(), self._map(name)
        return (
            bpf.bpf_map__key_size(handle),
            bpf.bpf_map__value_size(handle),
            bpf.bpf_map__max_entries(handle),
        )

    def _map(self, name: str) -> int:
        return _ptr(lib().bpf_object__find_map_by_name(self._obj, name.encode()), f"map {name}")

    def map_fd(self, name: str) -> int:
        return _check(lib().bpf_map__fd(self._map(name)), f"fd of map {name}")

    def map(self, name: str, *, cpus: int = 1) -> BpfMap:
        """Loaded map ``name`` with the sizes it has (values of ``cpus`` CPUs each)."""
        key_size, value_size, _ = self.map_sizes(name)
        per_cpu = (value_size + 7) // 8 * 8 if cpus > 1 else value_size
        return BpfMap(self.map_fd(name), key_size, per_cpu * cpus)

    def program_fd(self, name: str) -> int:
        prog = _ptr(
            lib().bpf_object__find_program_by_name(self._obj, name.encode()), f"program {name}"
        )
        return _check(lib().bpf_program__fd(prog), f"fd of program {name}")

    def close(self) -> None:
        if self._obj:
            lib().bpf_object__close(self._obj)
            self._obj = 0


class BpfMap:
    """A map by file descriptor, with fixed key and value sizes."""

    def __init__(self, fd: int, key_size: int, value_size: int) -> None:
        self.fd = fd
        self.key_size = key_size
        self.value_size = value_size

    def update(self, key: bytes, value: bytes, flags: int = BPF_ANY) -> None:
        _check(lib().bpf_map_update_elem(self.fd, key, value, flags), "map update")

    def lookup(self, key: bytes) -> bytes | None:
        out = ctypes.create_string_buffer(self.value_size)
        rc = lib().bpf_map_lookup_elem(self.fd, key, out)
        if rc < 0:
            code = -rc if rc != -1 else ctypes.get_errno()
            if code == errno.ENOENT:
                return None
            raise BpfError(code, f"map lookup: {os.strerror(code)}")
        return out.raw

    def delete(self, key: bytes) -> bool:
        rc = lib().bpf_map_delete_elem(self.fd, key)
        if rc < 0:
            code = -rc if rc != -1 else ctypes.get_errno()
            if code == errno.ENOENT:
                return False
            raise BpfError(code, f"map delete: {os.strerror(code)}")
        return True

    def pop(self, key: bytes) -> bytes | None:
        """Remove ``key``'s entry and return its value as it was, in one step (None if
        there was none). Hash maps only (kernel 5.14 or later)."""
        out = ctypes.create_string_buffer(self.value_size)
        rc = lib().bpf_map_lookup_and_delete_elem(self.fd, key, out)
        if rc < 0:
            code = -rc if rc != -1 else ctypes.get_errno()
            if code == errno.ENOENT:
                return None
            raise BpfError(code, f"map lookup and delete: {os.strerror(code)}")
        return out.raw

    def all_keys(self) -> Iterator[bytes]:
        key = ctypes.create_string_buffer(self.key_size)
        nxt = ctypes.create_string_buffer(self.key_size)
        rc = lib().bpf_map_get_next_key(self.fd, None, nxt)
        while rc == 0:
            yield nxt.raw
            ctypes.memmove(key, nxt, self.key_size)
            rc = lib().bpf_map_get_next_key(self.fd, key, nxt)

    def items(self, batch: int = 4096) -> list[tuple[bytes, bytes]]:
        """Every entry, read in batches (entries changing meanwhile may be missed or repeated)."""
        bpf = lib()
        keys = ctypes.create_string_buffer(self.key_size * batch)
        values = ctypes.create_string_buffer(self.value_size * batch)
        token_in = ctypes.create_string_buffer(self.key_size)
        token_out = ctypes.create_string_buffer(self.key_size)
        opts = BatchOpts(ctypes.sizeof(BatchOpts), 0, 0)
        out: list[tuple[bytes, bytes]] = []
        first = True
        while True:
            count = ctypes.c_uint32(batch)
            rc = bpf.bpf_map_lookup_batch(
                self.fd,
                None if first else token_in,
                token_out,
                keys,
                values,
                ctypes.byref(count),
                ctypes.byref(opts),
            )
            code = 0 if rc >= 0 else (-rc if rc != -1 else ctypes.get_errno())
            if code not in (0, errno.ENOENT):
                raise BpfError(code, f"map batch lookup: {os.strerror(code)}")
            k, v = keys.raw, values.raw
            ks, vs = self.key_size, self.value_size
            out.extend(
                (k[i * ks : (i + 1) * ks], v[i * vs : (i + 1) * vs]) for i in range(count.value)
            )
            if code == errno.ENOENT:
                return out
            ctypes.memmove(token_in, token_out, self.key_size)
            first = False


@dataclass(frozen=True, slots=True)
class ProgRun:
    """What ``BPF_PROG_TEST_RUN`` returned: the program's return code and the frame."""

    retval: int
    data: bytes


def prog_test_run(prog_fd: int, data: bytes, ctx: bytes = b"", headroom: int = 256) -> ProgRun:
    """Run the loaded program once on ``data`` (with context ``ctx``, e.g. a
    ``struct __sk_buff`` for a tc program) in the calling thread's network namespace."""
    out = ctypes.create_string_buffer(len(data) + headroom)
    opts = ProgTestRunOpts(sz=ctypes.sizeof(ProgTestRunOpts))
    opts.data_in = ctypes.cast(ctypes.c_char_p(data), ctypes.c_void_p)
    opts.data_size_in = len(data)
    opts.data_out = ctypes.cast(out, ctypes.c_void_p)
    opts.data_size_out = len(out)
    if ctx:
        ctx_buf = ctypes.create_string_buffer(ctx, len(ctx))
        opts.ctx_in = ctypes.cast(ctx_buf, ctypes.c_void_p)
        opts.ctx_size_in = len(ctx)
    opts.repeat = 1
    _check(lib().bpf_prog_test_run_opts(prog_fd, ctypes.byref(opts)), "running the program")
    return ProgRun(opts.retval, out.raw[: opts.data_size_out])


def possible_cpus() -> int:
    return _check(lib().libbpf_num_possible_cpus(), "counting CPUs")


class RingBuffer:
    """A BPF ring buffer; ``poll`` calls ``handle(bytes)`` for each record."""

    def __init__(self, map_fd: int, handle: Callable[[bytes], None]) -> None:
        def trampoline(_ctx: int | None, data: int | None, size: int) -> int:
            handle(ctypes.string_at(data, size))  # type: ignore[arg-type]
            return 0

        self._callback = RingCallback(trampoline)  # kept alive as long as the ring
        self._ring = _ptr(lib().ring_buffer__new(map_fd, self._callback, None, None), "ring buffer")

    def consume(self) -> int:
        """Handle every record there is now, without waiting; how many."""
        return _check(lib().ring_buffer__consume(self._ring), "ring buffer consume")

    def poll(self, timeout_ms: int) -> int:
        rc = lib().ring_buffer__poll(self._ring, timeout_ms)
        if rc < 0 and -rc == errno.EINTR:
            return 0
        return _check(rc, "ring buffer poll")

    def close(self) -> None:
        if self._ring:
            lib().ring_buffer__free(self._ring)
            self._ring = 0
