"""The topic catalog: the one source of truth for every topic Sentio reads or writes.

Each entry names the topic, its key, its value schema (an .avsc in ``schemas/avro``),
partitions and retention or compaction. ``sentio topics apply`` makes Kafka match it;
producers, streams and sinks take their topic names from here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from sentio_iot.config import TopicSettings

DAY_MS = 24 * 60 * 60 * 1000

CleanupPolicy = Literal["delete", "compact", "compact,delete"]


@dataclass(frozen=True, kw_only=True)
class TopicSpec:
    """One catalog entry. ``name`` is the catalog name; the Kafka topic is prefix + name."""

    name: str
    doc: str
    key: str
    value_schema: str | None  # None: not Avro (raw bytes, e.g. OTLP protobuf)
    cleanup_policy: CleanupPolicy = "delete"
    retention_days: float | None = 7
    configs: dict[str, str] = field(default_factory=dict)

    def topic(self, settings: TopicSettings) -> str:
        return f"{settings.prefix}{self.name}"

    def partitions(self, settings: TopicSettings) -> int:
        return settings.partition_overrides.get(self.name, settings.partitions)

    def kafka_configs(self) -> dict[str, str]:
        """The topic-level Kafka configs this entry sets (compared and altered by apply)."""
        configs: dict[str, str] = {"cleanup.policy": self.cleanup_policy}
        if self.retention_days is not None:
            configs["retention.ms"] = str(int(self.retention_days * DAY_MS))
        configs.update(self.configs)
        return configs


CATALOG: tuple[TopicSpec, ...] = (
    TopicSpec(
        name="readings",
        doc="Raw device readings from every producer; several metrics sampled together per message.",
        key="device_id (UTF-8)",
        value_schema="Reading",
        retention_days=7,
    ),
    TopicSpec(
        name="rollups",
        doc="Window aggregates (1 min, 1 h) per device and metric; what long-range dashboards query.",
        key="device_id (UTF-8)",
        value_schema="Rollup",
        retention_days=90,
    ),
    TopicSpec(
        name="anomalies",
        doc="Anomalies scored by the online detectors.",
        key="device_id (UTF-8)",
        value_schema="Anomaly",
        retention_days=30,
    ),
    TopicSpec(
        name="rul",
        doc="Remaining-useful-life predictions per device.",
        key="device_id (UTF-8)",
        value_schema="RulPrediction",
        retention_days=30,
    ),
    TopicSpec(
        name="device-events",
        doc="Device lifecycle and fault events: online/offline, timeouts, exceptions, discovery.",
        key="device_id (UTF-8)",
        value_schema="DeviceEvent",
        retention_days=30,
    ),
    TopicSpec(
        name="alerts",
        doc="Alert state changes; compacted so the latest state of every alert is kept.",
        key="device_id/alert_type (UTF-8)",
        value_schema="Alert",
        cleanup_policy="compact,delete",
        retention_days=90,
    ),
    TopicSpec(
        name="alert-commands",
        doc="Operators' commands on alerts (acknowledge, clear), consumed by the alerts agent.",
        key="device_id (UTF-8)",
        value_schema="AlertCommand",
        retention_days=7,
    ),
    TopicSpec(
        name="deadletter",
        doc="Messages no stage could decode or write, with the original bytes and the reason.",
        key="the original key (bytes)",
        value_schema="DeadLetter",
        retention_days=30,
    ),
    TopicSpec(
        name="otlp-spans",
        doc="OpenTelemetry spans as OTLP protobuf ExportTraceServiceRequest (Collector convention).",
        key="none",
        value_schema=None,
        retention_days=3,
    ),
)


def spec(name: str) -> TopicSpec:
    """The catalog entry called ``name``; a KeyError lists the names that exist."""
    for entry in CATALOG:
        if entry.name == name:
            return entry
    raise KeyError(f"no topic '{name}' in the catalog; known: {', '.join(e.name for e in CATALOG)}")


def topic_name(name: str, settings: TopicSettings) -> str:
    return spec(name).topic(settings)


def markdown_table(settings: TopicSettings) -> str:
    """The catalog as the Markdown table shown in the README (a test keeps them equal)."""
    lines = [
        "| Topic | Key | Value | Cleanup | Retention | What flows |",
        "|---|---|---|---|---|---|",
    ]
    for entry in CATALOG:
        value = f"`{entry.value_schema}`" if entry.value_schema else "OTLP protobuf"
        retention = f"{entry.retention_days:g} d" if entry.retention_days is not None else "forever"
        lines.append(
            f"| `{entry.topic(settings)}` | {entry.key} | {value} | {entry.cleanup_policy} "
            f"| {retention} | {entry.doc} |"
        )
    return "\n".join(lines)
