"""A small client of etcd's v3 JSON gateway (``POST /v3/...``) over httpx.

Why not a published client: ``etcd3gw`` ignores a watch's ``canceled`` and
``compact_revision`` (a watch from compacted history yields nothing, forever) and
returns -1 for a keepalive on a gone lease; ``etcd3`` does not import with protobuf
>= 4; ``aetcd`` is asyncio and brings grpcio and protobuf. The gateway needs
only HTTP and JSON, and httpx is already a dependency.

What the gateway sends (proto3 JSON)::

    {"header": {"revision": "7", ...}, "kvs": [{"key": "<base64>", "value": "<base64>",
     "create_revision": "5", "mod_revision": "7", "version": "2", "lease": "..."}],
     "more": true, "count": "3"}
    {"error": "etcdserver: ...", "message": "etcdserver: ...", "code": 3}

Fields at their default (0, false, empty) are left out: a failed txn has no
``succeeded``, a PUT event no ``type``, a deleted key no ``version``.

Invariants of :class:`EtcdClient`:

* every call has a timeout (connect and read), and every call asks for a leader
  (``Grpc-Metadata-hasleader: true``): a watch on a member cut off from the
  majority is ended with "no leader" instead of hanging (a linearizable read there
  hangs until the timeout; both then go to the next member);
* a call that failed before the request reached a member (connection refused, no
  leader) is tried on the next member, until ``deadline`` seconds have passed; a
  *write* whose answer was lost (timeout, reset) is not retried, since it may have
  been applied: it raises :class:`AnswerLost` (a StoreUnavailable), for the store
  to find out what happened. Reads are retried on any failure;
* the member that answered last is asked first next time.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from tenet.errors import StoreUnavailable, ValidationError

HASLEADER = {"Grpc-Metadata-hasleader": "true"}

# gRPC codes the gateway answers with, for errors that mean "not applied, try another
# member": Unavailable (no leader, stopping) and ResourceExhausted (too many requests)
RETRY_CODES = {14, 8}
# messages that mean the request never became a proposal (safe to retry a write)
NOT_PROPOSED = ("no leader", "not capable", "too many requests", "server stopped")

Json = dict[str, Any]


class AnswerLost(StoreUnavailable):
    """A write reached a member but its answer did not come back: it may or may not
    have been applied (the store finds out which, when it can)."""


class EtcdError(Exception):
    """An answer with an ``error`` from etcd that is not about reaching it."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Endpoint:
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def parse_endpoints(url: str) -> list[Endpoint]:
    """``etcd://host:port[,host:port...]`` as endpoints; a ValidationError on ``store``."""
    rest = url.removeprefix("etcd://")
    if rest == url or not rest.strip():
        raise ValidationError("store", f"{url!r} names no etcd member: use etcd://host:port")
    out = []
    for part in rest.rstrip("/").split(","):
        host, sep, port = part.strip().rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValidationError(
                "store", f"{url!r}: member {part!r} is not host:port with a port of 1-65535"
            )
        out.append(Endpoint(host.strip("[]"), int(port)))
    return out


def b64(data: str | bytes) -> str:
    raw = data.encode() if isinstance(data, str) else bytes(data)
    return base64.b64encode(raw).decode()


def unb64(text: str | None) -> bytes:
    return base64.b64decode(text) if text else b""


class EtcdClient:
    def __init__(
        self,
        endpoints: list[Endpoint],
        *,
        timeout: float = 2.0,
        deadline: float = 30.0,
    ) -> None:
        self.endpoints = endpoints
        self.timeout = timeout
        self.deadline = deadline
        self._first = 0
        self.seen_revision = 0
        self._lock = threading.Lock()
        self._http = httpx.Client(
            timeout=httpx.Timeout(timeout), headers=HASLEADER, trust_env=False
        )

    def __str__(self) -> str:
        return "etcd://" + ",".join(str(e) for e in self.endpoints)

    def order(self) -> list[Endpoint]:
        """The members in the order to try them: the one that answered last first."""
        with self._lock:
            first = self._first
        return self.endpoints[first:] + self.endpoints[:first]

    def answered(self, endpoint: Endpoint) -> None:
        with self._lock:
            self._first = self.endpoints.index(endpoint)

    def saw(self, answer: Json) -> None:
        """Note the revision an answer was read at: every write sent after this has a
        later one (revisions only grow, cluster-wide)."""
        revision = int(answer.get("header", {}).get("revision", 0))
        with self._lock:
            self.seen_revision = max(self.seen_revision, revision)

    def call(self, path: str, body: Json, *, write: bool) -> Json:
        """POST ``body`` to ``/v3/<path>`` on a member that answers; the answer's JSON.

        Raises EtcdError for an error etcd answered with (not about reaching it),
        StoreUnavailable when no member answered within the deadline, or when a
        write's answer was lost."""
        stop = time.monotonic() + self.deadline
        problems: dict[str, str] = {}
        while True:
            for endpoint in self.order():
                try:
                    response = self._http.post(f"{endpoint.url}/v3/{path}", json=body)
                except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                    problems[str(endpoint)] = f"cannot connect ({exc})"
                    continue
                except httpx.HTTPError as exc:
                    if write:
                        raise AnswerLost(
                            f"{self}: the answer to a write from {endpoint} was lost "
                            f"({type(exc).__name__}); it may or may not have been applied"
                        ) from exc
                    problems[str(endpoint)] = f"no answer ({type(exc).__name__})"
                    continue
                answer = decode(response)
                error = answer.get("error")
                if error is None:
                    self.answered(endpoint)
                    self.saw(answer)
                    return answer
                code, message = int(answer.get("code", 2)), str(answer.get("message", error))
                if code in RETRY_CODES and (not write or any(m in message for m in NOT_PROPOSED)):
                    problems[str(endpoint)] = message
                    continue
                if code in RETRY_CODES:
                    raise AnswerLost(
                        f"{self}: {endpoint} answered {message!r} to a write; "
                        "it may or may not have been applied"
                    )
                raise EtcdError(code, message)
            if time.monotonic() >= stop:
                said = "; ".join(f"{k}: {v}" for k, v in problems.items())
                raise StoreUnavailable(f"no etcd member of {self} answered: {said}")
            time.sleep(0.1)

    def stream(self, endpoint: Endpoint, path: str, body: Json, read_timeout: float) -> Stream:
        """A streaming call (a watch) to one member: its NDJSON lines, one dict each."""
        return Stream(endpoint, path, body, read_timeout, self.timeout)

    def close(self) -> None:
        self._http.close()


def decode(response: httpx.Response) -> Json:
    try:
        answer = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        answer = None
    if not isinstance(answer, dict):
        return {"error": response.text[:200], "code": 2, "message": response.text[:200]}
    return answer


class Stream:
    """One streaming POST; iterate for its lines as dicts. ``close`` it when done."""

    def __init__(
        self, endpoint: Endpoint, path: str, body: Json, read_timeout: float, connect: float
    ) -> None:
        self.endpoint = endpoint
        self._http = httpx.Client(
            timeout=httpx.Timeout(read_timeout, connect=connect),
            headers=HASLEADER,
            trust_env=False,
        )
        self._request = self._http.build_request("POST", f"{endpoint.url}/v3/{path}", json=body)
        self._response: httpx.Response | None = None

    def lines(self) -> Iterator[Json]:
        """Raises httpx.HTTPError when the member cannot be reached or goes quiet."""
        self._response = self._http.send(self._request, stream=True)
        if self._response.status_code != 200:
            self._response.read()
            yield decode(self._response)
            return
        for line in self._response.iter_lines():
            if line.strip():
                try:
                    item = json.loads(line)
                except json.JSONDecodeError:
                    item = {"error": line[:200], "code": 2, "message": line[:200]}
                yield item if isinstance(item, dict) else {"error": "not an object", "code": 2}

    def close(self) -> None:
        try:
            if self._response is not None:
                self._response.close()
        finally:
            self._http.close()
