"""The FastAPI application: routes, refusals as JSON, and the lifespan that starts the
views' Kafka feed, the pipeline-health poller and the VictoriaMetrics client."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from sentio_iot import __version__
from sentio_iot.api import live, routes_admin, routes_alerts, routes_auth, routes_data
from sentio_iot.api.errors import RateLimited, Refused
from sentio_iot.api.feed import Batch, KafkaFeed
from sentio_iot.api.pipeline_health import PipelineHealthMeter
from sentio_iot.api.services import Services
from sentio_iot.config import SentioConfig
from sentio_iot.pipeline.probes import Poller

log = logging.getLogger(__name__)
OPENAPI_URL = "/api/openapi.json"
HEALTH_EVERY_S = 5.0


def apply_batch(svc: Services, batch: Batch) -> None:
    """Views first, then the live clients: a resume never misses what was just sent."""
    updates = [svc.views.apply(kind, record) for kind, record in batch]
    svc.feed_records += len(updates)
    svc.hub.publish(updates)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    svc: Services = app.state.services
    loop = asyncio.get_running_loop()
    svc.http = httpx.AsyncClient(timeout=svc.config.api.history.timeout_s)
    feed: KafkaFeed | None = None
    if app.state.start_feed:
        feed = KafkaFeed(svc.config, loop, lambda batch: apply_batch(svc, batch))
        feed.start()
        app.state.feed = feed
        meter = PipelineHealthMeter(svc.config)
        svc.health = Poller("api-health", meter.measure, HEALTH_EVERY_S)
        svc.health.start()
    watcher = asyncio.create_task(_watch_ready(svc, feed))
    try:
        yield
    finally:
        watcher.cancel()
        if feed is not None:
            await asyncio.to_thread(feed.stop)
        if svc.health is not None:
            await asyncio.to_thread(svc.health.stop)
        await asyncio.to_thread(svc.commands.close)
        await svc.http.aclose()


async def _watch_ready(svc: Services, feed: KafkaFeed | None) -> None:
    if feed is None:
        svc.feed_ready = True
        return
    while not feed.ready.is_set():
        await asyncio.sleep(0.1)
    svc.feed_ready = True
    log.info("views rebuilt records=%d devices=%d", svc.feed_records, len(svc.views.devices))


def _refused(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Refused)
    headers: dict[str, str] = {}
    if exc.status == 401:
        headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
    if isinstance(exc, RateLimited):
        headers["Retry-After"] = str(max(1, round(exc.retry_after_s)))
    log.info("refused status=%d path=%s reason=%s", exc.status, request.url.path, exc.reason)
    return JSONResponse({"error": exc.reason}, status_code=exc.status, headers=headers)


def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    return JSONResponse(
        {"error": str(exc.detail)},
        status_code=exc.status_code,
        headers=getattr(exc, "headers", None),
    )


def _invalid(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    first: dict[str, Any] = exc.errors()[0] if exc.errors() else {}
    where = ".".join(str(p) for p in first.get("loc", ()))
    return JSONResponse({"error": f"{where}: {first.get('msg', 'invalid')}"}, status_code=422)


def create_app(config: SentioConfig, *, start_feed: bool = True) -> FastAPI:
    """The API for ``config``; ``start_feed=False`` leaves the views empty (unit tests)."""
    app = FastAPI(
        title="Sentio IoT API",
        version=__version__,
        description="REST and WebSocket access to the pipeline's live state and history.",
        openapi_url=OPENAPI_URL,
        docs_url="/api/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.services = Services.build(config)
    app.state.start_feed = start_feed
    app.add_exception_handler(Refused, _refused)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _invalid)
    for module in (routes_auth, routes_data, routes_alerts, routes_admin, live):
        app.include_router(module.router)
    app.include_router(routes_auth.jwks_router)

    @app.get("/api/health", tags=["health"])
    async def health() -> dict[str, Any]:
        """Liveness and whether the views are rebuilt; no authentication, no data."""
        svc: Services = app.state.services
        return {"status": "ok", "views_ready": svc.feed_ready}

    return app
