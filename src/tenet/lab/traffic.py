"""Real traffic between lab VMs: ping, a TCP transfer that names its server, and a
capture that counts frames from MACs that must never arrive.

Each runs as a process inside a VM's namespace (``ip netns exec``), with the
system's ``ping`` or this Python; nothing here sends a packet itself.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass

from tenet.lab.netns import netns_exec


@dataclass(frozen=True)
class PingResult:
    sent: int
    received: int
    ttls: frozenset[int]
    rtt_ms: float | None  # the average round trip of the replies
    output: str

    @property
    def ok(self) -> bool:
        return self.received > 0


def ping(
    ns: str, address: str, count: int = 3, interval: float = 0.2, wait: float = 2
) -> PingResult:
    """``ping`` from namespace ``ns``."""
    proc = subprocess.run(
        netns_exec(
            ns, "ping", "-n", "-c", str(count), "-i", str(interval), "-W", str(wait), address
        ),
        check=False,
        capture_output=True,
        text=True,
        timeout=30 + count * (interval + wait),
    )
    out = proc.stdout + proc.stderr
    counts = re.search(r"(\d+) packets transmitted, (\d+) received", out)
    sent, received = (int(counts[1]), int(counts[2])) if counts else (count, 0)
    rtt = re.search(r"= [\d.]+/([\d.]+)/", out)
    ttls = frozenset(int(t) for t in re.findall(r"ttl=(\d+)", out))
    return PingResult(sent, received, ttls, float(rtt[1]) if rtt else None, out)


def neighbour_mac(ns: str, address: str) -> str | None:
    """The MAC namespace ``ns`` has learned for ``address`` (its ARP cache), if any."""
    out = subprocess.run(
        ["ip", "-n", ns, "neigh", "show", address],
        check=False,
        capture_output=True,
        text=True,
        timeout=10,
    ).stdout
    found = re.search(r"lladdr ([0-9a-f:]{17})", out)
    return found[1] if found else None


# A TCP server that answers every connection with its VM's name and the client's
# address as it sees it, then reads until EOF and replies the byte count and SHA-256.
SERVER = """
    import hashlib, socket, sys
    name, port = sys.argv[1], int(sys.argv[2])
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", port))
    srv.listen(8)
    print("listening", flush=True)
    while True:
        conn, peer = srv.accept()
        with conn:
            conn.settimeout(15)
            try:
                conn.sendall(f"{name} {peer[0]}\\n".encode())
                digest, size = hashlib.sha256(), 0
                while chunk := conn.recv(65536):
                    digest.update(chunk)
                    size += len(chunk)
                conn.sendall(f"{size} {digest.hexdigest()}\\n".encode())
            except OSError:
                pass
"""

# Its client: connect, read the server's name, send N random bytes, check the digest.
CLIENT = """
    import hashlib, json, os, socket, sys, time
    address, port, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    data = os.urandom(size)
    start = time.monotonic()
    out = {"ok": False}
    try:
        with socket.create_connection((address, port), timeout=5) as sock:
            sock.settimeout(15)
            reader = sock.makefile("rb")
            name, seen_as = reader.readline().decode().split()
            out.update(server=name, seen_as=seen_as)
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
            got, digest = reader.readline().decode().split()
            out.update(
                ok=int(got) == size and digest == hashlib.sha256(data).hexdigest(),
                bytes=int(got),
            )
    except (OSError, ValueError) as exc:
        out["error"] = str(exc) or type(exc).__name__
    out["seconds"] = time.monotonic() - start
    print(json.dumps(out), flush=True)
"""

# Counts frames arriving on eth0, and those whose source MAC is one of argv[1:], until
# stdin closes.
CAPTURE = """
    import select, socket, sys
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
    sock.bind(("eth0", 0))
    foreign = {bytes.fromhex(m.replace(":", "")) for m in sys.argv[1:]}
    print("capturing", flush=True)
    seen = total = 0
    while True:
        ready, _, _ = select.select([sock, sys.stdin], [], [], 1.0)
        if sock in ready:
            frame = sock.recv(2048)
            total += 1
            if frame[6:12] in foreign:
                seen += 1
        if sys.stdin in ready and not sys.stdin.readline():
            break
    print(seen, total, flush=True)
"""


def python_in(ns: str, script: str, *args: str) -> list[str]:
    return netns_exec(ns, sys.executable, "-c", textwrap.dedent(script), *args)


def start_server(ns: str, name: str, port: int) -> subprocess.Popen[str]:
    """The TCP server of :data:`SERVER` in ``ns``, once it listens."""
    proc = subprocess.Popen(
        python_in(ns, SERVER, name, str(port)),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "listening":
        proc.kill()
        proc.wait()
        raise RuntimeError(f"the TCP server in {ns} did not start")
    return proc


@dataclass(frozen=True)
class Transfer:
    ok: bool
    server: str | None  # the name the server answered with
    seen_as: str | None  # the client's address as the server saw it
    size: int
    seconds: float
    error: str | None


def transfer(ns: str, address: str, port: int, size: int) -> Transfer:
    """Send ``size`` random bytes from ``ns`` to the :data:`SERVER` at ``address``."""
    proc = subprocess.run(
        python_in(ns, CLIENT, address, str(port), str(size)),
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    try:
        out = json.loads(proc.stdout)
    except ValueError:
        return Transfer(False, None, None, size, 0.0, proc.stderr.strip() or "no output")
    return Transfer(
        bool(out["ok"]),
        out.get("server"),
        out.get("seen_as"),
        size,
        float(out["seconds"]),
        out.get("error"),
    )


class Capture:
    """Count frames on a VM's eth0 sent from any of ``macs``, from now until :meth:`stop`."""

    def __init__(self, ns: str, macs: list[str]) -> None:
        self.proc = subprocess.Popen(
            python_in(ns, CAPTURE, *macs),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != "capturing":
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError(f"the capture in {ns} did not start")

    def stop(self) -> tuple[int, int]:
        """Frames seen from the MACs, and all frames seen; (-1, 0) when it failed."""
        try:
            out, _ = self.proc.communicate(input="", timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()
            return -1, 0
        counts = out.split()
        if len(counts) != 2 or not all(c.isdigit() for c in counts):
            return -1, 0
        return int(counts[0]), int(counts[1])
