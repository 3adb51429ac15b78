"""Services: what agents and the API run beside the packet path.

A service reads the store through the object layer, calls the pure layers below
(the simulation, the packet codecs) and returns values; it takes ``now`` and any
clock from its caller. It never imports the API or the agent (they call it):

``trace``  the simulation of one described packet entering one port, over what an
           agent on that port's host would hold (``/v1/trace``, ``tenet trace``)
"""
