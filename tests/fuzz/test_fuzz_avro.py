"""Avro from Kafka: any bytes on a topic decode to a record or raise DeserializationError
(with the raw bytes and a reason), for every contract in the catalog; the fast Reading encoder
either refuses a reading with SerializationError or writes bytes that decode to exactly that
reading; and a decoded reading becomes VictoriaMetrics samples or a Rejected with its reason."""

from __future__ import annotations

import math
import struct
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sentio_iot.errors import DeserializationError, SerializationError
from sentio_iot.reading_codec import ReadingEncoder
from sentio_iot.records import Metric, Quality, Reading
from sentio_iot.schemas.catalog import CATALOG
from sentio_iot.serde import AvroSerde
from sentio_iot.sinks.vm_series import Defaults, Rejected, reading_samples

SCHEMA_ID = 7
CONTRACTS = sorted({spec.value_schema for spec in CATALOG if spec.value_schema})
HEADER = struct.pack(">BI", 0, SCHEMA_ID)

texts = st.text(max_size=40)
values = st.none() | st.floats(allow_nan=True, allow_infinity=True) | st.integers(-(2**70), 2**70)
metrics = st.builds(
    Metric,
    name=texts,
    value=values,
    unit=st.none() | texts,
    quality=st.sampled_from(list(Quality)),
    text=st.none() | texts,
)
readings = st.builds(
    Reading,
    device_id=texts,
    ts_us=st.integers(-(2**64), 2**64),
    metrics=st.lists(metrics, max_size=6),
    source=texts,
    labels=st.dictionaries(texts, texts, max_size=4),
    seq=st.integers(-(2**64), 2**64),
)


def serde(contract: str = "Reading") -> AvroSerde:
    return AvroSerde(None, "fuzz.topic", contract, schema_id=SCHEMA_ID)


def decodes_or_refuses(codec: AvroSerde, data: bytes) -> dict[str, Any] | None:
    """The record, or None after a DeserializationError that says why and keeps the bytes."""
    try:
        return codec.decode(data)
    except DeserializationError as exc:
        assert exc.raw == data
        assert str(exc).startswith("cannot decode a message from fuzz.topic: ")
        assert "\n" not in str(exc)
        return None


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    return bool(a == b)


@given(readings)
def test_the_reading_encoder_refuses_clearly_or_round_trips(reading: Reading) -> None:
    try:
        data = ReadingEncoder(SCHEMA_ID, topic="fuzz.topic").encode(reading)
    except SerializationError as exc:
        assert "fuzz.topic" in str(exc) and "\n" not in str(exc)
        return
    record = serde().decode(data)
    assert record["device_id"] == reading.device_id and record["ts"] == reading.ts_us
    assert record["labels"] == reading.labels and record["seq"] == reading.seq
    for decoded, metric in zip(record["metrics"], reading.metrics, strict=True):
        assert decoded["name"] == metric.name and decoded["quality"] == metric.quality.value
        assert same(decoded["value"], None if metric.value is None else float(metric.value))
        assert (decoded["unit"], decoded["text"]) == (metric.unit, metric.text)


mutations = st.one_of(
    st.tuples(st.just("cut"), st.integers(0, 10_000), st.binary(max_size=0)),
    st.tuples(st.just("flip"), st.integers(0, 10_000), st.binary(min_size=1, max_size=1)),
    st.tuples(st.just("insert"), st.integers(0, 10_000), st.binary(min_size=1, max_size=16)),
    st.tuples(st.just("append"), st.just(0), st.binary(min_size=1, max_size=16)),
)


def mutate(data: bytes, how: tuple[str, int, bytes]) -> bytes:
    kind, at, extra = how
    at = HEADER.__len__() + at % max(1, len(data) - len(HEADER))
    if kind == "cut":
        return data[:at]
    if kind == "flip":
        return data[:at] + bytes([data[at % len(data)] ^ (extra[0] or 1)]) + data[at + 1 :]
    if kind == "insert":
        return data[:at] + extra + data[at:]
    return data + extra


@given(readings, st.lists(mutations, min_size=1, max_size=4))
def test_a_damaged_reading_decodes_or_is_refused_with_a_reason(
    reading: Reading, damage: list[tuple[str, int, bytes]]
) -> None:
    reading.ts_us = max(min(reading.ts_us, 2**62), -(2**62))
    reading.seq = max(min(reading.seq, 2**62), -(2**62))
    try:
        data = ReadingEncoder(SCHEMA_ID).encode(reading)
    except SerializationError:
        return
    for how in damage:
        data = mutate(data, how)
    record = decodes_or_refuses(serde(), data)
    if record is not None:
        assert set(record) == {"device_id", "ts", "metrics", "labels", "source", "seq"}


@pytest.mark.parametrize("contract", CONTRACTS)
@given(body=st.binary(max_size=2048), header=st.sampled_from([HEADER, b"", b"\x00\x00", b"\x01"]))
def test_any_bytes_on_any_topic_decode_or_are_refused(
    contract: str, body: bytes, header: bytes
) -> None:
    decodes_or_refuses(serde(contract), header + body)


@given(st.binary(max_size=64).map(lambda b: struct.pack(">BI", 0, 99) + b))
def test_an_unknown_schema_id_is_refused_by_name(data: bytes) -> None:
    with pytest.raises(DeserializationError, match="unknown schema id 99"):
        serde().decode(data)


@given(readings)
def test_a_decoded_reading_becomes_samples_or_a_stated_rejection(reading: Reading) -> None:
    try:
        data = ReadingEncoder(SCHEMA_ID).encode(reading)
    except SerializationError:
        return
    record = serde().decode(data)
    try:
        samples = list(reading_samples(record, Defaults()))
    except Rejected as exc:
        assert "VictoriaMetrics" in str(exc)
        return
    for labels, value, ts in samples:
        assert math.isfinite(value) and ts > 0
        assert dict(labels)["__name__"] != ""
