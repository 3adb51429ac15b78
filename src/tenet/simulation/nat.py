"""NAT rule actions: the plug-in point where the stateful issue adds translation.

Owns :func:`apply_nat`, which :func:`tenet.simulation.chains.run_chain` calls
when a rule whose action is SNAT, DNAT, MASQUERADE, REV_SNAT or REV_DNAT
matches. The stateful issue fills it in: conntrack (``ctx.ct_state``), port
blocks and the choice of a translated address and port from
``rule.nat_targets``, the reverse translation of replies, header rewrites
through ``ctx.set`` and the mappings to write as state in the result.

The contract, for that implementation:

* return ``ChainVerdict.ACCEPT`` once the packet is translated (a NAT rule ends
  the chain walk, as in MidoNet);
* return ``None`` when the rule does not apply to this packet (a REV_SNAT or
  REV_DNAT that finds no mapping): the walk goes on with the next rule;
* return ``ChainVerdict.DROP`` when it cannot translate (no free port);
* read packet fields only through ``ctx.get`` and tag what it consults.

Invariant: until then NAT fails **closed**. Every NAT action DROPs, with a
trace line saying so; a NAT rule never silently accepts a packet.
"""

from __future__ import annotations

from tenet.model import Rule
from tenet.simulation.chains import ChainVerdict
from tenet.simulation.context import Ctx
from tenet.simulation.result import STEP_NAT
from tenet.simulation.view import TopologyView

NOT_IMPLEMENTED = "NAT actions are not implemented yet"


def apply_nat(ctx: Ctx, view: TopologyView, rule: Rule) -> ChainVerdict | None:
    """Apply the NAT action of matching ``rule``: a verdict, or None to go on (see above)."""
    ctx.note(STEP_NAT, rule.id, rule.name, f"{rule.action}: {NOT_IMPLEMENTED}: drop")
    return ChainVerdict.DROP
