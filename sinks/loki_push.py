"""Loki's push API bodies: protobuf ``PushRequest`` (snappy block) and the JSON fallback.

Encoded straight in the protobuf wire format from Loki's field numbers::

    message PushRequest      { repeated StreamAdapter streams = 1; }
    message StreamAdapter    { string labels = 1; repeated EntryAdapter entries = 2; }
    message EntryAdapter     { google.protobuf.Timestamp timestamp = 1; string line = 2;
                               repeated LabelPairAdapter structuredMetadata = 3; }
    message LabelPairAdapter { string name = 1; string value = 2; }
    message Timestamp        { int64 seconds = 1; int32 nanos = 2; }

The labels of a stream travel as one string in Prometheus selector syntax:
``{service_name="sentio", stream="alerts"}``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import cramjam

from sentio_iot.sinks.protowire import field_bytes, field_varint

PROTOBUF_HEADERS = {"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy"}
JSON_HEADERS = {"Content-Type": "application/json"}


@dataclass(frozen=True)
class Entry:
    """One log line: when (Unix ns), the line, its structured metadata."""

    ts_ns: int
    line: str
    metadata: tuple[tuple[str, str], ...] = ()


@dataclass
class Stream:
    labels: tuple[tuple[str, str], ...]
    entries: list[Entry] = field(default_factory=list)


def label_string(labels: Sequence[tuple[str, str]]) -> str:
    """``{a="x", b="y"}`` with Prometheus escaping of the values."""
    pairs = ", ".join(f"{name}={json.dumps(value, ensure_ascii=False)}" for name, value in labels)
    return "{" + pairs + "}"


def group_streams(items: Sequence[tuple[tuple[tuple[str, str], ...], Entry]]) -> list[Stream]:
    """Entries grouped by label set, each stream's entries in time order."""
    streams: dict[tuple[tuple[str, str], ...], Stream] = {}
    for labels, entry in items:
        stream = streams.get(labels)
        if stream is None:
            stream = streams[labels] = Stream(labels)
        stream.entries.append(entry)
    for stream in streams.values():
        stream.entries.sort(key=lambda e: e.ts_ns)
    return list(streams.values())


def _pair(name: str, value: str) -> bytes:
    return field_bytes(1, name.encode()) + field_bytes(2, value.encode())


def _entry(entry: Entry) -> bytes:
    seconds, nanos = divmod(entry.ts_ns, 1_000_000_000)
    timestamp = field_varint(1, seconds) + (field_varint(2, nanos) if nanos else b"")
    body = field_bytes(1, timestamp) + field_bytes(2, entry.line.encode())
    for name, value in entry.metadata:
        body += field_bytes(3, _pair(name, value))
    return body


def push_request(streams: Sequence[Stream]) -> bytes:
    """The serialized (uncompressed) PushRequest."""
    out = bytearray()
    for stream in streams:
        body = field_bytes(1, label_string(stream.labels).encode())
        body += b"".join(field_bytes(2, _entry(e)) for e in stream.entries)
        out += field_bytes(1, body)
    return bytes(out)


def protobuf_body(streams: Sequence[Stream]) -> bytes:
    return bytes(cramjam.snappy.compress_raw(push_request(streams)))


def json_body(streams: Sequence[Stream]) -> bytes:
    """``{"streams":[{"stream":{labels},"values":[["<ns>","line",{metadata}]]}]}``."""
    doc = {
        "streams": [
            {
                "stream": dict(stream.labels),
                "values": [
                    [str(e.ts_ns), e.line, dict(e.metadata)]
                    if e.metadata
                    else [str(e.ts_ns), e.line]
                    for e in stream.entries
                ],
            }
            for stream in streams
        ]
    }
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()


def metadata(pairs: Mapping[str, str | None]) -> tuple[tuple[str, str], ...]:
    """Structured metadata without the empty ones, in the given order."""
    return tuple((k, v) for k, v in pairs.items() if v)
