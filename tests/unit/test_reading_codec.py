"""ReadingEncoder: the same bytes as fastavro and AvroSerde, schema checks, typed errors."""

from __future__ import annotations

import copy
import io
import math
import random
import struct
from typing import Any

import fastavro
import pytest

from sentio_iot.errors import SentioError, SerializationError
from sentio_iot.reading_codec import ReadingEncoder
from sentio_iot.records import Metric, Quality, Reading
from sentio_iot.schemas import load_schema, parsed_schema
from sentio_iot.serde import AvroSerde

SCHEMA_ID = 0x01020304
HEADER = b"\x00\x01\x02\x03\x04"
TS = 1_764_331_200_123_456
LONG_MIN, LONG_MAX = -(2**63), 2**63 - 1

TEXTS = ["", "a", "running", "état", "温度", "🔥 hot", "x" * 200, "tab\there", "nul\x00byte"]
DOUBLES = [0.0, -0.0, 1.5, -2.25, 1e308, -1e308, 5e-324, 2.2250738585072014e-308, math.inf, -math.inf, math.nan, -math.nan, struct.unpack("<d", b"\x01\x00\x00\x00\x00\x00\xf8\x7f")[0]]  # fmt: skip
LONGS = [0, 1, -1, 63, -64, 64, -65, 8191, 8192, 2**31, -(2**31) - 1, TS, -TS, 2**56, LONG_MAX, LONG_MIN]  # fmt: skip


def fastavro_bytes(reading: Reading, schema: Any = None) -> bytes:
    buf = io.BytesIO()
    buf.write(HEADER)
    fastavro.schemaless_writer(buf, schema or parsed_schema("Reading"), reading.to_record())
    return buf.getvalue()


def without_logical_types(schema: Any) -> Any:
    if isinstance(schema, list):
        return [without_logical_types(s) for s in schema]
    if isinstance(schema, dict):
        return {k: without_logical_types(v) for k, v in schema.items() if k != "logicalType"}
    return schema


def decoded(data: bytes, schema: Any = None) -> Any:
    """The record in ``data``, timestamps left as integers like ``to_record()`` has them."""
    assert data[:5] == HEADER
    plain = fastavro.parse_schema(without_logical_types(schema or load_schema("Reading")))
    buf = io.BytesIO(data[5:])
    record = fastavro.schemaless_reader(buf, plain, None)
    assert buf.tell() == len(data) - 5, "trailing bytes"
    return record


def random_reading(rng: random.Random) -> Reading:
    def text() -> str:
        return rng.choice(TEXTS) + (str(rng.randrange(1000)) if rng.random() < 0.5 else "")

    def value() -> float | int | None:
        kind = rng.random()
        if kind < 0.15:
            return None
        if kind < 0.3:
            return rng.choice(DOUBLES)
        if kind < 0.4:
            return rng.randrange(-(10**6), 10**6)  # fastavro writes ints as doubles too
        return rng.uniform(-1e6, 1e6) * 10 ** rng.randrange(-300, 300)

    metrics = [
        Metric(
            name=text(),
            value=value(),
            unit=rng.choice([None, "degC", "mm/s", "kW", "%", "µm", text()]),
            quality=rng.choice(list(Quality)),
            text=rng.choice([None, None, text()]),
        )
        for _ in range(rng.choice([0, 1, 2, 5, 5, 40, 70]))  # 70: a two-byte block count
    ]
    labels = {text(): text() for _ in range(rng.choice([0, 0, 1, 4, 70]))}
    return Reading(
        device_id=rng.choice([f"press-{rng.randrange(50):02d}", "pompe-n°7", "泵-3", "", text()]),
        ts_us=rng.choice([*LONGS, TS + rng.randrange(10**9), rng.randrange(LONG_MIN, LONG_MAX)]),
        metrics=metrics,
        source=rng.choice(["modbus", "opcua", "simulate", text()]),
        labels=labels,
        seq=rng.choice([*LONGS, rng.randrange(10**6)]),
    )


def without_nan(value: Any) -> Any:
    """``value`` with NaN replaced by a marker, so records holding NaN compare equal."""
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if isinstance(value, dict):
        return {k: without_nan(v) for k, v in value.items()}
    if isinstance(value, list):
        return [without_nan(v) for v in value]
    return value


@pytest.mark.parametrize("cache_size", [16_384, 3])
def test_same_bytes_as_fastavro_for_random_readings(cache_size: int) -> None:
    rng = random.Random(20251128)
    encoder = ReadingEncoder(SCHEMA_ID, cache_size=cache_size)
    for _ in range(3000):
        reading = random_reading(rng)
        expected = fastavro_bytes(reading)
        assert encoder.encode(reading) == expected, reading
        assert encoder.encode(reading) == expected, reading  # again, from the caches
        assert without_nan(decoded(expected)) == without_nan(reading.to_record())


def test_same_bytes_as_avro_serde() -> None:
    serde = AvroSerde(None, "sentio.readings", "Reading", schema_id=SCHEMA_ID)
    encoder = ReadingEncoder(SCHEMA_ID)
    rng = random.Random(7)
    for _ in range(300):
        reading = random_reading(rng)
        assert encoder.encode(reading) == serde.encode(reading.to_record())


def test_known_bytes() -> None:
    reading = Reading(
        "d1",
        -3,
        [Metric("t", 1.0, "C"), Metric("s", None, None, Quality.BAD, "on")],
        "m",
        {"k": "v"},
        seq=64,
    )
    assert ReadingEncoder(1).encode(reading) == (
        b"\x00\x00\x00\x00\x01"  # magic byte, schema id 1
        + b"\x04d1"  # device_id
        + b"\x05"  # ts -3, zig-zag
        + b"\x04"  # two metrics
        + b"\x02t" + b"\x02" + struct.pack("<d", 1.0) + b"\x00" + b"\x02\x02C" + b"\x00"
        + b"\x02s" + b"\x00" + b"\x02\x04on" + b"\x00" + b"\x04"
        + b"\x00"  # end of the metrics
        + b"\x02\x02k\x02v\x00"  # labels: one pair, end
        + b"\x02m"  # source
        + b"\x80\x01"  # seq 64: zig-zag 128, two bytes
    )  # fmt: skip


def test_empty_reading_and_cache_bound() -> None:
    encoder = ReadingEncoder(SCHEMA_ID, cache_size=8)
    empty = Reading("", 0, [], "")
    assert encoder.encode(empty) == HEADER + b"\x00" * 6 == fastavro_bytes(empty)
    for n in range(100):
        reading = Reading(f"dev-{n}", TS, [Metric("m", 1.0, text=f"t{n}")], "s", {"n": str(n)})
        assert encoder.encode(reading) == fastavro_bytes(reading)
    caches = (encoder._devices, encoder._texts, encoder._labels)
    assert all(len(cache) <= 8 for cache in caches)


def test_quality_as_plain_string_and_ints_as_doubles() -> None:
    encoder = ReadingEncoder(SCHEMA_ID)
    members = Reading("d", TS, [Metric("m", 2.0, quality=Quality.UNCERTAIN)], "s")
    plain = Reading("d", TS, [Metric("m", 2, quality="UNCERTAIN")], "s")  # type: ignore[arg-type]
    assert encoder.encode(plain) == encoder.encode(members) == fastavro_bytes(members)


def reordered_schema() -> dict[str, Any]:
    """The Reading schema with every order the encoder derives changed: fields, union
    branches, enum symbols (one added)."""
    schema = load_schema("Reading")
    schema["fields"].reverse()
    metric = next(f for f in schema["fields"] if f["name"] == "metrics")["type"]["items"]
    metric["fields"] = [metric["fields"][i] for i in (3, 1, 4, 0, 2)]
    for field in metric["fields"]:
        if isinstance(field["type"], list):
            field["type"].reverse()
            del field["default"]  # a default must fit the first branch; null is now second
        if field["name"] == "quality":
            field["type"]["symbols"] = ["STALE", "BAD", "GOOD", "UNCERTAIN"]
    return schema


def test_orders_come_from_the_schema() -> None:
    schema = fastavro.parse_schema(reordered_schema())
    encoder = ReadingEncoder(SCHEMA_ID, reordered_schema())
    default = ReadingEncoder(SCHEMA_ID)
    rng = random.Random(3)
    for _ in range(300):
        reading = random_reading(rng)
        expected = fastavro_bytes(reading, schema)
        assert encoder.encode(reading) == expected
        assert without_nan(decoded(expected, reordered_schema())) == without_nan(
            reading.to_record()
        )
        if reading.metrics:
            assert expected != default.encode(reading)


def changed(edit: str) -> dict[str, Any]:
    """The Reading schema with one change the encoder cannot follow."""
    schema = load_schema("Reading")
    fields = {f["name"]: f for f in schema["fields"]}
    metric = {f["name"]: f for f in fields["metrics"]["type"]["items"]["fields"]}
    if edit == "new field":
        schema["fields"].append({"name": "firmware", "type": ["null", "string"], "default": None})
    elif edit == "new metric field":
        fields["metrics"]["type"]["items"]["fields"].append({"name": "min", "type": "double"})
    elif edit == "field removed":
        schema["fields"].remove(fields["seq"])
    elif edit == "int seq":
        fields["seq"]["type"] = "int"
    elif edit == "float value":
        metric["value"]["type"] = ["null", "float"]
    elif edit == "three branches":
        metric["value"]["type"] = ["null", "long", "double"]
    elif edit == "required unit":
        metric["unit"]["type"] = "string"
        del metric["unit"]["default"]
    elif edit == "symbol removed":
        metric["quality"]["type"]["symbols"].remove("BAD")
    elif edit == "millis":
        fields["ts"]["type"]["logicalType"] = "timestamp-millis"
    elif edit == "int labels":
        fields["labels"]["type"]["values"] = "int"
    elif edit == "metrics not records":
        fields["metrics"]["type"]["items"] = "string"
    return schema


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        ("new field", "Reading.firmware is a field the encoder does not know"),
        ("new metric field", "Reading.metrics[].min is a field the encoder does not know"),
        ("field removed", "Reading.seq is missing from the schema"),
        ("int seq", "Reading.seq is int, not long"),
        ("float value", "Metric.value is union of null and float, not union of null and double"),
        ("three branches", "Metric.value is union of null and long and double"),
        ("required unit", "Metric.unit is string, not union of null and string"),
        ("symbol removed", "Metric.quality is enum io.sentio.iot.Quality, not enum with every"),
        ("millis", "Reading.ts is long timestamp-millis, not long"),
        ("int labels", "Reading.labels is map, not map of string"),
        ("metrics not records", "Reading.metrics[] is string, not a record"),
    ],
)
def test_unsupported_schema_fails_at_construction(edit: str, named: str) -> None:
    with pytest.raises(SentioError, match="cannot write this Reading schema") as caught:
        ReadingEncoder(SCHEMA_ID, changed(edit))
    assert named in str(caught.value)
    assert "reading_codec.py" in str(caught.value)  # the fix


def test_every_problem_is_listed() -> None:
    schema = changed("new field")
    schema["fields"] = [f for f in schema["fields"] if f["name"] != "source"]
    with pytest.raises(SentioError) as caught:
        ReadingEncoder(SCHEMA_ID, schema)
    assert "Reading.firmware" in str(caught.value)
    assert "Reading.source is missing" in str(caught.value)


def test_the_contract_schema_is_unchanged_by_the_checks() -> None:
    before = copy.deepcopy(parsed_schema("Reading"))
    ReadingEncoder(SCHEMA_ID)
    ReadingEncoder(SCHEMA_ID, load_schema("Reading"))
    assert parsed_schema("Reading") == before


def good() -> Reading:
    return Reading(
        "press-07",
        TS,
        [Metric("temperature", 71.25, "degC"), Metric("state", None, text="running")],
        "modbus",
        {"tenant": "acme"},
        seq=5,
    )


def with_change(field: str, value: Any) -> Reading:
    reading = good()
    if field.startswith("metric."):
        name = field.removeprefix("metric.")
        metric = reading.metrics[1]
        fields = {k: getattr(metric, k) for k in ("name", "value", "unit", "quality", "text")}
        reading.metrics[1] = Metric(**{**fields, name: value})
    else:
        setattr(reading, field, value)
    return reading


BAD_VALUES = [
    ("device_id", b"press", "Reading.device_id: b'press' is not a valid string"),
    ("device_id", None, "Reading.device_id: None is not a valid string"),
    ("device_id", "\ud800", "Reading.device_id: '\\ud800' is not valid UTF-8 (surrogates not allowed)"),
    ("ts_us", 2**63, "Reading.ts: 9223372036854775808 is out of range for a long"),
    ("ts_us", "1", "Reading.ts: '1' is not a valid long"),
    ("metrics", None, "Reading.metrics: None is not a list"),
    ("metrics", [{"name": "x"}], "Reading.metrics[0].name: missing (not a Metric?)"),
    ("metric.name", 3, "Reading.metrics[1].name: 3 is not a valid string"),
    ("metric.value", "1.5", "Reading.metrics[1].value: '1.5' is not a valid double"),
    ("metric.value", True, "Reading.metrics[1].value: True is not a valid double"),
    ("metric.value", 10**400, "Reading.metrics[1].value: 1000"),
    ("metric.text", 1.5, "Reading.metrics[1].text: 1.5 is not a valid string"),
    ("metric.unit", b"degC", "Reading.metrics[1].unit: b'degC' is not a valid string"),
    ("metric.quality", "STALE", "Reading.metrics[1].quality: 'STALE' is not one of GOOD, UNCERTAIN, BAD"),
    ("labels", {"tenant": 1}, "Reading.labels['tenant']: 1 is not a valid string"),
    ("labels", {1: "x"}, "Reading.labels (a key): 1 is not a valid string"),
    ("labels", {"tenant": ["a"]}, "Reading.labels['tenant']: ['a'] is not a valid string"),
    ("labels", [("tenant", "acme")], "Reading.labels: [('tenant', 'acme')] is not a mapping"),
    ("source", None, "Reading.source: None is not a valid string"),
    ("seq", -(2**63) - 1, "Reading.seq: -9223372036854775809 is out of range for a long"),
]  # fmt: skip


@pytest.mark.parametrize(("field", "value", "message"), BAD_VALUES)
def test_a_value_that_does_not_fit_is_named(field: str, value: Any, message: str) -> None:
    reading = with_change(field, value)
    encoder = ReadingEncoder(SCHEMA_ID, topic="sentio.readings")
    with pytest.raises(SerializationError) as caught:
        encoder.encode(reading)
    assert caught.value.topic == "sentio.readings"
    assert str(caught.value).startswith("cannot encode a Reading for sentio.readings: ")
    assert message in str(caught.value)
    assert encoder.encode(good()) == fastavro_bytes(good())  # nothing half-cached


@pytest.mark.parametrize("value", [1.0, 1.5, True])
def test_stricter_than_fastavro_on_timestamps(value: Any) -> None:
    """fastavro writes a float or bool long as an int (1.5 becomes 1); the encoder refuses."""
    reading = with_change("ts_us", value)
    with pytest.raises(SerializationError, match=r"Reading\.ts: .* is not a valid long"):
        ReadingEncoder(SCHEMA_ID).encode(reading)
