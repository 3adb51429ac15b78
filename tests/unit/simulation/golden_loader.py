"""Golden simulation cases: TOML topologies and packets -> the behaviour a simulation must show.

A golden file (``golden/*.toml``) holds one named topology and its cases. Objects
are named; the loader maps every name to a deterministic ``uuid5`` id, builds
the model records (which validate themselves), checks the multi-record rules of
``tenet.model.consistency`` (unless the file says ``inconsistent = true``: a
deliberately misconfigured topology), builds a :class:`TopologyView` and a
:class:`DictState`, builds each case's frame with ``tenet.packets``, runs
``simulate`` and compares the *behaviour*: the verdict, which ports the packet
leaves by (local or tunnel, key and host address), the headers of the packet
that leaves each port (the result's actions applied to the frame by
:func:`apply_actions`, through the one flow interpreter), the packets emitted, the state
written and key trace lines. Action lists are never compared.

File format (names everywhere; MACs may be given as a port name, meaning that
port's MAC, or ``broadcast``)::

    [topology]                      name, local_host, inconsistent (bool)
    [[host]]                        name, address (underlay, one tunnel zone)
    [[bridge]]                      name, tunnel_key, admin_up, inbound/outbound_chain,
                                    static_arp = [{ip, mac}]
    [[router]]                      name, admin_up, inbound/outbound_chain
    [[port]]                        name, device, mac, ips (bridge port), address
                                    ("ip/len", router port), peer, host, tunnel_key,
                                    admin_up, inbound/outbound_chain, groups,
                                    port_security, allowed = [{ip, mac}]
    [[route]]                       router, dst, src, type, next_hop, gateway, weight
    [[chain]] + [[chain.rule]]      name; rule: name, action, jump, match = {...}, nat = [...]
    [[port_group]] [[ip_addr_group]] name (addresses)
    [[learned_mac]] [[learned_arp]] bridge, mac, port / router, ip, mac
    [[case]]                        name, in_port, now, packet = {...}, expect = {...},
                                    learned_mac / learned_arp (added to the file's)

``packet``: type (ipv4, ipv6, arp, raw), eth_src, eth_dst, src, dst, ttl, proto
(icmp, tcp, udp, icmpv6 or a number), sport, dport, tcp_flags, icmp_type,
icmp_code, payload; arp: op, sha, spa, tha, tpa; raw: hex.

``expect``: verdict; out (exact set of egress port names); headers of every
egress packet (eth_src, eth_dst, ip_src, ip_dst, ttl, sport, dport); tunnels
(list of {port, host, address, key}); emit (exact list of emitted packets, any
order: {kind = arp-reply | arp-request | echo-reply | icmp | icmpv6 | tcp-rst,
port, from_device, ip, mac, target, sender, src, dst, type, code, eth_src,
eth_dst, sport, dport}); state (learned entries that must be written); trace
(substrings, in order, case-insensitive); tags (names whose ids must be tags);
read (fields that must be in match_fields); unread (fields that must not be);
ttl_above (the TTL floor of the result).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import tomllib
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from tenet.errors import PacketError
from tenet.model import (
    AddressPair,
    ArpEntry,
    Bridge,
    Chain,
    Condition,
    CtState,
    DeviceType,
    Host,
    IPAddrGroup,
    NatTarget,
    Port,
    PortBinding,
    PortGroup,
    PortRange,
    Record,
    Route,
    Router,
    RouteType,
    Rule,
    RuleAction,
    Tenant,
    TunnelZone,
    TunnelZoneMember,
    consistency,
)
from tenet.packets import (
    ARP,
    FIELDS,
    ICMP,
    TCP,
    UDP,
    Ethernet,
    ICMPv6,
    IPv4,
    IPv6,
    Packet,
    mac_from_str,
    mac_to_str,
)
from tenet.packets import icmp as icmp_mod
from tenet.packets import icmpv6 as icmpv6_mod
from tenet.packets import ipv4 as ipv4_mod
from tenet.packets import l4 as l4_mod
from tenet.packets.actions import (
    OutputLocal,
    OutputTunnel,
    interpret,
)
from tenet.simulation.result import (
    ArpLearned,
    Emit,
    MacLearned,
    SimulationResult,
    Verdict,
)
from tenet.simulation.view import DictState, TopologyView

GOLDEN_DIR = Path(__file__).parent / "golden"
NAMESPACE = uuid.UUID("5f6e7a1c-2b3d-4e5f-8a9b-0c1d2e3f4a5b")
TENANT_NAME = "golden-tenant"
ZONE_NAME = "golden-zone"
DEFAULT_NOW = 1000.0
BROADCAST = b"\xff" * 6
TCP_RST = 0x04

Simulate = Callable[..., SimulationResult]
SimulateEmit = Callable[..., SimulationResult]


def name_id(name: str) -> uuid.UUID:
    """The deterministic id of a named golden object."""
    return uuid.uuid5(NAMESPACE, name)


# -- the topology -----------------------------------------------------------------------


@dataclasses.dataclass(repr=False)
class Topology:
    """One golden file's topology: its records, view, learned state and name maps."""

    name: str
    records: list[Record]
    view: TopologyView
    macs: dict[tuple[uuid.UUID, bytes], uuid.UUID]
    arps: dict[tuple[uuid.UUID, ipaddress.IPv4Address | ipaddress.IPv6Address], bytes]
    ids: dict[str, uuid.UUID]
    names: dict[uuid.UUID, str]
    host_addresses: dict[str, ipaddress.IPv4Address | ipaddress.IPv6Address]

    def __repr__(self) -> str:
        return f"Topology({self.name!r})"

    def id(self, name: str) -> uuid.UUID:
        try:
            return self.ids[name]
        except KeyError:
            raise KeyError(f"{self.name}: no object named {name!r}") from None

    def port(self, name: str) -> Port:
        return self.view.ports[self.id(name)]

    def mac(self, value: str) -> bytes:
        """A MAC written as text, ``broadcast``, or the name of a port with a MAC."""
        if value == "broadcast":
            return BROADCAST
        if value in self.ids:
            port = self.view.ports.get(self.ids[value])
            if port is None or port.mac is None:
                raise ValueError(f"{self.name}: {value!r} is not a port with a MAC")
            return mac_from_str(port.mac)
        return mac_from_str(value)

    def state(self, case: Case | None = None) -> DictState:
        """A fresh DictState: the file's learned entries plus the case's."""
        macs = dict(self.macs)
        arps = dict(self.arps)
        if case is not None:
            macs.update(self._macs(case.raw.get("learned_mac", ())))
            arps.update(self._arps(case.raw.get("learned_arp", ())))
        return DictState(macs=macs, arps=arps)

    def _macs(self, entries: Iterable[Mapping[str, Any]]) -> dict[Any, uuid.UUID]:
        return {(self.id(e["bridge"]), self.mac(e["mac"])): self.id(e["port"]) for e in entries}

    def _arps(self, entries: Iterable[Mapping[str, Any]]) -> dict[Any, bytes]:
        return {
            (self.id(e["router"]), ipaddress.ip_address(e["ip"])): self.mac(e["mac"])
            for e in entries
        }

    def label(self, ident: uuid.UUID) -> str:
        return self.names.get(ident, str(ident))


@dataclasses.dataclass
class Case:
    file: str
    name: str
    raw: dict[str, Any]

    @property
    def id(self) -> str:
        return f"{self.file}:{self.name}"


_GROUP_KEYS = frozenset(
    {"in_port_group", "out_port_group", "ip_addr_group_src", "ip_addr_group_dst"}
)


class _Builder:
    """Turns the parsed TOML of one file into records, assigning ids by name."""

    def __init__(self, doc: dict[str, Any], fname: str) -> None:
        self.doc = doc
        self.fname = fname
        self.ids: dict[str, uuid.UUID] = {}
        self.records: list[Record] = []
        self.tenant = self._name(TENANT_NAME)
        self.zone = self._name(ZONE_NAME)
        self.host_addresses: dict[str, Any] = {}

    def _name(self, name: str) -> uuid.UUID:
        if name in self.ids:
            raise ValueError(f"{self.fname}: the name {name!r} is used twice")
        self.ids[name] = name_id(f"{self.fname}/{name}")
        return self.ids[name]

    def ref(self, name: str | None) -> uuid.UUID | None:
        if name is None:
            return None
        try:
            return self.ids[name]
        except KeyError:
            raise ValueError(f"{self.fname}: {name!r} names nothing") from None

    def build(self) -> list[Record]:
        doc = self.doc
        # names first, so that records can refer to objects defined further down
        for section in ("host", "bridge", "router", "port", "chain", "port_group"):
            for item in doc.get(section, ()):
                self._name(item["name"])
        for item in doc.get("ip_addr_group", ()):
            self._name(item["name"])
        for chain in doc.get("chain", ()):
            for i, rule in enumerate(chain.get("rule", ()), 1):
                self._name(rule.get("name", f"{chain['name']}#{i}"))
        for i, route in enumerate(doc.get("route", ()), 1):
            self._name(route.get("name", f"route#{i}"))

        recs = self.records
        recs.append(Tenant(id=self.tenant, name=TENANT_NAME))
        recs.append(TunnelZone(id=self.zone, name=ZONE_NAME))
        for host in doc.get("host", ()):
            host_id = self.ids[host["name"]]
            address = ipaddress.ip_address(host["address"])
            self.host_addresses[host["name"]] = address
            recs.append(Host(id=host_id, name=host["name"]))
            member = name_id(f"{self.fname}/member/{host['name']}")
            recs.append(
                TunnelZoneMember(
                    id=member, tunnel_zone_id=self.zone, host_id=host_id, address=address
                )
            )
        for i, bridge in enumerate(doc.get("bridge", ()), 1):
            recs.append(self._bridge(bridge, i))
        for router in doc.get("router", ()):
            recs.append(
                Router(
                    id=self.ids[router["name"]],
                    tenant_id=self.tenant,
                    name=router["name"],
                    admin_state_up=router.get("admin_up", True),
                    inbound_chain_id=self.ref(router.get("inbound_chain")),
                    outbound_chain_id=self.ref(router.get("outbound_chain")),
                )
            )
        peers = self._peers()
        for i, port in enumerate(doc.get("port", ()), 1):
            recs.extend(self._port(port, i, peers))
        for group in doc.get("port_group", ()):
            recs.append(
                PortGroup(id=self.ids[group["name"]], tenant_id=self.tenant, name=group["name"])
            )
        for group in doc.get("ip_addr_group", ()):
            nets = tuple(ipaddress.ip_network(a) for a in group.get("addresses", ()))
            recs.append(
                IPAddrGroup(
                    id=self.ids[group["name"]],
                    tenant_id=self.tenant,
                    name=group["name"],
                    addresses=nets,
                )
            )
        for chain in doc.get("chain", ()):
            recs.extend(self._chain(chain))
        for i, route in enumerate(doc.get("route", ()), 1):
            recs.append(self._route(route, i))
        return recs

    def _bridge(self, bridge: dict[str, Any], index: int) -> Bridge:
        static = tuple(
            ArpEntry(ip=ipaddress.ip_address(e["ip"]), mac=e["mac"])
            for e in bridge.get("static_arp", ())
        )
        return Bridge(
            id=self.ids[bridge["name"]],
            tenant_id=self.tenant,
            name=bridge["name"],
            admin_state_up=bridge.get("admin_up", True),
            tunnel_key=bridge.get("tunnel_key", 50000 + index),
            inbound_chain_id=self.ref(bridge.get("inbound_chain")),
            outbound_chain_id=self.ref(bridge.get("outbound_chain")),
            static_arp=static,
        )

    def _peers(self) -> dict[str, str]:
        peers: dict[str, str] = {}
        for port in self.doc.get("port", ()):
            other = port.get("peer")
            if other is None:
                continue
            for a, b in ((port["name"], other), (other, port["name"])):
                if peers.setdefault(a, b) != b:
                    raise ValueError(f"{self.fname}: {a!r} is peered twice")
        return peers

    def _port(self, port: dict[str, Any], index: int, peers: dict[str, str]) -> list[Record]:
        name = port["name"]
        device = port["device"]
        device_ids = {b["name"] for b in self.doc.get("bridge", ())}
        device_type = DeviceType.BRIDGE if device in device_ids else DeviceType.ROUTER
        address = subnet = None
        if "address" in port:
            iface = ipaddress.ip_interface(port["address"])
            address, subnet = iface.ip, iface.network
        allowed = tuple(
            AddressPair(ip=ipaddress.ip_network(p["ip"]), mac=p.get("mac"))
            for p in port.get("allowed", ())
        )
        record = Port(
            id=self.ids[name],
            tenant_id=self.tenant,
            name=name,
            device_id=self.ids[device],
            device_type=device_type,
            admin_state_up=port.get("admin_up", True),
            tunnel_key=port.get("tunnel_key", 1000 + index),
            peer_id=self.ref(peers.get(name)),
            inbound_chain_id=self.ref(port.get("inbound_chain")),
            outbound_chain_id=self.ref(port.get("outbound_chain")),
            port_group_ids=tuple(self.ids[g] for g in port.get("groups", ())),
            mac=port.get("mac"),
            fixed_ips=tuple(ipaddress.ip_address(ip) for ip in port.get("ips", ())),
            address=address,
            subnet=subnet,
            port_security=port.get("port_security", False),
            allowed_address_pairs=allowed,
        )
        out: list[Record] = [record]
        host = port.get("host")
        if host is not None:
            out.append(
                PortBinding(
                    id=name_id(f"{self.fname}/binding/{name}"),
                    port_id=record.id,
                    host_id=self.ids[host],
                    interface=port.get("interface", f"tap{index}"),
                )
            )
        return out

    def _chain(self, chain: dict[str, Any]) -> list[Record]:
        chain_id = self.ids[chain["name"]]
        rules: list[Rule] = []
        for i, raw in enumerate(chain.get("rule", ()), 1):
            name = raw.get("name", f"{chain['name']}#{i}")
            nat = tuple(
                NatTarget(
                    start=ipaddress.ip_address(t["start"]),
                    end=ipaddress.ip_address(t.get("end", t["start"])),
                    port_start=t.get("port_start", 0),
                    port_end=t.get("port_end", t.get("port_start", 0)),
                )
                for t in raw.get("nat", ())
            )
            rules.append(
                Rule(
                    id=self.ids[name],
                    tenant_id=self.tenant,
                    name=name,
                    chain_id=chain_id,
                    condition=self._condition(raw.get("match", {})),
                    action=RuleAction(raw.get("action", "accept")),
                    jump_chain_id=self.ref(raw.get("jump")),
                    nat_targets=nat,
                )
            )
        head = Chain(
            id=chain_id,
            tenant_id=self.tenant,
            name=chain["name"],
            rule_ids=tuple(r.id for r in rules),
        )
        return [head, *rules]

    def _condition(self, match: dict[str, Any]) -> Condition:
        fields: dict[str, Any] = {}
        for key, value in match.items():
            if key in ("in_ports", "out_ports"):
                fields[f"{key[:-1]}_ids"] = tuple(self.ids[n] for n in value)
            elif key in _GROUP_KEYS:
                fields[f"{key}_id"] = self.ids[value]
            elif key in ("tp_src", "tp_dst"):
                fields[key] = PortRange(start=value[0], end=value[-1])
            elif key in ("nw_src", "nw_dst"):
                fields[key] = ipaddress.ip_network(value)
            elif key in ("eth_src", "eth_dst"):
                fields[key] = value
            elif key == "ct_state":
                fields[key] = CtState(value)
            else:
                fields[key] = value
        return Condition(**fields)

    def _route(self, route: dict[str, Any], index: int) -> Route:
        name = route.get("name", f"route#{index}")
        src = route.get("src")
        gateway = route.get("gateway")
        return Route(
            id=self.ids[name],
            tenant_id=self.tenant,
            name=name,
            router_id=self.ids[route["router"]],
            dst=ipaddress.ip_network(route["dst"]),
            src=ipaddress.ip_network(src) if src is not None else None,
            type=RouteType(route.get("type", "normal")),
            next_hop_port_id=self.ref(route.get("next_hop")),
            next_hop_gateway=ipaddress.ip_address(gateway) if gateway is not None else None,
            weight=route.get("weight", 100),
        )


def _check_consistency(records: Sequence[Record]) -> None:
    """The rules the object layer enforces across records (golden topologies must obey them)."""
    ports = {r.id: r for r in records if isinstance(r, Port)}
    for port in ports.values():
        if port.peer_id is not None:
            peer = ports[port.peer_id]
            assert peer.peer_id == port.id, f"{port.name}: peering is not symmetric"
            consistency.check_peering(port, peer)
        siblings = [p for p in ports.values() if p.device_id == port.device_id]
        consistency.check_router_port_subnets(port, siblings)
    for route in (r for r in records if isinstance(r, Route)):
        hop = ports.get(route.next_hop_port_id) if route.next_hop_port_id else None
        consistency.check_route_next_hop(route, hop)
    rules = [r for r in records if isinstance(r, Rule)]
    jumps: dict[uuid.UUID, list[uuid.UUID]] = {}
    for rule in rules:
        if rule.jump_chain_id is not None:
            jumps.setdefault(rule.chain_id, []).append(rule.jump_chain_id)
    for start in jumps:
        assert consistency.find_jump_cycle(start, jumps) is None, "a jump cycle"


def load(path: Path) -> tuple[Topology, list[Case]]:
    """One golden file: its topology and its cases."""
    doc = tomllib.loads(path.read_text())
    fname = path.stem
    builder = _Builder(doc, fname)
    records = builder.build()
    meta = doc.get("topology", {})
    if not meta.get("inconsistent", False):
        _check_consistency(records)
    local = meta.get("local_host")
    view = TopologyView.build(records, builder.ids[local] if local else None)
    ids = dict(builder.ids)
    topo = Topology(
        name=meta.get("name", fname),
        records=records,
        view=view,
        macs={},
        arps={},
        ids=ids,
        names={v: k for k, v in ids.items()},
        host_addresses=builder.host_addresses,
    )
    topo.macs = topo._macs(doc.get("learned_mac", ()))
    topo.arps = topo._arps(doc.get("learned_arp", ()))
    cases = [Case(fname, raw["name"], raw) for raw in doc.get("case", ())]
    names = [c.name for c in cases]
    assert len(set(names)) == len(names), f"{fname}: two cases share a name"
    return topo, cases


def load_all(directory: Path = GOLDEN_DIR) -> list[tuple[Topology, Case]]:
    out: list[tuple[Topology, Case]] = []
    for path in sorted(directory.glob("*.toml")):
        topo, cases = load(path)
        out.extend((topo, case) for case in cases)
    return out


# -- frames ------------------------------------------------------------------------------

_PROTOS = {"icmp": 1, "tcp": 6, "udp": 17, "icmpv6": 58}


def build_frame(topo: Topology, desc: Mapping[str, Any]) -> bytes:
    """The frame a case's ``packet`` table describes."""
    kind = desc.get("type", "ipv4")
    if kind == "raw":
        return bytes.fromhex(desc["hex"])
    src_mac = topo.mac(desc["eth_src"])
    if kind == "arp":
        op = {"request": 1, "reply": 2}.get(desc.get("op", "request"), desc.get("op"))
        msg = ARP(
            int(op),  # type: ignore[arg-type]
            topo.mac(desc.get("sha", desc["eth_src"])),
            ipaddress.IPv4Address(desc["spa"]),
            topo.mac(desc["tha"]) if "tha" in desc else bytes(6),
            ipaddress.IPv4Address(desc["tpa"]),
        )
        dst_mac = topo.mac(desc.get("eth_dst", "broadcast"))
        return Packet(Ethernet(dst_mac, src_mac, 0x0806), msg).build()
    dst_mac = topo.mac(desc["eth_dst"])
    proto_name = desc.get("proto", "icmp" if kind == "ipv4" else "icmpv6")
    proto = _PROTOS.get(proto_name, proto_name) if isinstance(proto_name, str) else proto_name
    ttl = desc.get("ttl", 64)
    src = ipaddress.ip_address(desc["src"])
    dst = ipaddress.ip_address(desc["dst"])
    ip: IPv4 | IPv6
    if kind == "ipv4":
        assert isinstance(src, ipaddress.IPv4Address)
        assert isinstance(dst, ipaddress.IPv4Address)
        ip = IPv4(src, dst, proto, ttl=ttl, tos=desc.get("tos", 0))
        eth_type = 0x0800
    else:
        assert isinstance(src, ipaddress.IPv6Address)
        assert isinstance(dst, ipaddress.IPv6Address)
        ip = IPv6(src, dst, proto, hop_limit=ttl, traffic_class=desc.get("tos", 0))
        eth_type = 0x86DD
    payload = desc.get("payload", "golden").encode()
    transport: Any
    if proto == 6:
        transport = TCP(
            desc.get("sport", 40000),
            desc.get("dport", 80),
            seq=desc.get("seq", 1000),
            flags=desc.get("tcp_flags", 0x02),
        )
    elif proto == 17:
        transport = UDP(desc.get("sport", 40000), desc.get("dport", 80))
    elif proto == 1:
        transport = ICMP(
            desc.get("icmp_type", 8), desc.get("icmp_code", 0), desc.get("rest", 0x1234_0001)
        )
    elif proto == 58:
        transport = ICMPv6(
            desc.get("icmp_type", 128), desc.get("icmp_code", 0), desc.get("rest", 0x1234_0001)
        )
    else:
        transport = None
    return Packet(Ethernet(dst_mac, src_mac, eth_type), ip, transport, payload).build()


# -- the flow interpreter ----------------------------------------------------------------------


Egress = tuple[OutputLocal | OutputTunnel, bytes]


def apply_actions(frame: bytes, actions: Sequence[object]) -> list[Egress]:
    """Run a result's ``actions`` on ``frame`` with the one interpreter
    (:func:`tenet.packets.actions.interpret`): each virtual output with its frame."""
    out: list[Egress] = []
    for output, data in interpret(frame, actions):  # type: ignore[arg-type]
        assert isinstance(output, OutputLocal | OutputTunnel), output
        out.append((output, data))
    return out


# -- checks ---------------------------------------------------------------------------------


def check_invariants(
    topo: Topology, in_port: uuid.UUID, frame: bytes, result: SimulationResult
) -> list[Egress]:
    """What every result must satisfy, whatever the packet. Returns the egress packets."""
    view = topo.view
    assert isinstance(result.verdict, Verdict)
    assert result.match_fields <= frozenset(FIELDS), result.match_fields - frozenset(FIELDS)
    for tag in result.tags:
        assert isinstance(tag, str), f"tag {tag!r} is not a string"
    # every device, port, chain and rule the trace names is a tag
    for step in result.trace:
        if step.ident is not None:
            assert str(step.ident) in result.tags, (
                f"trace names {step.kind} {topo.label(step.ident)} but it is not tagged"
            )
    egress = apply_actions(frame, result.actions)
    if result.verdict is Verdict.FORWARD:
        assert egress, "FORWARD without an output"
    else:
        assert not egress, (
            f"{result.verdict} with outputs {[topo.label(o.port_id) for o, _ in egress]}"
        )
    seen: set[uuid.UUID] = set()
    for output, _ in egress:
        port = view.ports.get(output.port_id)
        assert port is not None, f"output to {output.port_id}, not a port of the view"
        assert output.port_id not in seen, f"two outputs to {port.name}"
        seen.add(output.port_id)
        assert output.port_id != in_port, f"hairpin: the packet leaves by its ingress {port.name}"
        assert port.peer_id is None, f"output to interior port {port.name}"
        assert port.admin_state_up, f"output to admin-down port {port.name}"
        host = view.port_host(output.port_id)
        assert host is not None, f"output to unbound port {port.name}"
        if isinstance(output, OutputLocal):
            assert host == view.local_host_id, f"local output to {port.name} bound elsewhere"
        else:
            assert host != view.local_host_id, f"tunnel to {port.name}, which is local"
            assert output.host_id == host, f"tunnel to {port.name}: host {output.host_id}"
            assert output.address == view.host_addresses[host], (
                f"tunnel to {port.name}: {output.address} is not its host's underlay address"
            )
            assert output.key == port.tunnel_key, (
                f"tunnel to {port.name}: key {output.key}, the port's is {port.tunnel_key}"
            )
    if _ipv4_checksum_ok(frame):  # rewrites keep a right checksum right
        for output, out_frame in egress:
            assert _ipv4_checksum_ok(out_frame) is not False, (
                f"leaving {topo.label(output.port_id)}: IPv4 header checksum is wrong"
            )
    return egress


def _ipv4_checksum_ok(frame: bytes) -> bool | None:
    """Whether the frame's IPv4 header checksum is right; None if it is not IPv4."""
    try:
        pkt = Packet.parse(frame)
    except PacketError:
        return None
    if not isinstance(pkt.ip, IPv4):
        return None
    return ipv4_mod.header_checksum_ok(frame[14 + 4 * len(pkt.eth.vlans) :])


def _emit_kind(pkt: Packet) -> str:
    if pkt.arp is not None:
        return "arp-reply" if pkt.arp.op == 2 else "arp-request"
    t = pkt.transport
    if isinstance(t, ICMP):
        return "echo-reply" if t.type == 0 else "icmp"
    if isinstance(t, ICMPv6):
        return "echo-reply" if t.type == 129 else "icmpv6"
    if isinstance(t, TCP) and t.flags & TCP_RST:
        return "tcp-rst"
    return "other"


def describe_emit(topo: Topology, frame: bytes) -> dict[str, Any]:
    """The facts of an emitted frame that expectations compare against."""
    pkt = Packet.parse(frame)
    d: dict[str, Any] = {
        "kind": _emit_kind(pkt),
        "eth_src": mac_to_str(pkt.eth.src),
        "eth_dst": mac_to_str(pkt.eth.dst),
    }
    if pkt.arp is not None:
        d.update(
            ip=str(pkt.arp.spa),
            sender=str(pkt.arp.spa),
            mac=mac_to_str(pkt.arp.sha),
            target=str(pkt.arp.tpa),
            tha=mac_to_str(pkt.arp.tha),
        )
    ip = pkt.ip
    if ip is not None:
        d.update(src=str(ip.src), dst=str(ip.dst))
    t = pkt.transport
    if isinstance(t, ICMP | ICMPv6):
        d.update(type=t.type, code=t.code)
    if isinstance(t, TCP | UDP):
        d.update(sport=t.src_port, dport=t.dst_port)
    return d


def check_emitted(topo: Topology, frame: bytes, result: SimulationResult) -> None:
    """Emitted packets are well formed and answer what they claim to answer."""
    try:
        original: Packet | None = Packet.parse(frame)
    except PacketError:
        original = None
    for emit in result.emit:
        pkt = Packet.parse(emit.frame)  # must parse
        assert emit.port_id in topo.view.ports, "emit from a port not in the view"
        t = pkt.transport
        ip = pkt.ip
        if isinstance(t, ICMP):
            assert isinstance(ip, IPv4)
            at = 14 + 4 * len(pkt.eth.vlans)
            assert ipv4_mod.header_checksum_ok(emit.frame[at:]), "emitted IPv4 checksum"
            message = emit.frame[at + ip.header_length :]
            assert icmp_mod.checksum_ok(message), "emitted ICMP checksum is wrong"
            if t.is_error and original is not None and original.ip is not None:
                quoted, _ = IPv4.parse(pkt.payload, quoted=True)
                assert (quoted.src, quoted.dst) == (original.ip.src, original.ip.dst), (
                    "the ICMP error does not quote the offending datagram"
                )
            if t.type == 0 and original is not None and isinstance(original.transport, ICMP):
                assert t.rest == original.transport.rest, "echo reply: id/seq differ"
                assert pkt.payload == original.payload, "echo reply: data differs"
        if isinstance(t, ICMPv6):
            assert isinstance(ip, IPv6)
            message = t.build(pkt.payload, ip.src, ip.dst)
            raw_at = len(emit.frame) - len(message)
            assert icmpv6_mod.checksum_ok(emit.frame[raw_at:], ip.src, ip.dst), (
                "emitted ICMPv6 checksum is wrong"
            )
        if isinstance(t, TCP) and ip is not None:
            raw_at = len(emit.frame) - len(t.build(pkt.payload, ip.src, ip.dst))
            assert l4_mod.checksum_ok(6, emit.frame[raw_at:], ip.src, ip.dst), "RST checksum"


def _matches(topo: Topology, want: Mapping[str, Any], got: Mapping[str, Any]) -> bool:
    for key, value in want.items():
        if key == "port":
            if got["port"] != value:
                return False
        elif key in ("eth_src", "eth_dst", "mac", "tha"):
            if got.get(key) != mac_to_str(topo.mac(value)):
                return False
        elif got.get(key) != value:
            return False
    return True


def deliver(
    simulate_emit: SimulateEmit, topo: Topology, emit: Emit, state: DictState, now: float
) -> tuple[dict[str, bytes], str]:
    """Where an emitted frame ends up: exterior port name -> the frame as it leaves there.

    A frame not ``from_device`` is sent out of its port as is; one ``from_device``
    leaves its device through the port and is simulated from there
    (``simulate_emit``), its actions run by the flow interpreter. Also returns
    that simulation's trace (empty when none ran), for messages.
    """
    if not emit.from_device:
        return {topo.label(emit.port_id): emit.frame}, ""
    result = simulate_emit(emit, topo.view, state, now)
    delivered = {
        topo.label(output.port_id): out for output, out in apply_actions(emit.frame, result.actions)
    }
    return delivered, result.trace_text()


def _check_delivery(
    topo: Topology, to: str | Sequence[str], delivered: Mapping[str, bytes], trace: str
) -> None:
    for name in [to] if isinstance(to, str) else to:
        assert name in delivered, (
            f"the emitted packet does not reach {name} (it reaches {sorted(delivered)})"
            f"\n--- its trace ---\n{trace}"
        )
        port = topo.port(name)
        if port.device_type is DeviceType.BRIDGE and port.mac is not None:
            eth_dst = delivered[name][0:6]
            assert eth_dst in (BROADCAST, mac_from_str(port.mac)), (
                f"the emitted packet reaches {name} addressed to {mac_to_str(eth_dst)}"
            )


def _expect_emit(
    topo: Topology,
    wants: Sequence[Mapping[str, Any]],
    result: SimulationResult,
    simulate_emit: SimulateEmit | None,
    state: DictState,
    now: float,
) -> None:
    described = []
    for emit in result.emit:
        d = describe_emit(topo, emit.frame)
        d["port"] = topo.label(emit.port_id)
        d["from_device"] = emit.from_device
        d["emit"] = emit
        described.append(d)
    shown = [{k: v for k, v in d.items() if k != "emit"} for d in described]
    assert len(described) == len(wants), f"emitted {shown}, expected {list(wants)}"
    left = list(described)
    for want in wants:
        facts = {k: v for k, v in want.items() if k != "to"}
        hit = next((d for d in left if _matches(topo, facts, d)), None)
        assert hit is not None, f"no emitted packet like {dict(want)} in {shown}"
        left.remove(hit)
        if "to" in want and simulate_emit is not None:
            delivered, trace = deliver(simulate_emit, topo, hit["emit"], state, now)
            _check_delivery(topo, want["to"], delivered, trace)


def _expect_headers(topo: Topology, expect: Mapping[str, Any], egress: Sequence[Egress]) -> None:
    for output, out_frame in egress:
        pkt = Packet.parse(out_frame)
        where = f"leaving {topo.label(output.port_id)}"
        for key in ("eth_src", "eth_dst"):
            if key in expect:
                got = pkt.eth.src if key == "eth_src" else pkt.eth.dst
                assert mac_to_str(got) == mac_to_str(topo.mac(expect[key])), (
                    f"{where}: {key} {mac_to_str(got)}, expected {expect[key]}"
                )
        ip = pkt.ip
        if "ttl" in expect:
            assert ip is not None
            got_ttl = ip.ttl if isinstance(ip, IPv4) else ip.hop_limit
            assert got_ttl == expect["ttl"], f"{where}: ttl {got_ttl}, expected {expect['ttl']}"
        for key, attr in (("ip_src", "src"), ("ip_dst", "dst")):
            if key in expect:
                assert ip is not None
                assert str(getattr(ip, attr)) == expect[key], f"{where}: {key} {getattr(ip, attr)}"
        t = pkt.transport
        for key, attr in (("sport", "src_port"), ("dport", "dst_port")):
            if key in expect:
                assert isinstance(t, TCP | UDP)
                assert getattr(t, attr) == expect[key], f"{where}: {key} {getattr(t, attr)}"


def _expect_state(
    topo: Topology, wants: Iterable[Mapping[str, Any]], result: SimulationResult, now: float
) -> None:
    for want in wants:
        if "bridge" in want:
            target: object = MacLearned(
                bridge_id=topo.id(want["bridge"]),
                mac=topo.mac(want["mac"]),
                port_id=topo.id(want["port"]),
                at=now,
            )
        else:
            target = ArpLearned(
                router_id=topo.id(want["router"]),
                ip=ipaddress.ip_address(want["ip"]),
                mac=topo.mac(want["mac"]),
                at=now,
            )
        assert target in result.state, f"state {dict(want)} not written; wrote {result.state}"


def _expect_trace(text: str, wants: Sequence[str]) -> None:
    low = text.lower()
    at = 0
    for want in wants:
        found = low.find(want.lower(), at)
        assert found >= 0, f"trace lacks {want!r} (in order) :\n{text}"
        at = found + len(want)


def run_case(
    simulate: Simulate, topo: Topology, case: Case, simulate_emit: SimulateEmit | None = None
) -> SimulationResult:
    """Simulate one golden case and check everything it expects. Returns the result."""
    raw = case.raw
    frame = build_frame(topo, raw["packet"])
    in_port = topo.id(raw["in_port"])
    now = float(raw.get("now", DEFAULT_NOW))
    result = simulate(frame, in_port, topo.view, topo.state(case), now)
    again = simulate(frame, in_port, topo.view, topo.state(case), now)
    assert result == again, "the same inputs gave two results"
    egress = check_invariants(topo, in_port, frame, result)
    check_emitted(topo, frame, result)
    expect = raw["expect"]
    trace = result.trace_text()
    context = f"\n--- trace ---\n{trace}"
    assert result.verdict is Verdict(expect["verdict"]), (
        f"verdict {result.verdict.value}, expected {expect['verdict']}{context}"
    )
    out_names = sorted(topo.label(o.port_id) for o, _ in egress)
    if "out" in expect:
        assert out_names == sorted(expect["out"]), (
            f"out {out_names}, expected {expect['out']}{context}"
        )
    for tunnel in expect.get("tunnels", ()):
        hits = [o for o, _ in egress if topo.label(o.port_id) == tunnel["port"]]
        assert hits, f"no output to {tunnel['port']}"
        out = hits[0]
        assert isinstance(out, OutputTunnel), f"{tunnel['port']} is not a tunnel output"
        assert out.host_id == topo.id(tunnel["host"])
        assert str(out.address) == tunnel["address"]
        assert out.key == tunnel["key"]
    for port_name in expect.get("local", ()):
        hits = [o for o, _ in egress if topo.label(o.port_id) == port_name]
        assert hits, f"no output to {port_name}"
        assert isinstance(hits[0], OutputLocal), f"{port_name} is not a local output"
    _expect_headers(topo, expect, egress)
    _expect_emit(topo, expect.get("emit", ()), result, simulate_emit, topo.state(case), now)
    _expect_state(topo, expect.get("state", ()), result, now)
    _expect_trace(trace, expect.get("trace", ()))
    for name in expect.get("tags", ()):
        assert str(topo.id(name)) in result.tags, f"{name} is not tagged"
    missing = set(expect.get("read", ())) - result.match_fields
    assert not missing, f"match_fields lacks {missing}"
    unexpected = set(expect.get("unread", ())) & result.match_fields
    assert not unexpected, f"match_fields holds {unexpected}"
    if "ttl_above" in expect:
        assert result.ttl_above == expect["ttl_above"], result.ttl_above
    return result
