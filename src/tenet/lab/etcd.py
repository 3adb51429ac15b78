"""etcd clusters for tests and the demo: members started and stopped by PID.

An :class:`EtcdCluster` runs Debian's ``etcd`` (3.4) members, each with its data in
a directory of its own under ``root``, on loopback or on an address inside a
network namespace (``Member.ns``; run with nsenter, so only the network namespace
changes). Ports are picked free at start. Timings are short so that a test sees
an election in well under a second: heartbeat 50 ms, election timeout 500 ms,
pre-vote on (a member coming back from a partition does not depose the leader),
progress notifications every second (a watch stream is never silent for long).

Faults: :meth:`EtcdCluster.kill` (SIGKILL, the data directory kept),
:meth:`EtcdCluster.restart` (the same member on the same data), :meth:`EtcdCluster.pause`
and :meth:`EtcdCluster.resume` (SIGSTOP/SIGCONT). Nothing is stopped by name.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tenet.lab.netns import Lab, remove_namespace, sh

ETCD = "etcd"
DEFAULT_TIMINGS = (
    "--heartbeat-interval=50",
    "--election-timeout=500",
    "--pre-vote=true",
    "--experimental-watch-progress-notify-interval=1s",
    "--auto-compaction-retention=0",
)


def etcd_available() -> str | None:
    """The path of the etcd binary, None if it is not installed."""
    return shutil.which(ETCD)


def free_port(address: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on now (of the caller's namespace)."""
    with socket.socket() as sock:
        sock.bind((address, 0))
        return int(sock.getsockname()[1])


@dataclass
class Member:
    name: str
    address: str
    client_port: int
    peer_port: int
    data_dir: Path
    ns: str | None = None
    proc: subprocess.Popen[bytes] | None = None

    @property
    def client_url(self) -> str:
        return f"http://{self.address}:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://{self.address}:{self.peer_port}"

    @property
    def endpoint(self) -> str:
        return f"{self.address}:{self.client_port}"

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@dataclass
class EtcdCluster:
    """``size`` members on ``places`` ((namespace or None, address) each; loopback
    if not given). Use as a context manager, or call ``start`` and ``close``."""

    size: int = 3
    places: list[tuple[str | None, str]] | None = None
    root: Path | None = None
    members: list[Member] = field(default_factory=list)
    token: str = field(default_factory=lambda: f"tenet-{time.monotonic_ns()}")
    _own_root: bool = False

    def __post_init__(self) -> None:
        if self.root is None:
            self.root = Path(tempfile.mkdtemp(prefix="tenet-etcd-"))
            self._own_root = True
        places = self.places or [(None, "127.0.0.1")] * self.size
        if len(places) != self.size:
            raise ValueError(f"{self.size} members but {len(places)} places")
        taken: set[int] = set()
        for index, (ns, address) in enumerate(places, start=1):
            ports: list[int] = []
            while len(ports) < 2:  # in a namespace of our own, any port is free
                port = free_port() if ns is None else 23790 + index * 10 + len(ports)
                if port not in taken:
                    taken.add(port)
                    ports.append(port)
            self.members.append(
                Member(f"m{index}", address, ports[0], ports[1], self.root / f"m{index}", ns)
            )

    @property
    def url(self) -> str:
        """The store URL of the cluster: ``etcd://`` and every member."""
        return "etcd://" + ",".join(m.endpoint for m in self.members)

    def __enter__(self) -> EtcdCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- running members ---------------------------------------------------------------
    def _command(self, member: Member) -> list[str]:
        cluster = ",".join(f"{m.name}={m.peer_url}" for m in self.members)
        cmd = [
            ETCD,
            f"--name={member.name}",
            f"--data-dir={member.data_dir}",
            f"--listen-client-urls={member.client_url}",
            f"--advertise-client-urls={member.client_url}",
            f"--listen-peer-urls={member.peer_url}",
            f"--initial-advertise-peer-urls={member.peer_url}",
            f"--initial-cluster={cluster}",
            "--initial-cluster-state=new",
            f"--initial-cluster-token={self.token}",
            *DEFAULT_TIMINGS,
        ]
        if member.ns is not None:
            cmd = ["nsenter", f"--net=/run/netns/{member.ns}", *cmd]
        return cmd

    def _spawn(self, member: Member) -> None:
        member.data_dir.parent.mkdir(parents=True, exist_ok=True)
        log = (member.data_dir.parent / f"{member.name}.log").open("ab")
        member.proc = subprocess.Popen(
            self._command(member),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()

    def start(self, timeout: float = 30.0) -> None:
        """Start every member and wait until the cluster answers a linearizable read."""
        for member in self.members:
            self._spawn(member)
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float = 30.0, members: list[Member] | None = None) -> None:
        deadline = time.monotonic() + timeout
        for member in members or self.members:
            while not self._answers(member):
                if not member.running:
                    raise RuntimeError(f"etcd member {member.name} exited: {self.log(member)}")
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"etcd member {member.name} is not ready: {self.log(member)}"
                    )
                time.sleep(0.05)

    def _answers(self, member: Member) -> bool:
        if member.ns is not None:  # its address is only reachable from inside
            return self._answers_in(member)
        try:
            response = httpx.post(
                f"{member.client_url}/v3/kv/range",
                json={"key": "AA==", "count_only": True},
                headers={"Grpc-Metadata-hasleader": "true"},
                timeout=1.0,
                trust_env=False,
            )
        except httpx.HTTPError:
            return False
        return response.status_code == 200 and "error" not in response.json()

    def _answers_in(self, member: Member) -> bool:
        cmd = [
            "nsenter",
            f"--net=/run/netns/{member.ns}",
            "etcdctl",
            f"--endpoints={member.client_url}",
            "--command-timeout=1s",
            "get",
            "--keys-only",
            "x",
        ]
        done = subprocess.run(cmd, capture_output=True, timeout=10, check=False)
        return done.returncode == 0

    def log(self, member: Member, tail: int = 5) -> str:
        path = member.data_dir.parent / f"{member.name}.log"
        try:
            return " | ".join(path.read_text(errors="replace").splitlines()[-tail:])
        except OSError:
            return "(no log)"

    # -- faults ------------------------------------------------------------------------
    def kill(self, member: Member) -> None:
        """SIGKILL the member (by its PID) and reap it; its data stays."""
        if member.proc is None:
            return
        if member.proc.poll() is None:
            member.proc.kill()
        member.proc.wait(timeout=10)

    def restart(self, member: Member, timeout: float = 30.0) -> None:
        """Start a killed member again on its data directory, and wait until it answers."""
        self.kill(member)
        self._spawn(member)
        self.wait_ready(timeout, [member])

    def restart_all(self, timeout: float = 30.0) -> None:
        """Start every killed member again at once (one alone has no quorum to answer)."""
        for member in self.members:
            if not member.running:
                self.kill(member)
                self._spawn(member)
        self.wait_ready(timeout)

    def pause(self, member: Member) -> None:
        if member.running and member.proc is not None:
            member.proc.send_signal(signal.SIGSTOP)

    def resume(self, member: Member) -> None:
        if member.running and member.proc is not None:
            member.proc.send_signal(signal.SIGCONT)

    def leader(self, timeout: float = 10.0) -> Member:
        """The member that is the leader now."""
        deadline = time.monotonic() + timeout
        while True:
            for member in self.members:
                if not member.running:
                    continue
                status = self._status(member)
                leader = status.get("leader")
                if leader and leader == status.get("header", {}).get("member_id"):
                    return member
            if time.monotonic() > deadline:
                raise RuntimeError("no etcd member says it is the leader")
            time.sleep(0.05)

    def _status(self, member: Member) -> dict[str, Any]:
        """The member's own status (its id in ``header.member_id``, ``leader``), {} if
        it does not answer."""
        if member.ns is None:
            try:
                answer = httpx.post(
                    f"{member.client_url}/v3/maintenance/status",
                    json={},
                    timeout=1.0,
                    trust_env=False,
                ).json()
            except (httpx.HTTPError, ValueError):
                return {}
            return answer if isinstance(answer, dict) else {}
        cmd = [
            *("nsenter", f"--net=/run/netns/{member.ns}", "etcdctl"),
            *(f"--endpoints={member.client_url}", "--command-timeout=1s"),
            *("endpoint", "status", "-w", "json"),
        ]
        done = subprocess.run(cmd, capture_output=True, timeout=10, check=False, text=True)
        try:
            status = json.loads(done.stdout)[0]["Status"]
        except (ValueError, LookupError, TypeError):
            return {}
        # etcdctl prints the ids as numbers, the gateway as strings
        header = {"member_id": str(status["header"]["member_id"])}
        return {"leader": str(status.get("leader", "")), "header": header}

    def close(self) -> None:
        """Stop every member by PID (SIGCONT first: a paused one cannot die of SIGTERM)."""
        for member in self.members:
            if member.proc is None:
                continue
            with contextlib.suppress(ProcessLookupError):
                member.proc.send_signal(signal.SIGCONT)
                member.proc.terminate()
        for member in self.members:
            if member.proc is None:
                continue
            try:
                member.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                member.proc.kill()
                member.proc.wait(timeout=5)
        if self._own_root and self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)


# -- servers on a lab's underlay -------------------------------------------------------------
CLONE_NEWNET = 0x40000000


def enter_namespace(ns: str) -> None:
    """Move the calling *thread* into network namespace ``ns`` (``setns`` changes the
    calling thread only; threads it starts inherit it; a socket stays in the
    namespace it was made in)."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"setns into {ns}: {os.strerror(errno)}")
    finally:
        os.close(fd)


def server_namespace(lab: Lab, name: str, address: str) -> str:
    """A namespace ``<prefix><name>`` on the lab's underlay at ``address`` (/24), for a
    server (an etcd member, the API); not one of the lab's hosts. Removed by name
    with the lab's prefix (:func:`tenet.lab.sweep`)."""
    ns = f"{lab.prefix}{name}"
    outer = f"{lab.prefix}x{name}"[:15]
    sh("ip", "netns", "add", ns)
    sh("ip", "-n", ns, "link", "set", "lo", "up")
    sh("ip", "link", "add", outer, "netns", lab.underlay_ns, "type", "veth",
       "peer", "ul0", "netns", ns)  # fmt: skip
    sh("ip", "-n", lab.underlay_ns, "link", "set", outer, "master", "ul", "up")
    sh("ip", "-n", ns, "addr", "add", f"{address}/24", "dev", "ul0")
    sh("ip", "-n", ns, "link", "set", "ul0", "up")
    return ns


class Relay:
    """Publishes a TCP server of a namespace on loopback of the caller's namespace:
    a connection to ``127.0.0.1:<port>`` is carried to ``address:target_port`` in
    ``ns``, byte for byte (the demo's API, a test's view of a cluster on an underlay).
    ``close`` ends every connection it carries."""

    def __init__(self, ns: str, address: str, target_port: int, port: int = 0) -> None:
        self._target = (address, target_port)
        self._listener = socket.create_server(("127.0.0.1", port))
        self.port = int(self._listener.getsockname()[1])
        self._dialer = ThreadPoolExecutor(1, initializer=enter_namespace, initargs=(ns,))
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._closed = threading.Event()
        self._acceptor = threading.Thread(target=self._accept, name="relay", daemon=True)
        self._acceptor.start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                inner, _ = self._listener.accept()
            except OSError:
                return
            try:
                outer = self._dialer.submit(socket.create_connection, self._target, 5).result()
            except (OSError, RuntimeError):
                inner.close()
                continue
            with self._lock:
                if self._closed.is_set():
                    inner.close()
                    outer.close()
                    return
                self._open |= {inner, outer}
                carrier = threading.Thread(target=self._carry, args=(inner, outer), daemon=True)
                self._threads = [t for t in self._threads if t.is_alive()] + [carrier]
            carrier.start()

    def _carry(self, inner: socket.socket, outer: socket.socket) -> None:
        back = threading.Thread(target=_pump, args=(outer, inner), daemon=True)
        back.start()
        _pump(inner, outer)
        back.join()
        with self._lock:
            self._open -= {inner, outer}
        inner.close()
        outer.close()

    def close(self) -> None:
        self._closed.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._acceptor.join(timeout=5)
        with self._lock:
            for sock in self._open:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            threads = list(self._threads)
        for thread in threads:
            thread.join(timeout=5)
        self._dialer.shutdown(wait=True, cancel_futures=True)


def _pump(src: socket.socket, dst: socket.socket) -> None:
    with contextlib.suppress(OSError):  # either side gone: the relay ends
        while data := src.recv(65536):
            dst.sendall(data)
    with contextlib.suppress(OSError):
        dst.shutdown(socket.SHUT_WR)


class UnderlayEtcd:
    """A cluster of ``size`` members on a lab's underlay, each in a server namespace
    ``<prefix>e<N>`` at ``10.250.0.<first + N - 1>``, and a relay per member that
    publishes it on loopback. ``url`` is the cluster for the lab's agents,
    ``local_url`` for the caller (through the relays). ``close`` stops the members by
    PID and removes their namespaces."""

    def __init__(self, lab: Lab, root: Path, size: int = 3, first: int = 201) -> None:
        self.lab = lab
        self.namespaces: list[str] = []
        places: list[tuple[str | None, str]] = []
        for n in range(1, size + 1):
            address = f"10.250.0.{first + n - 1}"
            self.namespaces.append(server_namespace(lab, f"e{n}", address))
            places.append((self.namespaces[-1], address))
        self.cluster = EtcdCluster(size=size, places=places, root=root)
        self.relays: list[Relay] = []

    @property
    def url(self) -> str:
        return self.cluster.url

    @property
    def local_url(self) -> str:
        return "etcd://" + ",".join(f"127.0.0.1:{r.port}" for r in self.relays)

    def start(self) -> None:
        self.cluster.start()
        for member in self.cluster.members:
            assert member.ns is not None
            self.relays.append(Relay(member.ns, member.address, member.client_port))

    def close(self) -> None:
        for relay in self.relays:
            relay.close()
        self.cluster.close()
        for ns in self.namespaces:
            remove_namespace(ns)
