"""DeadLetter records: always small enough for Kafka, whatever the original was."""

from __future__ import annotations

import hashlib

from sentio_iot.dead_letters import MAX_VALUE_BYTES, dead_letter_record
from sentio_iot.schemas import load_schema
from sentio_iot.serde import AvroSerde


def letter(value: bytes | None) -> dict[str, object]:
    return dead_letter_record(
        topic="sentio.readings",
        partition=3,
        offset=41,
        key=b"pump-1",
        value=value,
        error="magic byte is 0x6e, not 0x00\nsecond line",
        error_type="DeserializationError",
        stage="sinks.victoriametrics",
        headers=[("traceparent", "00-ab-cd-01"), ("raw", b"\x00\x01"), ("none", None)],
    )


def test_a_small_value_is_kept_whole_with_its_digest() -> None:
    record = letter(b"not avro")
    assert record["value"] == b"not avro" and record["value_truncated"] is False
    assert record["value_size"] == 8
    assert record["value_sha256"] == hashlib.sha256(b"not avro").hexdigest()
    assert record["error"] == "magic byte is 0x6e, not 0x00"  # one line
    assert record["headers"] == [
        {"key": "traceparent", "value": b"00-ab-cd-01"},
        {"key": "raw", "value": b"\x00\x01"},
        {"key": "none", "value": None},
    ]


def test_a_value_too_large_for_kafka_keeps_a_prefix_its_size_and_digest() -> None:
    original = bytes(range(256)) * 4000  # 1,024,000 bytes: under the broker's limit, not its letter
    record = letter(original)
    assert record["value"] == original[:MAX_VALUE_BYTES] and record["value_truncated"] is True
    assert record["value_size"] == 1_024_000
    assert record["value_sha256"] == hashlib.sha256(original).hexdigest()
    assert (record["topic"], record["partition"], record["offset"]) == ("sentio.readings", 3, 41)
    encoded = AvroSerde(None, "x", "DeadLetter", schema_id=1).encode(record)
    assert len(encoded) < 300 * 1024


def test_a_tombstone_is_an_empty_value() -> None:
    record = letter(None)
    assert record["value"] == b"" and record["value_size"] == 0
    assert "value_truncated" in {f["name"] for f in load_schema("DeadLetter")["fields"]}
