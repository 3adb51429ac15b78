"""Bindings as Nova makes them: the port bound to the host before its tap exists, the
tap deleted and made again, and bindings the agent must refuse; real agents, real
packets, both datapaths. The agent stays up through all of it."""

from __future__ import annotations

import ipaddress
import json
import signal
import uuid
from pathlib import Path

import pytest

from tenet.model import DeviceType, Port, PortBinding
from tenet.model.types import MAC
from tenet.store.keys import port_status_key

from .netns import VM_MTU, Lab, Vm, netns_exec, sh
from .topo import World, ping, wait_for

pytestmark = [
    pytest.mark.integration,
    pytest.mark.parametrize("datapath", ["userspace", "kernel"], indirect=True),
]

LATE_MAC, LATE_IP = "02:00:00:00:00:09", "10.0.0.9"


def status(world: World, host: int, port_id: uuid.UUID) -> dict[str, object]:
    kv = world.store.get(port_status_key(world.hosts[host][1], port_id))
    return {} if kv is None else json.loads(kv.value)  # type: ignore[no-any-return]


def state(world: World, host: int, port_id: uuid.UUID) -> object:
    return status(world, host, port_id).get("state")


def wait_state(world: World, port_id: uuid.UUID, want: str) -> None:
    """Wait for the port (on host 1) to reach state ``want``; the status seen if not."""
    try:
        wait_for(f"the port {want}", lambda: state(world, 1, port_id) == want)
    except AssertionError as exc:
        raise AssertionError(f"{exc}: its status is {status(world, 1, port_id)}") from None


def late_vm(lab: Lab, name: str) -> Vm:
    """A VM's namespace with no interface yet (Nova's: the tap comes later)."""
    ns = f"{lab.prefix}{name}"
    sh("ip", "netns", "add", ns)
    vm = Vm(name, ns, f"{lab.prefix}tap", LATE_MAC, LATE_IP)
    lab.vms[name] = vm  # removed with the lab
    sh("ip", "-n", ns, "link", "set", "lo", "up")
    return vm


def plug(lab: Lab, host_ns: str, vm: Vm) -> None:
    """The VM's tap: a veth, its host side named as the binding says and left down
    (the agent brings it up)."""
    sh("ip", "link", "add", vm.host_if, "netns", host_ns, "type", "veth",
       "peer", "eth0", "netns", vm.ns)  # fmt: skip
    sh("ip", "-n", vm.ns, "link", "set", "eth0", "address", vm.mac, "mtu", str(VM_MTU))
    sh("ip", "-n", vm.ns, "addr", "add", f"{vm.ip}/24", "dev", "eth0")
    sh("ip", "-n", vm.ns, "link", "set", "eth0", "up")
    if lab.datapath != "kernel":  # whole checksums for the Python forwarder (PLATFORM.md)
        sh(*netns_exec(vm.ns, "ethtool", "-K", "eth0", "tx", "off"))


def unplug(host_ns: str, vm: Vm) -> None:
    sh("ip", "-n", host_ns, "link", "del", vm.host_if)


def test_a_binding_waits_for_its_interface_and_follows_it(lab: Lab, tmp_path: Path) -> None:
    world = World(lab, tmp_path / "store.db")
    try:
        world.add_hosts(2)
        acme = world.tenant("acme")
        net = world.bridge(acme, "net")
        vm1 = world.vm(acme, net, 0, "02:00:00:00:00:01", "10.0.0.1/24")
        vm2 = world.vm(acme, net, 1, "02:00:00:00:00:02", "10.0.0.2/24")  # a neighbour
        host_ns, host_id = world.hosts[1]
        late = late_vm(lab, "late")
        port = world.objects.create(
            Port(tenant_id=acme.id, device_id=net.id, device_type=DeviceType.BRIDGE,
                 name="late", mac=MAC(LATE_MAC), fixed_ips=(ipaddress.ip_address(LATE_IP),))
        ).record  # fmt: skip
        world.objects.create(PortBinding(port_id=port.id, host_id=host_id, interface=late.host_if))
        world.start_agents()
        agent = lab.agents[1]

        wait_state(world, port.id, "waiting")
        assert late.host_if in str(status(world, 1, port.id)["reason"])
        assert agent.poll() is None, "the agent ended on a binding to a missing interface"
        assert ping(vm1, vm2.ip).returncode == 0, "the agent's other port does not forward"

        plug(lab, host_ns, late)
        wait_state(world, port.id, "bound")
        assert status(world, 1, port.id)["mtu"] == VM_MTU  # lowered to what VXLAN carries
        pinged = ping(late, vm1.ip)  # across the tunnel
        assert pinged.returncode == 0, pinged.stdout + pinged.stderr
        assert ping(late, vm2.ip).returncode == 0  # on its own host

        unplug(host_ns, late)
        wait_state(world, port.id, "waiting")
        assert agent.poll() is None, "the agent ended when an interface went away"
        assert ping(vm1, vm2.ip).returncode == 0, "the agent's other port stopped"

        plug(lab, host_ns, late)
        wait_state(world, port.id, "bound")
        wait_for("traffic again", lambda: ping(late, vm1.ip, count=1).returncode == 0)
    finally:
        world.store.close()


def test_bindings_the_agent_must_refuse_and_a_restart_with_them(lab: Lab, tmp_path: Path) -> None:
    world = World(lab, tmp_path / "store.db")
    try:
        world.add_hosts(2)
        acme = world.tenant("acme")
        net = world.bridge(acme, "net")
        vm1 = world.vm(acme, net, 0, "02:00:00:00:00:01", "10.0.0.1/24")
        vm2 = world.vm(acme, net, 1, "02:00:00:00:00:02", "10.0.0.2/24")
        host_ns, host_id = world.hosts[1]
        # another name of vm2's interface: the store's index cannot see it is the same one
        alias = f"{lab.prefix}alt"
        sh("ip", "-n", host_ns, "link", "property", "add", "dev", vm2.host_if, "altname", alias)
        refused = {}
        for n, interface in enumerate(("ul0", "lo", alias, f"{lab.prefix}tap"), start=3):
            port = world.objects.create(
                Port(tenant_id=acme.id, device_id=net.id, device_type=DeviceType.BRIDGE,
                     name=interface, mac=MAC(f"02:00:00:00:00:0{n}"))
            ).record  # fmt: skip
            binding = PortBinding(port_id=port.id, host_id=host_id, interface=interface)
            world.objects.create(binding)
            refused[interface] = port.id
        waiting = refused.pop(f"{lab.prefix}tap")
        world.start_agents()

        reasons = {"ul0": "underlay interface", "lo": "loopback", alias: "already bound"}

        def settled() -> bool:
            done = all(state(world, 1, p) == "refused" for p in refused.values())
            return done and state(world, 1, waiting) == "waiting"

        wait_for("the refusals", settled)
        for interface, port_id in refused.items():
            assert reasons[interface] in str(status(world, 1, port_id)["reason"]), interface
        assert state(world, 1, world.ports[vm2.name]) == "bound"
        assert lab.agents[1].poll() is None
        assert ping(vm1, vm2.ip).returncode == 0, "the agent's other port does not forward"

        # a restart with waiting and refused bindings in the store: the same states
        agent = lab.agents[1]
        agent.send_signal(signal.SIGTERM)
        agent.wait(timeout=15)
        wait_for("the statuses gone with the lease", lambda: state(world, 1, waiting) is None)
        lab.started(lab.run_agent(host_ns, str(host_id), world.path, lab.addresses[host_ns]))
        wait_for("the same states after a restart", settled)
        for interface, port_id in refused.items():
            assert reasons[interface] in str(status(world, 1, port_id)["reason"]), interface
        assert lab.agents[-1].poll() is None
        wait_for("traffic after the restart", lambda: ping(vm1, vm2.ip, count=1).returncode == 0)
    finally:
        world.store.close()
