"""The kernel datapath's table of installed flows: which kernel entry a change
removes, which flow serves a frame the kernel hands over, and adoption."""

from __future__ import annotations

import threading

from tenet.datapath.base import Output
from tenet.datapath.kernel.layout import kernel_key, match_of_key
from tenet.datapath.kernel.table import FlowTable
from tenet.datapath.pytx import SoftFlow, soft_flow
from tenet.packets import FlowMatch

SYN = FlowMatch(
    7, 0, b"\x02" * 6, b"\x04" * 6, 0, 0, 0x0800, bytes([10, 0, 0, 1]), bytes([10, 0, 1, 2]),
    6, 0, 64, 0, 40000, 80, 0x02,
)  # fmt: skip
ACK = SYN._replace(tcp_flags=0x10, ip_ttl=63)


def flow(ttl_above: int | None = None) -> SoftFlow:
    made = soft_flow([Output(9)], 4789)
    made.ttl_above = ttl_above
    return made


def test_a_loose_flow_serves_every_packet_of_its_connection_above_its_floor() -> None:
    table = FlowTable()
    loose = flow(ttl_above=10)
    assert table.put(SYN, loose, kernel_key(SYN, loose=True)) is None
    assert table.serving(SYN) is loose
    assert table.serving(ACK) is loose  # other flags, other TTL: the same loose flow
    assert table.serving(ACK._replace(ip_ttl=10)) is None  # at the floor: the agent's
    assert table.serving(ACK._replace(l4_src=40001)) is None  # another connection


def test_an_exact_flow_serves_only_its_own_match() -> None:
    table = FlowTable()
    exact = flow()
    table.put(SYN, exact, kernel_key(SYN))
    assert table.serving(SYN) is exact
    assert table.serving(ACK) is None


def test_reinstalling_loose_as_exact_removes_the_loose_entry() -> None:
    table = FlowTable()
    loose_key, exact_key = kernel_key(SYN, loose=True), kernel_key(SYN)
    table.put(SYN, flow(ttl_above=0), loose_key)
    assert table.put(SYN, flow(), exact_key) == loose_key
    assert table.put(SYN, flow(), exact_key) is None  # the same key again: nothing to remove
    assert table.pop(SYN)[1] == exact_key


def test_a_loose_key_is_removed_only_by_the_match_that_owns_it() -> None:
    """Two matches of one connection installed loose share a kernel entry; the one
    installed last owns it."""
    table = FlowTable()
    key = kernel_key(SYN, loose=True)
    table.put(SYN, flow(ttl_above=0), key)
    table.put(ACK, flow(ttl_above=0), key)
    soft, removed = table.pop(SYN)
    assert soft is not None
    assert removed is None  # ACK owns it: it stays in the kernel
    assert table.pop(ACK)[1] == key
    assert table.pop(ACK) == (None, kernel_key(ACK))  # gone: only its exact key to try
    assert len(table) == 0


def test_a_previous_runs_keys_are_adopted() -> None:
    table = FlowTable()
    mine = kernel_key(SYN)
    theirs = kernel_key(ACK._replace(l4_src=40001), loose=True)
    assert mine is not None
    assert theirs is not None
    table.put(SYN, flow(), mine)
    owners = table.owners([mine, theirs])
    assert [m for m, _ in owners] == [SYN, match_of_key(theirs)]
    assert owners[1][1] is None  # no soft flow: only the kernel forwards it
    assert table.pop(match_of_key(theirs)) == (None, theirs)


def test_the_ring_thread_reads_while_the_agent_installs() -> None:
    """serving() from another thread while the agent's thread installs and deletes:
    every answer is a flow installed for that match, or None."""
    table = FlowTable()
    matches = [SYN._replace(l4_src=port) for port in range(1000, 1200)]
    flows = {m: flow() for m in matches}
    wrong: list[FlowMatch] = []
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            for m in matches:
                got = table.serving(m)
                if got is not None and got is not flows[m]:
                    wrong.append(m)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for _ in range(20):
            for m in matches:
                table.put(m, flows[m], kernel_key(m))
            for m in matches:
                table.pop(m)
    finally:
        done.set()
        reader.join()
    assert wrong == []
    assert len(table) == 0
