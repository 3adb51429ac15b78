"""Links in the OpenAPI document: how one operation's answer feeds the next.

An OpenAPI ``link`` on a response says "the ``id`` in this body can go there": a
client generator, or a stateful fuzzer (schemathesis), follows them to build
sequences such as create a router, create a port on it, link it, patch it, delete
the router. They are derived from the kinds' specs, so a new kind or reference gets
its links without an edit here:

* every created record links to reading, replacing (with its revision), changing
  and deleting it, and to its sub-collections' reads;
* every reference (``Ref``) to a kind links that kind's create to the create of
  the referring kind, with the field set to the new id (``device_type`` too when
  the reference depends on it: a port on a bridge or on a router);
* a created port links to linking and unlinking it.

Kinds the API does not serve yet are not in the document, nor links to them.
"""

from __future__ import annotations

from typing import Any

from tenet.model import SPECS, DeviceType, Port, Record
from tenet.model.kinds import REFS, Ref

ID = "$response.body#/id"


def _coll(kind: type[Record]) -> str:
    return kind.KIND.replace("_", "-")


def _operation(doc: dict[str, Any], path: str, method: str) -> dict[str, Any] | None:
    found = doc.get("paths", {}).get(path, {}).get(method)
    return found if isinstance(found, dict) and "operationId" in found else None


def _body_naming(ref: Ref) -> dict[str, Any]:
    """A request body (fragment) that names the new record through ``ref``."""
    value: Any = [ID] if ref.many else ID
    body: dict[str, Any] = {}
    node = body
    *parents, last = ref.field.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value
    if ref.source is Port and ref.field == "device_id":
        body["device_type"] = (
            DeviceType.BRIDGE.value if ref.target.KIND == "bridges" else DeviceType.ROUTER.value
        )
    return body


def add_links(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` with links on every create operation's 201 response (in place), and its
    ids in paths said to be UUIDs."""
    for operations in doc.get("paths", {}).values():
        for operation in operations.values():
            for parameter in operation.get("parameters", ()) if isinstance(operation, dict) else ():
                if parameter.get("in") == "path" and parameter.get("name") == "item_id":
                    parameter["schema"] = {"type": "string", "format": "uuid", "title": "Item Id"}
    for kind, spec in SPECS.items():
        if spec.planned:
            continue
        base = f"/v1/{_coll(kind)}"
        create = _operation(doc, base, "post")
        if create is None:
            continue
        links: dict[str, Any] = {}
        one = f"{base}/{{item_id}}"
        for name, path, method, extra in (
            ("read", one, "get", {}),
            ("replace", one, "put", {"requestBody": {"revision": "$response.body#/revision"}}),
            ("change", one, "patch", {}),
            ("delete", one, "delete", {}),
            ("ports", f"{one}/ports", "get", {}),
            ("routes", f"{one}/routes", "get", {}),
            ("rules", f"{one}/rules", "get", {}),
            ("link", f"{one}/link", "post", {}),
            ("unlink", f"{one}/link", "delete", {}),
        ):
            target = _operation(doc, path, method)
            if target is not None:
                links[name] = {
                    "operationId": target["operationId"],
                    "parameters": {"path.item_id": ID},
                    **extra,
                }
        for ref in REFS:
            if ref.target is not kind or SPECS[ref.source].planned:
                continue
            referrer = _operation(doc, f"/v1/{_coll(ref.source)}", "post")
            if referrer is None:
                continue
            name = f"{ref.source.KIND}.{ref.field}"
            links[name] = {"operationId": referrer["operationId"], "requestBody": _body_naming(ref)}
        response = create.setdefault("responses", {}).setdefault("201", {"description": "created"})
        response["links"] = links
    return doc
