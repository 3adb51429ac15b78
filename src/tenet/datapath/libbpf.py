"""A small ctypes binding of libbpf (``libbpf.so.1``, Debian's ``libbpf1``).

Only what the kernel datapath needs: open an object file, pin its maps, load
it, find its program and maps, read and write map entries (one at a time and in
batches), and consume a ring buffer. Every call that fails raises
:class:`BpfError` with the operation and the kernel's reason.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
from collections.abc import Callable, Iterator
from typing import Any

BPF_ANY = 0
BPF_NOEXIST = 1
BPF_EXIST = 2


class BpfError(OSError):
    """A libbpf call failed."""


_lib: ctypes.CDLL | None = None
RingCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t)


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
    signatures: dict[str, tuple[Any, list[Any]]] = {
        "bpf_object__open_file": (vp, [cs, vp]),
        "bpf_object__load": (ci, [vp]),
        "bpf_object__close": (None, [vp]),
        "bpf_object__find_map_by_name": (vp, [vp, cs]),
        "bpf_object__find_program_by_name": (vp, [vp, cs]),
        "bpf_program__fd": (ci, [vp]),
        "bpf_map__fd": (ci, [vp]),
        "bpf_map__set_pin_path": (ci, [vp, cs]),
        "bpf_map_update_elem": (ci, [ci, vp, vp, u64]),
        "bpf_map_lookup_elem": (ci, [ci, vp, vp]),
        "bpf_map_delete_elem": (ci, [ci, vp]),
        "bpf_map_get_next_key": (ci, [ci, vp, vp]),
        "bpf_map_lookup_batch": (
            ci,
            [ci, vp, vp, vp, vp, ctypes.POINTER(ctypes.c_uint32), ctypes.POINTER(BatchOpts)],
        ),
        "libbpf_num_possible_cpus": (ci, []),
        "ring_buffer__new": (vp, [ci, RingCallback, vp, vp]),
        "ring_buffer__poll": (ci, [vp, ci]),
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


class BpfObject:
    """An object file opened, its maps pinned under ``pin_dir`` (reused if there), loaded."""

    def __init__(self, path: str, pin_dir: str, pinned: tuple[str, ...]) -> None:
        bpf = lib()
        self._obj = _ptr(bpf.bpf_object__open_file(path.encode(), None), f"opening {path}")
        try:
            for name in pinned:
                handle = self._map(name)
                target = os.path.join(pin_dir, name).encode()
                _check(bpf.bpf_map__set_pin_path(handle, target), f"pinning map {name}")
            _check(bpf.bpf_object__load(self._obj), f"loading {path} (see libbpf's log above)")
        except BaseException:
            bpf.bpf_object__close(self._obj)
            raise

    def _map(self, name: str) -> int:
        return _ptr(lib().bpf_object__find_map_by_name(self._obj, name.encode()), f"map {name}")

    def map_fd(self, name: str) -> int:
        return _check(lib().bpf_map__fd(self._map(name)), f"fd of map {name}")

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

    def poll(self, timeout_ms: int) -> int:
        rc = lib().ring_buffer__poll(self._ring, timeout_ms)
        if rc < 0 and -rc == errno.EINTR:
            return 0
        return _check(rc, "ring buffer poll")

    def close(self) -> None:
        if self._ring:
            lib().ring_buffer__free(self._ring)
            self._ring = 0
