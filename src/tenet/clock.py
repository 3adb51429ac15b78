"""Time, passed in (CONVENTIONS.md point 6).

Only process shells construct :class:`SystemClock`; everything below takes a
:class:`Clock`. :class:`FakeClock` ships here for tests. ``time()`` is wall-clock
seconds (shared by every process on a machine, which the SQLite store's leases
need); ``monotonic()`` is for measuring intervals inside one process.
The simulation never reads a clock: it gets ``now`` as an argument.
"""

from __future__ import annotations

import threading
import time as _time
from typing import Protocol


class Clock(Protocol):
    def time(self) -> float: ...

    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def time(self) -> float:
        return _time.time()

    def monotonic(self) -> float:
        return _time.monotonic()

    def sleep(self, seconds: float) -> None:
        _time.sleep(seconds)


class FakeClock:
    """A clock that moves only when told to. ``sleep`` advances it."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def time(self) -> float:
        with self._lock:
            return self._now

    def monotonic(self) -> float:
        return self.time()

    def sleep(self, seconds: float) -> None:
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a clock does not go back")
        with self._lock:
            self._now += seconds
