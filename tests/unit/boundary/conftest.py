"""The boundary tests use the API tests' real server (``tests/unit/api/apiworld.py``)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "api"))

from apiworld import Server


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    made = Server(tmp_path / "store.db")
    try:
        yield made
    finally:
        made.close()
