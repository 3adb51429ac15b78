"""The direction of imports between tenet's layers (DESIGN.md, CONVENTIONS.md point 2).

A module may import from its own package, from a layer below it, and from the
shared base modules (``tenet.errors``, ``tenet.clock``). Siblings on one level
(store and datapath; api and lab) do not import each other. Services sit below the
agent, which runs them. The
simulation is a pure function: no clock, no I/O modules, no logging.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "tenet"

LEVEL = {
    "model": 0,
    "packets": 1,
    "simulation": 2,
    "flows": 3,
    "store": 4,
    "datapath": 4,
    "services": 5,
    "agent": 6,
    "api": 7,
    "lab": 7,
    "cli": 8,
    "__main__": 9,
}
BASE = {"errors", "clock", "metrics", "__init__"}
PURE = {"model", "packets", "simulation", "flows"}
IMPURE_MODULES = {
    "time",
    "socket",
    "select",
    "selectors",
    "asyncio",
    "threading",
    "subprocess",
    "logging",
    "random",
    "os",
    "sqlite3",
}


def _modules() -> list[Path]:
    return sorted(SRC.rglob("*.py"))


def _package_of(path: Path) -> str:
    return path.relative_to(SRC).parts[0].removesuffix(".py")


def _imports(path: Path) -> list[str]:
    """Absolute names of every module ``path`` imports (relative imports resolved)."""
    tree = ast.parse(path.read_text(), str(path))
    package = path.relative_to(SRC.parent).with_suffix("").parts[:-1]
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = list(package[: len(package) - node.level + 1]) if node.level else []
            names.append(".".join([*base, node.module] if node.module else base))
    return names


def test_every_module_is_in_a_known_layer() -> None:
    unknown = {_package_of(p) for p in _modules()} - set(LEVEL) - BASE
    assert not unknown, f"packages with no layer in DESIGN.md: {unknown}"


def _violation(me: str, name: str) -> str | None:
    parts = name.split(".")
    if parts[0] != "tenet":
        if me in PURE and parts[0] in IMPURE_MODULES:
            return f"{me} must stay pure but imports {name}"
        return None
    if len(parts) == 1 or parts[1] == me:
        return None
    other = parts[1]
    if other == "clock" and me in PURE:
        return f"{me} must not read a clock but imports {name}"
    if other in BASE:
        return None
    if me in BASE:
        return f"base module {me} imports the layer {other}"
    if other not in LEVEL:
        return f"{name} is in no layer"
    if LEVEL[other] >= LEVEL[me]:
        return f"{me} (level {LEVEL[me]}) imports {name} (level {LEVEL[other]})"
    return None


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(SRC)))
def test_imports_go_down(path: Path) -> None:
    me = _package_of(path)
    problems = [v for n in _imports(path) if (v := _violation(me, n))]
    assert not problems, f"{path.relative_to(SRC)}: " + "; ".join(problems)


def test_the_checker_catches_what_it_should() -> None:
    assert _violation("simulation", "tenet.store.base")
    assert _violation("simulation", "tenet.clock")
    assert _violation("simulation", "time")
    assert _violation("store", "tenet.datapath")
    assert _violation("errors", "tenet.model")
    assert _violation("model", "tenet.gadgets")
    assert _violation("agent", "tenet.simulation") is None
    assert _violation("store", "tenet.clock") is None
    assert _violation("model", "ipaddress") is None


def test_relative_imports_resolve() -> None:
    mod = SRC / "store" / "base.py"
    assert mod.exists()
    assert all(not n.startswith(".") for n in _imports(mod))
