"""The virtual network as a pure function (DESIGN.md, "Simulation").

``simulate(frame, in_port_id, view, state, now)`` walks one packet through the
tenant's virtual topology and returns a :class:`SimulationResult`; no I/O, no
clock, no store: everything it reads is in its arguments. The actions a result
holds are the vocabulary of :mod:`tenet.packets.actions`.
"""

from tenet.simulation.engine import simulate, simulate_emit
from tenet.simulation.result import (
    ArpLearned,
    Emit,
    MacLearned,
    SimulationResult,
    TraceKind,
    TraceStep,
    Verdict,
)
from tenet.simulation.state import DictState, StateView
from tenet.simulation.tags import Tag
from tenet.simulation.view import TopologyView

__all__ = [
    "ArpLearned",
    "DictState",
    "Emit",
    "MacLearned",
    "SimulationResult",
    "StateView",
    "Tag",
    "TopologyView",
    "TraceKind",
    "TraceStep",
    "Verdict",
    "simulate",
    "simulate_emit",
]
