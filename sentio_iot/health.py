"""``/health`` (JSON) and ``/metrics`` (Prometheus text) for a running worker.

A small aiohttp server on its own thread and event loop, so it answers even while the
worker's loop is busy or blocked (a producer waiting on a full buffer, a sink retrying).
``/health`` answers 200 while the worker works (``status`` ``ok``, or ``degraded`` while a
dependency is away) and 503 while it is ``starting`` or ``stopping``. Shared by the
producers and the sinks.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any

from aiohttp import web

log = logging.getLogger(__name__)

PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"
START_TIMEOUT_S = 10.0
NOT_READY = ("starting", "stopping")


class HealthServer:
    """Serves ``health()`` as JSON and ``metrics()`` as text; port 0 picks a free port."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        health: Callable[[], dict[str, Any]],
        metrics: Callable[[], str],
    ) -> None:
        self.host = host
        self.port = port
        self._health = health
        self._metrics = metrics
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        """Listen; raises OSError when the port is taken."""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="sentio-health", daemon=True
        )
        self._thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self._open(), self._loop).result(START_TIMEOUT_S)
        except BaseException:
            self.stop()
            raise
        log.info("health on %s/health, metrics on %s/metrics", self.url, self.url)

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(
                START_TIMEOUT_S
            )
            self._runner = None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()
        self._loop = self._thread = None

    async def _open(self) -> None:
        app = web.Application()
        app.router.add_get("/health", self._answer_health)
        app.router.add_get("/metrics", self._answer_metrics)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = runner.addresses[0][1]

    async def _answer_health(self, _request: web.Request) -> web.Response:
        body = self._health()
        return web.json_response(body, status=503 if body.get("status") in NOT_READY else 200)

    async def _answer_metrics(self, _request: web.Request) -> web.Response:
        return web.Response(
            body=self._metrics().encode(), headers={"Content-Type": PROMETHEUS_TEXT}
        )
