"""The DeadLetter record every stage writes, bounded so that Kafka always takes it.

A dead letter carries the original bytes, so one for a message near the broker's size limit
would itself be too large (the broker refused it, the stage stopped). Above ``MAX_VALUE_BYTES``
the record keeps the first ``MAX_VALUE_BYTES`` of the value, its size and SHA-256 and the
original coordinates (topic, partition, offset): enough to find, inspect and replay the
original from its topic while it is retained.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

from sentio_iot.records import now_us

MAX_VALUE_BYTES = 256 * 1024
MAX_HEADER_BYTES = 64 * 1024


def dead_letter_record(
    *,
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    error: str,
    error_type: str,
    stage: str,
    headers: Iterable[tuple[str, str | bytes | None]] = (),
) -> dict[str, Any]:
    """The DeadLetter record (``schemas/avro/DeadLetter.avsc``) for one message."""
    raw = value or b""
    truncated = len(raw) > MAX_VALUE_BYTES
    kept: list[dict[str, Any]] = []
    room = MAX_HEADER_BYTES
    for name, data in headers:
        encoded = data.encode() if isinstance(data, str) else data
        room -= len(name) + len(encoded or b"")
        if room < 0:
            break
        kept.append({"key": name, "value": encoded})
    return {
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "key": key[:MAX_HEADER_BYTES] if key else key,
        "value": raw[:MAX_VALUE_BYTES],
        "value_truncated": truncated,
        "value_size": len(raw),
        "value_sha256": hashlib.sha256(raw).hexdigest(),
        "error": (error.splitlines()[0] if error else error_type)[:2000],
        "error_type": error_type,
        "stage": stage,
        "ts": now_us(),
        "headers": kept,
    }
