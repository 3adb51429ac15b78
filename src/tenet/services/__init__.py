"""Services: what agents and the API run beside the packet path.

An agent runs services next to its upcall loop (``base.Service``: started, ticked
and closed by the daemon, crash-only like the rest): today the host's status
publisher; next LB health checks, NAT port-block leases, a BGP supervisor, IPsec.
The API calls services too. A service keeps its decisions pure (values in, the
writes or actions to make out) and its I/O in a thin shell; it takes ``now`` and
any clock from its caller, and never imports the API or the agent (they call it):

``base``    the Service protocol and what the daemon hands a service
``status``  the host's counters, interfaces (and applied revision) in the store
``trace``   the simulation of one described packet entering one port, over what an
            agent on that port's host would hold (``/v1/trace``, ``tenet trace``)
"""
