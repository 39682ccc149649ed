"""Connect to Label Studio: the study's local server, or an existing one named by URL and token.

Where the connection comes from, first match wins:

1. ``--url`` (with ``LABEL_STUDIO_API_KEY`` for the token),
2. ``LABEL_STUDIO_URL`` and ``LABEL_STUDIO_API_KEY`` (the label-studio-sdk conventions),
3. ``study/labelstudio/credentials`` written by ``bench labelstudio start`` (its optional ``server_dir``
   names the data directory of a local server kept elsewhere, so that one server can hold several studies).

Every failure is one line that says which of the three things is wrong: the URL (nothing or not Label
Studio there), the token (HTTP 401/403), or the server (older than this tool supports). The token is never
part of a message.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import requests

from annotation.server import Credentials, healthy, read_credentials
from benchmark.errors import UserError

MIN_VERSION = (1, 20)  # label-studio-sdk 2.x speaks the API of Label Studio 1.20 and later
TIMEOUT_S = 60.0


@dataclass
class Connection:
    """An SDK client plus what it was made from (``local`` when it is the study's own server)."""

    client: object  # label_studio_sdk.LabelStudio (imported lazily: the SDK is slow to import)
    creds: Credentials
    version: str
    local_dir: Path | None

    @property
    def url(self) -> str:
        return self.creds.url


def resolve_credentials(data_dir: Path | None, url: str | None = None) -> tuple[Credentials, Path | None]:
    """Pick the credentials by the precedence above; ``data_dir`` is ``study/labelstudio``."""
    env_url, env_key = os.environ.get("LABEL_STUDIO_URL"), os.environ.get("LABEL_STUDIO_API_KEY")
    if url or env_url:
        if not env_key:
            raise UserError("LABEL_STUDIO_API_KEY is not set: export the API token of the server "
                            f"at {url or env_url} (Account & Settings > Access Token)")
        return Credentials((url or env_url or "").rstrip("/"), env_key), None
    stored = read_credentials(data_dir) if data_dir is not None else None
    if stored is None:
        raise UserError("no Label Studio configured: run `bench labelstudio start`, or set LABEL_STUDIO_URL "
                        "and LABEL_STUDIO_API_KEY (or pass --url)")
    return stored, Path(stored.server_dir) if stored.server_dir else Path(data_dir)  # type: ignore[arg-type]


def check_server(creds: Credentials, timeout: float = 10.0) -> str:
    """Return the server's version after checking URL, token and version, in that order."""
    if not healthy(creds.url, timeout):
        raise UserError(f"{creds.url}: no Label Studio answers there (wrong URL, or the server is not running: "
                        f"`bench labelstudio start` / `bench labelstudio status`)")
    headers = {"Authorization": f"Token {creds.api_key}"}
    who = requests.get(f"{creds.url}/api/current-user/whoami", headers=headers, timeout=timeout)
    if who.status_code in (401, 403):
        raise UserError(f"{creds.url}: the API token was rejected (HTTP {who.status_code}); check "
                        f"LABEL_STUDIO_API_KEY or study/labelstudio/credentials")
    try:
        version = str(requests.get(f"{creds.url}/api/version", headers=headers, timeout=timeout).json()["release"])
        parsed = tuple(int(part) for part in version.split(".")[:2])
    except (requests.RequestException, ValueError, KeyError):
        version, parsed = "unknown", (0, 0)
    if parsed < MIN_VERSION:
        raise UserError(f"{creds.url}: Label Studio {version} is too old; this tool needs "
                        f"{'.'.join(map(str, MIN_VERSION))} or later (upgrade the server)")
    return version


def connect(data_dir: Path | None, url: str | None = None) -> Connection:
    """A checked SDK connection (see the module docstring for where it comes from)."""
    from label_studio_sdk import LabelStudio

    creds, local_dir = resolve_credentials(data_dir, url)
    version = check_server(creds)
    client = LabelStudio(base_url=creds.url, api_key=creds.api_key, timeout=TIMEOUT_S)
    return Connection(client, creds, version, local_dir)
