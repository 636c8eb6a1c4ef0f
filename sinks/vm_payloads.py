"""Request bodies for VictoriaMetrics: JSON lines for ``/api/v1/import``, Prometheus remote write.

Samples are grouped by series first, so each series' labels are encoded once per batch.

Remote write is the Prometheus ``WriteRequest``, encoded here straight in the protobuf
wire format (no generated code, no protoc) and compressed with snappy's block format::

    message WriteRequest { repeated TimeSeries timeseries = 1; }
    message TimeSeries   { repeated Label labels = 1; repeated Sample samples = 2; }
    message Label        { string name = 1; string value = 2; }
    message Sample       { double value = 1; int64 timestamp = 2; }
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import lru_cache

import cramjam

from sentio_iot.sinks.protowire import DOUBLE, field_bytes, varint
from sentio_iot.sinks.vm_series import Labels, Sample

Grouped = dict[Labels, tuple[list[float], list[int]]]


def group(samples: Iterable[Sample]) -> Grouped:
    grouped: Grouped = {}
    for labels, value, ts in samples:
        entry = grouped.get(labels)
        if entry is None:
            entry = grouped[labels] = ([], [])
        entry[0].append(value)
        entry[1].append(ts)
    return grouped


# -- /api/v1/import -----------------------------------------------------------------------


@lru_cache(maxsize=65536)
def _import_prefix(labels: Labels) -> str:
    return '{"metric":' + json.dumps(dict(labels), separators=(",", ":")) + ',"values":'


def import_body(grouped: Grouped) -> bytes:
    """One JSON line per series: ``{"metric":{...},"values":[...],"timestamps":[...]}``."""
    lines = [
        f'{_import_prefix(labels)}{json.dumps(values)},"timestamps":{json.dumps(stamps)}}}'
        for labels, (values, stamps) in grouped.items()
    ]
    return ("\n".join(lines) + "\n").encode() if lines else b""


# -- /api/v1/write (Prometheus remote write) ----------------------------------------------


@lru_cache(maxsize=65536)
def _labels_bytes(labels: Labels) -> bytes:
    return b"".join(
        field_bytes(1, field_bytes(1, name.encode()) + field_bytes(2, value.encode()))
        for name, value in labels
    )


def _sample_bytes(value: float, ts: int) -> bytes:
    # field 1, wire type 1 (fixed64 double) = 0x09; field 2, wire type 0 (varint) = 0x10
    return field_bytes(2, b"\x09" + DOUBLE.pack(value) + b"\x10" + varint(ts))


def write_request(grouped: Grouped) -> bytes:
    """The serialized (uncompressed) WriteRequest."""
    parts = []
    for labels, (values, stamps) in grouped.items():
        body = _labels_bytes(labels) + b"".join(
            _sample_bytes(v, t) for v, t in zip(values, stamps, strict=True)
        )
        parts.append(field_bytes(1, body))
    return b"".join(parts)


def remote_write_body(grouped: Grouped) -> bytes:
    """The WriteRequest, snappy block-compressed as remote write sends it."""
    return bytes(cramjam.snappy.compress_raw(write_request(grouped)))
