"""Avro values in the Confluent wire format: magic byte 0, 4-byte big-endian schema id, body.

    serde = AvroSerde(registry, "sentio.readings", "Reading")   # subject sentio.readings-value
    serde.register()                      # at start-up; sets BACKWARD on the subject
    data = serde.encode(reading_dict)     # SerializationError names the field that does not fit
    serde.decode(data)                    # DeserializationError keeps the raw bytes

Decoding resolves whatever schema version wrote a message (looked up by id once, then cached)
to this serde's schema, so a reader keeps working while writers evolve. Timestamps stay
integer microseconds both ways: logical types travel in the registered schema but are not
converted to ``datetime`` on the hot path. Encoding fills fields left out with their defaults
and refuses fields the schema does not have (a misspelt name must not vanish silently).
Without a registry (unit tests, benchmarks) give ``schema_id`` and ``writer_schemas`` up front.
"""

from __future__ import annotations

import copy
import struct
from collections.abc import Callable, Mapping
from io import BytesIO
from typing import Any

import fastavro
from fastavro.read import SchemaResolutionError
from fastavro.schema import to_parsing_canonical_form

from sentio_iot.errors import DeserializationError, RegistryError, SentioError, SerializationError
from sentio_iot.registry import SCHEMA_NOT_FOUND, SchemaRegistry
from sentio_iot.schemas import load_schema
from sentio_iot.schemas.compat import backward_problems

MAGIC_BYTE = 0
HEADER = struct.Struct(">BI")  # magic byte, schema id

Record = dict[str, Any]
_Plan = tuple[Any, Any]  # parsed writer schema, parsed reader schema or None when equal


class AvroSerde:
    """Encode and decode one topic's values with one schema (subject ``<topic>-value``)."""

    def __init__(
        self,
        registry: SchemaRegistry | None,
        topic: str,
        schema: str | Mapping[str, Any],
        *,
        schema_id: int | None = None,
        writer_schemas: Mapping[int, Mapping[str, Any]] | None = None,
    ) -> None:
        """``schema`` is a contract name ("Reading") or a schema document.

        ``schema_id`` (this schema's id) and ``writer_schemas`` (id -> schema of other
        versions) stand in for the registry where there is none: unit tests, benchmarks.
        """
        self.registry = registry
        self.topic = topic
        self.subject = f"{topic}-value"
        self.schema: Record = (
            load_schema(schema) if isinstance(schema, str) else copy.deepcopy(dict(schema))
        )
        self.schema_id: int | None = None
        self._parsed: Any = fastavro.parse_schema(_without_logical_types(self.schema))
        self._canonical = to_parsing_canonical_form(self._parsed)
        self._header: bytes | None = None
        self._writer_json: dict[int, Mapping[str, Any]] = dict(writer_schemas or {})
        self._plans: dict[int, _Plan] = {}
        if schema_id is not None:
            self._use_id(schema_id)

    def register(self) -> int:
        """Set BACKWARD compatibility on the subject, register the schema, return its id."""
        if self.registry is None:
            raise SentioError(f"cannot register {self.subject}: this serde has no registry")
        self.registry.set_compatibility(self.subject, "BACKWARD")
        try:
            schema_id = self.registry.register(self.subject, self.schema)
        except RegistryError as exc:
            if exc.status_code != 409:
                raise
            raise SentioError(
                f"schema {self.schema.get('name')} is not BACKWARD compatible with the latest version of {self.subject}: {exc.message}",
                fix="add fields only with a default and never remove enum symbols (schemas/compat.py checks it locally)",
            ) from exc
        self._use_id(schema_id)
        return schema_id

    def encode(self, record: Mapping[str, Any]) -> bytes:
        """The record in the Confluent wire format; registers the schema on first use if needed."""
        header = self._header
        if header is None:
            header = self._first_header()
        buf = BytesIO()
        buf.write(header)
        try:
            # strict_allow_default: an unknown (misspelt) field is an error, not dropped
            fastavro.schemaless_writer(buf, self._parsed, record, strict_allow_default=True)
        except Exception as exc:
            raise self._encode_error(record, exc) from exc
        return buf.getvalue()

    def decode(self, data: bytes) -> Record:
        """The record in ``data``, resolved to this serde's schema.

        Raises DeserializationError (with ``raw``) for poison data; ConnectError when the
        registry is needed for a new schema id and cannot be reached (retry later).
        """
        try:
            magic, schema_id = HEADER.unpack_from(data)
        except (struct.error, TypeError):
            raise self._decode_error(data, _short_reason(data)) from None
        if magic != MAGIC_BYTE:
            raise self._decode_error(
                data, f"magic byte is 0x{magic:02x}, not 0x00: not the Confluent wire format"
            )
        plan = self._plans.get(schema_id)
        if plan is None:
            plan = self._plan(schema_id, data)
        buf = BytesIO(data)
        buf.seek(HEADER.size)
        try:
            record: Record = fastavro.schemaless_reader(buf, plan[0], plan[1])  # type: ignore[assignment]
        except SchemaResolutionError as exc:
            raise self._decode_error(data, self._resolution_reason(schema_id, exc)) from exc
        except Exception as exc:
            reason = f"body does not decode with writer schema id {schema_id} (truncated or corrupt): {type(exc).__name__}: {exc}"
            raise self._decode_error(data, reason) from exc
        if buf.tell() != len(data):
            reason = f"{len(data) - buf.tell()} trailing byte(s) after the body written with schema id {schema_id}"
            raise self._decode_error(data, reason)
        return record

    def serializer(
        self, to_dict: Callable[[Any], Mapping[str, Any]] | None = None
    ) -> Callable[[Any, str | None], bytes]:
        """``(obj, topic) -> bytes`` in the style of confluent-kafka's serializers.

        ``to_dict`` turns a domain object into the Avro dict, e.g. ``Reading.to_record``.
        """
        encode = self.encode

        def serialize(obj: Any, topic: str | None = None) -> bytes:
            self._check_topic(topic)
            return encode(obj if to_dict is None else to_dict(obj))

        return serialize

    def deserializer(
        self, from_dict: Callable[[Record], Any] | None = None
    ) -> Callable[[bytes, str | None], Any]:
        """``(data, topic) -> obj``; ``from_dict`` builds a domain object from the Avro dict."""
        decode = self.decode

        def deserialize(data: bytes, topic: str | None = None) -> Any:
            self._check_topic(topic)
            record = decode(data)
            return record if from_dict is None else from_dict(record)

        return deserialize

    def _use_id(self, schema_id: int) -> None:
        self.schema_id = schema_id
        self._header = HEADER.pack(MAGIC_BYTE, schema_id)
        self._writer_json.setdefault(schema_id, self.schema)

    def _first_header(self) -> bytes:
        if self.registry is None:
            raise SentioError(
                f"cannot encode for {self.topic}: no schema id",
                fix="call register() at start-up, or pass schema_id= when there is no registry",
            )
        self.register()
        assert self._header is not None
        return self._header

    def _check_topic(self, topic: str | None) -> None:
        if topic is not None and topic != self.topic:
            raise SentioError(f"the serde of {self.topic} was asked to handle {topic}")

    def _plan(self, schema_id: int, data: bytes) -> _Plan:
        """Parse the writer schema of ``schema_id`` once; skip resolution when it equals ours."""
        writer_json = self._writer_json.get(schema_id)
        if writer_json is None:
            writer_json = self._fetch_writer(schema_id, data)
        try:
            writer = fastavro.parse_schema(_without_logical_types(writer_json))
        except Exception as exc:
            raise self._decode_error(
                data, f"writer schema id {schema_id} is not valid Avro: {exc}"
            ) from exc
        same = to_parsing_canonical_form(writer) == self._canonical
        plan = (writer, None if same else self._parsed)
        self._plans[schema_id] = plan
        return plan

    def _fetch_writer(self, schema_id: int, data: bytes) -> Mapping[str, Any]:
        if self.registry is None:
            raise self._decode_error(data, f"unknown schema id {schema_id} (no registry to ask)")
        try:
            writer_json = self.registry.schema_by_id(schema_id)
        except RegistryError as exc:
            if exc.status_code == 200:  # it answered, with a schema that is not Avro
                raise self._decode_error(data, exc.message) from exc
            if exc.error_code != SCHEMA_NOT_FOUND and exc.status_code != 404:
                raise
            raise self._decode_error(
                data, f"unknown schema id {schema_id} (not in the registry at {self.registry.url})"
            ) from exc
        except ValueError as exc:  # the registry's schema text is not JSON
            raise self._decode_error(
                data, f"writer schema id {schema_id} is not valid Avro JSON: {exc}"
            ) from exc
        self._writer_json[schema_id] = writer_json
        return writer_json

    def _resolution_reason(self, schema_id: int, exc: Exception) -> str:
        problems = backward_problems(self.schema, self._writer_json[schema_id])
        detail = "; ".join(problems) if problems else str(exc)
        return f"writer schema id {schema_id} cannot be read as {self.schema.get('name')}: {detail}"

    def _decode_error(self, data: Any, reason: str) -> DeserializationError:
        raw = bytes(data) if data is not None else b""
        return DeserializationError(
            f"cannot decode a message from {self.topic}: {reason}", raw=raw, topic=self.topic
        )

    def _encode_error(self, record: Any, exc: Exception) -> SerializationError:
        name = str(self.schema.get("name"))
        try:
            where = _first_misfit(
                record, self._parsed, self._parsed.get("__named_schemas", {}), name
            )
        except Exception:  # the locator only adds detail; never lose the SerializationError
            where = None
        reason = where or f"{type(exc).__name__}: {exc}"
        return SerializationError(
            f"cannot encode a {name} for {self.topic}: {reason}", topic=self.topic
        )


def _short_reason(data: Any) -> str:
    if not data:
        return "empty message (a tombstone?)"
    if not isinstance(data, bytes | bytearray | memoryview):
        return f"expected bytes, got {type(data).__name__}"
    return f"{len(data)} byte(s) is shorter than the 5-byte header (magic byte, schema id)"


def _without_logical_types(schema: Any) -> Any:
    """A copy of ``schema`` without logicalType annotations: the bytes are the same, and
    values stay plain ints (no datetime conversion), which is what our records carry."""
    if isinstance(schema, list):
        return [_without_logical_types(s) for s in schema]
    if isinstance(schema, Mapping):
        return {k: _without_logical_types(v) for k, v in schema.items() if k != "logicalType"}
    return schema


_INT_RANGE = {"int": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}
_PRIMITIVE_FITS: dict[str, Callable[[Any], bool]] = {
    "null": lambda v: v is None,
    "boolean": lambda v: isinstance(v, bool),
    "int": lambda v: isinstance(v, int) and _INT_RANGE["int"][0] <= v <= _INT_RANGE["int"][1],
    "long": lambda v: isinstance(v, int) and _INT_RANGE["long"][0] <= v <= _INT_RANGE["long"][1],
    "float": lambda v: isinstance(v, int | float),
    "double": lambda v: isinstance(v, int | float),
    "bytes": lambda v: isinstance(v, bytes | bytearray | memoryview),
    "string": lambda v: isinstance(v, str),
}


def _first_misfit(datum: Any, schema: Any, named: Mapping[str, Any], path: str) -> str | None:
    """``path: why`` for the first value in ``datum`` that does not fit ``schema`` (parsed).

    Only called after fastavro refused a record, to name the field; None when nothing is found.
    """
    if isinstance(schema, str) and schema in named:
        schema = named[schema]
    if isinstance(schema, list):
        if any(_first_misfit(datum, branch, named, path) is None for branch in schema):
            return None
        kinds = ", ".join(_type_name(b) for b in schema)
        return f"{path}: {datum!r:.60} fits none of the union's types ({kinds})"
    kind = schema if isinstance(schema, str) else schema["type"]
    if kind in _PRIMITIVE_FITS:
        if _PRIMITIVE_FITS[kind](datum):
            return None
        return f"{path}: {datum!r:.60} is not a valid {kind}"
    if kind == "enum":
        if datum in schema["symbols"]:
            return None
        return f"{path}: {datum!r:.60} is not one of {', '.join(schema['symbols'])}"
    if kind == "fixed":
        if isinstance(datum, bytes) and len(datum) == schema["size"]:
            return None
        return f"{path}: {datum!r:.60} is not {schema['size']} bytes"
    if kind == "array":
        if not isinstance(datum, list | tuple):
            return f"{path}: {type(datum).__name__} is not a list"
        found = (
            _first_misfit(v, schema["items"], named, f"{path}[{i}]") for i, v in enumerate(datum)
        )
        return next((f for f in found if f), None)
    if kind == "map":
        if not isinstance(datum, Mapping):
            return f"{path}: {type(datum).__name__} is not a mapping"
        found = (
            _first_misfit(v, schema["values"], named, f"{path}[{k!r}]") for k, v in datum.items()
        )
        return next((f for f in found if f), None)
    if kind in ("record", "error"):
        if not isinstance(datum, Mapping):
            return f"{path}: {type(datum).__name__} is not a mapping"
        unknown = sorted(set(datum) - {field["name"] for field in schema["fields"]})
        if unknown:
            return f"{path}: unknown field(s) {', '.join(map(str, unknown))} not in the schema"
        for field in schema["fields"]:
            name = field["name"]
            if name not in datum and "default" not in field:
                return f"{path}.{name}: missing, and the field has no default"
            misfit = _first_misfit(
                datum.get(name, field.get("default")), field["type"], named, f"{path}.{name}"
            )
            if misfit:
                return misfit
    return None


def _type_name(schema: Any) -> str:
    if isinstance(schema, str):
        return schema.rsplit(".", 1)[-1]
    return str(schema.get("name", schema["type"])).rsplit(".", 1)[-1]
