"""The REST API: ``create_app`` (FastAPI, over the object layer) and ``serve``."""
