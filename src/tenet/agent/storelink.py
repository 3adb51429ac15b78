"""The agent's link to the store, each on a thread of its own so the loop never waits:
the watch (:class:`Watcher`) and, while the agent is cut off, the probe that tells
when the store answers again (:class:`Reconnect`)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

from tenet.errors import StoreError
from tenet.store import Event, Store
from tenet.store.keys import AGENT_WATCH

RECONNECT_EVERY = 1.0  # while cut off, the store is asked at least this often


class Watcher:
    """The agent's store watch, read on a thread of its own: a change wakes the agent's
    loop at once (through ``wake``) instead of waiting for its next turn. Events, and
    the exception that ended the watch, are queued in order for the loop to take."""

    def __init__(self, store: Store, start_revision: int, wake: Callable[[], None]) -> None:
        self._queue: queue.SimpleQueue[list[Event] | BaseException] = queue.SimpleQueue()
        self._watch = store.watch(AGENT_WATCH, start_revision)
        self._wake = wake
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="store-watch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                events = self._watch.get(timeout=0.5)
                if events:
                    self._queue.put(events)
                    self._wake()
        except BaseException as exc:  # handed to the agent's loop, which decides
            self._queue.put(exc)
            self._wake()

    def drain(self) -> list[list[Event] | BaseException]:
        out: list[list[Event] | BaseException] = []
        while True:
            try:
                out.append(self._queue.get_nowait())
            except queue.Empty:
                return out

    def close(self, *, wait: bool = True) -> None:
        """Stop watching (``wait``: until the thread has ended; a watch blocked on an
        unreachable store is left to end on its own)."""
        self._stop.set()
        self._watch.close()
        if wait:
            self._thread.join(timeout=5)


class Reconnect:
    """While the agent is cut off: asks the store for its revision on a thread of its own
    (a call blocks for up to the store's deadline) until it answers; ``ready`` then."""

    def __init__(self, store: Store, stop: threading.Event, wake: Callable[[], None]) -> None:
        self.ready = threading.Event()
        self._store = store
        self._stop = stop
        self._wake = wake
        self._thread = threading.Thread(target=self._run, name="store-reconnect", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._store.revision()
            except StoreError:
                self._stop.wait(RECONNECT_EVERY)
                continue
            self.ready.set()
            self._wake()
            return
