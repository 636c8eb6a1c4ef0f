"""An OTLP/HTTP traces receiver for tests, standing in for Tempo (which cannot run here).

    async with OtlpReceiver() as receiver:          # 127.0.0.1, a free port
        ... POST to receiver.url ...                 # http://127.0.0.1:<port>/v1/traces
        spans = await receiver.wait_for_spans(5)     # decoded with opentelemetry-proto

Requests are decoded with the opentelemetry-proto classes, independently of our encoder;
each span is kept flat with its service name. ``receiver.answers`` is a queue of
``(status, body)`` to answer the next requests with (5xx, 400, a partial success); when
empty the receiver answers 200 with an empty ``ExportTraceServiceResponse``.
``receiver.refuse`` (a span -> reason or None) makes it behave as Tempo does with spans it
will not store (too old, trace too large, rate limited): it keeps the others and answers
200 with ``partial_success {rejected_spans, error_message}`` (OTLP spec).
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

PATH = "/v1/traces"


@dataclass(frozen=True)
class ReceivedSpan:
    """One span as Tempo would store it, with ids in hex."""

    service: str
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    kind: int
    attributes: dict[str, Any]
    links: tuple[tuple[str, str], ...]  # (trace_id, span_id)
    resource: dict[str, Any] = field(default_factory=dict)


def attribute_value(value: Any) -> Any:
    which = value.WhichOneof("value")
    if which == "array_value":
        return [attribute_value(item) for item in value.array_value.values]
    return getattr(value, which) if which else None


def flatten(request: ExportTraceServiceRequest) -> list[ReceivedSpan]:
    spans = []
    for resource_spans in request.resource_spans:
        resource = {kv.key: attribute_value(kv.value) for kv in resource_spans.resource.attributes}
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(
                    ReceivedSpan(
                        service=str(resource.get("service.name", "")),
                        name=span.name,
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex(),
                        kind=span.kind,
                        attributes={kv.key: attribute_value(kv.value) for kv in span.attributes},
                        links=tuple(
                            (link.trace_id.hex(), link.span_id.hex()) for link in span.links
                        ),
                        resource=resource,
                    )
                )
    return spans


class OtlpReceiver:
    """aiohttp server on 127.0.0.1 answering OTLP/HTTP protobuf trace exports."""

    def __init__(self) -> None:
        self.requests: list[ExportTraceServiceRequest] = []
        self.content_types: list[str] = []
        self.spans: list[ReceivedSpan] = []
        self.answers: collections.deque[tuple[int, bytes]] = collections.deque()
        self.refuse: Callable[[ReceivedSpan], str | None] = lambda span: None
        self._runner: web.AppRunner | None = None
        self._changed = asyncio.Event()
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{PATH}"

    async def __aenter__(self) -> OtlpReceiver:
        app = web.Application()
        app.router.add_post(PATH, self._traces)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _traces(self, request: web.Request) -> web.Response:
        body = await request.read()
        if self.answers:
            status, answer = self.answers.popleft()
            if status >= 300:
                return web.Response(status=status, body=answer)
        else:
            status, answer = 200, ExportTraceServiceResponse().SerializeToString()
        decoded = ExportTraceServiceRequest()
        decoded.ParseFromString(body)
        self.requests.append(decoded)
        self.content_types.append(request.content_type)
        refused: list[str] = []
        for span in flatten(decoded):
            reason = self.refuse(span)
            if reason is None:
                self.spans.append(span)
            else:
                refused.append(reason)
        if refused and not self.answers:
            partial = ExportTraceServiceResponse()
            partial.partial_success.rejected_spans = len(refused)
            partial.partial_success.error_message = refused[0]
            answer = partial.SerializeToString()
        self._changed.set()
        return web.Response(status=status, body=answer, content_type="application/x-protobuf")

    async def wait_for_spans(self, count: int, timeout_s: float = 30.0) -> list[ReceivedSpan]:
        """At least ``count`` spans received (all of them), or TimeoutError."""
        async with asyncio.timeout(timeout_s):
            while len(self.spans) < count:
                self._changed.clear()
                await self._changed.wait()
        return list(self.spans)

    def trace(self, trace_id: str) -> list[ReceivedSpan]:
        return [span for span in self.spans if span.trace_id == trace_id]
