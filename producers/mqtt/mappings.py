"""Generic mappings: topics matched by pattern, payloads read by field path, one reading each."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sentio_iot.producers.mqtt.config import FieldMapping, TopicMapping, ValueKind
from sentio_iot.producers.mqtt.output import Message, Output
from sentio_iot.producers.mqtt.patterns import TopicPattern, fill_template
from sentio_iot.producers.mqtt.payloads import FieldPath, PayloadError, decode, to_number
from sentio_iot.records import EventKind, Metric


def read_value(value: Any, kind: ValueKind, name: str, unit: str | None) -> Metric:
    """A metric from one decoded value; PayloadError when it is not of the kind asked for."""
    if kind is ValueKind.TEXT:
        if isinstance(value, dict | list) or value is None:
            raise PayloadError(f"{name}: expected text, got {type(value).__name__}")
        text = value if isinstance(value, str) else _json_text(value)
        return Metric(name, None, unit, text=text)
    return Metric(name, to_number(value), unit)


def _json_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass(frozen=True)
class CompiledMapping:
    """A mapping with its pattern and paths parsed once."""

    mapping: TopicMapping
    pattern: TopicPattern
    value_path: FieldPath | None
    field_paths: tuple[tuple[FieldMapping, FieldPath], ...]

    @classmethod
    def compile(cls, mapping: TopicMapping) -> CompiledMapping:
        value_path = FieldPath.parse(mapping.value_path) if mapping.value_path else None
        fields = tuple((f, FieldPath.parse(f.path)) for f in mapping.fields)
        return cls(mapping, TopicPattern.parse(mapping.topic), value_path, fields)

    def availability(self, payload: Any) -> EventKind:
        """ONLINE/OFFLINE from online/offline, true/false, 1/0 or ``{"state": ...}``."""
        if self.value_path:
            value = self.value_path.extract(payload)
        elif isinstance(payload, dict) and "state" in payload:
            value = payload["state"]
        else:
            value = payload
        try:
            number = to_number(value)
        except PayloadError:
            number = None
        if number not in (0.0, 1.0):
            raise PayloadError(f"availability must be online or offline, got {str(value)[:40]!r}")
        return EventKind.ONLINE if number == 1.0 else EventKind.OFFLINE

    def metrics(self, payload: Any, captures: dict[str, str]) -> list[Metric]:
        """The metrics in one decoded payload; PayloadError when a required value is missing."""
        if not self.field_paths:
            value = self.value_path.extract(payload) if self.value_path else payload
            name = fill_template(self.mapping.metric_template, captures)
            return [read_value(value, self.mapping.kind, name, self.mapping.unit)]
        metrics = []
        for field, path in self.field_paths:
            try:
                value = path.extract(payload)
            except PayloadError:
                if field.optional:
                    continue
                raise
            name = fill_template(field.metric_name, captures)
            metrics.append(read_value(value, field.kind, name, field.unit))
        return metrics


class GenericMappings:
    """The ``mappings`` of one source: the first mapping whose pattern matches reads a topic."""

    def __init__(self, mappings: list[TopicMapping], output: Output) -> None:
        self.compiled = [CompiledMapping.compile(m) for m in mappings]
        self.output = output

    def subscriptions(self) -> list[str]:
        return list(dict.fromkeys(c.pattern.subscription for c in self.compiled))

    def handle(self, message: Message) -> bool:
        for compiled in self.compiled:
            captures = compiled.pattern.match(message.topic)
            if captures is None:
                continue
            device_id = fill_template(compiled.mapping.device_id, captures)
            labels = {k: fill_template(v, captures) for k, v in compiled.mapping.labels.items()}
            try:
                payload = decode(message.payload)
                if compiled.mapping.kind is ValueKind.AVAILABILITY:
                    kind = compiled.availability(payload)
                    text = f"{device_id} is {kind.value.lower()}"
                    self.output.event(device_id, kind, text, message.ts_us, labels=labels)
                    return True
                metrics = compiled.metrics(payload, captures)
            except PayloadError as exc:
                self.output.dead_letter(message, str(exc), device_id)
                return True
            if metrics:
                self.output.reading(device_id, metrics, message.ts_us, labels)
            return True
        return False
