"""The daemon publishes each port's binding status under its lease, and a binding the
datapath cannot open leaves the agent up, the port waiting."""

from __future__ import annotations

import errno
import json

from test_agent_daemon import agent_for, world

from tenet.clock import FakeClock
from tenet.datapath.fake import FakeDatapath
from tenet.model import PortBinding
from tenet.store import MemoryStore
from tenet.store.keys import AGENT_WATCH, port_status_key
from tenet.store.objects import ObjectStore


class NoTap1(FakeDatapath):
    """A datapath on a host where ``tap1`` does not exist (yet)."""

    def add_port(self, ifname: str) -> int:
        if ifname == "tap1":
            raise OSError(errno.ENODEV, "No such device")
        return super().add_port(ifname)


def test_statuses_are_published_under_the_lease_and_follow_the_bindings() -> None:
    clock = FakeClock()
    store = MemoryStore(clock)
    hosts, ports = world(store)
    dp = NoTap1()
    agent = agent_for(store, hosts[0], dp, clock)
    agent.start()  # no exit on an interface that is not there
    found = {}
    for port in ports:
        kv = store.get(port_status_key(hosts[0], port.id))
        assert kv is not None
        assert kv.lease == agent.lease
        found[json.loads(kv.value)["interface"]] = json.loads(kv.value)
    assert found["tap0"]["state"] == "bound"
    assert found["tap1"]["state"] == "waiting"
    assert "No such device" in found["tap1"]["reason"]
    assert list(dp.ports.values()) == ["tap0"]

    o = ObjectStore(store, clock)
    (binding,) = [b for b in o.list(PortBinding) if b.record.interface == "tap1"]
    watch = store.watch(AGENT_WATCH, store.revision() + 1)
    o.delete(PortBinding, binding.record.id)
    agent.apply_events(watch.get(timeout=0))
    agent.publish_bindings()
    watch.close()
    assert store.get(port_status_key(hosts[0], binding.record.port_id)) is None

    agent.close()  # the lease revoked: the statuses go with it ("host down")
    assert store.get(port_status_key(hosts[0], ports[0].id)) is None
    assert store.get(port_status_key(hosts[0], ports[1].id)) is None
