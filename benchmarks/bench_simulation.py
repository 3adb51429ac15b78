"""How many first packets per second can one core simulate through the virtual topology?

Run it with ``python -m benchmarks.bench_simulation [--quick] [--seconds S] [--json PATH]``.
It prints simulations per second (single core, one ``simulate`` call per packet)
for three paths:

* one bridge hop: VM to VM on one bridge, the destination MAC known;
* bridge -> router -> bridge: VM to VM across a router (TTL decrement, MAC
  rewrites, next hop resolved from the destination VM port);
* the same with a 50-rule chain on the ingress port: 49 rules that do not match
  (each reads the protocol and the destination port), then an accept;
* the same with a stateful chain instead (a security group's shape: "replies
  accept", then an accept): the first packet of a new connection, looked up in the
  flow state (a miss) and committed.

The baseline, measured in the same run, is ``extract_match`` on the same frame:
parsing the flow match is what every upcall pays anyway, so the ratio says how
many times that the simulation costs. A benchmark, not a test: it never fails on
a timing (CONVENTIONS.md point 14).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import timeit
import uuid
from collections.abc import Callable
from ipaddress import IPv4Address, ip_interface
from pathlib import Path

from tenet.model import (
    MAC,
    Bridge,
    Chain,
    Condition,
    CtState,
    DeviceType,
    Host,
    Port,
    PortBinding,
    PortRange,
    Record,
    Router,
    Rule,
    RuleAction,
    Tenant,
    TunnelZone,
    TunnelZoneMember,
)
from tenet.packets import TCP, Ethernet, IPv4, Packet, extract_match
from tenet.simulation import simulate
from tenet.simulation.result import Verdict
from tenet.simulation.view import DictState, TopologyView

CHAIN_RULES = 50
NOW = 1000.0


def uid(n: int) -> uuid.UUID:
    return uuid.UUID(int=n)


TENANT, HOST, ZONE = uid(1), uid(2), uid(3)
BR_A, BR_B, ROUTER, CHAIN = uid(10), uid(11), uid(12), uid(13)
VM1, VM2, VM3, A_R, B_R, R_A, R_B = (uid(n) for n in range(20, 27))
MAC1, MAC2, MAC3 = "02:00:00:00:00:01", "02:00:00:00:00:02", "02:00:00:00:00:03"
MAC_RA, MAC_RB = "02:00:00:00:00:a1", "02:00:00:00:00:b1"


def _bridge_port(pid: uuid.UUID, bridge: uuid.UUID, mac: str, ip: str, **kw: object) -> Port:
    return Port(
        id=pid,
        tenant_id=TENANT,
        name=f"vm{pid.int}",
        device_id=bridge,
        device_type=DeviceType.BRIDGE,
        tunnel_key=pid.int,
        mac=MAC(mac),
        fixed_ips=(IPv4Address(ip),),
        **kw,  # type: ignore[arg-type]
    )


def _router_port(pid: uuid.UUID, mac: str, cidr: str, peer: uuid.UUID) -> Port:
    iface = ip_interface(cidr)
    return Port(
        id=pid,
        tenant_id=TENANT,
        name=f"r{pid.int}",
        device_id=ROUTER,
        device_type=DeviceType.ROUTER,
        tunnel_key=pid.int,
        mac=MAC(mac),
        address=iface.ip,
        subnet=iface.network,
        peer_id=peer,
    )


def topology(*, chain: bool, stateful: bool = False) -> list[Record]:
    """br-a (vm1, vm2) -- router -- br-b (vm3), all on the local host."""
    link = {"device_type": DeviceType.BRIDGE, "tenant_id": TENANT}
    recs: list[Record] = [
        Tenant(id=TENANT, name="bench"),
        Host(id=HOST, name="host1"),
        TunnelZone(id=ZONE, name="zone"),
        TunnelZoneMember(
            id=uid(4), tunnel_zone_id=ZONE, host_id=HOST, address=IPv4Address("192.168.0.1")
        ),
        Bridge(id=BR_A, tenant_id=TENANT, name="br-a", tunnel_key=5001),
        Bridge(id=BR_B, tenant_id=TENANT, name="br-b", tunnel_key=5002),
        Router(id=ROUTER, tenant_id=TENANT, name="r1"),
        _bridge_port(
            VM1, BR_A, MAC1, "10.0.0.1", inbound_chain_id=CHAIN if chain or stateful else None
        ),
        _bridge_port(VM2, BR_A, MAC2, "10.0.0.2"),
        _bridge_port(VM3, BR_B, MAC3, "10.0.1.3"),
        Port(id=A_R, name="a-r", device_id=BR_A, peer_id=R_A, tunnel_key=90, **link),  # type: ignore[arg-type]
        Port(id=B_R, name="b-r", device_id=BR_B, peer_id=R_B, tunnel_key=91, **link),  # type: ignore[arg-type]
        _router_port(R_A, MAC_RA, "10.0.0.254/24", A_R),
        _router_port(R_B, MAC_RB, "10.0.1.254/24", B_R),
    ]
    recs += [
        PortBinding(id=uid(100 + n), port_id=pid, host_id=HOST, interface=f"tap{n}")
        for n, pid in enumerate((VM1, VM2, VM3))
    ]
    if stateful:
        replies = Rule(
            id=uid(3000),
            tenant_id=TENANT,
            name="replies",
            chain_id=CHAIN,
            condition=Condition(ct_state=CtState.RETURN),
        )
        allow = Rule(id=uid(3001), tenant_id=TENANT, name="allow", chain_id=CHAIN)
        recs += [replies, allow, Chain(id=CHAIN, tenant_id=TENANT, rule_ids=(replies.id, allow.id))]
    if chain:
        rules = [
            Rule(
                id=uid(1000 + i),
                tenant_id=TENANT,
                name=f"r{i}",
                chain_id=CHAIN,
                condition=Condition(nw_proto=6, tp_dst=PortRange(start=1000 + i, end=1000 + i)),
                action=RuleAction.DROP,
            )
            for i in range(CHAIN_RULES - 1)
        ]
        rules.append(
            Rule(
                id=uid(2000), tenant_id=TENANT, name="allow", chain_id=CHAIN, condition=Condition()
            )
        )
        recs += rules
        recs.append(
            Chain(id=CHAIN, tenant_id=TENANT, name="in", rule_ids=tuple(r.id for r in rules))
        )
    return recs


def frame(dst_mac: str, dst_ip: str) -> bytes:
    ip = IPv4(IPv4Address("10.0.0.1"), IPv4Address(dst_ip), 6)
    eth = Ethernet(bytes.fromhex(dst_mac.replace(":", "")), bytes.fromhex("020000000001"), 0x0800)
    return Packet(eth, ip, TCP(40000, 443, flags=0x02), bytes(64)).build()


def rate(call: Callable[[], object], seconds: float) -> float:
    """Calls per second: the best of five runs of about ``seconds / 5`` each."""
    number = 10
    while timeit.timeit(call, number=number) < seconds / 50:
        number *= 2
    number *= 10
    best = min(timeit.repeat(call, number=number, repeat=5))
    return number / best


def figures(seconds: float) -> list[dict[str, object]]:
    plain = TopologyView.build(topology(chain=False), HOST)
    chained = TopologyView.build(topology(chain=True), HOST)
    stateful = TopologyView.build(topology(chain=False, stateful=True), HOST)
    state = DictState()
    l2 = frame(MAC2, "10.0.0.2")
    l3 = frame(MAC_RA, "10.0.1.3")
    paths = [
        ("one bridge hop (known MAC)", plain, l2),
        ("bridge -> router -> bridge", plain, l3),
        (f"the same + {CHAIN_RULES}-rule ingress chain", chained, l3),
        ("the same + a stateful chain (new connection, tracked)", stateful, l3),
    ]
    rows: list[dict[str, object]] = []
    for name, view, data in paths:
        result = simulate(data, VM1, view, state, NOW)
        if result.verdict is not Verdict.FORWARD:  # a benchmark of a wrong path is worthless
            sys.exit(f"{name}: expected FORWARD, got {result.verdict}:\n{result.trace_text()}")
        baseline = rate(lambda d=data: extract_match(d, 1, 0), seconds)
        sims = rate(lambda d=data, v=view: simulate(d, VM1, v, state, NOW), seconds)
        rows.append(
            {
                "path": name,
                "simulations_per_s": round(sims),
                "baseline_extract_match_per_s": round(baseline),
                "ratio": round(baseline / sims, 1),
                "trace_lines": len(result.trace),
            }
        )
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs (a smoke test)")
    parser.add_argument("--seconds", type=float, default=2.0, help="rough time per figure")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures here")
    args = parser.parse_args(argv)
    seconds = 0.2 if args.quick else args.seconds

    rows = figures(seconds)
    print(f"{'path':40} {'simulations/s':>14} {'extract_match/s':>16} {'ratio':>7}")
    for row in rows:
        print(
            f"{row['path']!s:40} {row['simulations_per_s']:>14,} "
            f"{row['baseline_extract_match_per_s']:>16,} {row['ratio']:>6}x"
        )
    print("ratio = one simulation's time / extract_match's time on the same frame (single core)")
    if args.json is not None:
        doc = {
            "benchmark": "simulation",
            "python": platform.python_version(),
            "seconds_per_figure": seconds,
            "figures": rows,
        }
        args.json.write_text(json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":
    main()
