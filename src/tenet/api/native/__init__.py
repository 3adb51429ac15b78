"""tenet's own REST API, ``/v1/``: one :class:`fastapi.APIRouter` per module.

=================  ==========================================================
``health``         ``/v1/health``
``tokens``         ``/v1/whoami``, ``/v1/tokens`` (API tokens, admins only)
``collections``    ``/v1/<collection>``: create, list, read, replace, patch and
                   delete for every kind of record
``ports``          linking ports; sub-collections (a bridge's or router's ports,
                   a router's routes, a chain's rules)
``learned``        the MAC tables of bridges and ARP tables of routers
``hosts``          a host's interfaces and its agent's status
``trace``          ``/v1/trace``: the trace service, for a described packet
``common``         what they share: a record's JSON, ids, reading what the caller
                   may see, pages
=================  ==========================================================
"""
