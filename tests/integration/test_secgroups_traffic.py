"""Security groups on real traffic: a VM whose group allows TCP 22 in takes
connections on 22 and not on 80, until a rule allows 80 too."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tenet.model import Port, SecurityGroup, SecurityGroupRule, from_dict

from .netns import Lab, Vm, netns_exec
from .topo import World, listening, one_bridge_two_hosts

pytestmark = [
    pytest.mark.integration,
    pytest.mark.parametrize("datapath", ["userspace", "kernel"], indirect=True),
]

# an echo server on ports 22 and 80
SERVER = """
    import selectors, socket
    sel = selectors.DefaultSelector()
    for port in (22, 80):
        srv = socket.socket()
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("0.0.0.0", port)); srv.listen(8)
        sel.register(srv, selectors.EVENT_READ)
    print("listening", flush=True)
    while True:
        for key, _ in sel.select():
            conn, _ = key.fileobj.accept()
            conn.settimeout(10)
            conn.sendall(conn.recv(100))
            conn.close()
"""

# "echoed" or why not; the SYN of a dropped connection is never answered
CLIENT = """
    import socket, sys
    try:
        sock = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)
        sock.sendall(b"hello")
        print("echoed" if sock.recv(100) == b"hello" else "wrong echo")
    except OSError as exc:
        print(type(exc).__name__)
"""


def connect(src: Vm, dst: Vm, port: int) -> str:
    done = subprocess.run(
        netns_exec(src.ns, sys.executable, "-c", textwrap.dedent(CLIENT), dst.ip, str(port)),
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_a_group_allowing_tcp_22_in(lab: Lab, tmp_path: Path) -> None:
    world = World(lab, tmp_path / "store.db")
    acme, _, (vm1, vm2) = one_bridge_two_hosts(world)
    o = world.objects
    web = o.create(SecurityGroup(tenant_id=acme.id, name="web")).record

    def allow(port: int) -> None:
        body = {"tenant_id": str(acme.id), "security_group_id": str(web.id),
                "direction": "ingress", "protocol": "tcp", "port_range_min": port,
                "port_range_max": port}  # fmt: skip
        o.create(from_dict(SecurityGroupRule, body))

    allow(22)
    port = o.get(Port, world.ports[vm2.name]).record
    o.update(port.replace(security_group_ids=(web.id,)))
    world.start_agents()
    server = listening(vm2, SERVER)
    try:
        assert connect(vm1, vm2, 22) == "echoed"
        assert connect(vm1, vm2, 80) == "TimeoutError"  # the SYN was dropped
        allow(80)
        time.sleep(1.0)  # the agents hear of it (as test_changes_stop_affected_flows...)
        assert connect(vm1, vm2, 80) == "echoed"
        # (replies to vm2's own connections need connection tracking: not tested here)
    finally:
        server.kill()
        server.communicate()  # reaps it and closes its pipe
        world.store.close()
