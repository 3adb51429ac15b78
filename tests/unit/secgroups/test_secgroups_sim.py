"""Security groups in the simulation: packets between VM ports of one bridge, on a
topology built through the object layer (so the chains run are the compiled ones)."""

from __future__ import annotations

import dataclasses
import uuid
from ipaddress import IPv4Address, ip_address

import pytest
from sgworld import World

from tenet.model import (
    CtState,
    Direction,
    Port,
    SecurityGroup,
    SecurityGroupRule,
)
from tenet.packets import (
    ARP,
    ICMP,
    TCP,
    UDP,
    Ethernet,
    ICMPv6,
    IPv4,
    IPv6,
    Packet,
    extract_match,
    mac_from_str,
)
from tenet.simulation import DictState, SimulationResult, TopologyView, Verdict, simulate, tags
from tenet.simulation import secgroups as sim_secgroups
from tenet.simulation.conntrack import Tracking
from tenet.simulation.context import Ctx
from tenet.store.reach import Reach
from tenet.store.secgroups import compiled_id


@dataclasses.dataclass
class Net:
    w: World
    web: SecurityGroup
    ssh: SecurityGroupRule
    ping: SecurityGroupRule
    server: Port  # in "web": TCP 22 and ICMP in, the default egress rules
    client: Port  # no security group
    db: Port  # in "db" (created per test)


def mac(port: Port) -> bytes:
    assert port.mac is not None
    return mac_from_str(port.mac)


def ip(port: Port) -> str:
    return str(port.fixed_ips[0])


@pytest.fixture
def net() -> Net:
    w = World()
    web = w.group("web")
    ssh = w.rule(web, direction="ingress", protocol="tcp", port_range_min=22, port_range_max=22)
    ping = w.rule(web, direction="ingress", protocol="icmp")
    server = w.port("server", "10.0.0.10", web)
    client = w.port("client", "10.0.0.20")
    db_group = w.group("db")
    db = w.port("db", "10.0.0.30", db_group)
    return Net(w, web, ssh, ping, server, client, db)


def tcp(src: Port, dst: Port, dport: int, sport: int = 40000) -> bytes:
    packet = IPv4(IPv4Address(ip(src)), IPv4Address(ip(dst)), 6)
    return Packet(Ethernet(mac(dst), mac(src), 0x0800), packet, TCP(sport, dport)).build()


def udp(src: Port, dst_ip: str, dst_mac: bytes, sport: int, dport: int) -> bytes:
    packet = IPv4(IPv4Address(ip(src)), IPv4Address(dst_ip), 17)
    return Packet(Ethernet(dst_mac, mac(src), 0x0800), packet, UDP(sport, dport)).build()


def ping(src: Port, dst: Port) -> bytes:
    packet = IPv4(IPv4Address(ip(src)), IPv4Address(ip(dst)), 1)
    eth = Ethernet(mac(dst), mac(src), 0x0800)
    return Packet(eth, packet, ICMP.echo_request(1, 1), b"hi").build()


def run(net: Net, frame: bytes, port: Port, view: TopologyView | None = None) -> SimulationResult:
    return simulate(frame, port.id, view or net.w.view(), DictState(), 0.0)


def delivered(result: SimulationResult, port: Port) -> bool:
    return result.verdict is Verdict.FORWARD and port.id in {o.port_id for o in result.outputs}


def test_a_group_allowing_tcp_22_and_icmp_in(net: Net) -> None:
    syn = run(net, tcp(net.client, net.server, 22), net.client)
    assert delivered(syn, net.server), syn.trace_text()
    decided = f"rule security group web rule {net.ssh.id}: ingress IPv4 tcp 22 #1"
    assert f"security group web: ingress allowed by {decided}" in syn.trace_text()
    web = run(net, tcp(net.client, net.server, 80), net.client)
    assert web.verdict is Verdict.DROP, web.trace_text()
    assert "security groups (web): no rule allows this ingress packet: drop" in web.trace_text()
    assert "no ingress rule allows it" in web.trace_text()  # the chain's last rule
    echo = run(net, ping(net.client, net.server), net.client)
    assert delivered(echo, net.server), echo.trace_text()
    assert str(net.ping.id) in echo.trace_text()


def test_egress_is_allowed_by_the_default_rules_until_they_are_deleted(net: Net) -> None:
    out = run(net, tcp(net.server, net.client, 80), net.server)
    assert delivered(out, net.client), out.trace_text()
    assert "security group web: egress allowed by rule" in out.trace_text()
    for rule in net.w.group_rules(net.web):
        if rule.direction is Direction.EGRESS:
            net.w.o.delete(SecurityGroupRule, rule.id)
    blocked = run(net, tcp(net.server, net.client, 80), net.server)
    assert blocked.verdict is Verdict.DROP
    assert "no rule allows this egress packet" in blocked.trace_text()
    net.w.rule(net.web, direction="egress", protocol="tcp", port_range_min=443,
               port_range_max=443, remote_ip_prefix="10.0.0.0/24")  # fmt: skip
    assert run(net, tcp(net.server, net.client, 80), net.server).verdict is Verdict.DROP
    assert delivered(run(net, tcp(net.server, net.client, 443), net.server), net.client)


def test_a_remote_group_rule_follows_its_members(net: Net) -> None:
    db_group = net.w.get_group(net.db.security_group_ids[0])
    net.w.rule(db_group, direction="ingress", protocol="tcp", port_range_min=5432,
               port_range_max=5432, remote_group_id=str(net.web.id))  # fmt: skip
    from_web = run(net, tcp(net.server, net.db, 5432), net.server)
    assert delivered(from_web, net.db), from_web.trace_text()
    from_client = run(net, tcp(net.client, net.db, 5432), net.client)
    assert from_client.verdict is Verdict.DROP
    # the client joins web: its address joins web's address group, and it may connect
    client = net.w.o.get(Port, net.client.id).record
    net.w.o.update(client.replace(security_group_ids=(net.web.id,)))
    assert delivered(run(net, tcp(net.client, net.db, 5432), net.client), net.db)


def test_any_group_of_a_port_may_allow(net: Net) -> None:
    db_group = net.w.get_group(net.db.security_group_ids[0])
    assert run(net, tcp(net.client, net.db, 22), net.client).verdict is Verdict.DROP
    db = net.w.o.get(Port, net.db.id).record
    net.w.o.update(db.replace(security_group_ids=(db_group.id, net.web.id)))
    result = run(net, tcp(net.client, net.db, 22), net.client)
    assert delivered(result, net.db), result.trace_text()
    assert "security group web: ingress allowed" in result.trace_text()


def test_arp_dhcp_and_neighbour_discovery_need_no_rule(net: Net) -> None:
    for rule in net.w.group_rules(net.web):
        net.w.o.delete(SecurityGroupRule, rule.id)  # nothing allowed either way
    # to an address the bridge does not know: flooded, the server's port included
    who_has = IPv4Address("10.0.0.77")
    request = ARP.request(mac(net.client), IPv4Address(ip(net.client)), who_has)
    frame = Packet(Ethernet(b"\xff" * 6, mac(net.client), 0x0806), request).build()
    assert delivered(run(net, frame, net.client), net.server)
    discover = udp(net.server, "255.255.255.255", b"\xff" * 6, 68, 67)
    result = run(net, discover, net.server)
    assert "egress DHCP: allowed" in result.trace_text()
    src, dst = ip_address("fe80::1"), ip_address("ff02::1")
    assert src.version == dst.version == 6
    solicit = IPv6(src, dst, 58)  # type: ignore[arg-type]
    frame = Packet(Ethernet(mac(net.server), mac(net.client), 0x86DD), solicit,
                   ICMPv6(135, 0), bytes(16)).build()  # fmt: skip
    result = run(net, frame, net.client)
    assert "ingress neighbour discovery: allowed" in result.trace_text()


def test_a_reply_of_a_tracked_connection_is_allowed_when_the_group_is_stateful(net: Net) -> None:
    """A packet whose connection state is RETURN (as if a lookup had found it)."""
    view = net.w.view()
    frame = tcp(net.client, net.server, 80)  # no rule allows it in
    server = view.ports[net.server.id]

    def decide() -> tuple[bool, str]:
        ctx = Ctx(extract_match(frame, 0), frame, net.client.id, 0.0)
        ctx.ct = Tracking(net.client.id, None, CtState.RETURN)
        ctx.out_port_id = server.id
        ok = sim_secgroups.allowed(ctx, view, server, Direction.INGRESS)
        return ok, "\n".join(str(s) for s in ctx.trace)

    ok, trace = decide()
    assert ok
    assert "reply of a tracked connection" in trace
    net.w.o.update(net.w.get_group(net.web).replace(stateful=False))
    view = net.w.view()
    ok, trace = decide()
    assert not ok, trace


def test_port_security_stays_in_front(net: Net) -> None:
    server = net.w.o.get(Port, net.server.id).record
    net.w.o.update(server.replace(port_security=True))
    spoofed = IPv4(IPv4Address("10.0.0.99"), IPv4Address(ip(net.client)), 6)
    frame = Packet(Ethernet(mac(net.client), mac(net.server), 0x0800), spoofed,
                   TCP(1, 80)).build()  # fmt: skip
    result = run(net, frame, net.server)
    assert result.verdict is Verdict.DROP
    assert "port security" in result.trace_text()
    assert "security group" not in result.trace_text()


def test_a_group_missing_from_the_view_allows_nothing(net: Net) -> None:
    records, _ = net.w.o.snapshot()
    view = TopologyView.build([r for r in records if r.id != net.web.id], net.w.host.id)
    result = run(net, ping(net.client, net.server), net.client, view)
    assert result.verdict is Verdict.DROP
    assert f"security group {net.web.id} is not in the view" in result.trace_text()


def test_the_outcome_is_tagged_with_what_a_group_change_touches(net: Net) -> None:
    result = run(net, tcp(net.client, net.server, 80), net.client)
    assert tags.of_id(net.web.id) in result.tags
    assert tags.of_id(net.web.ingress_chain_id) in result.tags  # type: ignore[arg-type]
    # a new rule rewrites the chain's rule list: flows tagged with the chain go
    https = net.w.rule(net.web, direction="ingress", protocol="tcp", port_range_min=80,
                       port_range_max=80)  # fmt: skip
    assert compiled_id(https.id) in net.w.chain(net.web, "ingress").rule_ids
    assert delivered(run(net, tcp(net.client, net.server, 80), net.client), net.server)
    # a rule naming a remote group tags the group's address group (members come and go)
    db_group = net.w.get_group(net.db.security_group_ids[0])
    net.w.rule(db_group, direction="ingress", remote_group_id=str(net.web.id))
    result = run(net, tcp(net.server, net.db, 9), net.server)
    assert tags.of_id(net.web.ip_addr_group_id) in result.tags  # type: ignore[arg-type]


def test_an_agent_and_the_trace_service_reach_the_groups_records(net: Net) -> None:
    db_group = net.w.get_group(net.db.security_group_ids[0])
    net.w.rule(db_group, direction="ingress", remote_group_id=str(net.web.id))
    records = Reach(net.w.o, None).load_from(Port, net.db.id)
    for ident in (db_group.id, db_group.ingress_chain_id, db_group.egress_chain_id,
                  net.web.ip_addr_group_id):  # fmt: skip
        assert ident in records, ident
    assert all(not isinstance(r, SecurityGroupRule) for r in records.values())
    rules = [r for r in records.values() if type(r).__name__ == "Rule"]
    assert {r.chain_id for r in rules} >= {db_group.ingress_chain_id}
    assert uuid.UUID(int=0) not in records
