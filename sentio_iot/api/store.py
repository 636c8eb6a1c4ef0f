"""The API's state folder: one SQLite file (users, API keys, refresh tokens), mode 0600.

The folder is created mode 0700 and the file 0600 before anything is written, so hashes
and token digests are never readable by other local users. SQLite keeps `sentio users`
(another process) and the running API consistent without a server.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL,
    tenants TEXT NOT NULL,
    created_ts INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS api_keys (
    key_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    secret_sha256 TEXT NOT NULL,
    role TEXT NOT NULL,
    tenants TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_ts INTEGER NOT NULL,
    revoked_ts INTEGER
);
CREATE TABLE IF NOT EXISTS refresh_tokens (
    token_id TEXT PRIMARY KEY,
    family TEXT NOT NULL,
    user TEXT NOT NULL,
    secret_sha256 TEXT NOT NULL,
    expires_ts INTEGER NOT NULL,
    used_ts INTEGER,
    revoked_ts INTEGER
);
CREATE INDEX IF NOT EXISTS refresh_family ON refresh_tokens(family);
"""

DB_NAME = "auth.sqlite"


def private_dir(path: Path) -> Path:
    """``path`` created if needed, mode 0700."""
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


class AuthStore:
    """Opens a connection per operation: cheap for SQLite, safe across threads."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = private_dir(state_dir)
        self.path = state_dir / DB_NAME
        if not self.path.exists():
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))
        os.chmod(self.path, 0o600)
        with self.connect() as db:
            db.executescript(SCHEMA)

    @contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=10.0, isolation_level="IMMEDIATE")
        db.row_factory = sqlite3.Row
        try:
            with db:
                yield db
        finally:
            db.close()
