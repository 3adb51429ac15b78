"""Golden cases: every ``golden/*.toml`` case, simulated and checked for behaviour.

See ``golden_loader`` for the file format and for what is checked: the verdict,
egress ports (local or tunnel, key and host address), the headers of the packet
that leaves each port (the result's actions run by a flow interpreter), emitted
packets, learned state, trace lines, tags, match fields, and the invariants
every result obeys (determinism, tags cover the trace, no hairpin, ...).
"""

from __future__ import annotations

import pytest
from golden_loader import Case, Topology, load_all, run_case

from tenet.simulation import simulate, simulate_emit

CASES = load_all()


def test_there_are_at_least_40_golden_cases() -> None:
    assert len(CASES) >= 40


@pytest.mark.parametrize(("topo", "case"), CASES, ids=[case.id for _, case in CASES])
def test_golden(topo: Topology, case: Case) -> None:
    run_case(simulate, topo, case, simulate_emit)
