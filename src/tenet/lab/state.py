"""A long-lived lab run (the demo) recorded on disk, so that the next run removes
what a crashed one left behind.

A run holds an flock on ``<dir>.lock`` while it lives (the kernel releases it
when the process dies, however it dies), and keeps ``<dir>/state.json``: its own
PID, the processes it started (PID and start time, so a reused PID is never
mistaken for one of them) and the host ids whose kernel datapath pins it may
have left. Its namespaces carry its prefix. A new run takes the lock, then
removes exactly those things: the recorded processes still running, the
namespaces with the prefix (and what runs in them), the recorded pins and the
directory.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from tenet.lab.netns import PIN_ROOT, start_time, stop_pids, sweep


class RunState:
    def __init__(self, directory: Path, prefix: str) -> None:
        self.dir = directory
        self.prefix = prefix
        self.lock_path = directory.with_name(directory.name + ".lock")
        self.state: dict[str, Any] = {}
        self._fd = -1

    @property
    def path(self) -> Path:
        return self.dir / "state.json"

    def acquire(self) -> bool:
        """Take the run's lock; False when another live run holds it."""
        while True:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return False
            try:  # the run that held it may have removed the file meanwhile
                same = os.stat(self.lock_path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                self._fd = fd
                return True
            os.close(fd)

    def release(self) -> None:
        if self._fd >= 0:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.lock_path)
            os.close(self._fd)
            self._fd = -1

    def recorded(self) -> dict[str, Any]:
        """What the state file holds (a crashed run's, before :meth:`begin`)."""
        try:
            state = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return state if isinstance(state, dict) else {}

    def sweep(self) -> list[str]:
        """Remove what an earlier run left; returns what was removed. Call it only
        while holding the lock."""
        state = self.recorded()
        removed = []
        pids = [
            pid
            for pid, started in state.get("procs", [])
            if isinstance(pid, int) and start_time(pid) == started
        ]
        if pids:
            stop_pids(pids)
            removed.append(f"processes {', '.join(map(str, pids))}")
        swept = sweep(self.prefix)
        if swept:
            removed.append(f"namespaces {', '.join(swept)}")
        for host_id in state.get("host_ids", []):
            pin = Path(PIN_ROOT) / str(host_id)
            if host_id and pin.parent == Path(PIN_ROOT) and pin.exists():
                shutil.rmtree(pin, ignore_errors=True)
                removed.append(f"kernel datapath pins {pin}")
        if self.dir.exists():
            shutil.rmtree(self.dir, ignore_errors=True)
            removed.append(str(self.dir))
        return removed

    def begin(self) -> None:
        """Make the (empty) directory and record this run in it."""
        self.dir.mkdir(mode=0o700, parents=True)
        self.save(prefix=self.prefix, pid=os.getpid(), procs=[], host_ids=[])

    def save(self, **changes: Any) -> None:
        self.state.update(changes)
        self.path.write_text(json.dumps(self.state, indent=2) + "\n")

    def started(self, *procs: subprocess.Popen[Any]) -> None:
        """Record processes for a later run to stop, should this one crash."""
        made = [[p.pid, start_time(p.pid)] for p in procs]
        self.save(procs=[*self.state.get("procs", []), *made])

    def end(self) -> None:
        """Remove the directory; then release the lock."""
        shutil.rmtree(self.dir, ignore_errors=True)
        self.release()
