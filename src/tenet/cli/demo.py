"""``tenet demo``: tenet's main job, as far as it is built.

Today it shows the foundation at work on a real SQLite store file: it builds two
tenants' virtual networks through the object layer (each a router with two
networks, overlapping address ranges between the tenants), shows that the
referential rules hold, follows the changes with a watch, and prints a summary.
The full demo (API server, agents in host namespaces, real traffic) replaces
this as those parts land.
"""

from __future__ import annotations

import ipaddress
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from tenet.errors import ReferenceConflict, TenetError, ValidationError
from tenet.model import Bridge, Chain, DeviceType, Port, Route, Router, Rule, RuleAction, Tenant
from tenet.model.types import MAC
from tenet.store.objects import ObjectStore, decode_event
from tenet.store.sqlite import SqliteStore


@dataclass
class Check:
    what: str
    ok: bool
    detail: str


def _tenant_network(objects: ObjectStore, name: str, mac_base: int) -> dict[str, object]:
    tenant = objects.create(Tenant(name=name)).record
    router = objects.create(Router(tenant_id=tenant.id, name=f"{name}-router")).record
    made: dict[str, object] = {"tenant": tenant, "router": router, "ports": []}
    for i, cidr in enumerate(("10.0.0.0/24", "10.0.1.0/24")):
        net = ipaddress.ip_network(cidr)
        bridge = objects.create(Bridge(tenant_id=tenant.id, name=f"{name}-net{i}")).record
        rport = objects.create(
            Port(
                tenant_id=tenant.id,
                device_id=router.id,
                device_type=DeviceType.ROUTER,
                mac=MAC(f"02:00:00:00:{mac_base:02x}:{i + 1:02x}"),
                address=net.network_address + 1,
                subnet=net,
            )
        ).record
        bport = objects.create(
            Port(tenant_id=tenant.id, device_id=bridge.id, device_type=DeviceType.BRIDGE)
        ).record
        objects.link(bport.id, rport.id)
        for vm in range(2):
            objects.create(
                Port(
                    tenant_id=tenant.id,
                    device_id=bridge.id,
                    device_type=DeviceType.BRIDGE,
                    name=f"{name}-vm{i}{vm}",
                    mac=MAC(f"02:00:00:{mac_base:02x}:{i:02x}:{vm + 10:02x}"),
                    fixed_ips=(net.network_address + 10 + vm,),
                )
            )
        made[f"bridge{i}"] = bridge
        made[f"rport{i}"] = rport
    objects.create(
        Route(
            tenant_id=tenant.id,
            router_id=router.id,
            dst=ipaddress.ip_network("0.0.0.0/0"),
            next_hop_port_id=made["rport0"].id,  # type: ignore[attr-defined]
            next_hop_gateway=ipaddress.ip_address("10.0.0.254"),
        )
    )
    return made


def _checks(objects: ObjectStore, a: dict[str, object], b: dict[str, object]) -> list[Check]:
    checks: list[Check] = []
    tenant_a: Tenant = a["tenant"]  # type: ignore[assignment]
    bridge_a: Bridge = a["bridge0"]  # type: ignore[assignment]
    rport_a: Port = a["rport0"]  # type: ignore[assignment]
    chain = objects.create(Chain(tenant_id=tenant_a.id, name="web-sg")).record
    objects.create(Rule(tenant_id=tenant_a.id, chain_id=chain.id, action=RuleAction.ACCEPT))
    objects.update(objects.get(Bridge, bridge_a.id).record.replace(inbound_chain_id=chain.id))

    def expect(what: str, error: type[TenetError], action: object) -> None:
        try:
            action()  # type: ignore[operator]
        except error as exc:
            checks.append(Check(what, True, str(exc)))
        else:
            checks.append(Check(what, False, "was accepted"))

    expect(
        "deleting a chain in use is refused",
        ReferenceConflict,
        lambda: objects.delete(Chain, chain.id),
    )
    bad_port = Port(tenant_id=tenant_a.id, device_id=uuid.uuid4(), device_type=DeviceType.BRIDGE)
    expect(
        "a port on a missing bridge is refused", ValidationError, lambda: objects.create(bad_port)
    )
    other_chain = Chain(tenant_id=b["tenant"].id)  # type: ignore[attr-defined]
    objects.create(other_chain)
    expect(
        "another tenant's chain cannot be used",
        ValidationError,
        lambda: objects.update(
            objects.get(Bridge, bridge_a.id).record.replace(outbound_chain_id=other_chain.id)
        ),
    )
    peer_before = objects.get(Port, rport_a.id).record.peer_id
    objects.delete(Bridge, bridge_a.id)
    unlinked = objects.get(Port, rport_a.id).record.peer_id is None and peer_before is not None
    checks.append(
        Check("deleting a bridge unlinks the router port", unlinked, f"router port {rport_a.id}")
    )
    keys = [p.record.tunnel_key for p in objects.list(Port)]
    checks.append(
        Check("tunnel keys are unique", len(keys) == len(set(keys)), f"{len(keys)} ports")
    )
    return checks


def run(workdir: Path | None = None) -> int:
    """Build the demo topology, print what it checked; 0 when every check passed."""
    with tempfile.TemporaryDirectory(prefix="tenet-demo-") as tmp:
        path = (workdir or Path(tmp)) / "tenet-demo.db"
        store = SqliteStore(path)
        try:
            objects = ObjectStore(store)
            start = store.revision() + 1
            a = _tenant_network(objects, "acme", 0xA)
            b = _tenant_network(objects, "globex", 0xB)
            checks = _checks(objects, a, b)
            with store.watch("/tenet/v1/objects/", start) as watch:
                changes = 0
                while batch := watch.get(timeout=0.5):
                    changes += sum(1 for e in batch if decode_event(e) is not None)
            print(f"tenet demo: store {path} at revision {store.revision()}")
            print(f"  {changes} object changes seen by a watch from revision {start}")
            for kind in (Tenant, Router, Bridge, Port, Route, Chain, Rule):
                print(f"  {kind.KIND:<8} {len(objects.list(kind))}")
            for check in checks:
                mark = "PASS" if check.ok else "FAIL"
                print(f"  [{mark}] {check.what}: {check.detail}")
            print("Agents moving real packets between namespaces: ./dev test tests/integration")
            return 0 if all(c.ok for c in checks) else 1
        finally:
            store.close()
