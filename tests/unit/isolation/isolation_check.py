"""The isolation property, checked on simulation results, and the loop that runs it.

**The property.** A packet that enters a port of tenant T is simulated; in the
result, and in the results of walking every frame it emits from a device
(``simulate_emit``, ``EMIT_DEPTH`` levels deep), nothing belongs to another tenant:

* no output (``OutputLocal`` / ``OutputTunnel``) to a port of another tenant;
* no emitted frame on a port of another tenant;
* no state write on another tenant's device: ``MacLearned`` (its bridge, its port)
  or ``ArpLearned`` (its router);
* nothing of another tenant read on the way: no trace step and no tag (the objects
  the decision depended on; ``mac/``, ``arp/``, ``routes/`` and ``binding/`` tags
  by the id they name) of another tenant's record.

Records of the operator are always allowed (the external network, the edge, the
hosts). Another tenant U is allowed once the path has **crossed the operator's
edge** (its trace, or the trace of a walk above it, shows it entering a port of
the operator's records: it went out through the external network) and then
**entered U through U's edge**: the first step of the walk at a record of U is
the packet entering a port of U peered to a port of the operator (U's gateway),
or U was entered so in a walk above. A tag of U alone (a record looked at, such
as the edge router's next hop) needs only the crossing.

:func:`check` returns :class:`Finding` values; :func:`explain` turns one into the
report a failure shows (tenant, world seed, packet index, ingress port, packet
summary, the offending item, how to reproduce, the trace of every walk on the way).
:func:`run_world` runs the packets of one world and counts what happened, so the
test and ``run.py`` can show that the cases reach what they should.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections import Counter
from collections.abc import Sequence

from isolation_build import build_world
from isolation_world import NOW, World, case_rng, draw_case

from tenet.errors import PacketError
from tenet.packets import Packet, mac_to_str
from tenet.packets.actions import OutputTunnel
from tenet.simulation import (
    ArpLearned,
    MacLearned,
    SimulationResult,
    simulate,
    simulate_emit,
)

EMIT_DEPTH = 3


@dataclasses.dataclass(frozen=True)
class Finding:
    """One thing of another tenant reached by a packet of ``tenant``."""

    tenant: uuid.UUID
    other: uuid.UUID
    what: str  # output, emit, mac-learned, arp-learned, trace, tag
    item: str
    why: str  # "no crossing of the operator's edge" or "... not entered through its edge"
    path: tuple[str, ...]  # the walks: "simulate", then "emit #k from <port>" ...
    traces: tuple[str, ...]  # the trace text of each walk on the path


@dataclasses.dataclass
class Walk:
    """What one packet's checking saw (the test asserts the cases reach all of it)."""

    crossed: bool = False
    foreign_after_crossing: bool = False
    emit_walks: int = 0


def crossed_edge(world: World, result: SimulationResult) -> bool:
    """Whether the walk entered a port of the operator's records."""
    operator = world.operator
    owner = world.owner
    for step in result.trace:
        if (
            step.kind == "port"
            and step.detail.startswith("ingress")
            and step.ident is not None
            and owner.get(step.ident) == operator
        ):
            return True
    return False


def _entered_by_edge(
    world: World, tenant: uuid.UUID, result: SimulationResult, entered: frozenset[uuid.UUID]
) -> frozenset[uuid.UUID]:
    """``entered`` and the other tenants whose first step in ``result`` is the packet
    entering one of their ports that is peered to an operator's port."""
    seen = set(entered) | {tenant, world.operator}
    found = set(entered)
    for step in result.trace:
        other = world.owner.get(step.ident) if step.ident is not None else None
        if other is None or other in seen:
            continue
        seen.add(other)
        port = world.view.ports.get(step.ident) if step.ident is not None else None
        if (
            port is not None
            and step.kind == "port"
            and step.detail.startswith("ingress")
            and port.peer_id is not None
            and world.owner.get(port.peer_id) == world.operator
        ):
            found.add(other)
    return frozenset(found)


def _tag_ident(tag: str) -> str:
    """The text of the record id a tag names (``mac/<bridge>/...``, ``arp/<router>/...``,
    ``routes/<router>``, ``binding/<port>``, or an id itself)."""
    head, _, rest = tag.partition("/")
    return rest.partition("/")[0] if rest else head


def _items(result: SimulationResult) -> list[tuple[str, uuid.UUID | str, str]]:
    """Every record a result touches: (what, record id or its text, description)."""
    items: list[tuple[str, uuid.UUID | str, str]] = []
    for out in result.outputs:
        if isinstance(out, OutputTunnel):
            how = f"tunnel to host {out.host_id} at {out.address} key {out.key}"
        else:
            how = "local"
        items.append(("output", out.port_id, how))
    for n, emit in enumerate(result.emit):
        items.append(("emit", emit.port_id, f"emit #{n} (from_device={emit.from_device})"))
    for write in result.state:
        if isinstance(write, MacLearned):
            what = f"MacLearned {mac_to_str(write.mac)}"
            items.append(("mac-learned", write.bridge_id, f"{what} on its bridge"))
            items.append(("mac-learned", write.port_id, f"{what} behind its port"))
        elif isinstance(write, ArpLearned):
            detail = f"ArpLearned {write.ip} at {mac_to_str(write.mac)}"
            items.append(("arp-learned", write.router_id, detail))
    for step in result.trace:
        if step.ident is not None:
            items.append(("trace", step.ident, f"trace step '{step}'"))
    items.extend(("tag", _tag_ident(tag), f"tag {tag}") for tag in sorted(result.tags))
    return items


def check(
    world: World,
    tenant: uuid.UUID,
    result: SimulationResult,
    walk: Walk | None = None,
    *,
    depth: int = 0,
    crossed: bool = False,
    entered: frozenset[uuid.UUID] = frozenset(),
    path: tuple[str, ...] = ("simulate",),
    walks: tuple[SimulationResult, ...] = (),
) -> list[Finding]:
    """Everything of another tenant ``result`` reaches that it may not (see the module
    doc); ``crossed`` and ``entered`` come from the walks above this one."""
    walk = walk if walk is not None else Walk()
    crossed = crossed or crossed_edge(world, result)
    walk.crossed |= crossed
    if crossed:
        entered = _entered_by_edge(world, tenant, result, entered)
    walks = (*walks, result)
    found: list[Finding] = []
    allowed = (tenant, world.operator)
    for what, ident, item in _items(result):
        other = world.owner_any.get(ident)
        if other is None or other in allowed:
            continue
        if crossed and (other in entered or what == "tag"):
            walk.foreign_after_crossing = True
            continue
        why = (
            f"entered after the operator's edge, but not through a port of {world.label(other)} "
            "peered to the operator"
            if crossed
            else "the path never crossed the operator's edge"
        )
        label = world.label(uuid.UUID(ident) if isinstance(ident, str) else ident)
        traces = tuple(w.trace_text() for w in walks)
        found.append(Finding(tenant, other, what, f"{item}: {label}", why, path, traces))
    if depth < EMIT_DEPTH:
        for n, emit in enumerate(result.emit):
            if not emit.from_device:
                continue
            walk.emit_walks += 1
            sub = simulate_emit(emit, world.view, world.state, NOW)
            step = f"emit #{n} from {world.label(emit.port_id)}"
            found += check(
                world,
                tenant,
                sub,
                walk,
                depth=depth + 1,
                crossed=crossed,
                entered=entered,
                path=(*path, step),
                walks=walks,
            )
    return found


def summary(frame: bytes) -> str:
    """One line about a frame: Ethernet, ARP or IP addresses, protocol, ports, TTL."""
    try:
        pkt = Packet.parse(frame)
    except PacketError as exc:
        return f"unparsable frame ({exc}): {frame.hex()}"
    eth = f"{mac_to_str(pkt.eth.src)} -> {mac_to_str(pkt.eth.dst)} type {pkt.eth.eth_type:#06x}"
    if pkt.arp is not None:
        a = pkt.arp
        return f"{eth} ARP op {a.op} {a.spa} ({mac_to_str(a.sha)}) asks for {a.tpa}"
    layer = pkt.ip
    if layer is None:
        return f"{eth} {len(frame)} bytes"
    ttl = getattr(layer, "ttl", getattr(layer, "hop_limit", None))
    t = pkt.transport
    l4 = ""
    if t is not None and hasattr(t, "src_port"):
        l4 = f" {t.src_port} -> {t.dst_port}"
    elif t is not None:
        l4 = f" type {t.type} code {t.code}"
    return f"{eth} {layer.src} -> {layer.dst} proto {layer.proto}{l4} ttl {ttl}"


_FIRST = ("output", "emit", "mac-learned", "arp-learned", "trace", "tag")


def explain(
    world: World,
    finding: Finding,
    packet: int,
    in_port: uuid.UUID,
    frame: bytes,
    also: Sequence[Finding] = (),
) -> str:
    """A violation, as a failure shows it (``also``: the case's other findings, one line
    each)."""
    mode = "direct attach" if world.direct else "edge router"
    again = (
        f"reproduce: tests/unit/isolation/run.py --world-seed {world.seed} --packet {packet}"
        if world.standard
        else "a world built with options (not run.py's)"
    )
    lines = [
        f"isolation violation: a packet of tenant {world.label(finding.tenant)} reached "
        f"tenant {world.label(finding.other)}",
        f"  world seed {world.seed} ({mode}, {len(world.tenants)} tenants), packet {packet}; "
        + again,
        f"  ingress port {world.label(in_port)} ({in_port})",
        f"  packet: {summary(frame)}",
        f"  offending {finding.what}: {finding.item}",
        f"  why: {finding.why}",
        f"  path: {' -> '.join(finding.path)}",
    ]
    if also:
        lines.append(f"  and {len(also)} more thing(s) of other tenants:")
        lines.extend(f"    {f.what}: {f.item} ({' -> '.join(f.path)})" for f in also[:20])
    for name, trace in zip(finding.path, finding.traces, strict=True):
        lines.append(f"  --- trace of {name} ---")
        lines.extend(f"    {line}" for line in trace.splitlines())
    return "\n".join(lines)


# -- running cases ------------------------------------------------------------------------------


@dataclasses.dataclass
class Tally:
    """What a run did: cases, and counts that show what the cases reached."""

    cases: int = 0
    worlds: int = 0
    counts: Counter[str] = dataclasses.field(default_factory=Counter)
    violations: int = 0
    reports: list[str] = dataclasses.field(default_factory=list)

    def merge(self, other: Tally, keep: int = 20) -> None:
        self.cases += other.cases
        self.worlds += other.worlds
        self.counts.update(other.counts)
        self.violations += other.violations
        self.reports.extend(other.reports[: max(0, keep - len(self.reports))])


def run_case(world: World, packet: int, tally: Tally) -> list[str]:
    """Simulate packet ``packet`` of ``world`` and check it; the report of its violation
    (none or one)."""
    port, frame = draw_case(world, case_rng(world.seed, packet))
    tenant = world.owner[port.id]
    result = simulate(frame, port.id, world.view, world.state, NOW)
    walk = Walk()
    findings = check(world, tenant, result, walk)
    counts = tally.counts
    tally.cases += 1
    counts[f"verdict {result.verdict.value}"] += 1
    for out in result.outputs:
        counts["output tunnel" if isinstance(out, OutputTunnel) else "output local"] += 1
    counts["emit"] += len(result.emit)
    counts["emit walks"] += walk.emit_walks
    counts["mac learned"] += sum(isinstance(w, MacLearned) for w in result.state)
    counts["arp learned"] += sum(isinstance(w, ArpLearned) for w in result.state)
    counts["crossed the edge"] += walk.crossed
    counts["another tenant reached after the edge"] += walk.foreign_after_crossing
    kinds = {step.kind for step in result.trace}
    counts["rule decided"] += "rule" in kinds
    details = [step.detail for step in result.trace if step.kind in ("port", "router")]
    counts["port security drop"] += any(d.startswith("port security") for d in details)
    counts["ECMP"] += any("(ECMP" in d for d in details)
    if not findings:
        return []
    tally.violations += 1
    first, *rest = sorted(findings, key=lambda f: (_FIRST.index(f.what), len(f.path)))
    return [explain(world, first, packet, port.id, frame, rest)]


def run_world(seed: int, packets: int, keep: int = 5) -> Tally:
    """Build the world of ``seed`` and run ``packets`` cases on it."""
    world = build_world(seed)
    tally = Tally(worlds=1)
    tally.counts[f"world {'direct' if world.direct else 'edge'}"] += 1
    tally.counts[f"world {len(world.tenants)} tenants"] += 1
    for packet in range(packets):
        reports = run_case(world, packet, tally)
        tally.reports.extend(reports[: max(0, keep - len(tally.reports))])
    return tally


__all__ = [
    "EMIT_DEPTH",
    "Finding",
    "Tally",
    "Walk",
    "check",
    "crossed_edge",
    "explain",
    "run_case",
    "run_world",
    "summary",
]
