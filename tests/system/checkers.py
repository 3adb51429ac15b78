"""History checkers for the fault tests: linearizability per key, and watch streams.

**Linearizability** (Wing & Gong's search, with Lowe's memo of visited states): a
history is a list of :class:`Op` on registers (one key each; keys are checked
apart, which linearizability allows: it is compositional). Each op has the times
it was invoked and returned (one process's monotonic clock); an op whose outcome
is unknown (the call failed after the request may have been applied) has no
return time: it may take effect at any point after its invocation, or never. The
history is linearizable when there is an order of the ops that (1) respects
real time (an op that returned before another was invoked comes first), (2) gives
every completed op the result it saw, on a register that starts absent.

Operations: ``read`` (result: the value, None if absent), ``write`` (value),
``cas`` (expected value, new value; result: True if it swapped). Written values
are unique in a test, so "the revision did not move" and "the value is still
the one read" say the same.

**Watch streams**: every watcher of one prefix saw the same events in the same
order, revisions never went back, each revision came whole, and (watching every
key) no revision between the first and the last is missing.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

Value = bytes | None


@dataclass(frozen=True)
class Op:
    key: str
    kind: str  # read, write, cas
    arg: Value = None  # write: the value; cas: the expected value
    new: Value = None  # cas: the new value
    result: object = None  # read: the value; cas: bool; write: None
    invoked: float = 0.0
    returned: float = math.inf  # inf: the outcome is unknown

    @property
    def known(self) -> bool:
        return self.returned != math.inf


def _step(state: Value, op: Op) -> tuple[bool, Value]:
    """Whether ``op`` could have seen its result on ``state``, and the state after."""
    if op.kind == "read":
        return (not op.known or op.result == state), state
    if op.kind == "write":
        return True, op.arg
    swapped = state == op.arg
    if op.known and op.result != swapped:
        return False, state
    return True, op.new if swapped else state


def linearizable_register(ops: Sequence[Op]) -> bool:
    """Whether one register's history has a linearization (see the module docstring)."""
    ops = sorted(ops, key=lambda o: o.invoked)
    must = sum(1 << i for i, op in enumerate(ops) if op.known)
    seen: set[tuple[int, Value]] = set()

    def search(done: int, state: Value) -> bool:
        if done & must == must:
            return True
        if (done, state) in seen:
            return False
        seen.add((done, state))
        # an op may go next if it was invoked before every pending op returned
        horizon = min(
            (op.returned for i, op in enumerate(ops) if not done >> i & 1),
            default=math.inf,
        )
        for i, op in enumerate(ops):
            if done >> i & 1 or op.invoked > horizon:
                continue
            fits, after = _step(state, op)
            if fits and search(done | 1 << i, after):
                return True
        return False

    return search(0, None)


def check_linearizable(history: Sequence[Op]) -> list[str]:
    """The keys whose history is not linearizable (empty: all are)."""
    by_key: dict[str, list[Op]] = defaultdict(list)
    for op in history:
        by_key[op.key].append(op)
    return sorted(key for key, ops in by_key.items() if not linearizable_register(ops))


Seen = list[tuple[int, str, str]]  # (revision, type, key) in the order a watcher got them


def check_watchers(streams: Sequence[Seen], first: int, last: int, every_key: bool) -> list[str]:
    """What is wrong with the watchers' streams (empty: nothing). ``first`` and
    ``last``: the revisions the streams must start and end with."""
    problems = []
    for number, stream in enumerate(streams):
        revisions = [rev for rev, _, _ in stream]
        if revisions != sorted(revisions):
            problems.append(f"watcher {number}: revisions went back")
        if not revisions or revisions[0] != first or revisions[-1] != last:
            ends = (revisions[0], revisions[-1]) if revisions else None
            problems.append(f"watcher {number}: saw {ends}, not ({first}, {last})")
        if every_key and sorted(set(revisions)) != list(range(first, last + 1)):
            missing = sorted(set(range(first, last + 1)) - set(revisions))
            problems.append(f"watcher {number}: revisions missing: {missing[:10]}")
        if len(set(stream)) != len(stream):
            problems.append(f"watcher {number}: an event came twice")
        if stream != streams[0]:
            problems.append(f"watcher {number} saw other events than watcher 0")
    return problems
