"""Services: what runs beside the packet path.

An agent runs services next to its upcall loop (``base.Service``: started, ticked
and closed by the daemon, crash-only like the rest): today the host's status
publisher; next LB health checks, NAT port-block leases, a BGP supervisor, IPsec.
The API calls services too (the packet trace). A service keeps its decisions pure
(values in, the writes or actions to make out) and its I/O in a thin shell.
"""
