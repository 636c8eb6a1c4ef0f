"""API keys for machines: ``sk_<key_id>_<secret>``, stored as SHA-256 digests, scoped to a
role and tenants, revocable. The secret has 256 bits, so a fast digest is safe here (a
password needs argon2 because people choose guessable ones; a random key is not guessable).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
import uuid
from dataclasses import dataclass

from pydantic import SecretStr

from sentio_iot.api.errors import Unauthenticated, UserError
from sentio_iot.api.principal import Principal
from sentio_iot.api.roles import Role
from sentio_iot.api.store import AuthStore

PREFIX = "sk_"


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    name: str
    role: Role
    tenants: tuple[str, ...]
    created_by: str
    created_ts: int
    revoked_ts: int | None


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def looks_like_key(token: str) -> bool:
    return token.startswith(PREFIX)


class ApiKeys:
    def __init__(self, store: AuthStore) -> None:
        self.store = store

    def create(
        self, name: str, role: Role, tenants: tuple[str, ...], created_by: str
    ) -> tuple[ApiKey, SecretStr]:
        """The key's record and its only copy of the secret (shown once)."""
        key_id = uuid.uuid4().hex[:16]
        secret = secrets.token_urlsafe(32)
        now = int(time.time())
        with self.store.connect() as db:
            db.execute(
                "INSERT INTO api_keys VALUES (?, ?, ?, ?, ?, ?, ?, NULL)",
                (
                    key_id,
                    name,
                    _digest(secret),
                    role.value,
                    json.dumps(list(tenants)),
                    created_by,
                    now,
                ),
            )
        key = ApiKey(key_id, name, role, tenants, created_by, now, None)
        return key, SecretStr(f"{PREFIX}{key_id}_{secret}")

    def list(self) -> list[ApiKey]:
        with self.store.connect() as db:
            rows = db.execute("SELECT * FROM api_keys ORDER BY created_ts").fetchall()
        return [
            ApiKey(
                r["key_id"],
                r["name"],
                Role(r["role"]),
                tuple(json.loads(r["tenants"])),
                r["created_by"],
                r["created_ts"],
                r["revoked_ts"],
            )
            for r in rows
        ]

    def revoke(self, key_id: str) -> None:
        with self.store.connect() as db:
            changed = db.execute(
                "UPDATE api_keys SET revoked_ts = ? WHERE key_id = ? AND revoked_ts IS NULL",
                (int(time.time()), key_id),
            ).rowcount
        if changed == 0:
            raise UserError(f"no active API key {key_id!r}")

    def verify(self, token: str) -> Principal:
        key_id, _, secret = token.removeprefix(PREFIX).partition("_")
        with self.store.connect() as db:
            row = db.execute("SELECT * FROM api_keys WHERE key_id = ?", (key_id,)).fetchone()
        if row is None or not hmac.compare_digest(row["secret_sha256"], _digest(secret)):
            raise Unauthenticated("unknown API key")
        if row["revoked_ts"] is not None:
            raise Unauthenticated("the API key was revoked")
        return Principal(
            f"key:{key_id}", Role(row["role"]), tuple(json.loads(row["tenants"])), "api_key"
        )
