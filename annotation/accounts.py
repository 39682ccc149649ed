"""Coder accounts: one Label Studio user per coder e-mail, recorded in the study without secrets.

Label Studio 1.23 facts this module is built on (docs/architecture.md §7):

- ``users.create`` ignores a password, so a user made through the API cannot sign in. The password is
  set with ``label-studio reset_password`` against the server's own data directory (works while it
  runs). The password goes to that command on **stdin**, never in its argv (which ``ps`` shows to every
  user of the machine). So passwords can be set only for the study's local server; for a server named by
  ``--url`` the coders sign up through the server's invite link instead.
- A signed-in user gets their own API token from ``/api/current-user/token``; annotations posted with it
  carry that user's id. The simulator (``annotation.simulate``) uses exactly this path.

Initial passwords are shown once, on the terminal (``/dev/tty`` when stdout is redirected, so they do
not land in a log file), and stored nowhere. ``study/labelstudio/coders.json`` holds
``{"coders": [{"email", "id", "simulated", "name"}]}``: what the scorer needs to name rows and to label
simulated coders as simulated.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from annotation.client import Connection
from annotation.server import label_studio_command, read_credentials, server_env
from benchmark.errors import UserError
from benchmark.labelstudio_files import CODERS_FILE, Coder, read_coders, write_coders

def parse_emails(text: str) -> list[str]:
    """``a@x.org,b@y.org`` -> a checked, de-duplicated list (order kept).

    >>> parse_emails(" A@x.org, b@y.org,a@x.org ")
    ['a@x.org', 'b@y.org']
    """
    emails: list[str] = []
    for part in text.split(","):
        email = part.strip().lower()
        if not email:
            continue
        local, _, domain = email.partition("@")
        if not local or "." not in domain or " " in email:
            raise UserError(f"--coders: {part.strip()!r} is not an e-mail address; give e.g. a@example.org,b@example.org")
        if email not in emails:
            emails.append(email)
    if not emails:
        raise UserError("--coders: no e-mail addresses given; give e.g. a@example.org,b@example.org")
    return emails


def ensure_coders(conn: Connection, data_dir: Path, emails: list[str], simulated: bool) -> tuple[list[Coder], dict[str, str]]:
    """Create missing accounts and return (the coders, {email: initial password} for the new ones).

    Existing accounts are reused as they are: their passwords are never touched here.
    """
    existing = {u.email.lower(): u for u in conn.client.users.list() if u.email}
    recorded = {c.email: c for c in read_coders(data_dir)}
    coders: list[Coder] = []
    new_passwords: dict[str, str] = {}
    for email in emails:
        user = existing.get(email)
        if user is None:
            user = conn.client.users.create(username=email, email=email, first_name=email.split("@")[0])
            new_passwords[email] = secrets.token_urlsafe(12)
        earlier = recorded.get(email)
        if earlier is not None and earlier.simulated != simulated:
            raise UserError(f"{data_dir / CODERS_FILE}: {email} is recorded as "
                            f"{'a simulated' if earlier.simulated else 'a real'} coder; use another e-mail")
        coders.append(Coder(email=email, id=int(user.id), simulated=simulated,
                            name=(f"Simulated coder {email.split('@')[0]}" if simulated else email)))
    if new_passwords:
        if conn.local_dir is None:
            raise UserError(f"{conn.url} is not this study's local server, so passwords cannot be set here: "
                            f"send the coders the server's invite link (Organization page) instead")
        set_passwords(conn.local_dir, new_passwords)
    merged = {c.email: c for c in read_coders(data_dir)}
    merged.update({c.email: c for c in coders})
    write_coders(data_dir, list(merged.values()))
    return coders, new_passwords


def set_passwords(data_dir: Path, passwords: dict[str, str]) -> None:
    """Set each password with ``label-studio reset_password`` (password on stdin; in parallel: ~5 s each)."""
    creds = read_credentials(data_dir)
    if creds is None:
        raise UserError(f"{data_dir}: no local Label Studio; run `bench labelstudio start` first")
    env = server_env(data_dir, creds)

    def one(item: tuple[str, str]) -> None:
        email, password = item
        proc = subprocess.run(
            label_studio_command(data_dir, "reset_password", "--username", email),
            input=f"{password}\n", env=env, cwd=data_dir, capture_output=True, text=True, timeout=300,
            check=False, start_new_session=True,  # no controlling tty: getpass reads stdin, not the terminal
        )
        done = "successfully" in proc.stdout or "same as current" in proc.stdout  # a re-run sets the same one
        if proc.returncode != 0 or not done:
            raise UserError(f"label-studio reset_password for {email} failed (exit {proc.returncode}); "
                            f"see `bench labelstudio status` and the server log")

    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(one, passwords.items()))


def sign_in(url: str, email: str, password: str) -> requests.Session:
    """A browser-like session signed in as ``email`` (Django form login with its CSRF token)."""
    session = requests.Session()
    login = f"{url}/user/login/"
    session.get(login, timeout=30)
    response = session.post(login, timeout=30, allow_redirects=False, headers={"Referer": login},
                            data={"email": email, "password": password,
                                  "csrfmiddlewaretoken": session.cookies.get("csrftoken", "")})
    if response.status_code != 302:
        raise UserError(f"{url}: sign-in as {email} failed (HTTP {response.status_code}); reset the password")
    return session


def coder_token(url: str, email: str, password: str) -> str:
    """The coder's own API token, fetched after signing in as them (kept in memory by callers)."""
    session = sign_in(url, email, password)
    response = session.get(f"{url}/api/current-user/token", timeout=30)
    try:
        token = response.json().get("token") if response.ok else None
    except ValueError:  # an HTML page (e.g. a login redirect) instead of JSON
        token = None
    if not token:
        raise UserError(f"{url}: could not read the API token of {email} (HTTP {response.status_code})")
    return str(token)


def show_once(lines: list[str]) -> None:
    """Print secrets to the terminal only: stdout if it is one, else ``/dev/tty``, else stderr with a warning."""
    text = "\n".join(lines) + "\n"
    if sys.stdout.isatty():
        sys.stdout.write(text)
        return
    try:
        with open("/dev/tty", "w", encoding="utf-8") as tty:
            tty.write(text)
        return
    except OSError:
        sys.stderr.write("(no terminal: showing the initial passwords on stderr; they are not stored anywhere)\n" + text)
