"""A bounded, fair queue of upcalls (packets that matched no flow).

Each datapath port has its own queue of at most ``bound`` upcalls; the agent
takes them round robin across ports, so a VM that floods new flows fills only
its own queue and cannot starve the others. An upcall that finds its port's
queue full is dropped and counted against that port. Thread-safe: the datapath
thread puts, the agent thread takes.

Flow-state frames from other agents (``tunnel_key == STATE_VNI``) have a queue of
their own, also bounded, that ``take`` empties first: the state a peer sent ahead
of a connection's packets reaches the agent before any upcall queued after it
(the reply's, typically), however the ports' turns fall. Their drops are counted
against port 0 (the tunnel).
"""

from __future__ import annotations

import threading
from collections import deque

from tenet.datapath.base import STATE_VNI, Upcall


class UpcallQueue:
    def __init__(self, bound: int = 256) -> None:
        if bound < 1:
            raise ValueError("an upcall queue holds at least one upcall")
        self.bound = bound
        self._queues: dict[int, deque[Upcall]] = {}
        self._ring: deque[int] = deque()  # ports with something queued, in serving order
        self._state: deque[Upcall] = deque()  # flow-state frames: served before the rest
        self._ready = threading.Condition()
        self._woken = False
        self.dropped: dict[int, int] = {}

    def put(self, upcall: Upcall) -> bool:
        """Queue ``upcall``; False (and counted) when its port's queue is full."""
        with self._ready:
            if upcall.tunnel_key == STATE_VNI:
                return self._put_state(upcall)
            queue = self._queues.setdefault(upcall.port_no, deque())
            if len(queue) >= self.bound:
                self.dropped[upcall.port_no] = self.dropped.get(upcall.port_no, 0) + 1
                return False
            if not queue:
                self._ring.append(upcall.port_no)
            queue.append(upcall)
            self._ready.notify()
            return True

    def _put_state(self, upcall: Upcall) -> bool:
        if len(self._state) >= self.bound:
            self.dropped[upcall.port_no] = self.dropped.get(upcall.port_no, 0) + 1
            return False
        self._state.append(upcall)
        self._ready.notify()
        return True

    def full(self, port_no: int) -> bool:
        """Whether an upcall from ``port_no`` would be dropped now (counted as dropped):
        a cheap check before the work of building one. Racy by design: a put may still
        find room, or none."""
        queue = self._queues.get(port_no)
        if queue is not None and len(queue) >= self.bound:
            self.dropped[port_no] = self.dropped.get(port_no, 0) + 1
            return True
        return False

    def wake(self) -> None:
        """Make a waiting (or the next) ``take`` return now, empty-handed if need be:
        the taker has something else to do (store events arrived)."""
        with self._ready:
            self._woken = True
            self._ready.notify_all()

    def take(self, limit: int, timeout: float) -> list[Upcall]:
        """Up to ``limit`` upcalls, flow-state frames first, then one port at a time in
        turn; waits up to ``timeout`` (or until :meth:`wake`)."""
        with self._ready:
            if not self._ring and not self._state and not self._woken:
                self._ready.wait(timeout)
            self._woken = False
            out: list[Upcall] = []
            while self._state and len(out) < limit:
                out.append(self._state.popleft())
            while self._ring and len(out) < limit:
                port = self._ring.popleft()
                queue = self._queues[port]
                out.append(queue.popleft())
                if queue:
                    self._ring.append(port)
            return out

    def __len__(self) -> int:
        with self._ready:
            return len(self._state) + sum(len(q) for q in self._queues.values())
