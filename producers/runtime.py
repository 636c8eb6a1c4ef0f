"""The producer runtime behind ``sentio produce <protocol>``.

One connector per ``producers.<protocol>[i]`` entry, all publishing through one
:class:`Publisher`. Each connector is supervised: ``connect()`` then ``run()``; if ``run()``
raises anything but ConfigError, the error is logged (the first with its traceback, repeats
as one line with a count), the connector is closed and started again after an exponential
backoff (1 s doubling to 60 s, back to 1 s after a run that lasted a minute). A ConfigError
stops the producer. A connector whose ``run()`` returns is done; when all are, the producer
stops.

SIGINT or SIGTERM (or ``duration_s``) stops it cleanly: connectors are closed, the Kafka
producer is flushed, and what Kafka did not confirm stays in the disk buffer for the next
start. A progress line with rates is logged every ``progress_every_s`` seconds, and
``/health`` and ``/metrics`` are served on ``producer.health_port`` (0: not at all).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import Any

from pydantic import BaseModel

from sentio_iot.config import SentioConfig
from sentio_iot.errors import ConfigError, SentioError, TransientError
from sentio_iot.plugins import load_connector_plugin
from sentio_iot.producers.connector import Connector, ConnectorContext
from sentio_iot.producers.forwarder import Mode
from sentio_iot.producers.health import HealthServer
from sentio_iot.producers.publisher import Publisher

log = logging.getLogger(__name__)

BACKOFF_FIRST_S = 1.0
BACKOFF_MAX_S = 60.0
HEALTHY_RUN_S = 60.0  # a run this long resets the backoff
CLOSE_TIMEOUT_S = 10.0
FLUSH_TIMEOUT_S = 10.0
REFUSAL_CHECK_S = 0.2


@dataclass
class Supervised:
    """One connector and how it is doing: starting, running, restarting, finished, failed."""

    label: str
    connector: Connector
    state: str = "starting"
    restarts: int = 0
    last_error: str | None = None
    repeats: int = 0


def label_of(protocol: str, index: int, entry: BaseModel) -> str:
    for field in ("name", "device_id", "id"):
        value = getattr(entry, field, None)
        if isinstance(value, str) and value:
            return f"{protocol}[{index}] {value}"
    return f"{protocol}[{index}]"


class ProducerRuntime:
    """Runs every configured connector of one protocol until stopped."""

    def __init__(
        self,
        config: SentioConfig,
        protocol: str,
        *,
        progress_every_s: float = 30.0,
        publisher: Publisher | None = None,
    ) -> None:
        self.config = config
        self.protocol = protocol
        self.progress_every_s = progress_every_s
        self.publisher = publisher or Publisher(config, protocol)
        self.supervised = self._build_connectors()
        self.health: HealthServer | None = None
        self._stop = asyncio.Event()
        self._stopping = False
        self._fatal: SentioError | None = None  # raised once stopped
        self._signal: str | None = None

    def _build_connectors(self) -> list[Supervised]:
        """Every entry validated and its connector built; ConfigError before anything starts."""
        entries = self.config.producers.get(self.protocol) or []
        if not entries:
            raise ConfigError(
                f"no devices configured under producers.{self.protocol}: nothing to produce"
            )
        plugin = load_connector_plugin(self.protocol)
        model = plugin.load_config_model()
        connector_class = plugin.load_connector()
        context = ConnectorContext(tenant=self.config.tenant, site=self.config.site)
        built = []
        for index, raw in enumerate(entries):
            entry = model.model_validate(raw)  # load_config checked it; this gives the model
            connector = connector_class(entry, self.publisher, context)
            built.append(Supervised(label_of(self.protocol, index, entry), connector))
        return built

    # -- running -----------------------------------------------------------------------------

    async def run(self, duration_s: float | None = None) -> None:
        """Run until SIGINT/SIGTERM, ``duration_s``, or every connector finished."""
        loop = asyncio.get_running_loop()
        restore = self._install_signal_handlers(loop)
        try:
            self._start_health()
            if not await self._start_publisher():
                return
            tasks = [asyncio.create_task(self._supervise(s), name=s.label) for s in self.supervised]
            progress = asyncio.create_task(self._report_progress(), name="progress")
            if duration_s is not None:
                loop.call_later(duration_s, self._stop.set)
            done = asyncio.create_task(self._all_finished(tasks))
            watch = asyncio.create_task(self._watch_refusal(), name="refusal")
            await self._stop.wait()
            watch.cancel()
            log.info(
                "stopping (%s): closing %d connector(s)", self._signal or "requested", len(tasks)
            )
            self._stopping = True
            for task in (*tasks, progress, done):
                task.cancel()
            await asyncio.wait([*tasks, progress, done], timeout=CLOSE_TIMEOUT_S + 1)
        finally:
            if self.publisher.started:  # flush; what Kafka did not confirm stays in the buffer
                await asyncio.to_thread(self.publisher.close, FLUSH_TIMEOUT_S)
            if self.health is not None:
                self.health.stop()
            restore()
        self._log_totals()
        if self._fatal is not None:
            raise self._fatal

    async def _start_publisher(self) -> bool:
        """Register schemas (retrying while the registry is away), then start publishing."""
        delay = BACKOFF_FIRST_S
        while not self._stop.is_set():
            try:
                await asyncio.to_thread(self.publisher.register_schemas)
                break
            except TransientError as exc:
                log.warning("schema registry unavailable (%s): retrying in %.0f s", exc, delay)
                await self._sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX_S)
        else:
            return False
        await asyncio.to_thread(self.publisher.start)
        return True

    def _start_health(self) -> None:
        settings = self.config.producer
        if settings.health_port == 0:
            return
        server = HealthServer(
            settings.health_host,
            settings.health_port,
            health=self.health_report,
            metrics=self.publisher.metrics.render,
        )
        try:
            server.start()
        except OSError as exc:
            log.error(
                "cannot serve /health on %s:%d (%s): running without it (fix: set producer.health_port)",
                settings.health_host,
                settings.health_port,
                exc,
            )
            return
        self.health = server

    async def _supervise(self, supervised: Supervised) -> None:
        loop = asyncio.get_running_loop()
        delay = BACKOFF_FIRST_S
        while True:
            began = loop.time()
            try:
                await supervised.connector.connect()
                supervised.state = "running"
                await supervised.connector.run()
                supervised.state = "finished"
                log.info("%s finished", supervised.label)
                return
            except ConfigError as exc:
                supervised.state = "failed"
                log.error(
                    "%s: configuration error, stopping the producer: %s", supervised.label, exc
                )
                self._fatal = exc
                self._stop.set()
                return
            except Exception as exc:
                self._log_failure(supervised, exc, delay)
            finally:
                await self._close(supervised)
            if loop.time() - began >= HEALTHY_RUN_S:
                delay = BACKOFF_FIRST_S
            supervised.state = "restarting"
            supervised.restarts += 1
            await asyncio.sleep(delay)
            delay = min(delay * 2, BACKOFF_MAX_S)

    def _log_failure(self, supervised: Supervised, exc: Exception, delay: float) -> None:
        text = f"{type(exc).__name__}: {exc}"
        if text != supervised.last_error:
            supervised.last_error, supervised.repeats = text, 0
            log.error("%s failed; restarting in %.0f s", supervised.label, delay, exc_info=exc)
            return
        supervised.repeats += 1
        log.error(
            "%s failed again (%s, %d time(s) in a row); restarting in %.0f s",
            supervised.label,
            text,
            supervised.repeats + 1,
            delay,
        )

    async def _close(self, supervised: Supervised) -> None:
        try:
            await asyncio.wait_for(supervised.connector.close(), CLOSE_TIMEOUT_S)
        except Exception:
            log.exception("%s: close failed", supervised.label)

    async def _watch_refusal(self) -> None:
        """Stop when Kafka's ACLs refuse a topic: bad configuration, no outage (the message
        stays in the buffer for a start with the right credentials)."""
        while self.publisher.refusal is None:
            await asyncio.sleep(REFUSAL_CHECK_S)
        self._fatal = self.publisher.refusal
        self._stop.set()

    async def _all_finished(self, tasks: list[asyncio.Task[None]]) -> None:
        await asyncio.gather(*tasks, return_exceptions=True)
        if not self._stopping:
            log.info("every connector finished")
            self._stop.set()

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

    # -- reporting ---------------------------------------------------------------------------

    def health_report(self) -> dict[str, Any]:
        """``status``: starting (schemas not registered yet), ok, degraded (buffering), stopping."""
        status = self.publisher.status()
        if self._stopping:
            overall = "stopping"
        elif not self.publisher.started:
            overall = "starting"
        else:
            overall = "ok" if status.mode is Mode.DIRECT else "degraded"
        return {
            "status": overall,
            "protocol": self.protocol,
            "kafka_connected": status.kafka_connected,
            "mode": status.mode.value,
            "buffered_messages": status.buffered_messages,
            "buffered_bytes": status.buffered_bytes,
            "connectors": {
                s.label: {"state": s.state, "restarts": s.restarts, "last_error": s.last_error}
                for s in self.supervised
            },
        }

    async def _report_progress(self) -> None:
        metrics = self.publisher.metrics
        families = (metrics.polled, metrics.published, metrics.events)
        last = [metrics.total(f) for f in families]
        while True:
            await asyncio.sleep(self.progress_every_s)
            now = [metrics.total(f) for f in families]
            polled, published, events = (
                (b - a) / self.progress_every_s for a, b in zip(last, now, strict=True)
            )
            last = now
            status = self.publisher.status()
            log.info(
                "progress: %.1f readings/s polled, %.1f/s published, %.1f events/s; buffer %d message(s) (%s); %d dropped; %d/%d connector(s) running",
                polled,
                published,
                events,
                status.buffered_messages,
                status.mode.value,
                metrics.total(metrics.dropped),
                self._running(),
                len(self.supervised),
            )

    def _log_totals(self) -> None:
        metrics = self.publisher.metrics
        log.info(
            "stopped: %d reading(s) polled, %d published, %d event(s) published, %d buffered, %d dropped, %d dead-lettered",
            metrics.total(metrics.polled),
            metrics.total(metrics.published),
            metrics.total(metrics.events),
            metrics.total(metrics.buffered),
            metrics.total(metrics.dropped),
            metrics.total(metrics.dead_lettered),
        )

    def _running(self) -> int:
        return sum(s.state == "running" for s in self.supervised)

    # -- signals -----------------------------------------------------------------------------

    def _install_signal_handlers(self, loop: asyncio.AbstractEventLoop) -> Callable[[], None]:
        """SIGINT/SIGTERM stop the producer, even while an emitter waits on a full buffer."""
        if threading.current_thread() is not threading.main_thread():
            return lambda: None

        def handle(signum: int, _frame: FrameType | None) -> None:
            self._signal = signal.Signals(signum).name  # logged by run(), not in the handler
            self.publisher.stop_waiting()
            loop.call_soon_threadsafe(self._stop.set)

        previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}

        def restore() -> None:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

        return restore
