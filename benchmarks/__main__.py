"""tenet's benchmark runner: every figure beside a baseline measured in the same run.

    .venv/bin/python -m benchmarks [--quick] [--json PATH] [--skip SECTION ...]

Runs, in order (``benchmarks/README.md`` says how to read the output):

* ``simulation``: simulations per second per core on the canonical paths, and
  megaflow-cache hits per second, against ``extract_match`` on the same frame;
* ``datapath``: real packets through two agents on two host namespaces, for the
  kernel (eBPF) and the userspace datapath: first-packet and steady-state latency,
  new flows per second, TCP and small-packet UDP throughput, the agents' memory and
  CPU; against bare kernel VXLAN (the physical limit here) and a veth pair (root);
* ``control``: from a change in the store until every agent applied it, with 3
  real agents (root) and 100 agents simulated in one process, against a bare watch;
  on etcd (when installed), 100 and 1,000 simulated agents beside SQLite's 100, and
  what one agent holds in a 10,000-port topology;
* ``store``: write rate and size per object of the SQLite store.

Writes ``benchmarks/results/latest.json`` (the machine it ran on, every figure and
the raw measurements) and prints a table. ``--quick`` is a smoke run (under two
minutes). A benchmark never fails on a figure; it fails only if a path it measures
does not work.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks import bench_agent, bench_control, bench_control_etcd, bench_simulation

SECTIONS = ("simulation", "datapath", "control", "store")
LATEST = Path(__file__).parent / "results" / "latest.json"


def row(
    section: str,
    figure: str,
    value: float,
    unit: str,
    baseline: float | None = None,
    baseline_name: str = "",
    better: str = "higher",
) -> dict[str, Any]:
    return {
        "section": section,
        "figure": figure,
        "value": value,
        "unit": unit,
        "baseline": baseline,
        "baseline_name": baseline_name,
        "ratio": value / baseline if baseline else None,
        "better": better,
    }


def machine() -> dict[str, Any]:
    model = ""
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as meminfo:
        mem_kb = int(meminfo.readline().split()[1])
    return {
        "platform": platform.platform(),
        "kernel": platform.release(),
        "cpu": model,
        "cpus": os.cpu_count(),
        "memory_gb": round(mem_kb / 2**20, 1),
        "python": platform.python_version(),
        # both sides of every TCP ratio use the same tool; iperf3 is the one to quote
        "tcp_tool": "iperf3" if shutil.which("iperf3") else "python sockets",
    }


def say(text: str) -> None:
    print(f"[bench] {text}", file=sys.stderr, flush=True)


# -- sections --------------------------------------------------------------------------


def simulation(quick: bool, raw: dict[str, Any]) -> list[dict[str, Any]]:
    from tenet.flows import FlowTable
    from tenet.packets import extract_match
    from tenet.simulation import TopologyView, simulate
    from tenet.simulation.result import MacLearned
    from tenet.simulation.view import DictState

    seconds = 0.3 if quick else 2.0
    figures = bench_simulation.figures(seconds)
    raw["simulation"] = figures
    rows = [
        row(
            "simulation",
            f"simulations/s, {f['path']}",
            f["simulations_per_s"],
            "1/s",
            f["baseline_extract_match_per_s"],
            "extract_match/s",
        )
        for f in figures
    ]
    # the megaflow cache: a new microflow (another source port) served from a result
    view = TopologyView.build(bench_simulation.topology(chain=False), bench_simulation.HOST)
    frame = bench_simulation.frame(bench_simulation.MAC_RA, "10.0.1.3")
    match = extract_match(frame, 1)
    state = DictState()
    result = simulate(frame, bench_simulation.VM1, view, state, bench_simulation.NOW)
    for learned in result.state:  # as the agents would have: then the result is cacheable
        if isinstance(learned, MacLearned):
            state.macs[learned.bridge_id, learned.mac] = learned.port_id
    result = simulate(frame, bench_simulation.VM1, view, state, bench_simulation.NOW)
    table = FlowTable()
    table.remember(match, result)
    others = [match._replace(l4_src=1024 + n) for n in range(1000)]
    assert all(table.recall(m) is result for m in others), "the megaflow cache misses"
    hits = bench_simulation.rate(lambda: [table.recall(m) for m in others], seconds) * 1000
    base = bench_simulation.rate(lambda: extract_match(frame, 1, 0), seconds)
    raw["megaflow_hits_per_s"] = hits
    rows.append(row("simulation", "megaflow cache hits/s (router path)", hits, "1/s", base,
                    "extract_match/s"))  # fmt: skip
    rows += conntrack(quick, raw, base)
    return rows


def conntrack(quick: bool, raw: dict[str, Any], extract_rate: float) -> list[dict[str, Any]]:
    """The flow-state table at 100,000 connections: memory, lookups/s, commits/s."""
    import resource
    import uuid as uuid_
    from ipaddress import IPv4Address

    from tenet.agent.flowstate import FlowStateTable
    from tenet.simulation.state import Connection, ConnectionKey, Direction

    count = 10_000 if quick else 100_000
    zone = uuid_.uuid4()
    a, b = IPv4Address("10.0.0.1"), IPv4Address("10.0.1.3")
    keys = [ConnectionKey(zone, 6, a, 1024 + n % 60000, b, 1 + n // 60000) for n in range(count)]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    table = FlowStateTable()
    for key in keys:
        pair = (Connection(key, Direction.FORWARD), Connection(key.reversed(), Direction.RETURN))
        table.commit(pair, (), 1.0)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    sample = keys[:: max(1, count // 1000)]
    seconds = 0.3 if quick else 2.0
    lookups = bench_simulation.rate(lambda: [table.connection(k) for k in sample], seconds)
    lookups *= len(sample)
    spare = [ConnectionKey(zone, 17, a, n, b, 53) for n in range(1000)]

    def commit() -> None:
        for key in spare:
            table.commit((Connection(key, Direction.FORWARD),), (), 2.0)
        table.delete(spare)

    commits = bench_simulation.rate(commit, seconds) * len(spare)
    raw["conntrack"] = {
        "connections": count,
        "entries": len(table),
        "rss_growth_mb": round(grown_mb, 1),
        "lookups_per_s": round(lookups),
        "commits_per_s": round(commits),
    }
    return [
        row("conntrack", f"agent RSS growth for {count:,} tracked connections", grown_mb, "MB",
            None, "", "lower"),
        row("conntrack", f"lookups/s at {count:,} connections", lookups, "1/s", extract_rate,
            "extract_match/s"),
        row("conntrack", "connections committed and deleted/s", commits, "1/s", extract_rate,
            "extract_match/s"),
    ]  # fmt: skip


def datapath(quick: bool, raw: dict[str, Any]) -> list[dict[str, Any]]:
    seconds = 1.5 if quick else 5.0
    say("datapath: baselines (bare kernel VXLAN, veth pair)")
    base = bench_agent.run_baselines(seconds)
    runs = []
    for kind in ("kernel", "userspace"):
        say(f"datapath: tenet, {kind} datapath")
        runs.append(bench_agent.run_tenet(kind, seconds))
    guarded = []
    for kind in ("kernel", "userspace"):
        say(f"datapath: tenet, {kind} datapath, VMs behind a stateful security group")
        guarded.append(bench_agent.run_tenet(kind, seconds, stateful=True))
    raw["datapath"] = {"baselines": base, "tenet": runs, "stateful": guarded}
    vx, veth = base["kernel_vxlan"], base["veth"]
    rows = []
    for r in runs:
        s = f"datapath/{r['datapath']}"
        first, later = r["ping_first_ms"], r["ping_later_ms"]
        rows += [
            row(s, "ping RTT p50, first packet (new flow)", first["p50"], "ms", later["p50"],
                "later packets p50", "lower"),
            row(s, "ping RTT p99, first packet (new flow)", first["p99"], "ms", later["p99"],
                "later packets p99", "lower"),
            row(s, "ping RTT p50, later packets", later["p50"], "ms", vx["ping_ms"]["p50"],
                "kernel VXLAN", "lower"),
            row(s, "ping RTT p99, later packets", later["p99"], "ms", vx["ping_ms"]["p99"],
                "kernel VXLAN", "lower"),
            row(s, "new flows/s arriving (UDP, new source ports)",
                r["flow_setup"]["received_per_s"], "1/s", vx["new_flows"]["received_per_s"],
                "kernel VXLAN"),
            row(s, "upcalls/s handled under that load", r["flow_setup"]["upcalls_per_s"], "1/s"),
            row(s, "TCP VM to VM across hosts", r["tcp_gbit_s"], "Gbit/s", vx["tcp_gbit_s"],
                "kernel VXLAN"),
            row(s, "TCP VM to VM across hosts", r["tcp_gbit_s"], "Gbit/s", veth["tcp_gbit_s"],
                "veth pair"),
            row(s, f"upcalls during the {r['tcp_seconds']:.0f} s TCP transfer",
                r["tcp_upcalls"], "", None, "", "lower"),
            row(s, "UDP 18-byte payloads, one flow", r["udp_small"]["received_per_s"], "pkt/s",
                vx["udp_small"]["received_per_s"], "kernel VXLAN"),
            row(s, "agent RSS, idle (per agent)", r["agents"]["idle_rss_mb"] / 2, "MB",
                None, "", "lower"),
            row(s, "agent RSS, under flow setup (per agent)",
                r["agents"]["flow_setup_rss_mb"] / 2, "MB", None, "", "lower"),
            row(s, "agent CPU, idle (2 agents)", r["agents"]["idle_cpu_percent"], "% core",
                None, "", "lower"),
            row(s, "agent CPU, under flow setup (2 agents)",
                r["agents"]["flow_setup_cpu_percent"], "% core", None, "", "lower"),
        ]  # fmt: skip
    for plain, g in zip(runs, guarded, strict=True):
        s = f"datapath/{g['datapath']}+sg"
        rows += [
            row(s, "new connections/s arriving through a stateful security group",
                g["flow_setup"]["received_per_s"], "1/s", plain["flow_setup"]["received_per_s"],
                "the same without groups"),
            row(s, "TCP VM to VM across hosts, both behind the group", g["tcp_gbit_s"],
                "Gbit/s", plain["tcp_gbit_s"], "the same without groups"),
            row(s, f"upcalls during the {g['tcp_seconds']:.0f} s TCP transfer",
                g["tcp_upcalls"], "", plain["tcp_upcalls"], "the same without groups", "lower"),
            row(s, "agent RSS, under flow setup (per agent)",
                g["agents"]["flow_setup_rss_mb"] / 2, "MB",
                plain["agents"]["flow_setup_rss_mb"] / 2, "the same without groups", "lower"),
        ]  # fmt: skip
    return rows


def control(quick: bool, raw: dict[str, Any]) -> list[dict[str, Any]]:
    rounds = 2 if quick else 10
    say("control: 3 real agents")
    real = bench_control.real(rounds)
    say("control: 100 agents simulated in one process")
    sim = bench_control.simulated(100, 1 if quick else 5)
    raw["control"] = {"real": real, "simulated": sim}
    rows = []
    for name, r in (("3 real agents", real), ("100 simulated agents", sim)):
        for p in ("p50_ms", "p99_ms"):
            rows.append(
                row(
                    "control",
                    f"change applied by all {name}, {p[:3]}",
                    r["agents"][p],
                    "ms",
                    r["bare_watch"][p],
                    "bare watch",
                    "lower",
                )
            )
    return rows + control_etcd(quick, raw, sim)


def control_etcd(quick: bool, raw: dict[str, Any], sqlite: dict[str, Any]) -> list[dict[str, Any]]:
    """Simulated agents on etcd (100 beside SQLite's 100, and 1,000), and the memory an
    agent needs in a 10,000-port topology (skipped without etcd)."""
    from tenet.lab.etcd import etcd_available

    if etcd_available() is None:
        say("control on etcd: skipped (etcd is not installed)")
        return []
    say("control on etcd: 100 and 1,000 simulated agents, and a 10,000-port topology")
    r = bench_control_etcd.run(quick)
    raw["control_etcd"] = r
    rows = []
    for count in (100, 1000):
        sim = r[f"simulated_{count}"]
        n = sim["interested"]
        for p in ("p50_ms", "p99_ms"):
            base, base_name = sim["bare_watch"][p], "bare watch"
            if count == 100:  # SQLite's 100 agents all apply every change, as all of these
                base, base_name = sqlite["agents"][p], "SQLite, 100 agents"
            rows.append(
                row("control", f"etcd: change applied by the {n} interested of {count}, {p[:3]}",
                    sim["agents"][p], "ms", sim["bare_watch"][p], "bare watch", "lower")
            )  # fmt: skip
            rows.append(
                row("control", f"etcd: change applied by one agent of {count}, {p[:3]}",
                    sim["each_agent"][p], "ms", sim["bare_watch"][p], "bare watch", "lower")
            )  # fmt: skip
            rows.append(
                row("control", f"etcd: change received by all {count} agents, {p[:3]}",
                    sim["all_agents"][p], "ms", base, base_name, "lower")
            )  # fmt: skip
        rows.append(
            row("control", f"etcd: events received per agent per change ({count})",
                sim["events_per_agent_per_change"], "", None, "", "lower")
        )  # fmt: skip
    mem = r["memory"]
    rows.append(
        row("control", "etcd: records one agent holds, 10,000 ports",
            mem["records_held_by_agent"], "", mem["records_in_store"], "whole topology", "lower")
    )  # fmt: skip
    rows.append(
        row("control", "etcd: agent memory after loading, 10,000 ports",
            mem["agent_bytes"] / 2**20, "MiB", mem["whole_topology_bytes"] / 2**20,
            "whole topology decoded", "lower")
    )  # fmt: skip
    return rows


def store(quick: bool, raw: dict[str, Any]) -> list[dict[str, Any]]:
    r = bench_control.store_footprint(200 if quick else 2000)
    raw["store"] = r
    return [
        row("store", "object writes/s (one transaction each)", r["writes_per_s"], "1/s"),
        row("store", "store size per object", r["bytes_per_object"], "bytes", None, "", "lower"),
    ]


RUN = {"simulation": simulation, "datapath": datapath, "control": control, "store": store}


def table(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'section':<20} {'figure':<50} {'tenet':>11} {'baseline':>11}  {'ratio':>7}  vs"]
    for r in rows:
        value, base, ratio = r["value"], r["baseline"], r["ratio"]
        fmt = (lambda v: f"{v:>11,.0f}") if abs(value) >= 100 else (lambda v: f"{v:>11.3f}")
        base_s = fmt(base) if base is not None else f"{'':>11}"
        ratio_s = f"{ratio:>7.3f}" if ratio is not None else f"{'':>7}"
        unit = f" {r['unit']}" if r["unit"] else ""
        lines.append(
            f"{r['section']:<20} {r['figure'] + unit:<50} {fmt(value)} {base_s}  {ratio_s}  "
            f"{r['baseline_name']}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a smoke run, under two minutes")
    parser.add_argument("--json", type=Path, default=LATEST, help=f"default: {LATEST}")
    parser.add_argument("--skip", action="append", default=[], choices=SECTIONS)
    args = parser.parse_args(argv)
    needs_root = {"datapath", "control"} - set(args.skip)
    if needs_root and os.geteuid() != 0:
        parser.error(f"sections {sorted(needs_root)} need root (or --skip them)")
    if "datapath" not in args.skip and not shutil.which("iperf3"):
        say(
            "iperf3 is not installed: TCP is measured with Python sockets (./dev bench installs it)"
        )
    started, clock = datetime.now(UTC), time.monotonic()
    raw: dict[str, Any] = {}
    rows: list[dict[str, Any]] = []
    for section in SECTIONS:
        if section not in args.skip:
            say(f"{section} ...")
            rows += RUN[section](args.quick, raw)
    doc = {
        "started": started.isoformat(timespec="seconds"),
        "seconds": round(time.monotonic() - clock, 1),
        "quick": args.quick,
        "machine": machine(),
        "figures": rows,
        "raw": raw,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(doc, indent=2) + "\n")
    print(table(rows))
    print(
        f"\nratio = tenet / baseline; see benchmarks/README.md. TCP: {doc['machine']['tcp_tool']}."
    )
    print(f"Written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
