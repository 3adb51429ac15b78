"""The ``tenet`` command's side of the REST API: where it is, who is calling, and one
call at a time with the API's own error messages.

Configuration, first found wins: the ``--url`` / ``--token`` flags, the
``TENET_URL`` / ``TENET_TOKEN`` environment variables, then the config file
(``$TENET_CONFIG``, else ``~/.config/tenet/config.toml``) with keys ``url`` and
``token``; the URL defaults to ``http://127.0.0.1:8740``.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

DEFAULT_URL = "http://127.0.0.1:8740"


class CliError(Exception):
    """A failure to report in one line (no traceback); ``code`` is the exit status."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Config:
    url: str
    token: str | None
    source: str  # where the URL came from, for error messages


def config_path() -> Path:
    explicit = os.environ.get("TENET_CONFIG")
    if explicit:
        return Path(explicit)
    return Path.home() / ".config" / "tenet" / "config.toml"


def load_config(url: str | None = None, token: str | None = None) -> Config:
    path = config_path()
    file: dict[str, Any] = {}
    if path.exists():
        try:
            file = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise CliError(f"cannot read the config file {path}: {exc}", 2) from exc
    for key in ("url", "token"):
        if key in file and not isinstance(file[key], str):
            raise CliError(f"{path}: {key} must be a string", 2)
    if url:
        found_url, source = url, "--url"
    elif os.environ.get("TENET_URL"):
        found_url, source = os.environ["TENET_URL"], "TENET_URL"
    elif file.get("url"):
        found_url, source = file["url"], str(path)
    else:
        found_url, source = DEFAULT_URL, "the default"
    found_token = token or os.environ.get("TENET_TOKEN") or file.get("token")
    return Config(found_url.rstrip("/"), found_token, source)


class Client:
    def __init__(self, config: Config) -> None:
        self.config = config
        headers = {"Authorization": f"Bearer {config.token}"} if config.token else {}
        self.http = httpx.Client(base_url=config.url, headers=headers, timeout=30)

    def call(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        query = {k: v for k, v in params.items() if v is not None}
        try:
            response = self.http.request(method, path, json=body, params=query)
        except httpx.TransportError as exc:
            raise CliError(
                f"cannot reach the tenet API at {self.config.url} (from {self.config.source}): "
                f"{exc}. Is `tenet api` running? Set --url or TENET_URL.",
                2,
            ) from exc
        if response.status_code == 204:
            return None
        try:
            data = response.json()
        except ValueError:
            data = None
        if response.status_code >= 400:
            raise CliError(_message(response, data))
        return data

    def close(self) -> None:
        self.http.close()


def _message(response: httpx.Response, data: Any) -> str:
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        message = str(error.get("message", ""))
        field = error.get("field")
        if field and not message.startswith(f"{field}:"):
            message = f"{field}: {message}"
        return f"{message} ({response.status_code} {error.get('code', '')})".strip()
    return f"{response.status_code}: {response.text[:200]}"
