"""The REST API: ``create_app`` (FastAPI routers over the object layer) and ``serve``.

``app`` assembles; ``native/`` holds the ``/v1/`` routers and ``neutron/`` the place of
the OpenStack Networking API; ``policy`` says who may do what to each kind,
``deps`` who is calling, ``errors`` how errors are answered; ``auth`` keeps API
tokens, ``schema`` the records' JSON schemas; ``server`` and ``local`` run it.
"""
