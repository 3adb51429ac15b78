"""The flows this process installed, shared by the agent's thread and the ring thread.

Owns three indexes, kept consistent under one lock:

* match -> :class:`SoftFlow`: every installed flow, compiled for Python. The ring
  thread applies it to the frames the kernel hands over for it (a flow the program
  cannot hold, or a frame that raced the flow's install);
* match -> the kernel key it is installed under (None for a flow kept in Python);
* kernel key -> the match owning it. A loose key stands for many matches (every TCP
  flag combination and TTL of a connection): the one installed last owns it, and
  only the owner's delete removes the kernel entry.

Threads: the agent's thread writes (:meth:`put`, :meth:`pop`, and :meth:`owners`,
which adopts a previous run's keys) and reads; the ring thread only reads, through
:meth:`serving`, taking the lock once per frame. The kernel's ``flows`` map is
written by the agent's thread only, outside the lock: a flow's soft entry is put
here before its kernel entry is written, so a frame the kernel misses meanwhile
finds it here. A SoftFlow's counters are written by the ring thread only.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from tenet.datapath.kernel.layout import kernel_key, match_of_key
from tenet.datapath.pytx import SoftFlow
from tenet.packets import FlowMatch


class FlowTable:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._soft: dict[FlowMatch, SoftFlow] = {}
        self._kkey: dict[FlowMatch, bytes] = {}
        self._owner: dict[bytes, FlowMatch] = {}

    def __len__(self) -> int:
        with self._lock:
            return len(self._soft)

    # -- the agent's thread ---------------------------------------------------------------

    def put(self, match: FlowMatch, flow: SoftFlow, key: bytes | None) -> bytes | None:
        """``match`` forwards as ``flow``, in the kernel under ``key`` (None: in Python
        only). Returns a kernel key whose entry the caller must delete: the one ``match``
        was installed under before (loose then, exact now, or back), if it owned it."""
        stale = None
        with self._lock:
            old = self._kkey.get(match)
            if old is not None and old != key:
                stale = self._release(match, old)
            self._soft[match] = flow
            if key is not None:
                self._kkey[match] = key
                self._owner[key] = match
        return stale

    def pop(self, match: FlowMatch) -> tuple[SoftFlow | None, bytes | None]:
        """Forget ``match``: its soft flow, and the kernel key whose entry the caller
        must delete (None if it has none, or a later match owns it)."""
        with self._lock:
            soft = self._soft.pop(match, None)
            key = self._kkey.pop(match, None) or kernel_key(match)
            if key is None or self._owner.get(key, match) != match:
                return soft, None  # a later match installed the same loose flow: it stays
            self._owner.pop(key, None)
            return soft, key

    def _release(self, match: FlowMatch, key: bytes) -> bytes | None:
        self._kkey.pop(match, None)
        if self._owner.get(key, match) != match:
            return None  # a later match installed the same loose flow: it stays
        self._owner.pop(key, None)
        return key

    def owners(self, keys: Sequence[bytes]) -> list[tuple[FlowMatch, SoftFlow | None]]:
        """The match owning each kernel key, with its soft flow. A key no match of this
        run installed (a previous run's) is adopted: from now on it stands for
        :func:`match_of_key` of it."""
        out: list[tuple[FlowMatch, SoftFlow | None]] = []
        with self._lock:
            for key in keys:
                match = self._owner.get(key)
                if match is None:
                    match = match_of_key(key)
                    self._owner[key] = match
                    self._kkey[match] = key
                out.append((match, self._soft.get(match)))
        return out

    def soft_flows(self) -> list[tuple[FlowMatch, SoftFlow]]:
        with self._lock:
            return list(self._soft.items())

    # -- the ring thread --------------------------------------------------------------------

    def serving(self, match: FlowMatch) -> SoftFlow | None:
        """The flow a frame of ``match`` is forwarded by: its own, or the loose flow
        whose key it has if its TTL is above that flow's floor; None: the agent's."""
        with self._lock:
            flow = self._soft.get(match)
            if flow is not None:
                return flow
            key = kernel_key(match, loose=True)
            owner = self._owner.get(key) if key is not None else None
            flow = self._soft.get(owner) if owner is not None else None
        if flow is None or flow.ttl_above is None:
            return None
        if flow.ttl_above and match.ip_ttl <= flow.ttl_above:
            return None  # it runs out on the way: the agent's simulation answers it
        return flow
