"""``tenet demo --check``: tenet's main job passes on this machine, and cleans up
what a crashed demo left before it starts."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tenet.cli.demo import PREFIX, STATE_DIR
from tenet.lab import leftovers, sh, start_time
from tenet.lab.etcd import etcd_available
from tenet.lab.state import RunState

pytestmark = pytest.mark.integration


@pytest.fixture
def no_demo_running() -> Iterator[None]:
    if os.geteuid() != 0:
        pytest.skip("the demo needs root (network namespaces)")
    lock = RunState(STATE_DIR, PREFIX)
    if not lock.acquire():
        pytest.skip("a tenet demo is running on this machine")
    lock.release()
    yield
    assert not leftovers(PREFIX), "the demo left namespaces behind"
    assert not STATE_DIR.exists(), "the demo left its state directory behind"


def demo_check(*extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tenet", "demo", "--check", *extra],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("store", ["sqlite", "etcd"])
def test_the_demo_passes_every_check(no_demo_running: None, store: str) -> None:
    if store == "etcd" and etcd_available() is None:
        pytest.skip("etcd is not installed (./dev setup installs Debian's etcd-server)")
    done = demo_check("--store", store)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    rows = [line for line in out.splitlines() if line.startswith("│")]
    passed = [line for line in rows if "PASS" in line]
    assert len(passed) >= 10, out
    assert not any("FAIL" in line for line in rows), out
    for check in ("ping acme-web1", "TCP", "isolation: acme-web1", "isolation: no VM saw"):
        assert any(check in line for line in passed), f"no PASS for {check!r}:\n{out}"
    summary = re.search(r"(\d+) of (\d+) checks passed", out)
    assert summary, out
    assert summary[1] == summary[2], out
    for needed in ("ttl 63", "/docs", "admin-token", f"store        {store}://"):
        assert needed in out, f"{needed!r} missing from:\n{out}"


def test_a_crashed_demos_leftovers_are_removed_first(no_demo_running: None) -> None:
    # what a demo killed with SIGKILL leaves: its underlay namespace with a process in
    # it, a process of its own (as its API server) and its state directory
    ns = f"{PREFIX}ul"
    sh("ip", "netns", "add", ns)
    sh("ip", "-n", ns, "link", "add", "ul", "type", "bridge")
    in_ns = subprocess.Popen(["ip", "netns", "exec", ns, "sleep", "300"])
    server = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    try:
        STATE_DIR.mkdir(mode=0o700)
        state = {
            "prefix": PREFIX,
            "pid": 999_999_999,
            "procs": [[server.pid, start_time(server.pid)]],
            "host_ids": [],
        }
        (STATE_DIR / "state.json").write_text(json.dumps(state))
        (STATE_DIR / "store.db").write_bytes(b"left over")
        done = demo_check()
        out = done.stdout + done.stderr
        assert done.returncode == 0, out
        assert "removed what an earlier demo left" in out, out
        assert ns in out, out
        assert str(server.pid) in out, out
        assert server.wait(timeout=10) != 0, "the leftover process was not stopped"
        assert in_ns.wait(timeout=10) != 0, "the process in the leftover namespace runs on"
    finally:
        for proc in (in_ns, server):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        sh("ip", "netns", "del", ns, check=False)
