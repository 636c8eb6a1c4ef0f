"""The store-and-forward buffer: Kafka messages kept on disk while Kafka cannot be reached.

One SQLite file in WAL mode, one table. Rows are replayed in ``id`` order, and the caller
chooses the ids: the publisher numbers every message when it is emitted, so a message
whose delivery failed late still goes back in front of the ones emitted after it.
Committed rows survive a crash of the process (``synchronous=NORMAL`` in WAL mode).

The buffer is bounded by the bytes it holds (topic, key, value and headers); when an
append does not fit, the full policy decides:

- ``drop_oldest``: delete the oldest rows until it fits (keeps the most recent data);
- ``drop_newest``: refuse the new message (keeps the oldest data);
- ``block``: refuse it with ``full=True``; the caller waits with :meth:`wait_for_room`.

``append(..., force=True)`` stores beyond the bound; the publisher uses it for messages
Kafka gave back, which must not be lost and cannot wait.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

log = logging.getLogger(__name__)

DROP_LOG_EVERY_S = 5.0  # drops are logged as ERROR at most this often, with counts
ROW_OVERHEAD = 32  # bytes counted per row beyond its payload: ids, timestamps, bookkeeping

SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    key BLOB,
    value BLOB NOT NULL,
    headers BLOB NOT NULL,
    ts INTEGER NOT NULL,
    size INTEGER NOT NULL
)
"""

Headers = list[tuple[str, str | bytes | None]]  # as confluent-kafka takes and gives them


class FullPolicy(StrEnum):
    DROP_OLDEST = "drop_oldest"
    DROP_NEWEST = "drop_newest"
    BLOCK = "block"


@dataclass(frozen=True, slots=True)
class BufferedMessage:
    """A Kafka message as it will be produced again: ``ts`` is its creation time in ms."""

    id: int | None
    topic: str
    key: bytes | None
    value: bytes
    headers: Headers
    ts: int

    @property
    def size(self) -> int:
        return message_size(self.topic, self.key, self.value, encode_headers(self.headers))


@dataclass(frozen=True, slots=True)
class AppendResult:
    """What an append did: ``dropped`` lists (topic, key) of every message given up."""

    stored: bool
    dropped: tuple[tuple[str, bytes | None], ...] = ()
    full: bool = False


def encode_headers(headers: Headers) -> bytes:
    # latin-1 maps every byte to one code point, so any header value survives JSON.
    return json.dumps([[name, _header_text(value)] for name, value in headers]).encode()


def _header_text(value: str | bytes | None) -> str | None:
    if value is None:
        return None
    return (value.encode() if isinstance(value, str) else value).decode("latin-1")


def decode_headers(blob: bytes) -> Headers:
    """Headers as stored; every value comes back as bytes (or None)."""
    return [
        (name, None if text is None else text.encode("latin-1")) for name, text in json.loads(blob)
    ]


def message_size(topic: str, key: bytes | None, value: bytes, headers_blob: bytes) -> int:
    return len(topic) + len(key or b"") + len(value) + len(headers_blob) + ROW_OVERHEAD


class DiskBuffer:
    """A bounded, ordered, crash-safe queue of Kafka messages in one SQLite file; thread-safe."""

    def __init__(self, path: Path, *, max_bytes: int, policy: FullPolicy | str) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.policy = FullPolicy(policy)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(SCHEMA)
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)
        count, size = self._db.execute(
            "SELECT count(*), coalesce(sum(size), 0) FROM messages"
        ).fetchone()
        self._count: int = count
        self._bytes: int = size
        if count:
            log.warning(
                "buffer %s holds %d message(s), %d bytes, from an earlier run", path, count, size
            )

    # -- what is in it ---------------------------------------------------------------------

    @property
    def count(self) -> int:
        return self._count

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def last_id(self) -> int:
        """The highest id ever stored in this file (ids are never reused, even after deletes)."""
        with self._lock:
            row = self._db.execute(
                "SELECT seq FROM sqlite_sequence WHERE name = 'messages'"
            ).fetchone()
        return int(row[0]) if row else 0

    def read(self, after_id: int = 0, limit: int = 1000) -> list[BufferedMessage]:
        """Up to ``limit`` messages with ``id > after_id``, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, topic, key, value, headers, ts FROM messages WHERE id > ? ORDER BY id LIMIT ?",
                (after_id, limit),
            ).fetchall()
        return [
            BufferedMessage(row[0], row[1], row[2], row[3], decode_headers(row[4]), row[5])
            for row in rows
        ]

    # -- changing it -----------------------------------------------------------------------

    def append(self, message: BufferedMessage, *, force: bool = False) -> AppendResult:
        """Store ``message`` (with its id, or the next one); apply the full policy unless forced."""
        blob = encode_headers(message.headers)
        size = message_size(message.topic, message.key, message.value, blob)
        with self._lock:
            dropped: list[tuple[str, bytes | None]] = []
            if not force and self._bytes + size > self.max_bytes:
                if self.policy is FullPolicy.BLOCK and size <= self.max_bytes:
                    return AppendResult(stored=False, full=True)
                if self.policy is FullPolicy.DROP_NEWEST or size > self.max_bytes:
                    return AppendResult(stored=False, dropped=((message.topic, message.key),))
                dropped = self._drop_oldest(self._bytes + size - self.max_bytes)
            inserted = self._db.execute(
                "INSERT OR IGNORE INTO messages (id, topic, key, value, headers, ts, size) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (message.id, message.topic, message.key, message.value, blob, message.ts, size),
            ).rowcount
            if inserted:  # 0 when a row with this id is already there
                self._count += 1
                self._bytes += size
        return AppendResult(stored=True, dropped=tuple(dropped))

    def delete(self, ids: Iterable[int]) -> int:
        """Remove the rows with these ids (those that still exist); returns how many went."""
        chosen = list(ids)
        if not chosen:
            return 0
        with self._lock:
            removed = 0
            size = 0
            self._db.execute("BEGIN")
            for start in range(0, len(chosen), 500):
                part = chosen[start : start + 500]
                marks = ",".join("?" * len(part))
                row = self._db.execute(
                    f"SELECT count(*), coalesce(sum(size), 0) FROM messages WHERE id IN ({marks})",
                    part,
                ).fetchone()
                self._db.execute(f"DELETE FROM messages WHERE id IN ({marks})", part)
                removed += row[0]
                size += row[1]
            self._db.execute("COMMIT")
            self._count -= removed
            self._bytes -= size
            if removed:
                self._room.notify_all()
        return removed

    def wait_for_room(self, size: int, timeout_s: float) -> bool:
        """Wait until ``size`` more bytes fit (BLOCK policy); False when the time ran out."""
        deadline = time.monotonic() + timeout_s
        with self._room:
            while self._bytes + size > self.max_bytes:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._room.wait(left)
        return True

    def close(self) -> None:
        with self._lock:
            self._room.notify_all()
            self._db.close()

    # -- inside ----------------------------------------------------------------------------

    def _drop_oldest(self, need: int) -> list[tuple[str, bytes | None]]:
        """Delete the oldest rows until ``need`` bytes are free; called with the lock held."""
        victims: list[tuple[int, str, bytes | None, int]] = []
        freed = 0
        cursor = self._db.execute("SELECT id, topic, key, size FROM messages ORDER BY id")
        while freed < need and (rows := cursor.fetchmany(256)):
            for row in rows:
                victims.append(row)
                freed += row[3]
                if freed >= need:
                    break
        cursor.close()
        if victims:
            last = victims[-1][0]
            self._db.execute("DELETE FROM messages WHERE id <= ?", (last,))
            self._count -= len(victims)
            self._bytes -= freed
        return [(topic, key) for _, topic, key, _ in victims]


class OutageLog:
    """Loud, collapsed logging of one buffering episode: start, drops (batched), replay, end."""

    def __init__(
        self, path: Path, *, policy: str, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.path = path
        self.policy = policy
        self._clock = clock
        self.began = 0.0
        self.buffered = 0
        self.replayed = 0
        self.total_dropped = 0
        self._unlogged_drops = 0
        self._last_drop_log = float("-inf")
        self._missing: set[str] = set()

    def started(self, reason: str, already: int) -> None:
        self.began, self.buffered, self.replayed, self.total_dropped = self._clock(), 0, 0, 0
        self._missing.clear()
        log.warning("buffering to %s: %s (%d message(s) already there)", self.path, reason, already)

    def dropped(self, count: int, left: int) -> None:
        self.total_dropped += count
        self._unlogged_drops += count
        if self._clock() - self._last_drop_log >= DROP_LOG_EVERY_S:
            log.error(
                "buffer full (policy %s): dropped %d message(s), %d in this outage; %d kept",
                self.policy,
                self._unlogged_drops,
                self.total_dropped,
                left,
            )
            self._unlogged_drops = 0
            self._last_drop_log = self._clock()

    def replaying(self, count: int) -> None:
        log.warning("Kafka answers again: replaying %d buffered message(s) in order", count)

    def ended(self, unconfirmed: int) -> None:
        if self._unlogged_drops:
            log.error("buffer full: dropped %d more message(s)", self._unlogged_drops)
            self._unlogged_drops = 0
        log.warning(
            "buffer drained after %.1f s: %d buffered, %d replayed, %d dropped (%d awaiting confirmation); publishing directly again",
            self._clock() - self.began,
            self.buffered,
            self.replayed,
            self.total_dropped,
            unconfirmed,
        )

    def missing_topic(self, topic: str) -> None:
        if topic not in self._missing:
            self._missing.add(topic)
            log.error(
                "topic %s does not exist: keeping messages in the buffer (fix: sentio topics apply)",
                topic,
            )
