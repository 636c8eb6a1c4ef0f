"""The FastAPI application: routes, refusals as JSON, and the lifespan that starts the
views' Kafka feed, the pipeline-health poller, the VictoriaMetrics client and the relay of
Alertmanager's silences (:mod:`sentio_iot.api.silence_relay`)."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.security import HTTPAuthorizationCredentials
from starlette.exceptions import HTTPException as StarletteHTTPException

from sentio_iot import __version__
from sentio_iot.api import (
    live,
    routes_admin,
    routes_alerts,
    routes_auth,
    routes_data,
    routes_models,
)
from sentio_iot.api.auth import caller
from sentio_iot.api.dashboard import mount_dashboard
from sentio_iot.api.errors import RateLimited, Refused
from sentio_iot.api.feed import Batch, KafkaFeed
from sentio_iot.api.metrics import render_metrics
from sentio_iot.api.pipeline_health import PipelineHealthMeter, pipeline_report
from sentio_iot.api.services import Services
from sentio_iot.api.silence_relay import SilenceRelay
from sentio_iot.api.views import COMMANDS
from sentio_iot.config import SentioConfig
from sentio_iot.pipeline.probes import Poller

log = logging.getLogger(__name__)
OPENAPI_URL = "/api/openapi.json"
HEALTH_EVERY_S = 5.0
PIPELINE_CHECK_S = 0.5  # how often a new health measurement is looked for


def apply_batch(svc: Services, batch: Batch) -> None:
    """Views first, then the live clients: a resume never misses what was just sent."""
    updates = []
    for kind, record in batch:
        if kind == COMMANDS:
            svc.views.apply_command(record)
        else:
            updates.append(svc.views.apply(kind, record))
    svc.feed_records += len(updates)
    svc.hub.offer(updates)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    svc: Services = app.state.services
    loop = asyncio.get_running_loop()
    svc.loop = loop  # other threads hand records to the views through it
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
    pusher = asyncio.create_task(_push_pipeline(svc))
    tasks = [watcher, pusher]
    relay: SilenceRelay | None = None
    if feed is not None and svc.config.sinks.alertmanager.import_silences:
        # only the API may write alert-commands: it relays Alertmanager's silences as ACKs
        relay = svc.silence_relay = SilenceRelay(svc.config, svc.views, svc.commands)
        tasks.append(asyncio.create_task(relay.run(lambda: svc.feed_ready), name="silences"))
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if relay is not None:
            await relay.close()
        if feed is not None:
            await asyncio.to_thread(feed.stop)
        if svc.health is not None:
            await asyncio.to_thread(svc.health.stop)
        await asyncio.to_thread(svc.commands.close)
        await svc.http.aclose()


def _feed_refused(app: FastAPI) -> str | None:
    """The line of Kafka's refusal of the views' feed, while it lasts."""
    feed: KafkaFeed | None = getattr(app.state, "feed", None)
    return None if feed is None else feed.refused


async def _watch_ready(svc: Services, feed: KafkaFeed | None) -> None:
    if feed is None:
        svc.feed_ready = True
        return
    while not feed.ready.is_set():
        await asyncio.sleep(0.1)
    svc.feed_ready = True
    log.info("views rebuilt records=%d devices=%d", svc.feed_records, len(svc.views.devices))


async def _push_pipeline(svc: Services) -> None:
    """Each new pipeline health measurement to the live clients that subscribed to it."""
    measured = 0.0
    while True:
        await asyncio.sleep(PIPELINE_CHECK_S)
        health = svc.health
        if health is None or health.latest is None or health.measured_at == measured:
            continue
        measured = health.measured_at
        report = pipeline_report(health.latest, svc.feed_ready, svc.feed_records)  # type: ignore[arg-type]
        svc.hub.offer([svc.views.apply_pipeline(report.model_dump(mode="json"))])


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
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400:  # a body that is not JSON: documented as 422 like the rest
        return _refusal_first(request) or JSONResponse(
            {"error": f"body: {exc.detail}"}, status_code=422
        )
    headers = dict(exc.headers or {})
    if exc.status_code == 405:  # Starlette names only the first matching route's methods
        headers["Allow"] = ", ".join(_allowed(request))
    return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code, headers=headers)


def _operations(request: Request) -> dict[str, bool]:
    """The methods the OpenAPI description has at this path, each with whether it needs
    credentials (read from the description: FastAPI's route tree is not public API)."""
    app: FastAPI = request.app
    table: list[tuple[re.Pattern[str], dict[str, bool]]] | None = getattr(
        app.state, "operations", None
    )
    if table is None:
        table = [
            (
                re.compile("^" + re.sub(r"\\{[^}]+\\}", "[^/]+", re.escape(path)) + "$"),
                {m.upper(): bool(op.get("security")) for m, op in methods.items()},
            )
            for path, methods in app.openapi()["paths"].items()
        ]
        app.state.operations = table
    for pattern, methods in table:
        if pattern.match(request.url.path):
            return methods
    return {}


def _allowed(request: Request) -> list[str]:
    """Every method some route serves at this path."""
    return sorted(_operations(request))


def _invalid(request: Request, exc: Exception) -> JSONResponse:
    """422 with the first problem; but a protected route without valid credentials is a
    401 first (FastAPI parses the body before it runs the route's dependencies)."""
    assert isinstance(exc, RequestValidationError)
    refusal = _refusal_first(request)
    if refusal is not None:
        return refusal
    first: dict[str, Any] = exc.errors()[0] if exc.errors() else {}
    where = ".".join(str(p) for p in first.get("loc", ()))
    return JSONResponse({"error": f"{where}: {first.get('msg', 'invalid')}"}, status_code=422)


def _protected(request: Request) -> bool:
    """Whether the operation this request is for needs credentials."""
    return _operations(request).get(request.method, False)


def _refusal_first(request: Request) -> JSONResponse | None:
    """The 401/403 a protected operation gives without valid credentials, else None."""
    if _protected(request):
        try:
            caller(request, _bearer_of(request))
        except Refused as refused:
            return _refused(request, refused)
    return None


def _bearer_of(request: Request) -> HTTPAuthorizationCredentials | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if not scheme or not token:
        return None
    return HTTPAuthorizationCredentials(scheme=scheme, credentials=token.strip())


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's description, with 422 answers as they are sent: a Problem, not FastAPI's
    validation error list (our handler turns those into one line)."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    from fastapi.openapi.utils import get_openapi

    document = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    problem = {"application/json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for methods in document["paths"].values():
        for op in methods.values():
            if "422" in op.get("responses", {}):
                op["responses"]["422"] = {
                    "description": "A parameter or the body is not valid.",
                    "content": problem,
                }
    for name in ("HTTPValidationError", "ValidationError"):
        document.get("components", {}).get("schemas", {}).pop(name, None)
    app.openapi_schema = document
    return document


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
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _invalid)
    for module in (routes_auth, routes_data, routes_alerts, routes_admin, routes_models, live):
        app.include_router(module.router)
    app.include_router(routes_auth.jwks_router)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]

    @app.get("/health", include_in_schema=False)
    async def worker_health() -> JSONResponse:
        """For `sentio run`'s supervisor: 200 once the views are rebuilt, else 503 (and the
        line that says why when Kafka refuses the API's credentials)."""
        refused = _feed_refused(app)
        if refused is not None:
            return JSONResponse({"status": "kafka access refused", "error": refused}, 503)
        ready = app.state.services.feed_ready
        return JSONResponse({"status": "ok" if ready else "starting"}, 200 if ready else 503)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> PlainTextResponse:
        """Prometheus text: records read into the views, live clients, messages sent."""
        return PlainTextResponse(render_metrics(app.state.services))

    @app.get("/api/health", tags=["health"])
    async def health() -> dict[str, Any]:
        """Liveness and whether the views are rebuilt; no authentication, no data."""
        svc: Services = app.state.services
        return {"status": "ok", "views_ready": svc.feed_ready, "kafka_refused": _feed_refused(app)}

    mount_dashboard(app)
    return app
