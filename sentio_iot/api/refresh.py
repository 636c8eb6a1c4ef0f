"""Refresh tokens: opaque, single use, rotating, revocable; stored only as SHA-256 digests.

A token is ``<token_id>.<secret>``. Each use marks it used and returns a new one of the same
family; using a token twice (a stolen copy replayed) revokes the whole family, so both the
thief and the owner must log in again (OAuth 2.0 Security BCP, refresh token rotation).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
import time
import uuid

from pydantic import SecretStr

from sentio_iot.api.errors import Unauthenticated
from sentio_iot.api.store import AuthStore


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class RefreshTokens:
    def __init__(self, store: AuthStore, ttl_s: int) -> None:
        self.store = store
        self.ttl_s = ttl_s

    def issue(self, user: str, family: str | None = None) -> SecretStr:
        token_id = uuid.uuid4().hex
        secret = secrets.token_urlsafe(32)
        with self.store.connect() as db:
            db.execute(
                "INSERT INTO refresh_tokens VALUES (?, ?, ?, ?, ?, NULL, NULL)",
                (
                    token_id,
                    family or uuid.uuid4().hex,
                    user,
                    _digest(secret),
                    int(time.time()) + self.ttl_s,
                ),
            )
        return SecretStr(f"{token_id}.{secret}")

    def rotate(self, token: SecretStr) -> tuple[str, SecretStr]:
        """(user, the new token); the old one is spent. Unauthenticated says why not."""
        token_id, secret = _split(token)
        now = int(time.time())
        replayed = False
        with self.store.connect() as db:
            row = _known(db, token_id, secret)
            if row["revoked_ts"] is not None:
                raise Unauthenticated("the refresh token was revoked; log in again")
            if row["used_ts"] is not None:
                db.execute(
                    "UPDATE refresh_tokens SET revoked_ts = ? WHERE family = ? AND revoked_ts IS NULL",
                    (now, row["family"]),
                )
                replayed = True
        if replayed:  # raised after the block: the revocation must be committed
            raise Unauthenticated(
                "the refresh token was already used: its whole family is revoked; log in again"
            )
        with self.store.connect() as db:
            if row["expires_ts"] <= now:
                raise Unauthenticated("the refresh token has expired; log in again")
            if db.execute("SELECT 1 FROM users WHERE name = ?", (row["user"],)).fetchone() is None:
                raise Unauthenticated("the refresh token's user no longer exists")
            spent = db.execute(
                "UPDATE refresh_tokens SET used_ts = ? "
                "WHERE token_id = ? AND used_ts IS NULL AND revoked_ts IS NULL",
                (now, token_id),
            ).rowcount
            if spent == 0:  # another request spent or revoked it in between
                raise Unauthenticated("the refresh token was already used or revoked")
            user, family = str(row["user"]), str(row["family"])
        return user, self.issue(user, family)

    def revoke(self, token: SecretStr) -> None:
        """Revoke the token's whole family (logout)."""
        token_id, secret = _split(token)
        with self.store.connect() as db:
            row = _known(db, token_id, secret)
            db.execute(
                "UPDATE refresh_tokens SET revoked_ts = ? WHERE family = ? AND revoked_ts IS NULL",
                (int(time.time()), row["family"]),
            )


def _split(token: SecretStr) -> tuple[str, str]:
    token_id, _, secret = token.get_secret_value().partition(".")
    if not token_id or not secret:
        raise Unauthenticated("the refresh token is malformed")
    return token_id, secret


def _known(db: sqlite3.Connection, token_id: str, secret: str) -> sqlite3.Row:
    """The stored row of a refresh token whose secret matches; else Unauthenticated."""
    row: sqlite3.Row | None = db.execute(
        "SELECT * FROM refresh_tokens WHERE token_id = ?", (token_id,)
    ).fetchone()
    if row is None or not hmac.compare_digest(row["secret_sha256"], _digest(secret)):
        raise Unauthenticated("unknown refresh token")
    return row
