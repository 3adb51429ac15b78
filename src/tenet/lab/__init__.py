"""A lab of network namespaces on one machine: hosts on an underlay bridge, VMs as
namespaces on them, tenet agents as processes, and real traffic between the VMs.

``tenet demo`` runs on it, and so do the integration tests
(``tests/integration/netns.py`` re-exports it).
"""

from tenet.lab.netns import (
    PIN_ROOT,
    UNDERLAY,
    VM_MTU,
    Lab,
    Vm,
    leftovers,
    namespace_pids,
    netns_exec,
    remove_namespace,
    sh,
    start_time,
    stop_pids,
    sweep,
)

__all__ = [
    "PIN_ROOT",
    "UNDERLAY",
    "VM_MTU",
    "Lab",
    "Vm",
    "leftovers",
    "namespace_pids",
    "netns_exec",
    "remove_namespace",
    "sh",
    "start_time",
    "stop_pids",
    "sweep",
]
