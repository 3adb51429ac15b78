"""Integration fixtures: a lab of namespaces, removed by name after each test."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from .netns import Lab, leftovers


@pytest.fixture
def lab() -> Iterator[Lab]:
    if os.geteuid() != 0:
        pytest.skip("integration tests need root (network namespaces)")
    made = Lab()
    made.start()
    try:
        yield made
    finally:
        errors = made.close()
        assert not leftovers(made.prefix), "namespaces left behind"
        for err in errors:
            if "Traceback" in err:
                print(err)
