"""A local Label Studio server as a managed service: start, stop, status.

The server is Label Studio 1.23 from its own virtualenv (``.venv-labelstudio``, which pins packages that
cannot share the project's venv; docs/architecture.md §7). What this module guarantees, and why:

- **Loopback only, offline.** It binds 127.0.0.1 on a free port and runs under an empty environment
  (the ``env -i`` rule: Label Studio falls back to bare ``USERNAME``, ``PORT``, ``HOST``, ``DEBUG`` from the
  caller's shell), with Sentry, analytics and the version check off and signup without an invite disabled.
- **Secrets stay in one 0600 file.** On the first start of a data directory an admin e-mail, password and
  API token are generated and written to ``<data dir>/credentials`` (JSON: ``url``, ``api_key``,
  ``username``, ``password``) before the server sees them; nothing here prints them.
- **Verified, not assumed.** A busy port makes Label Studio silently move to the next one, so after the
  start we check ``/health`` *and* that ``whoami`` with our token answers as our admin at our URL.
- **One served folder.** Local-file serving is on, rooted at ``<data dir>/files`` and nowhere else: the
  taxonomy picker loads its code tree from there as JSON (``annotation.config``), which is what makes the
  coder's page fast. Label Studio serves a file there only to signed-in users, and only under a folder
  that a project of theirs has as local-files storage (``annotation.projects`` adds one per project); the
  folder holds the code list only, which every coder sees anyway.
- **Stoppable.** The server runs in its own session (process group); ``stop`` sends SIGTERM to that group
  (the server stops within ~2 s) and SIGKILL only if it lingers. The pid lives in ``<data dir>/server.pid``.

The data directory is ``study/labelstudio/`` for a study (the CLI passes it); tests pass a temporary one.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmark.errors import UserError
from benchmark.io import atomic_write_text

HOST = "127.0.0.1"
FIRST_START_TIMEOUT_S = 300.0  # ~20 s measured on an idle 2-core machine; several minutes when it is loaded
ADMIN_EMAIL = "admin@coding-bench.local"
CREDENTIALS = "credentials"
PID_FILE = "server.pid"
FILES_DIR = "files"  # the one folder Label Studio serves from disk (LOCAL_FILES_DOCUMENT_ROOT)
LOG_FILE = "server.log"


def labelstudio_venv() -> Path:
    """``.venv-labelstudio`` beside the project (override: ``BENCH_LABELSTUDIO_VENV``)."""
    override = os.environ.get("BENCH_LABELSTUDIO_VENV")
    if override:
        return Path(override).expanduser().resolve()
    return Path(__file__).resolve().parent.parent / ".venv-labelstudio"


@dataclass(frozen=True)
class Credentials:
    """How to reach a server: its URL and an admin API token (plus the admin sign-in, for the UI)."""

    url: str
    api_key: str
    username: str = ""
    password: str = ""
    server_dir: str = ""  # set when these credentials point at a local server whose data lives elsewhere

    def __repr__(self) -> str:  # never show the secrets in a traceback or a log line
        return f"Credentials(url={self.url!r}, username={self.username!r})"


@dataclass(frozen=True)
class ServerStatus:
    running: bool
    url: str | None
    pid: int | None
    data_dir: Path


def read_credentials(data_dir: Path) -> Credentials | None:
    """The stored credentials of a data directory, or None before the first start."""
    path = Path(data_dir) / CREDENTIALS
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Credentials(data["url"], data["api_key"], data.get("username", ""), data.get("password", ""),
                           data.get("server_dir", ""))
    except (json.JSONDecodeError, KeyError) as exc:
        raise UserError(f"{path}: not a credentials file ({exc.__class__.__name__}); "
                        f"delete it only together with the Label Studio data directory") from None


def write_credentials(data_dir: Path, creds: Credentials) -> Path:
    """Write the credentials JSON with 0600 permissions (atomic: never a half-written secret)."""
    data = {"url": creds.url, "api_key": creds.api_key, "username": creds.username, "password": creds.password}
    if creds.server_dir:
        data["server_dir"] = creds.server_dir
    return atomic_write_text(Path(data_dir) / CREDENTIALS, json.dumps(data, indent=1) + "\n", mode=0o600)


def free_port() -> int:
    """A port the OS says is free on 127.0.0.1 now (verified again after the start)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def files_dir(data_dir: Path) -> Path:
    """The folder the local server serves at ``/data/local-files/?d=<name>`` (created on start)."""
    return Path(data_dir).resolve() / FILES_DIR


def server_env(data_dir: Path, creds: Credentials) -> dict[str, str]:
    """The whole environment of the server process: nothing inherited from the caller (``env -i``)."""
    data_dir = Path(data_dir).resolve()
    venv_bin = labelstudio_venv() / "bin"
    return {
        "PATH": f"{venv_bin}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(data_dir),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir / "data"),
        "XDG_CONFIG_HOME": str(data_dir / "config"),
        "LABEL_STUDIO_USERNAME": creds.username,
        "LABEL_STUDIO_PASSWORD": creds.password,
        "LABEL_STUDIO_USER_TOKEN": creds.api_key,
        "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
        "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true",
        "SENTRY_DSN": "",
        "FRONTEND_SENTRY_DSN": "",
        "LATEST_VERSION_CHECK": "false",
        "COLLECT_ANALYTICS": "false",
        "LOCAL_FILES_SERVING_ENABLED": "true",
        "LOCAL_FILES_DOCUMENT_ROOT": str(files_dir(data_dir)),
    }


def label_studio_command(data_dir: Path, *args: str) -> list[str]:
    """argv for a ``label-studio`` management command against ``data_dir`` (used with ``server_env``)."""
    exe = labelstudio_venv() / "bin" / "label-studio"
    if not exe.exists():
        raise UserError(f"{exe} not found: run `make setup` (it installs label-studio into .venv-labelstudio)")
    return [str(exe), *args]


def _pid(data_dir: Path) -> int | None:
    path = Path(data_dir) / PID_FILE
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    return pid


def _get_json(url: str, token: str | None = None, timeout: float = 3.0) -> Any:
    request = urllib.request.Request(url, headers={"Authorization": f"Token {token}"} if token else {})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read().decode("utf-8"))


def healthy(url: str, timeout: float = 3.0) -> bool:
    """Whether ``<url>/health`` answers ``{"status": "UP"}`` within ``timeout`` seconds."""
    try:
        return _get_json(f"{url}/health", timeout=timeout).get("status") == "UP"
    except (OSError, ValueError, urllib.error.URLError):
        return False


def verify(creds: Credentials) -> None:
    """Check that the server at ``creds.url`` is ours: healthy, and our token is our admin."""
    if not healthy(creds.url):
        raise UserError(f"Label Studio at {creds.url} does not answer /health; start it with `bench labelstudio start`")
    try:
        who = _get_json(f"{creds.url}/api/current-user/whoami", creds.api_key)
    except urllib.error.HTTPError as exc:
        raise UserError(f"{creds.url} rejected the stored admin token (HTTP {exc.code}): another server holds this "
                        f"port; stop it or start ours on a free port") from None
    if who.get("email") != creds.username:
        raise UserError(f"{creds.url} answers as another account: another Label Studio holds this port")


def status(data_dir: Path) -> ServerStatus:
    """Is the local server of ``data_dir`` running, and where."""
    data_dir = Path(data_dir)
    pid = _pid(data_dir)
    creds = read_credentials(data_dir)
    running = pid is not None and creds is not None and healthy(creds.url)
    return ServerStatus(running, creds.url if creds else None, pid, data_dir)


def start(data_dir: Path, port: int | None = None, timeout: float = FIRST_START_TIMEOUT_S) -> Credentials:
    """Start (or find running) the local server of ``data_dir``; return its verified credentials.

    The first start generates the admin account and token. Later starts reuse them on a new free port
    (the URL in the credentials file is updated), so a restarted server keeps its projects and tokens.
    """
    data_dir = Path(data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(data_dir, 0o700)
    files_dir(data_dir).mkdir(exist_ok=True)
    current = status(data_dir)
    creds = read_credentials(data_dir)
    if current.running and creds is not None:
        verify(creds)
        return creds
    if current.pid is not None:  # alive but not healthy: a half-dead earlier start of ours
        stop(data_dir)
    chosen = port or free_port()
    url = f"http://{HOST}:{chosen}"
    if creds is None:
        creds = Credentials(url, secrets.token_hex(20), ADMIN_EMAIL, secrets.token_urlsafe(18))
    else:
        creds = Credentials(url, creds.api_key, creds.username, creds.password)
    write_credentials(data_dir, creds)

    log = open(data_dir / LOG_FILE, "ab")
    try:
        proc = subprocess.Popen(
            label_studio_command(data_dir, "start", "--no-browser", "--internal-host", HOST, "--port", str(chosen)),
            env=server_env(data_dir, creds), cwd=data_dir, stdin=subprocess.DEVNULL, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )
    finally:
        log.close()
    (data_dir / PID_FILE).write_text(f"{proc.pid}\n")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise UserError(f"Label Studio exited with code {proc.returncode} while starting; see {data_dir / LOG_FILE}")
        if healthy(url):
            verify(creds)
            return creds
        time.sleep(0.25)
    stop(data_dir)
    raise UserError(f"Label Studio did not answer {url}/health within {timeout:.0f} s; see {data_dir / LOG_FILE}")


def stop(data_dir: Path, grace: float = 10.0) -> bool:
    """Stop the local server of ``data_dir`` (SIGTERM to its process group, SIGKILL after ``grace``).

    Returns whether a server was running.
    """
    data_dir = Path(data_dir)
    pid = _pid(data_dir)
    if pid is None:
        (data_dir / PID_FILE).unlink(missing_ok=True)
        return False
    _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.1)
    if _alive(pid):
        _signal_group(pid, signal.SIGKILL)
        while _alive(pid):
            time.sleep(0.05)
    (data_dir / PID_FILE).unlink(missing_ok=True)
    return True


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)  # the server was started as a session leader: its group id is its pid
    except ProcessLookupError:
        pass


def _alive(pid: int) -> bool:
    try:
        reaped, _ = os.waitpid(pid, os.WNOHANG)  # our own child (same process started it): reap it
        if reaped == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True

