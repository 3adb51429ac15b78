"""An API server on loopback in a background thread: for tests and tools that need a real
one in-process (uvicorn, a real socket; ``port=0`` picks a free port)."""

from __future__ import annotations

import threading
from types import TracebackType

import uvicorn

from tenet.api.app import create_app
from tenet.clock import SystemClock
from tenet.store.objects import ObjectStore


class LocalServer:
    def __init__(self, objects: ObjectStore, *, auth: bool = True, port: int = 0) -> None:
        self.app = create_app(objects, auth=auth)
        config = uvicorn.Config(self.app, host="127.0.0.1", port=port, log_level="critical")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="api", daemon=True)
        self._thread.start()
        clock = SystemClock()
        deadline = clock.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or clock.monotonic() > deadline:
                raise RuntimeError("the API server did not start")
            clock.sleep(0.01)
        bound = self._server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{bound}"

    def close(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

    def __enter__(self) -> LocalServer:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
