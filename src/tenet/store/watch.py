"""What the store backends share: key and value checks, and the polling watch.

:class:`PollingWatch` turns two backend functions into a :class:`~tenet.store.base.Watch`:
``fetch(next_revision)`` returns every event on the watched prefix with revision
>= next_revision (whole revisions only, in order; raising WatchCompacted if that
history is gone) and the revision up to which it looked, and
``wait(next_revision, timeout)`` blocks until new events may exist or the timeout
passes. The watch keeps ``next_revision`` = last delivered + 1, so it never skips
or repeats an event.
"""

from __future__ import annotations

import abc
import threading
import time
from collections.abc import Callable, Iterator
from types import TracebackType

from tenet.errors import ValidationError
from tenet.store.base import Event

Fetch = Callable[[int], tuple[list[Event], int]]
Wait = Callable[[int, float], None]

MAX_KEY = 4096


def check_key(key: object) -> None:
    if not isinstance(key, str) or not key or len(key) > MAX_KEY:
        raise ValidationError("key", f"{key!r} is not a non-empty string of at most {MAX_KEY}")


def check_value(value: object) -> None:
    if not isinstance(value, bytes | bytearray | memoryview):
        raise ValidationError("value", f"expected bytes, got {type(value).__name__}")


class WatchHandle(abc.ABC):
    """What every watch shares, backends' and wrappers' alike: a context manager that
    closes it, and iteration until it is closed. A backend's watch keeps
    ``self._closed`` (an Event); a wrapper says ``closed`` from the watch it wraps."""

    _closed: threading.Event

    @abc.abstractmethod
    def get(self, timeout: float | None = None) -> list[Event]: ...

    @abc.abstractmethod
    def close(self) -> None: ...

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def __enter__(self) -> WatchHandle:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __iter__(self) -> Iterator[Event]:
        while not self.closed:
            yield from self.get(timeout=0.5)


class PollingWatch(WatchHandle):
    def __init__(
        self,
        fetch: Fetch,
        wait: Wait,
        start_revision: int,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        if start_revision < 1:
            raise ValidationError("start_revision", f"{start_revision} is below 1")
        self._fetch = fetch
        self._wait = wait
        self._on_close = on_close
        self._next = start_revision
        self._closed = threading.Event()

    @property
    def next_revision(self) -> int:
        """The revision the next event will have at least (resume from here)."""
        return self._next

    def get(self, timeout: float | None = None) -> list[Event]:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._closed.is_set():
            events, upto = self._fetch(self._next)
            self._next = max(self._next, upto + 1)
            if events:
                return events
            remaining = 1.0 if deadline is None else deadline - time.monotonic()
            if remaining <= 0:
                return []
            self._wait(self._next, min(remaining, 1.0))
        return []

    def close(self) -> None:
        self._closed.set()
        if self._on_close is not None:
            self._on_close()
