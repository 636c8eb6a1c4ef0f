"""Settings: OpenTelemetry tracing of every worker: sampling and where spans go."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, model_validator

from sentio_iot.settings import Section


class TracingSettings(Section):
    """OpenTelemetry tracing of every worker: sampling and where spans go.

    Spans go by default to the ``otlp-spans`` topic as OTLP protobuf (the OpenTelemetry
    Collector's Kafka exporter convention); ``sentio sink tempo`` forwards them to Tempo.
    """

    enabled: bool = Field(
        default=True,
        description="Record and export spans; false: trace context still travels in Kafka headers, nothing is exported.",
    )
    sampling_ratio: float = Field(
        default=1.0,
        ge=0.0,
        le=1.0,
        description="Share of new traces recorded (parent-based: a stage follows the decision carried in traceparent).",
    )
    exporter: Literal["kafka", "otlp_http", "none"] = Field(
        default="kafka",
        description="kafka: OTLP protobuf on the otlp-spans topic; otlp_http: POST to otlp_endpoint; none: export nothing.",
    )
    otlp_endpoint: str = Field(
        default="http://127.0.0.1:4318/v1/traces",
        description="OTLP/HTTP traces URL used when exporter is otlp_http (Tempo or a Collector).",
        pattern=r"^https?://",
    )
    max_queue_size: int = Field(
        default=2048,
        ge=1,
        le=1_000_000,
        description="Most finished spans waiting for export; beyond it new spans are dropped, never blocking a worker.",
    )
    max_export_batch_size: int = Field(
        default=512,
        ge=1,
        le=100_000,
        description="Most spans in one export (one Kafka message or one OTLP request).",
    )
    export_interval_s: float = Field(
        default=2.0,
        gt=0,
        le=300,
        description="Longest a finished span waits before it is exported.",
    )
    export_timeout_s: float = Field(
        default=10.0,
        gt=0,
        le=300,
        description="How long one export may take before it is given up.",
    )

    @model_validator(mode="after")
    def _batch_fits_queue(self) -> Self:
        if self.max_export_batch_size > self.max_queue_size:
            raise ValueError(
                f"max_export_batch_size ({self.max_export_batch_size}) must not exceed "
                f"max_queue_size ({self.max_queue_size})"
            )
        return self
