"""AvroSerde without a registry: wire framing, round trips, evolution, typed errors."""

from __future__ import annotations

import copy
import io
from typing import Any

import fastavro
import pytest

from sentio_iot.errors import DeserializationError, SentioError, SerializationError
from sentio_iot.records import DeviceEvent, EventKind, Metric, Quality, Reading
from sentio_iot.schemas import SCHEMA_NAMES, load_schema, parsed_schema
from sentio_iot.serde import AvroSerde

TOPIC = "sentio.test"
TS = 1_764_331_200_123_456  # 2025-11-28T12:00:00.123456Z in microseconds

SAMPLES: dict[str, dict[str, Any]] = {
    "Reading": {
        "device_id": "press-07",
        "ts": TS,
        "metrics": [
            {
                "name": "temperature",
                "value": 71.25,
                "text": None,
                "unit": "degC",
                "quality": "GOOD",
            },
            {
                "name": "state",
                "value": None,
                "text": "running",
                "unit": None,
                "quality": "UNCERTAIN",
            },
            {"name": "pressure", "value": -0.5, "text": None, "unit": "bar", "quality": "BAD"},
        ],
        "labels": {"tenant": "acme", "site": "lyon", "line": "l2"},
        "source": "modbus",
        "seq": 2**40,
    },
    "Rollup": {
        "device_id": "press-07",
        "metric": "temperature",
        "unit": "degC",
        "window_start": TS,
        "window_end": TS + 60_000_000,
        "window_s": 60,
        "count": 12,
        "min": 70.0,
        "max": 72.5,
        "mean": 71.1,
        "sum": 853.2,
        "last": 71.25,
        "stddev": 0.4,
        "labels": {"tenant": "acme"},
    },
    "Anomaly": {
        "device_id": "press-07",
        "metric": "temperature",
        "ts": TS,
        "value": 99.0,
        "score": 0.97,
        "threshold": 0.9,
        "expected": 71.0,
        "lower": 68.0,
        "upper": 74.0,
        "detector": "zscore",
        "detector_version": "1.0",
        "labels": {},
    },
    "RulPrediction": {
        "device_id": "engine-3",
        "ts": TS,
        "rul": 112.5,
        "rul_unit": "cycles",
        "lower": None,
        "upper": 130.0,
        "model_name": "cmapss_lstm",
        "model_version": "2",
        "window_size": 30,
        "labels": {"fleet": "fd001"},
    },
    "DeviceEvent": {
        "device_id": "press-07",
        "ts": TS,
        "kind": "TIMEOUT",
        "message": "no answer in 3 s",
        "source": "modbus",
        "details": {"retry_in_s": "5"},
        "labels": {"site": "lyon"},
    },
    "Alert": {
        "alert_id": "a-1",
        "device_id": "press-07",
        "type": "anomaly",
        "severity": "MAJOR",
        "status": "ACKNOWLEDGED",
        "start_ts": TS,
        "end_ts": None,
        "ack_ts": TS + 1,
        "count": 3,
        "message": "temperature anomaly",
        "details": {"metric": "temperature"},
        "labels": {},
    },
    "DeadLetter": {
        "topic": "sentio.readings",
        "partition": 2,
        "offset": 12345,
        "key": b"press-07",
        "value": b"\x00\x00\x00\x00\x09garbage",
        "error": "unknown schema id 9",
        "error_type": "DeserializationError",
        "stage": "streams.rollups",
        "ts": TS,
        "headers": [{"key": "traceparent", "value": b"00-abc"}, {"key": "empty", "value": None}],
        "value_truncated": False,
        "value_size": 14,
        "value_sha256": "5c0c2a3f0d3c6a2c1f0e4b8a2d0f4c6e8a0b2c4d6e8f0a1b2c3d4e5f6a7b8c9d",
    },
    "AlertCommand": {
        "command_id": "7f9c2d1e",
        "device_id": "press-07",
        "type": "anomaly",
        "action": "ACK",
        "alert_id": "press-07/anomaly/1764300000000000",
        "ts": TS,
        "user": "operator",
        "comment": "on it",
    },
}


def serde(schema: str | dict[str, Any] = "Reading", schema_id: int = 1, **kwargs: Any) -> AvroSerde:
    return AvroSerde(None, TOPIC, schema, schema_id=schema_id, **kwargs)


def avro_body(schema: dict[str, Any], record: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, fastavro.parse_schema(schema), record)
    return buf.getvalue()


def evolved_reading() -> dict[str, Any]:
    schema = load_schema("Reading")
    schema["fields"].append(
        {"name": "firmware", "type": ["null", "string"], "default": None, "doc": "Firmware."}
    )
    return schema


def test_samples_cover_every_schema() -> None:
    assert sorted(SAMPLES) == sorted(SCHEMA_NAMES)


def test_wire_format_is_magic_byte_schema_id_and_avro_body() -> None:
    record = SAMPLES["Reading"]
    data = serde(schema_id=0x01020304).encode(record)
    assert data[:5] == b"\x00\x01\x02\x03\x04"
    assert data[5:] == avro_body(parsed_schema("Reading"), record)


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_round_trip_is_identical(name: str) -> None:
    codec = serde(name, schema_id=42)
    data = codec.encode(SAMPLES[name])
    assert codec.decode(data) == SAMPLES[name]
    assert data[:5] == b"\x00\x00\x00\x00\x2a"


def test_timestamps_stay_integer_microseconds() -> None:
    decoded = serde().decode(serde().encode(SAMPLES["Reading"]))
    assert decoded["ts"] == TS and type(decoded["ts"]) is int


def test_fields_with_defaults_may_be_left_out() -> None:
    minimal = {"device_id": "d", "ts": TS, "metrics": [{"name": "t", "value": 1.5}], "source": "s"}
    assert serde().decode(serde().encode(minimal)) == {
        "device_id": "d",
        "ts": TS,
        "metrics": [{"name": "t", "value": 1.5, "text": None, "unit": None, "quality": "GOOD"}],
        "labels": {},
        "source": "s",
        "seq": 0,
    }


def test_old_data_reads_with_an_evolved_reader() -> None:
    old_data = serde(schema_id=1).encode(SAMPLES["Reading"])
    reader = serde(evolved_reading(), schema_id=2, writer_schemas={1: load_schema("Reading")})
    assert reader.decode(old_data) == {**SAMPLES["Reading"], "firmware": None}


def test_new_data_reads_with_an_old_reader() -> None:
    """FORWARD direction too: a reader that does not know a new field skips it."""
    new_data = serde(evolved_reading(), schema_id=2).encode(
        {**SAMPLES["Reading"], "firmware": "4.2"}
    )
    reader = serde(schema_id=1, writer_schemas={2: evolved_reading()})
    assert reader.decode(new_data) == SAMPLES["Reading"]


def test_unknown_enum_symbol_reads_as_the_enum_default() -> None:
    newer = load_schema("Reading")
    newer["fields"][2]["type"]["items"]["fields"][4]["type"]["symbols"].append("STALE")
    record = copy.deepcopy(SAMPLES["Reading"])
    record["metrics"][0]["quality"] = "STALE"
    data = serde(newer, schema_id=5).encode(record)
    decoded = serde(schema_id=1, writer_schemas={5: newer}).decode(data)
    assert [m["quality"] for m in decoded["metrics"]] == ["UNCERTAIN", "UNCERTAIN", "BAD"]


def decode_error(codec: AvroSerde, data: bytes) -> DeserializationError:
    with pytest.raises(DeserializationError) as caught:
        codec.decode(data)
    assert caught.value.raw == data
    assert caught.value.topic == TOPIC
    return caught.value


def test_decode_errors_keep_the_raw_bytes_and_say_why() -> None:
    codec = serde(schema_id=7)
    good = codec.encode(SAMPLES["Reading"])
    prefix = f"cannot decode a message from {TOPIC}: "
    cases = {
        b"": "empty message (a tombstone?)",
        b"\x00\x00\x07": "3 byte(s) is shorter than the 5-byte header (magic byte, schema id)",
        b'{"device_id": "x"}': "magic byte is 0x7b, not 0x00: not the Confluent wire format",
        b"\x00\x00\x00\x00\x09" + good[5:]: "unknown schema id 9 (no registry to ask)",
        good + b"\x00\x01": "2 trailing byte(s) after the body written with schema id 7",
    }
    for data, reason in cases.items():
        assert str(decode_error(codec, data)) == prefix + reason
    truncated = str(decode_error(codec, good[:-4]))  # fastavro's own words follow
    assert truncated.startswith(
        prefix + "body does not decode with writer schema id 7 (truncated or corrupt): "
    )


def test_corrupt_body_raises_deserialization_error() -> None:
    garbage = b"\x00\x00\x00\x00\x07\xff\xfe not avro"
    error = decode_error(serde(schema_id=7), garbage)
    assert "body does not decode with writer schema id 7 (truncated or corrupt)" in str(error)


def test_writer_that_cannot_be_resolved_names_the_problems() -> None:
    text_ts = load_schema("Reading")
    text_ts["fields"][1]["type"] = "string"
    data = b"\x00\x00\x00\x00\x03" + avro_body(text_ts, {**SAMPLES["Reading"], "ts": "noon"})
    error = decode_error(serde(schema_id=1, writer_schemas={3: text_ts}), data)
    assert str(error) == (
        f"cannot decode a message from {TOPIC}: writer schema id 3 cannot be read as Reading: "
        "Reading.ts: type 'long' in new cannot read 'string' written by old"
    )


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (
            lambda r: r["metrics"][1].update(quality="STALE"),
            "Reading.metrics[1].quality: 'STALE' is not one of GOOD, UNCERTAIN, BAD",
        ),
        (lambda r: r.pop("device_id"), "Reading.device_id: missing, and the field has no default"),
        (lambda r: r.update(source=None), "Reading.source: None is not a valid string"),
        (
            lambda r: r["metrics"][0].update(value="hot"),
            "Reading.metrics[0].value: 'hot' fits none of the union's types (null, double)",
        ),
        (lambda r: r.update(seq=2**64), f"Reading.seq: {2**64} is not a valid long"),
        (lambda r: r["labels"].update(line=2), "Reading.labels['line']: 2 is not a valid string"),
        (lambda r: r.update(metrics=5), "Reading.metrics: int is not a list"),
        (
            lambda r: r["metrics"][2].update(colour="red", units="bar"),
            "Reading.metrics[2]: unknown field(s) colour, units not in the schema",
        ),
    ],
)
def test_encode_errors_name_the_field(change: Any, reason: str) -> None:
    record = copy.deepcopy(SAMPLES["Reading"])
    change(record)
    with pytest.raises(SerializationError) as caught:
        serde().encode(record)
    assert str(caught.value) == f"cannot encode a Reading for {TOPIC}: {reason}"
    assert caught.value.topic == TOPIC


def test_encode_without_schema_id_or_registry_says_what_to_do() -> None:
    with pytest.raises(SentioError) as caught:
        AvroSerde(None, TOPIC, "Reading").encode(SAMPLES["Reading"])
    assert str(caught.value) == (
        f"cannot encode for {TOPIC}: no schema id (fix: call register() at start-up, "
        "or pass schema_id= when there is no registry)"
    )


def test_register_without_registry_is_an_error() -> None:
    with pytest.raises(
        SentioError, match=f"cannot register {TOPIC}-value: this serde has no registry"
    ):
        serde().register()


def test_serializer_callables_with_domain_records() -> None:
    """The callable form, with the shared domain records' to_record as to_dict."""
    reading = Reading(
        device_id="plc-1",
        ts_us=TS,
        metrics=[Metric("speed", 1200.0, unit="rpm"), Metric("mode", None, text="auto")],
        source="opcua",
        labels={"site": "lyon"},
        seq=9,
    )
    serialize = serde().serializer(Reading.to_record)
    deserialize = serde().deserializer(
        lambda r: (r["device_id"], [(m["name"], m["value"], m["text"]) for m in r["metrics"]])
    )
    data = serialize(reading, TOPIC)
    assert deserialize(data, TOPIC) == ("plc-1", [("speed", 1200.0, None), ("mode", None, "auto")])
    assert serde().decode(data)["metrics"][0]["quality"] == Quality.GOOD.value
    with pytest.raises(SentioError, match=f"the serde of {TOPIC} was asked to handle other"):
        serialize(reading, "other")


def test_device_event_record_fits_its_schema() -> None:
    event = DeviceEvent(
        "plc-1", TS, EventKind.DISCONNECTED, "socket closed", "opcua", {"code": "1"}
    )
    codec = serde("DeviceEvent")
    assert codec.decode(codec.encode(event.to_record())) == event.to_record()
