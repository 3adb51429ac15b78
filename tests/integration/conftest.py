"""Integration fixtures: a lab of namespaces, removed by name after each test."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from .netns import Lab, leftovers


@pytest.fixture
def datapath(request: pytest.FixtureRequest) -> str:
    """The agents' datapath; agent test modules parametrize it over both backends."""
    return str(getattr(request, "param", "userspace"))


@pytest.fixture
def lab(datapath: str) -> Iterator[Lab]:
    if os.geteuid() != 0:
        pytest.skip("integration tests need root (network namespaces)")
    made = Lab(datapath=datapath)
    made.start()
    try:
        yield made
    finally:
        errors = made.close()
        assert not leftovers(made.prefix), "namespaces left behind"
        for err in errors:
            if "Traceback" in err:
                print(err)
