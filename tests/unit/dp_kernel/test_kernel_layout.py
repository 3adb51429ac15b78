"""The Python layouts are the compiled program's structs: checked against its BTF.

Builds the object with clang (skipped only where clang or libbpf is missing) and
compares every field of every struct the agent reads or writes, and every map's
key and value size, with what the compiler and libbpf say; a changed C struct is
reported by struct and field.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tenet.datapath.kernel.build import EBPF_DIR, compile_object, source_digest
from tenet.datapath.kernel.layout import LAYOUTS, MAPS, layout_problems, map_problems
from tenet.datapath.kernel.maps import checked, object_problems
from tenet.datapath.libbpf import BpfError, BpfObject, lib
from tenet.errors import DatapathUnavailable


def _toolchain() -> str | None:
    if shutil.which("clang") is None:
        return "clang is not installed"
    try:
        lib()
    except BpfError as exc:
        return str(exc)
    return None


pytestmark = pytest.mark.skipif(_toolchain() is not None, reason=str(_toolchain()))


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bpf") / "tenet_dp.o"
    compile_object(out)
    return out


@pytest.fixture
def opened(built: Path) -> Iterator[BpfObject]:
    obj = BpfObject(str(built))
    try:
        yield obj
    finally:
        obj.close()


def _variant(tmp_path: Path, *edits: tuple[str, str]) -> Path:
    """The program built from a copy of its source with ``edits`` (old, new) in common.h."""
    copy = tmp_path / "ebpf"
    shutil.copytree(EBPF_DIR, copy)
    common = copy / "lib" / "common.h"
    text = common.read_text()
    for old, new in edits:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    common.write_text(text)
    out = tmp_path / "variant.o"
    compile_object(out, copy)
    return out


def test_every_layout_is_the_compiled_struct(opened: BpfObject) -> None:
    btf = opened.btf()
    assert btf is not None
    assert layout_problems(btf) == []
    for layout in LAYOUTS:  # the comparison did see each struct, field by field
        found = btf.struct(layout.name)
        assert found is not None
        assert [(m.name, m.offset, m.size) for m in found.members] == layout.members()


def test_every_map_has_the_sizes_python_reads_and_writes(opened: BpfObject) -> None:
    sizes = {name: opened.map_sizes(name) for name in MAPS}
    assert map_problems(sizes) == []
    assert object_problems(opened) == []


def test_a_changed_struct_is_named_by_struct_and_field(tmp_path: Path) -> None:
    """Two fields of the same size swapped (which no size check sees), and a field
    added to a map's value: both refused, naming what differs."""
    variant = _variant(
        tmp_path,
        ("\t__u8 pad;\n", "\t__u8 was_ttl_above;\n"),
        ("__u8 ttl_above;", "__u8 pad;"),
        ("__u8 was_ttl_above;", "__u8 ttl_above;"),
        ("\t__u32 local_ip;", "\t__u32 local_ip;\n\t__u32 extra;"),
    )
    obj = BpfObject(str(variant))
    try:
        problems = object_problems(obj)
    finally:
        obj.close()
    assert any("struct flow_val" in p and "'ttl_above'" in p for p in problems), problems
    assert any("struct config" in p and "'extra'" in p for p in problems), problems
    assert any(p.startswith("map config:") for p in problems), problems
    with pytest.raises(DatapathUnavailable, match="struct flow_val"):
        checked(variant)


def test_map_problems_name_the_map() -> None:
    sizes = {name: (key, value, entries or 1) for name, (key, value, entries) in MAPS.items()}
    assert map_problems(sizes) == []
    key, value, entries = sizes["flows"]
    sizes["flows"] = (key, value + 8, entries)
    del sizes["scratch"]
    assert map_problems(sizes) == [
        f"map flows: key {key} and value {value} bytes in Python, key {key} and value "
        f"{value + 8} in C",
        "map scratch: not in the program",
    ]


def test_the_build_is_named_by_the_source_and_every_header(tmp_path: Path) -> None:
    copy = tmp_path / "ebpf"
    shutil.copytree(EBPF_DIR, copy)
    assert source_digest(copy) == source_digest()
    header = copy / "lib" / "parse.h"
    header.write_text(header.read_text() + "\n")
    changed = source_digest(copy)
    assert changed != source_digest()
    (copy / "lib" / "nat.h").write_text("/* a new header */\n")
    assert source_digest(copy) not in (changed, source_digest())
