"""Network namespaces for integration tests: the lab of :mod:`tenet.lab`.

Each test's :class:`Lab` names everything it makes with a unique prefix (``t`` +
5 hex characters) and removes it when it closes, also after a failure.
"""

from __future__ import annotations

from tenet.lab import PIN_ROOT, UNDERLAY, VM_MTU, Lab, Vm, leftovers, netns_exec, sh

__all__ = ["PIN_ROOT", "UNDERLAY", "VM_MTU", "Lab", "Vm", "leftovers", "netns_exec", "sh"]
