"""``tenet api``: the REST API server (uvicorn) on a store."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from tenet.api.app import create_app
from tenet.api.auth import Tokens
from tenet.store import open_store
from tenet.store.metered import MeteredStore
from tenet.store.objects import ObjectStore

log = logging.getLogger("tenet.api")


def bootstrap_token(tokens: Tokens, token_file: Path | None) -> str | None:
    """With no token in the store yet, an admin token, written to ``token_file`` (0600)."""
    if tokens.any():
        return None
    secret, _ = tokens.create("admin", None, "bootstrap admin")
    if token_file is not None:
        token_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secret + "\n")
    return secret


def serve(
    store_url: str,
    host: str = "127.0.0.1",
    port: int = 8740,
    *,
    no_auth: bool = False,
    token_file: Path | None = None,
) -> None:
    import uvicorn

    logging.basicConfig(level=logging.INFO, format="tenet api: %(message)s")
    objects = ObjectStore(MeteredStore(open_store(store_url)))  # timed for /metrics
    if no_auth:
        banner = "AUTHENTICATION IS DISABLED (--no-auth): every request acts as an admin"
        log.warning("%s\n%s\n%s", "!" * len(banner), banner, "!" * len(banner))
    else:
        secret = bootstrap_token(Tokens(objects.store), token_file)
        if secret is not None:
            where = f"written to {token_file} (mode 0600)" if token_file else secret
            print(f"tenet api: no tokens yet; created an admin token, {where}", file=sys.stderr)
    app = create_app(objects, auth=not no_auth)
    print(f"tenet api: http://{host}:{port}/v1/  (docs: http://{host}:{port}/docs, "
          f"metrics: http://{host}:{port}/metrics)", file=sys.stderr, flush=True)  # fmt: skip
    uvicorn.run(app, host=host, port=port, log_level="warning")
