"""Tempo writer: spans from the ``otlp-spans`` topic to Tempo's OTLP/HTTP endpoint.

Each record is one OTLP protobuf ``ExportTraceServiceRequest`` (the Collector Kafka
exporter convention; every worker puts its spans there, see ``sentio_iot.tracing``). A
batch goes out as one request: the request has a single repeated field, so the records'
bytes concatenated *are* the merged request (protobuf merges repeated fields on parse), and
nothing is re-encoded. Each record is parsed once anyway, so bytes that are not a request go
to the dead-letter topic instead of spoiling the batch.

Answers: 2xx taken, unless it carries a ``partial_success`` with rejected spans (Tempo kept
the others and dropped those for good): then, as for another 4xx, the batch is halved until
the records holding the rejected spans are found, and they go to the dead-letter topic with
Tempo's message instead of counting as written (the spans of theirs Tempo kept are sent
again on a replay; Tempo combines a span it already holds). 429/5xx/connection errors →
BackendUnavailable.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from google.protobuf.message import DecodeError  # type: ignore[import-untyped]
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from sentio_iot.config import SentioConfig
from sentio_iot.plugins import SinkPlugin
from sentio_iot.sinks.halving import refused_records
from sentio_iot.sinks.http_endpoint import HttpEndpoint
from sentio_iot.sinks.writer import RejectedRecords, SinkRecord, Writer

log = logging.getLogger(__name__)

FIELD = "sinks.tempo"
HEADERS = {"Content-Type": "application/x-protobuf"}


def parse_request(record: SinkRecord) -> tuple[bytes, ExportTraceServiceRequest]:
    """The record's bytes and the request they hold; ValueError when they hold none."""
    value = record.value
    if not isinstance(value, bytes):
        raise ValueError(f"{record.catalog_name} records are raw OTLP bytes, got a decoded value")
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(value)
    except DecodeError as exc:
        raise ValueError(f"not an OTLP ExportTraceServiceRequest: {exc}") from exc
    return value, request


def span_count(request: ExportTraceServiceRequest) -> int:
    return sum(
        len(scope.spans) for resource in request.resource_spans for scope in resource.scope_spans
    )


class TempoWriter(Writer):
    """Forwards batches of OTLP span requests to one OTLP/HTTP traces endpoint."""

    topics = ("otlp-spans",)

    def __init__(self, config: SentioConfig) -> None:
        self.settings = config.sinks.tempo
        self.startup_timeout_s = config.sinks.startup_timeout_s
        headers = {"X-Scope-OrgID": self.settings.tenant_id} if self.settings.tenant_id else {}
        self.endpoint = HttpEndpoint(
            FIELD, auth=self.settings.auth, timeout_s=self.settings.timeout_s, headers=headers
        )
        self.spans_written = 0
        self.spans_rejected = 0  # dropped by the backend in partial successes

    async def start(self) -> None:
        empty = ExportTraceServiceRequest().SerializeToString()
        await self.endpoint.probe(self.settings.url, empty, HEADERS, self.startup_timeout_s)
        log.info("forwarding spans to %s", self.settings.url)

    async def write(self, batch: Sequence[SinkRecord]) -> None:
        payloads: dict[int, bytes] = {}
        spans: dict[int, int] = {}
        reasons: dict[int, str] = {}
        for index, record in enumerate(batch):
            try:
                payloads[index], request = parse_request(record)
            except ValueError as exc:
                reasons[index] = str(exc)
                continue
            spans[index] = span_count(request)

        async def send(subset: list[int]) -> str | None:
            body = b"".join(payloads[i] for i in subset)
            response = await self.endpoint.post(self.settings.url, body, HEADERS)
            if response.status_code >= 300:
                return f"{self.settings.url} answered {response.status_code}: {response.text.strip()[:500]}"
            sent = sum(spans[i] for i in subset)
            return self._check_partial_success(response.content, sent, len(subset) == 1)

        reasons.update(await refused_records(sorted(payloads), send))
        if reasons:
            raise RejectedRecords(reasons)

    def _check_partial_success(self, body: bytes, sent: int, alone: bool) -> str | None:
        """None when every span was taken; else Tempo's partial-success answer (``alone``:
        for one record, which then goes to the dead letters)."""
        answer = ExportTraceServiceResponse()
        try:
            answer.ParseFromString(body)
        except DecodeError:
            log.debug("%s answered with a body that is not an ExportTraceServiceResponse", FIELD)
        rejected = answer.partial_success.rejected_spans
        if not rejected:
            self.spans_written += sent
            return None
        message = answer.partial_success.error_message or "no reason given"
        log.warning("%s dropped %d of %d span(s): %s", self.settings.url, rejected, sent, message)
        if alone:
            self.spans_rejected += rejected
        return (
            f"{self.settings.url} answered 2xx but rejected {rejected} of {sent} span(s) "
            f"(partial_success): {message}"
        )

    async def close(self) -> None:
        await self.endpoint.close()


PLUGIN = SinkPlugin(
    name="tempo",
    summary="Spans from the otlp-spans topic to Tempo (OTLP/HTTP protobuf)",
    settings_model="sentio_iot.settings.sinks:TempoSinkSettings",
    writer="sentio_iot.sinks.tempo:TempoWriter",
)
