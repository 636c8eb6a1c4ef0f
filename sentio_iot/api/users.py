"""Users: name, argon2id password hash, role and tenants, in the state folder's store.

Passwords are never stored or logged; only their argon2id hashes (argon2-cffi's defaults,
RFC 9106's second recommended profile). An unknown user name costs the same hash as a
wrong password, so timing does not tell which names exist.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from pydantic import SecretStr

from sentio_iot.api.errors import UserError
from sentio_iot.api.roles import Role
from sentio_iot.api.store import AuthStore

MIN_PASSWORD = 12
FIRST_ADMIN = "admin"
FIRST_ADMIN_FILE = "first-admin-password"  # in the state folder; see first_admin.py
_HASHER = PasswordHasher()
_DUMMY_HASH = _HASHER.hash("not a password of anyone")


@dataclass(frozen=True)
class User:
    name: str
    role: Role
    tenants: tuple[str, ...]
    created_ts: int


def new_password() -> SecretStr:
    """A random password: 24 URL-safe characters (144 bits)."""
    return SecretStr(secrets.token_urlsafe(18))


def check_name(name: str) -> str:
    if not name or len(name) > 64 or not all(c.isalnum() or c in "._-@" for c in name):
        raise UserError(f"user name {name!r} is not valid; use 1-64 letters, digits and . _ - @")
    return name


def check_password(password: SecretStr) -> SecretStr:
    if len(password.get_secret_value()) < MIN_PASSWORD:
        raise UserError(f"the password must have at least {MIN_PASSWORD} characters")
    return password


class UserStore:
    def __init__(self, store: AuthStore) -> None:
        self.store = store

    def add(self, name: str, password: SecretStr, role: Role, tenants: tuple[str, ...]) -> User:
        check_name(name)
        hashed = _HASHER.hash(check_password(password).get_secret_value())
        user = User(name, role, tenants, int(time.time()))
        with self.store.connect() as db:
            if db.execute("SELECT 1 FROM users WHERE name = ?", (name,)).fetchone():
                raise UserError(f"user {name!r} exists; use `sentio users passwd` to change it")
            db.execute(
                "INSERT INTO users VALUES (?, ?, ?, ?, ?)",
                (name, hashed, role.value, json.dumps(list(tenants)), user.created_ts),
            )
        return user

    def list(self) -> list[User]:
        with self.store.connect() as db:
            rows = db.execute("SELECT * FROM users ORDER BY name").fetchall()
        return [_user(row) for row in rows]

    def get(self, name: str) -> User | None:
        with self.store.connect() as db:
            row = db.execute("SELECT * FROM users WHERE name = ?", (name,)).fetchone()
        return _user(row) if row else None

    def remove(self, name: str) -> Path | None:
        """Delete the user and revoke every refresh token they hold; the first admin's password
        file (returned) is deleted with the first admin."""
        with self.store.connect() as db:
            if db.execute("DELETE FROM users WHERE name = ?", (name,)).rowcount == 0:
                raise UserError(f"no user {name!r}; `sentio users list` shows who exists")
            db.execute(
                "UPDATE refresh_tokens SET revoked_ts = ? WHERE user = ? AND revoked_ts IS NULL",
                (int(time.time()), name),
            )
        return self._forget_first_password(name)

    def set_password(self, name: str, password: SecretStr) -> Path | None:
        """New password; the user's refresh tokens are revoked (every session logs in again).
        For the first admin, the file holding the generated password is deleted (returned):
        it would show a password that no longer works."""
        hashed = _HASHER.hash(check_password(password).get_secret_value())
        with self.store.connect() as db:
            changed = db.execute(
                "UPDATE users SET password_hash = ? WHERE name = ?", (hashed, name)
            ).rowcount
            if changed == 0:
                raise UserError(f"no user {name!r}; `sentio users list` shows who exists")
            db.execute(
                "UPDATE refresh_tokens SET revoked_ts = ? WHERE user = ? AND revoked_ts IS NULL",
                (int(time.time()), name),
            )
        return self._forget_first_password(name)

    def _forget_first_password(self, name: str) -> Path | None:
        path = self.store.state_dir / FIRST_ADMIN_FILE
        if name != FIRST_ADMIN or not path.exists():
            return None
        path.unlink(missing_ok=True)
        return path

    def verify(self, name: str, password: SecretStr) -> User | None:
        """The user if the password is theirs, else None (same cost either way)."""
        with self.store.connect() as db:
            row = db.execute("SELECT * FROM users WHERE name = ?", (name,)).fetchone()
        hashed = row["password_hash"] if row else _DUMMY_HASH
        try:
            _HASHER.verify(hashed, password.get_secret_value())
        except (VerificationError, InvalidHashError):
            return None
        return _user(row) if row else None


def _user(row: sqlite3.Row) -> User:
    return User(
        row["name"], Role(row["role"]), tuple(json.loads(row["tenants"])), int(row["created_ts"])
    )
