"""``/v1/health``: the API is up and reaches its store (the store's revision)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from tenet.api.deps import Objects

router = APIRouter()


@router.get("/v1/health", tags=["service"])
def health(objects: Objects) -> dict[str, Any]:
    return {"status": "ok", "revision": objects.store.revision()}
