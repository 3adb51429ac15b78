"""The program's object file and what the host needs to run it.

Owns the build of ``ebpf/tenet_dp.c`` (and the headers it includes from
``ebpf/lib/``) with clang into a cache directory, the bpffs mount, and the
answer to "can this host run the kernel datapath?" (:func:`unsupported`).

Invariants:

* the object is named by a hash of the source *and every header* (their names
  and bytes), so changing any of them builds a new object; a build is written
  to a temporary file and renamed, so a reader never sees half an object;
* the object file is never committed: it is built on first use (or by
  ``./dev setup``) into ``$TENET_CACHE_DIR`` (default ``/var/cache/tenet``),
  and builds of other versions of the source are removed from there.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
from pathlib import Path

from tenet.datapath.libbpf import BpfError
from tenet.errors import DatapathUnavailable

EBPF_DIR = Path(__file__).resolve().parent.parent / "ebpf"
SOURCE = EBPF_DIR / "tenet_dp.c"
HEADERS = EBPF_DIR / "lib"
PROGRAM = "tenet_ingress"
BPFFS = "/sys/fs/bpf"
CACHE_DIR = "/var/cache/tenet"
NEED_CLANG = "clang is not installed (Debian packages: clang, libbpf-dev)"


def cache_dir(override: str | None = None) -> Path:
    return Path(override or os.environ.get("TENET_CACHE_DIR", CACHE_DIR))


def source_digest(ebpf: Path = EBPF_DIR) -> str:
    """A hash of the C source and every header under ``lib/`` (their names and bytes)."""
    digest = hashlib.sha256()
    for path in [ebpf / SOURCE.name, *sorted((ebpf / HEADERS.name).glob("*.h"))]:
        name = path.relative_to(ebpf).as_posix().encode()
        digest.update(len(name).to_bytes(4, "big") + name)
        data = path.read_bytes()
        digest.update(len(data).to_bytes(8, "big") + data)
    return digest.hexdigest()[:16]


def compile_object(out: Path, ebpf: Path = EBPF_DIR) -> None:
    """Compile ``ebpf``'s program into ``out`` (written whole, or not at all)."""
    clang = shutil.which("clang")
    if clang is None:
        raise DatapathUnavailable(NEED_CLANG)
    out.parent.mkdir(parents=True, exist_ok=True)
    multiarch = f"/usr/include/{platform.machine()}-linux-gnu"
    tmp = out.with_suffix(f".{os.getpid()}.tmp")
    source = str(ebpf / SOURCE.name)
    cmd = [clang, "-O2", "-g", "-target", "bpf", "-I", multiarch, "-c", source, "-o", str(tmp)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise DatapathUnavailable(f"building the eBPF program failed:\n{done.stderr.strip()}")
    os.replace(tmp, out)


def build_object(cache: str | None = None) -> Path:
    """The compiled program, built with clang if the cache does not hold this source's build."""
    where = cache_dir(cache)
    out = where / f"tenet_dp-{source_digest()}.o"
    if out.exists():
        return out
    compile_object(out)
    for old in where.glob("tenet_dp-*.o"):  # builds of other versions of the source
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
    if shutil.which("clang") is None and not any(cache_dir().glob("tenet_dp-*.o")):
        return NEED_CLANG
    return None
