"""A Reading straight to Avro bytes: what ``AvroSerde.encode(reading.to_record())`` writes, faster.

    encoder = ReadingEncoder(serde.schema_id)   # checks the Reading schema once, here
    value = encoder.encode(reading)             # 0x00, 4-byte big-endian id, Avro body

The producer's hot path spends most of its encoding time building the record dict and letting
fastavro walk the schema for every reading. This encoder writes the ``Reading`` dataclass
directly and caches the bytes of what repeats from reading to reading: device ids, metric
names, units, sources and whole label maps. Each cache is a plain dict emptied when it reaches
``cache_size`` entries, so a fleet of a million devices costs misses, not memory.

The field order, the union branch indexes and the enum symbol indexes come from the schema at
construction. A schema this encoder cannot write exactly as fastavro would (a new field, a
changed type, a union with a third branch, a Quality the enum lacks) raises SentioError there,
listing every difference, so a schema change fails in the tests instead of writing wrong bytes.
A value that does not fit raises SerializationError naming the field, like AvroSerde does;
one difference: a float or bool timestamp or seq is refused, where fastavro truncates it.
Sharing an encoder between threads is safe: a race on a cache costs a miss, never wrong bytes.
``tests/unit/test_reading_codec.py`` compares the bytes with fastavro's.
"""

from __future__ import annotations

import numbers
import struct
from collections.abc import Iterator, Mapping, Sequence
from operator import itemgetter
from typing import Any

import fastavro

from sentio_iot.errors import SentioError, SerializationError
from sentio_iot.records import Metric, Quality, Reading
from sentio_iot.schemas import parsed_schema
from sentio_iot.serde import HEADER, MAGIC_BYTE

_pack_branch_double = struct.Struct("<Bd").pack  # a union branch index < 64, then a double
_LONG_MIN, _LONG_MAX = -(2**63), 2**63 - 1
_END = b"\x00"  # an empty block: ends an array or map (and is the whole of an empty one)

# Varints of every 14-bit value, as the last group(s) and as two groups with more to follow:
# a timestamp (8 bytes) takes four steps instead of eight. About 1 MB, built in milliseconds.
_TABLE = 0x4000
_LAST = [bytes([n]) if n < 0x80 else bytes([n & 0x7F | 0x80, n >> 7]) for n in range(_TABLE)]
_CONTINUED = [bytes([n & 0x7F | 0x80, n >> 7 | 0x80]) for n in range(_TABLE)]
_COUNTS = _LAST[::2]  # block counts: longs, so zig-zag doubles them
_COUNTED = len(_COUNTS)

# The encoder's pieces of a reading and of a metric, in the order it builds them; the schema
# decides the order they are written in. Avro field name -> what the encoder needs it to be.
_READING_FIELDS: dict[str, str] = {
    "device_id": "string",
    "ts": "long",
    "metrics": "array of Metric",
    "labels": "map of string",
    "source": "string",
    "seq": "long",
}
_METRIC_FIELDS: dict[str, str] = {
    "name": "string",
    "value": "union of null and double",
    "text": "union of null and string",
    "unit": "union of null and string",
    "quality": "enum with every Quality",
}
# logical types that change nothing in the bytes of the values a Reading holds (int us)
_HARMLESS_LOGICAL_TYPES: dict[str, set[str | None]] = {
    "long": {None, "timestamp-micros"},
    "string": {None},
}


class ReadingEncoder:
    """Encode ``Reading`` objects in the Confluent wire format with one schema id."""

    def __init__(
        self,
        schema_id: int,
        schema: Mapping[str, Any] | None = None,
        *,
        topic: str | None = None,
        cache_size: int = 16_384,
    ) -> None:
        """``schema`` defaults to the contract's Reading; ``topic`` only goes into errors."""
        plan = _Plan(
            parsed_schema("Reading") if schema is None else fastavro.parse_schema(dict(schema))
        )
        self.schema_id = schema_id
        self.topic = topic
        self.cache_size = cache_size
        self._plan = plan
        self._header = HEADER.pack(MAGIC_BYTE, schema_id)
        self._devices: dict[str, bytes] = {}
        self._names: dict[str, bytes] = {}  # metric names and sources: few, and they repeat
        self._labels: dict[tuple[str, ...], bytes] = {}  # keys then values: (*keys, *values)
        self._texts: dict[str | None, bytes] = {None: plan.text_null}
        self._units: dict[str | None, bytes] = {None: plan.unit_null}

    def encode(self, reading: Reading) -> bytes:
        """The reading in the wire format; SerializationError names a field that does not fit."""
        fill, names, devices = self._fill, self._names, self._devices
        try:
            device, labels, source = reading.device_id, reading.labels, reading.source
            if labels:
                key = (*labels, *labels.values())  # with the order: it is the order written
                labels_bytes = self._labels.get(key) or self._fill_labels(key)
            else:
                labels_bytes = _END
            pieces = (
                self._header,
                devices.get(device) or fill(devices, device, b""),
                _long(reading.ts_us),
                self._metrics(reading.metrics),
                labels_bytes,
                names.get(source) or fill(names, source, b""),
                _long(reading.seq),
            )
            order = self._plan.reading_order
            return b"".join(order(pieces) if order else pieces)
        except Exception as exc:
            raise self._error(reading, exc) from exc

    def _metrics(self, metrics: Sequence[Metric]) -> bytes:
        plan, fill = self._plan, self._fill
        names, texts, units, quality = self._names, self._texts, self._units, plan.quality
        value_null, value_branch, order = plan.value_null, plan.value_branch, plan.metric_order
        count = len(metrics)
        if not count:
            return _END
        parts = [_COUNTS[count] if count < _COUNTED else _varint(count << 1)]
        for m in metrics:
            value = m.value
            if type(value) is float:
                value_bytes = _pack_branch_double(value_branch, value)
            elif value is None:
                value_bytes = value_null
            else:
                value_bytes = _pack_branch_double(value_branch, _as_double(value))
            text, unit = m.text, m.unit
            fields = (
                names.get(m.name) or fill(names, m.name, b""),
                value_bytes,
                texts.get(text) or fill(texts, text, plan.text_string, plan.text_null),
                units.get(unit) or fill(units, unit, plan.unit_string, plan.unit_null),
                quality[m.quality],
            )
            parts += order(fields) if order else fields
        parts.append(_END)
        return b"".join(parts)

    def _fill(
        self, cache: dict[Any, bytes], value: Any, branch: bytes, null: bytes | None = None
    ) -> bytes:
        """The bytes of a string missing from ``cache``, kept there: after the union ``branch``
        index if the field is a union, whose ``null`` stands for None."""
        if value is None and null is not None:
            data = null
        elif isinstance(value, str):
            encoded = value.encode()
            data = branch + _varint(len(encoded) << 1) + encoded
        else:
            raise TypeError(f"{value!r:.60} is not a str")
        self._keep(cache, value, data)
        return data

    def _fill_labels(self, flat: tuple[str, ...]) -> bytes:
        """The bytes of a label map given as ``(*keys, *values)``, kept in the labels cache."""
        strings: dict[str, bytes] = {}  # throwaway: label values may be as many as the devices
        count = len(flat) // 2
        parts = [_COUNTS[count] if count < _COUNTED else _varint(count << 1)]
        for key, value in zip(flat[:count], flat[count:], strict=True):
            parts += (self._fill(strings, key, b""), self._fill(strings, value, b""))
        parts.append(_END)
        data = b"".join(parts)
        self._keep(self._labels, flat, data)
        return data

    def _keep(self, cache: dict[Any, bytes], key: Any, data: bytes) -> None:
        if len(cache) >= self.cache_size:
            cache.clear()  # simpler and cheaper than LRU; a full cache is a large fleet anyway
        cache[key] = data

    def _error(self, reading: Any, exc: Exception) -> SerializationError:
        try:
            where = _first_misfit(reading, self._plan.quality)
        except Exception:  # the locator only adds detail; never lose the SerializationError
            where = None
        reason = where or f"{type(exc).__name__}: {exc}"
        topic = f" for {self.topic}" if self.topic else ""
        return SerializationError(f"cannot encode a Reading{topic}: {reason}", topic=self.topic)


class _Plan:
    """What the schema decides: field order, union branch bytes, enum symbol bytes.

    ``reading_order`` picks the header and the reading's pieces in schema order, and
    ``metric_order`` the metric's; None where that is already the encoder's order.
    """

    def __init__(self, schema: Any) -> None:
        problems: list[str] = []
        named: Mapping[str, Any] = schema.get("__named_schemas", {})
        reading_fields = _fields(schema, named, "Reading", _READING_FIELDS, problems)
        metrics = _resolve(reading_fields.get("metrics"), named)
        items = _resolve(metrics.get("items"), named) if isinstance(metrics, Mapping) else None
        metric_fields = _fields(items, named, "Reading.metrics[]", _METRIC_FIELDS, problems)
        for path, fields, expected in (
            ("Reading", reading_fields, _READING_FIELDS),
            ("Metric", metric_fields, _METRIC_FIELDS),
        ):
            for name, field_type in fields.items():
                if name in expected and not _fits(field_type, expected[name], named):
                    problems.append(
                        f"{path}.{name} is {_describe(field_type)}, not {expected[name]}"
                    )
        if problems:
            raise SentioError(
                "ReadingEncoder cannot write this Reading schema exactly as fastavro would: "
                + "; ".join(problems),
                fix="teach sentio_iot/reading_codec.py the change, or encode with AvroSerde",
            )
        self.reading_order = _order([None, *reading_fields], [None, *_READING_FIELDS])
        self.metric_order = _order(list(metric_fields), list(_METRIC_FIELDS))
        value_null, value_double = _branches(metric_fields["value"], "double")
        self.value_null, self.value_branch = value_null, value_double[0]
        self.text_null, self.text_string = _branches(metric_fields["text"], "string")
        self.unit_null, self.unit_string = _branches(metric_fields["unit"], "string")
        symbols = _resolve(metric_fields["quality"], named)["symbols"]
        # keyed by the members (found by identity, the quickest), which finds their values too
        self.quality: dict[str, bytes] = {q: _varint(symbols.index(q.value) << 1) for q in Quality}


def _fields(
    record: Any,
    named: Mapping[str, Any],
    path: str,
    expected: Mapping[str, str],
    problems: list[str],
) -> dict[str, Any]:
    """Field name -> type of ``record`` in schema order; differences in names go to problems."""
    if not isinstance(record, Mapping) or record.get("type") != "record":
        if record is not None:  # None: the parent's problem is reported already
            problems.append(f"{path} is {_describe(record)}, not a record")
        return {}
    fields = {f["name"]: f["type"] for f in record["fields"]}
    for name in fields.keys() - expected.keys():
        problems.append(f"{path}.{name} is a field the encoder does not know")
    for name in expected.keys() - fields.keys():
        problems.append(f"{path}.{name} is missing from the schema")
    return fields


def _fits(field_type: Any, expected: str, named: Mapping[str, Any]) -> bool:
    field_type = _resolve(field_type, named)
    if expected in ("string", "long"):
        return _primitive(field_type) in {
            (expected, lt) for lt in _HARMLESS_LOGICAL_TYPES[expected]
        }
    if expected.startswith("union of null and "):
        other = expected.removeprefix("union of null and ")
        return (
            isinstance(field_type, list)
            and len(field_type) == 2
            and {_primitive(b) for b in field_type} == {("null", None), (other, None)}
        )
    if not isinstance(field_type, Mapping):
        return False
    if expected == "array of Metric":
        return field_type.get("type") == "array"  # the items are checked as a record
    if expected == "map of string":
        return field_type.get("type") == "map" and _fits(field_type["values"], "string", named)
    if expected == "enum with every Quality":
        symbols = field_type.get("symbols", ())
        return field_type.get("type") == "enum" and all(q.value in symbols for q in Quality)
    raise AssertionError(f"no check for {expected}")


def _resolve(schema: Any, named: Mapping[str, Any]) -> Any:
    """A named type's definition where ``schema`` is a reference to it."""
    if isinstance(schema, str) and schema in named:
        return named[schema]
    return schema


def _primitive(schema: Any) -> tuple[str, str | None] | None:
    """(type, logicalType) of a primitive, written as a name or as {"type": name, ...}."""
    if isinstance(schema, str):
        return schema, None
    if isinstance(schema, Mapping) and isinstance(schema.get("type"), str):
        return schema["type"], schema.get("logicalType")
    return None


def _describe(schema: Any) -> str:
    if isinstance(schema, list):
        return "union of " + " and ".join(_describe(b) for b in schema)
    if isinstance(schema, Mapping):
        name = schema.get("name") or schema.get("logicalType")
        return f"{schema.get('type')} {name}" if name else str(schema.get("type"))
    return str(schema)


def _order(schema_order: list[str | None], our_order: list[str | None]) -> Any:
    """An itemgetter putting our pieces in schema order, or None when the orders agree."""
    if schema_order == our_order:
        return None
    return itemgetter(*(our_order.index(name) for name in schema_order))


def _branches(union: list[Any], other: str) -> tuple[bytes, bytes]:
    """The branch index bytes of null and of ``other`` in a two-branch union."""
    kinds = [_primitive(b) for b in union]
    return _varint(kinds.index(("null", None)) << 1), _varint(kinds.index((other, None)) << 1)


def _as_double(value: Any) -> float:
    """What fastavro accepts for a double besides float: any real number but a bool."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{value!r:.60} is not a valid double")
    try:
        return float(value)
    except OverflowError:
        raise OverflowError(f"{value!r:.60} is too large for a double") from None


def _long(value: int) -> bytes:
    """Zig-zag varint of a long; a bool, a float or a number out of range raises."""
    if type(value) is not int:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise TypeError(f"{value!r:.60} is not a valid long")
        value = int(value)
    if not _LONG_MIN <= value <= _LONG_MAX:
        raise OverflowError(f"{value!r:.60} is out of range for a long")
    return _varint((value << 1) ^ (value >> 63))


def _varint(n: int) -> bytes:
    """The Avro varint of ``n`` >= 0 (already zig-zagged), 14 bits (two groups) per step."""
    if n < _TABLE:
        return _LAST[n]
    if n < 1 << 28:
        return _CONTINUED[n & 0x3FFF] + _LAST[n >> 14]
    if n < 1 << 56:  # timestamps in microseconds: 2**42 to 2**56
        low = _CONTINUED[n & 0x3FFF] + _CONTINUED[n >> 14 & 0x3FFF]
        if n < 1 << 42:
            return low + _LAST[n >> 28]
        return low + _CONTINUED[n >> 28 & 0x3FFF] + _LAST[n >> 42]
    parts = []
    while n >= _TABLE:
        parts.append(_CONTINUED[n & 0x3FFF])
        n >>= 14
    parts.append(_LAST[n])
    return b"".join(parts)


def _first_misfit(reading: Any, quality: Mapping[str, bytes]) -> str | None:
    """``path: why`` for the first value of ``reading`` the encoder refuses; None if none is."""
    for path, value, kind in _values(reading):
        if kind == "quality":
            if not isinstance(value, str) or value not in quality:
                return f"{path}: {value!r:.60} is not one of {', '.join(quality)}"
        elif problem := _misfit(value, kind):
            return f"{path}: {problem}"
    return None


def _values(reading: Any) -> Iterator[tuple[str, Any, str]]:
    """(path, value, kind) of every value of ``reading``; kinds ending in ``?`` allow None."""
    yield "Reading.device_id", reading.device_id, "string"
    yield "Reading.ts", reading.ts_us, "long"
    if not isinstance(reading.metrics, Sequence):
        yield "Reading.metrics", reading.metrics, "list"
        return
    for i, metric in enumerate(reading.metrics):
        for name, kind in _METRIC_KINDS:
            yield f"Reading.metrics[{i}].{name}", getattr(metric, name, _MISSING), kind
    if not isinstance(reading.labels, Mapping):
        yield "Reading.labels", reading.labels, "mapping"
        return
    for key, value in reading.labels.items():
        yield "Reading.labels (a key)", key, "string"
        yield f"Reading.labels[{key!r}]", value, "string"
    yield "Reading.source", reading.source, "string"
    yield "Reading.seq", reading.seq, "long"


_METRIC_KINDS = (
    ("name", "string"),
    ("value", "double?"),
    ("text", "string?"),
    ("unit", "string?"),
    ("quality", "quality"),
)
_MISSING = object()


def _misfit(value: Any, kind: str) -> str | None:
    """Why ``value`` is no ``kind`` (string, long, double; ``?``: or None); None if it is."""
    if value is _MISSING:
        return "missing (not a Metric?)"
    if kind in ("list", "mapping"):  # only asked about values that are not
        return f"{value!r:.60} is not a {kind}"
    if kind.endswith("?"):
        if value is None:
            return None
        kind = kind[:-1]
    try:
        if kind == "long":
            _long(value)
        elif kind == "double":
            _as_double(value)
        elif not isinstance(value, str):
            return f"{value!r:.60} is not a valid {kind}"
        else:
            value.encode()
    except UnicodeEncodeError as exc:
        return f"{value!r:.60} is not valid UTF-8 ({exc.reason})"
    except (TypeError, ValueError, OverflowError) as exc:
        return str(exc)
    return None
