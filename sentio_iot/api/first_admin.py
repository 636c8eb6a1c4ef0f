"""The first admin: created with a random password when the users store is empty.

There is no default password anywhere. The password is returned once (``sentio run``
prints it) and kept in ``<state_dir>/first-admin-password`` (mode 0600) for whoever runs
the machine to read later; `sentio users passwd admin` (or removing the user) deletes the
file, so it never shows a password that no longer works.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from sentio_iot.api.roles import ALL_TENANTS, Role
from sentio_iot.api.store import AuthStore
from sentio_iot.api.users import FIRST_ADMIN, FIRST_ADMIN_FILE, UserStore, new_password

ADMIN = FIRST_ADMIN
PASSWORD_FILE = FIRST_ADMIN_FILE


@dataclass(frozen=True)
class FirstAdmin:
    name: str
    password: SecretStr | None  # None: created by an earlier start (see ``password_file``)
    password_file: Path


def ensure_first_admin(state_dir: Path) -> FirstAdmin | None:
    """Create the first admin if there are no users; None when users exist but not it."""
    store = AuthStore(state_dir)
    users = UserStore(store)
    path = store.state_dir / PASSWORD_FILE
    if users.list():
        return FirstAdmin(ADMIN, None, path) if path.exists() else None
    password = new_password()
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(password.get_secret_value() + "\n")
    users.add(ADMIN, password, Role.ADMIN, (ALL_TENANTS,))
    return FirstAdmin(ADMIN, password, path)


def sign_in_hint(state_dir: Path) -> str:
    """How to sign in, for `sentio run`'s live view (which replaces the start-up lines on
    the screen): the first admin's password while its file still holds it (it is the one
    printed at start-up; `sentio users passwd admin` deletes the file), else who may."""
    path = state_dir / PASSWORD_FILE
    try:
        password = path.read_text(encoding="utf-8").strip()
    except OSError:
        password = ""
    if not password:
        return "(sign in as one of `sentio users list`)"
    return f"(user {ADMIN}, password {password}; change it with `sentio users passwd {ADMIN}`)"


def notice(url: str, admin: FirstAdmin | None) -> list[str]:
    """What `sentio run` prints about the API: the dashboard's and the API's URLs and, once,
    the admin's password."""
    lines = [
        f"Dashboard: {url}/",
        f"API: {url}/api/docs (OpenAPI {url}/api/openapi.json, WebSocket {url}/api/v1/live)",
    ]
    if admin is None:
        return lines
    if admin.password is not None:
        lines.append(
            f"API first admin: user {admin.name}, password {admin.password.get_secret_value()} "
            f"(shown this once; kept in {admin.password_file}, mode 0600; change it with "
            f"`sentio users passwd {admin.name}`)"
        )
    else:
        lines.append(f"API first admin: user {admin.name}, password in {admin.password_file}")
    return lines
