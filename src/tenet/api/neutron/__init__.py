"""The OpenStack Networking API (Neutron), ``/v2.0/``: not built yet.

This is where it will be assembled, as :class:`fastapi.APIRouter` modules beside
``tenet.api.native`` (networks, subnets, ports, routers, floating IPs, security
groups) over a pure translator from Neutron resources to tenet records. One
Neutron call that is several records (a router interface: two ports and a link;
a security group: a chain, its rules and an address group) is one
``objects.apply([...], actor=...)``, all or nothing, as the caller.
"""
