"""The kernel datapath's interfaces: attaching the program, and the VXLAN device.

Owns the clsact qdisc and the ``tenet`` bpf filter (direct action, ingress,
priority 1) on each local port and on the VXLAN device, and that device itself
(``external`` / collect-metadata mode, no learning, on the underlay address).

Invariants: attaching is idempotent (an existing clsact is kept and the filter
replaced), so a restarted datapath re-attaches the new program over the old one
without a gap; detaching an interface that is gone is not an error; a VXLAN
device with other settings is replaced. Port numbers are interface indexes.
"""

from __future__ import annotations

import contextlib
import errno
import os
from ipaddress import IPv4Address
from typing import Any


def ensure_vxlan(ipr: Any, ifname: str, port: int, underlay: IPv4Address) -> int:
    """The host's VXLAN device in external mode, kept if it is already right; its index."""
    found = ipr.link_lookup(ifname=ifname)
    if found:
        link = ipr.get_links(found[0])[0]
        info = dict(link.get_attr("IFLA_LINKINFO").get_attr("IFLA_INFO_DATA")["attrs"])
        if (
            info.get("IFLA_VXLAN_COLLECT_METADATA") == 1
            and info.get("IFLA_VXLAN_PORT") == port
            and info.get("IFLA_VXLAN_LOCAL") == str(underlay)
        ):
            return int(found[0])
        ipr.link("del", index=found[0])
    ipr.link(
        "add",
        ifname=ifname,
        kind="vxlan",
        vxlan_collect_metadata=1,
        vxlan_port=port,
        vxlan_local=str(underlay),
        vxlan_learning=0,
    )
    index = int(ipr.link_lookup(ifname=ifname)[0])
    ipr.link("set", index=index, state="up")
    return index


def attach(ipr: Any, index: int, prog_fd: int) -> None:
    """The program on interface ``index``'s ingress (clsact, direct action); an
    OSError if the kernel refuses (the interface went away meanwhile...)."""
    from pyroute2 import NetlinkError

    try:
        try:
            ipr.tc("add", "clsact", index)
        except NetlinkError as exc:
            if exc.code != errno.EEXIST:
                raise
        ipr.tc(
            "replace-filter",
            "bpf",
            index,
            ":1",
            fd=prog_fd,
            name="tenet",
            parent="ffff:fff2",
            classid=1,
            direct_action=True,
            prio=1,
        )
    except NetlinkError as exc:  # not an OSError: callers handle one kind
        raise OSError(
            exc.code, f"cannot attach to interface {index}: {os.strerror(exc.code)}"
        ) from exc


def detach(ipr: Any, index: int) -> None:
    """No program on interface ``index`` (its clsact qdisc removed)."""
    from pyroute2 import NetlinkError

    with contextlib.suppress(NetlinkError):  # the interface is gone, or had no qdisc
        ipr.tc("del", "clsact", index)


def delete_link(ipr: Any, index: int) -> None:
    with contextlib.suppress(OSError):
        ipr.link("del", index=index)
