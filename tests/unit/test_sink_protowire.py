"""Our hand-written protobuf encoders against messages google.protobuf builds from the same fields.

The test declares the .proto messages (Prometheus remote write, Loki push) with descriptor
APIs, independently of the encoders, and decodes what the encoders produce.
"""

from __future__ import annotations

from typing import Any

import cramjam
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from sentio_iot.sinks.loki_push import Entry, Stream, json_body, protobuf_body, push_request
from sentio_iot.sinks.protowire import varint
from sentio_iot.sinks.vm_payloads import group, remote_write_body, write_request

F = descriptor_pb2.FieldDescriptorProto


def _message(file: Any, name: str, fields: list[tuple[str, int, int, int, str]]) -> None:
    message = file.message_type.add(name=name)
    for field_name, number, kind, label, type_name in fields:
        field = message.field.add(name=field_name, number=number, type=kind, label=label)
        if type_name:
            field.type_name = type_name


def classes(package: str, spec: dict[str, list[tuple[str, int, int, int, str]]]) -> dict[str, Any]:
    file = descriptor_pb2.FileDescriptorProto(name=f"{package}.proto", package=package)
    for name, fields in spec.items():
        _message(file, name, fields)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{package}.{name}"))
        for name in spec
    }


REP, OPT = F.LABEL_REPEATED, F.LABEL_OPTIONAL
PROM = classes(
    "prometheus",
    {
        "Label": [("name", 1, F.TYPE_STRING, OPT, ""), ("value", 2, F.TYPE_STRING, OPT, "")],
        "Sample": [("value", 1, F.TYPE_DOUBLE, OPT, ""), ("timestamp", 2, F.TYPE_INT64, OPT, "")],
        "TimeSeries": [
            ("labels", 1, F.TYPE_MESSAGE, REP, ".prometheus.Label"),
            ("samples", 2, F.TYPE_MESSAGE, REP, ".prometheus.Sample"),
        ],
        "WriteRequest": [("timeseries", 1, F.TYPE_MESSAGE, REP, ".prometheus.TimeSeries")],
    },
)
LOKI = classes(
    "logproto",
    {
        "Timestamp": [("seconds", 1, F.TYPE_INT64, OPT, ""), ("nanos", 2, F.TYPE_INT32, OPT, "")],
        "LabelPairAdapter": [
            ("name", 1, F.TYPE_STRING, OPT, ""),
            ("value", 2, F.TYPE_STRING, OPT, ""),
        ],
        "EntryAdapter": [
            ("timestamp", 1, F.TYPE_MESSAGE, OPT, ".logproto.Timestamp"),
            ("line", 2, F.TYPE_STRING, OPT, ""),
            ("structuredMetadata", 3, F.TYPE_MESSAGE, REP, ".logproto.LabelPairAdapter"),
        ],
        "StreamAdapter": [
            ("labels", 1, F.TYPE_STRING, OPT, ""),
            ("entries", 2, F.TYPE_MESSAGE, REP, ".logproto.EntryAdapter"),
        ],
        "PushRequest": [("streams", 1, F.TYPE_MESSAGE, REP, ".logproto.StreamAdapter")],
    },
)


def test_varint_matches_protobuf() -> None:
    assert varint(0) == b"\x00"
    assert varint(1) == b"\x01"
    assert varint(300) == b"\xac\x02"
    assert varint(-1) == b"\xff" * 9 + b"\x01"


def test_remote_write_decodes_to_the_samples_written() -> None:
    series_a = (("__name__", "sentio_temperature"), ("device", "pump-1"), ("unit", "°C"))
    series_b = (("__name__", "sentio_rul"), ("device", "press-2"))
    grouped = group(
        [
            (series_a, 21.5, 1_795_000_000_000),
            (series_b, -3.25, 1_795_000_000_500),
            (series_a, 22.0, 1_795_000_001_000),
        ]
    )
    request = PROM["WriteRequest"].FromString(write_request(grouped))
    decoded = [
        (
            [(label.name, label.value) for label in ts.labels],
            [(sample.value, sample.timestamp) for sample in ts.samples],
        )
        for ts in request.timeseries
    ]
    assert decoded == [
        (list(series_a), [(21.5, 1_795_000_000_000), (22.0, 1_795_000_001_000)]),
        (list(series_b), [(-3.25, 1_795_000_000_500)]),
    ]
    body = remote_write_body(grouped)
    assert bytes(cramjam.snappy.decompress_raw(body)) == write_request(grouped)


def test_loki_push_request_has_the_exact_shape() -> None:
    streams = [
        Stream(
            (("service_name", "sentio"), ("stream", "device-events"), ("level", "error")),
            [
                Entry(
                    1_795_000_000_123_456_000,
                    "pump-0003 OFFLINE: no reading for 30 s",
                    (("device_id", "pump-0003"),),
                ),
                Entry(1_795_000_001_000_000_000, 'quote " and é', ()),
            ],
        ),
        Stream(
            (("service_name", "sentio"), ("stream", "alerts")),
            [Entry(5, "x", (("alert_id", "a1"), ("trace_id", "ab" * 16)))],
        ),
    ]
    request = LOKI["PushRequest"].FromString(push_request(streams))
    assert [s.labels for s in request.streams] == [
        '{service_name="sentio", stream="device-events", level="error"}',
        '{service_name="sentio", stream="alerts"}',
    ]
    first = request.streams[0].entries
    assert (first[0].timestamp.seconds, first[0].timestamp.nanos) == (1_795_000_000, 123_456_000)
    assert first[0].line == "pump-0003 OFFLINE: no reading for 30 s"
    assert [(p.name, p.value) for p in first[0].structuredMetadata] == [("device_id", "pump-0003")]
    assert (first[1].timestamp.seconds, first[1].timestamp.nanos, first[1].line) == (
        1_795_000_001,
        0,
        'quote " and é',
    )
    second = request.streams[1].entries[0]
    assert (second.timestamp.seconds, second.timestamp.nanos) == (0, 5)
    assert [(p.name, p.value) for p in second.structuredMetadata] == [
        ("alert_id", "a1"),
        ("trace_id", "ab" * 16),
    ]
    assert bytes(cramjam.snappy.decompress_raw(protobuf_body(streams))) == push_request(streams)


def test_loki_json_body() -> None:
    streams = [
        Stream((("stream", "alerts"),), [Entry(10, "a", (("device_id", "d"),)), Entry(11, "b")])
    ]
    assert json_body(streams) == (
        b'{"streams":[{"stream":{"stream":"alerts"},"values":[["10","a",{"device_id":"d"}],["11","b"]]}]}'
    )
