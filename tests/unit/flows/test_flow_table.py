"""The flow table: tags invalidate exactly their flows; expiry, eviction, megaflows."""

from __future__ import annotations

import uuid
from ipaddress import ip_address

from tenet.flows import FlowTable
from tenet.packets import FlowMatch
from tenet.packets.actions import OutputLocal
from tenet.simulation import tags
from tenet.simulation.result import Emit, SimulationResult, Verdict
from tenet.simulation.tags import Tag

PORT = uuid.uuid4()


def match(sport: int, dst: bytes = b"\x0a\x00\x00\x02", proto: int = 6) -> FlowMatch:
    return FlowMatch(
        in_port=1,
        eth_type=0x0800,
        ip_src=b"\x0a\x00\x00\x01",
        ip_dst=dst,
        ip_proto=proto,
        l4_src=sport,
        l4_dst=80,
    )


def forward(
    *carried: str, fields: frozenset[str] = frozenset({"in_port", "ip_dst"})
) -> SimulationResult:
    return SimulationResult(
        Verdict.FORWARD,
        actions=(OutputLocal(PORT),),
        tags=frozenset(Tag(t) for t in carried),
        match_fields=fields,
    )


def test_invalidating_a_tag_removes_exactly_the_flows_that_carry_it() -> None:
    table = FlowTable()
    table.install(match(1), forward("route-a", "bridge"), now=0)
    table.install(match(2), forward("route-b", "bridge"), now=0)
    table.install(match(3), forward("route-a"), now=0)
    gone = table.invalidate({"route-a"})
    assert {f.match.l4_src for f in gone} == {1, 3}
    assert match(2) in table
    assert len(table) == 1
    assert table.invalidate({"route-a"}) == []
    assert [f.match.l4_src for f in table.invalidate({"bridge"})] == [2]
    assert len(table) == 0


def test_a_reinstalled_flow_loses_its_old_tags() -> None:
    table = FlowTable()
    table.install(match(1), forward("old"), now=0)
    table.install(match(1), forward("new"), now=1)
    assert table.invalidate({"old"}) == []
    assert len(table.invalidate({"new"})) == 1


def test_drop_results_install_flows_without_actions() -> None:
    table = FlowTable()
    table.install(match(1), SimulationResult(Verdict.DROP, tags=frozenset({"c"})), now=0)
    flow = table.get(match(1))
    assert flow is not None
    assert flow.drops


def test_idle_expiry_follows_the_datapath_counters() -> None:
    table = FlowTable()
    table.install(match(1), forward("t"), now=0)
    table.install(match(2), forward("t"), now=0)
    table.used(match(1), packets=10, nbytes=1000, last_used=50)
    assert [f.match.l4_src for f in table.expire(now=70)] == [2]
    flow = table.get(match(1))
    assert flow is not None
    assert (flow.packets, flow.bytes) == (10, 1000)
    assert [f.match.l4_src for f in table.expire(now=111)] == [1]
    assert table.invalidate({"t"}) == []


def test_hard_timeout_ends_a_busy_flow() -> None:
    table = FlowTable()
    result = SimulationResult(Verdict.FORWARD, actions=(OutputLocal(PORT),), hard_timeout=30)
    table.install(match(1), result, now=0)
    table.used(match(1), 5, 500, last_used=29)
    assert table.expire(now=29.5) == []
    assert len(table.expire(now=30)) == 1


def test_the_least_recently_used_flow_is_evicted_at_the_limit() -> None:
    table = FlowTable(max_flows=3)
    for sport in (1, 2, 3):
        table.install(match(sport), forward("t"), now=sport)
    table.used(match(1), 1, 60, last_used=10)
    evicted = table.install(match(4), forward("t"), now=11)
    assert [f.match.l4_src for f in evicted] == [2]
    assert len(table) == 3
    assert table.evictions == 1
    assert match(2) not in table


def test_a_megaflow_serves_microflows_that_agree_on_the_fields_read() -> None:
    table = FlowTable()
    result = forward("route", fields=frozenset({"in_port", "ip_dst"}))
    assert table.remember(match(1), result)
    assert table.recall(match(999)) is result  # another source port, same destination
    assert table.recall(match(1, dst=b"\x0a\x00\x00\x03")) is None
    table.invalidate({"route"})
    assert table.recall(match(999)) is None
    assert table.megaflow_count == 0


def test_a_megaflow_holds_only_above_its_ttl_floor() -> None:
    """A routed result serves every TTL above its floor without reading the TTL; a
    packet whose TTL would run out on the way is simulated (it gets an ICMP error)."""
    table = FlowTable()
    result = SimulationResult(
        Verdict.FORWARD,
        actions=(OutputLocal(PORT),),
        match_fields=frozenset({"in_port", "ip_dst"}),
        ttl_above=2,
    )
    table.remember(match(1)._replace(ip_ttl=64), result)
    assert table.recall(match(2)._replace(ip_ttl=3)) is result
    assert table.recall(match(2)._replace(ip_ttl=255)) is result
    assert table.recall(match(2)._replace(ip_ttl=2)) is None
    assert table.recall(match(2)._replace(ip_ttl=1)) is None


def test_a_flow_is_loose_unless_its_outcome_read_the_tcp_flags_or_the_ttl() -> None:
    routed = SimulationResult(Verdict.FORWARD, match_fields=frozenset({"ip_dst"}), ttl_above=2)
    assert routed.loose_floor == 2
    for field in ("tcp_flags", "ip_ttl"):
        exact = SimulationResult(Verdict.FORWARD, match_fields=frozenset({field}), ttl_above=2)
        assert exact.loose_floor is None


def test_results_with_side_effects_are_not_megaflows() -> None:
    table = FlowTable()
    consumed = SimulationResult(Verdict.CONSUMED, emit=(Emit(PORT, b"x"),))
    assert not table.remember(match(1), consumed)
    assert table.recall(match(1)) is None


# -- scoped tags: a router's route lookups, found without scanning every tag --------------

R1, R2 = uuid.UUID(int=1), uuid.UUID(int=2)


def lookup(router: uuid.UUID, dst: str) -> Tag:
    return tags.route_lookup(router, ip_address(dst))


def test_route_lookups_are_found_by_their_router_while_a_flow_carries_them() -> None:
    table = FlowTable()
    a, b, c = lookup(R1, "8.8.8.8"), lookup(R1, "10.9.1.1"), lookup(R2, "8.8.8.8")
    table.install(match(1), forward(a, tags.of_id(R1)), now=0)
    table.install(match(2), forward(b), now=0)
    table.install(match(3), forward(b, c), now=0)
    assert set(table.scoped(tags.route_scope(R1))) == {a, b}
    assert set(table.scoped(tags.route_scope(R2))) == {c}
    assert table.scoped(tags.of_id(R1)) == ()  # an id is no scope
    table.remove(match(2))
    assert set(table.scoped(tags.route_scope(R1))) == {a, b}  # match 3 still carries b
    table.invalidate({c})
    assert set(table.scoped(tags.route_scope(R1))) == {a}
    assert table.scoped(tags.route_scope(R2)) == ()
    table.install(match(1), forward(tags.of_id(R1)), now=1)  # replaced: loses its lookup
    assert table.scoped(tags.route_scope(R1)) == ()


def test_megaflows_count_in_the_scope_index_and_leave_it_with_their_entry() -> None:
    table = FlowTable()
    a = lookup(R1, "8.8.8.8")
    assert table.remember(match(1), forward(a))
    assert table.scoped(tags.route_scope(R1)) == (a,)
    table.invalidate({a})
    assert table.scoped(tags.route_scope(R1)) == ()
    table.install(match(1), forward(a), now=0)
    table.used(match(1), 1, 60, last_used=0)
    table.expire(now=1000)
    assert table.scoped(tags.route_scope(R1)) == ()
