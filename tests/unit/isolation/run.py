"""Run the tenant isolation property at scale, or replay one case.

    PYTHONPATH=src .venv/bin/python tests/unit/isolation/run.py --cases 1000000 [--seed N]
        [--workers 2] [--packets-per-world 500]
    PYTHONPATH=src .venv/bin/python tests/unit/isolation/run.py --world-seed S --packet J

The first form builds worlds ``world_seed(seed, 0..)`` (``isolation_build``) and
checks ``--packets-per-world`` generated packets on each (``isolation_check``),
spread over worker processes; it prints progress (cases, cases/s, violations so
far) and a summary line, the counts of what the cases reached, and the first
violations in full. The second rebuilds one world from its seed (as a violation
report names it) and replays one packet, printing its trace and any violation.
The exit status is 1 when a violation was found.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import sys
import time

from isolation_build import build_world
from isolation_check import Tally, check, explain, run_world
from isolation_world import NOW, case_rng, draw_case, world_seed

from tenet.simulation import simulate

PROGRESS_EVERY = 5.0  # seconds


def _task(job: tuple[int, int, int]) -> Tally:
    seed, index, packets = job
    return run_world(world_seed(seed, index), packets)


def run(cases: int, seed: int, workers: int, per_world: int, keep: int) -> int:
    jobs = []
    left, index = cases, 0
    while left > 0:
        jobs.append((seed, index, min(per_world, left)))
        left -= per_world
        index += 1
    print(
        f"isolation: {cases} cases on {len(jobs)} worlds ({per_world} packets each), "
        f"seed {seed}, {workers} worker(s)",
        flush=True,
    )
    total = Tally()
    started = last = time.perf_counter()
    ctx = multiprocessing.get_context("fork")
    interrupted = False
    with ctx.Pool(workers) as pool:
        try:
            for tally in pool.imap_unordered(_task, jobs):
                total.merge(tally, keep)
                now = time.perf_counter()
                if now - last >= PROGRESS_EVERY:
                    last = now
                    rate = total.cases / (now - started)
                    print(
                        f"  {total.cases}/{cases} cases ({100 * total.cases / cases:.1f}%), "
                        f"{total.worlds} worlds, {rate:.0f} cases/s, "
                        f"{total.violations} violations so far",
                        flush=True,
                    )
        except KeyboardInterrupt:  # the pool's workers end with the block
            interrupted = True
    seconds = time.perf_counter() - started
    print("what the cases reached:")
    for what, count in sorted(total.counts.items()):
        print(f"  {what}: {count}")
    for report in total.reports:
        print(report, end="\n\n")
    print(
        f"isolation summary: {total.cases} cases, {total.worlds} worlds, {seconds:.1f} s "
        f"({total.cases / seconds:.0f} cases/s), {total.violations} violations (seed {seed})"
        + (" -- interrupted" if interrupted else ""),
        flush=True,
    )
    return 1 if total.violations or interrupted else 0


def replay(world_seed_: int, packet: int) -> int:
    world = build_world(world_seed_)
    port, frame = draw_case(world, case_rng(world_seed_, packet))
    result = simulate(frame, port.id, world.view, world.state, NOW)
    print(f"world {world_seed_}, packet {packet}: {result.verdict.value}")
    print(result.trace_text())
    findings = check(world, world.owner[port.id], result)
    for finding in findings:
        print(explain(world, finding, packet, port.id, frame), end="\n\n")
    print(f"{len(findings)} thing(s) of other tenants reached")
    return 1 if findings else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=None, help="default: a random one")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--packets-per-world", type=int, default=500)
    parser.add_argument("--keep", type=int, default=10, help="violations to print in full")
    parser.add_argument("--world-seed", type=int, help="replay: the world of this seed")
    parser.add_argument("--packet", type=int, default=0, help="replay: this packet of it")
    args = parser.parse_args(argv)
    if args.world_seed is not None:
        return replay(args.world_seed, args.packet)
    seed = args.seed if args.seed is not None else random.randrange(1 << 32)
    return run(args.cases, seed, max(1, args.workers), max(1, args.packets_per_world), args.keep)


if __name__ == "__main__":
    sys.exit(main())
