"""Several processes on one SQLite store file: the embedded default's promise."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from tenet.store import Compare, Put, SqliteStore
from tenet.store.sqlite import FileChanges


def spawn(code: str, *args: str) -> subprocess.Popen[str]:
    """Run ``code`` in a new Python process (argv[1:] = ``args``)."""
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen[str], timeout: float = 60) -> str:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    return out


WRITER = """
    import sys
    from tenet.store import Put, SqliteStore
    store = SqliteStore(sys.argv[1])
    for batch in range(60):
        store.txn([], [Put(f"/p/{batch}/{i}", b"x") for i in range(batch % 5 + 1)])
    store.close()
"""

WATCHER = """
    import json, sys
    from tenet.store import SqliteStore
    store = SqliteStore(sys.argv[1], poll_interval=0.005)
    want, start = int(sys.argv[2]), int(sys.argv[3])
    seen = []
    with store.watch("/p/", start) as watch:
        while len(seen) < want:
            batch = watch.get(timeout=30)
            if not batch:
                break
            seen += [[e.key, e.revision] for e in batch]
    store.close()
    print(json.dumps(seen))
"""


def test_a_watcher_in_another_process_sees_every_change_in_order(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.db")
    store = SqliteStore(path)
    start = store.revision() + 1
    total = sum(batch % 5 + 1 for batch in range(60))
    watcher = spawn(WATCHER, path, str(total), str(start))
    finish(spawn(WRITER, path))
    seen = json.loads(finish(watcher))
    assert len(seen) == total
    revisions = [rev for _, rev in seen]
    assert revisions == sorted(revisions)
    assert sorted(set(revisions)) == list(range(start, start + 60))  # no gap
    assert len({key for key, _ in seen}) == total  # no duplicate
    assert store.get("/p/59/4") is not None  # and this process sees the writes
    store.close()


INCREMENTER = """
    import sys
    from tenet.errors import TxnConflict
    from tenet.store import Compare, Put, SqliteStore
    store = SqliteStore(sys.argv[1])
    done = 0
    for _ in range(int(sys.argv[2])):
        while True:
            kv = store.get("/counter")
            try:
                store.txn([Compare("/counter", kv.mod_revision)],
                          [Put("/counter", str(int(kv.value) + 1).encode())])
                done += 1
                break
            except TxnConflict:
                pass
    store.close()
    print(done)
"""


def test_compare_and_set_across_processes_loses_no_update(tmp_path: Path) -> None:
    path = str(tmp_path / "cas.db")
    store = SqliteStore(path)
    store.put("/counter", b"0")
    procs = [spawn(INCREMENTER, path, "100") for _ in range(2)]
    done = sum(int(finish(p)) for p in procs)
    kv = store.get("/counter")
    assert kv is not None
    assert int(kv.value) == done == 200
    store.close()


BIG_WRITER = """
    import sys
    from tenet.store import Put, SqliteStore
    store = SqliteStore(sys.argv[1])
    print("ready", flush=True)
    tag = 0
    while True:
        tag += 1
        store.txn([], [Put(f"/m/{tag}/{i:04}", str(tag).encode() * 50) for i in range(400)])
"""


def test_a_killed_writer_leaves_no_partial_transaction(tmp_path: Path) -> None:
    path = str(tmp_path / "killed.db")
    SqliteStore(path).close()
    proc = spawn(BIG_WRITER, path)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    store = SqliteStore(path)
    deadline = time.monotonic() + 30
    while len(store.list("/m/").items) < 2000 and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    store.close()
    reopened = SqliteStore(path)
    counts: dict[str, int] = {}
    for kv in reopened.list("/m/").items:
        tag = kv.key.split("/")[2]
        counts[tag] = counts.get(tag, 0) + 1
    assert counts, "the writer wrote nothing before it was killed"
    assert set(counts.values()) == {400}, "a transaction was cut in half"
    assert reopened.revision() == len(counts) + 1
    reopened.put("/after", b"still writable")
    reopened.close()


LEASE_HOLDER = """
    import sys
    from tenet.store import SqliteStore
    store = SqliteStore(sys.argv[1])
    lease = store.grant_lease(0.3)
    store.put("/alive/me", b"x", lease=lease)
    store.close()
"""


def test_a_lease_of_a_gone_process_expires_for_the_others(tmp_path: Path) -> None:
    path = str(tmp_path / "lease.db")
    store = SqliteStore(path, poll_interval=0.01)
    start = store.revision() + 1
    finish(spawn(LEASE_HOLDER, path))
    with store.watch("/alive/", start) as watch:
        events = []
        deadline = time.monotonic() + 10
        while len(events) < 2 and time.monotonic() < deadline:
            events += watch.get(timeout=1)
    assert [(e.type.value, e.key) for e in events] == [
        ("put", "/alive/me"),
        ("delete", "/alive/me"),
    ]
    store.close()


def test_data_survives_close_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "durable.db"
    store = SqliteStore(path)
    store.txn([Compare("/k", 0)], [Put("/k", b"v")])
    revision = store.revision()
    store.close()
    again = SqliteStore(path)
    assert again.revision() == revision
    kv = again.get("/k")
    assert kv is not None
    assert kv.value == b"v"
    again.close()


ONE_PUT = """
    import sys
    from tenet.store import SqliteStore
    store = SqliteStore(sys.argv[1])
    store.put("/pushed", b"x")
    store.close()
"""


def test_a_commit_in_another_process_wakes_a_watch_that_would_sleep(tmp_path: Path) -> None:
    """A watch sleeps on inotify, not on its poll interval: another process's commit
    wakes it; a write to an unrelated file in the same directory does not."""
    path = tmp_path / "push.db"
    store = SqliteStore(path, poll_interval=3600)
    changes = FileChanges(path)
    assert changes.available
    assert changes.wait(0.01) is False  # nothing written since it started
    (tmp_path / "unrelated.log").write_text("not the store\n")
    assert changes.wait(0.05) is False
    finish(spawn(ONE_PUT, str(path)))
    assert changes.wait(30) is True  # at once (the commit is queued); polling would say False
    changes.close()
    start = store.revision()
    with store.watch("/pushed", start) as watch:  # and a watch reads through it
        assert [e.key for e in watch.get(timeout=30)] == ["/pushed"]
        finish(spawn(ONE_PUT, str(path)))
        assert [e.key for e in watch.get(timeout=30)] == ["/pushed"]
    store.close()
