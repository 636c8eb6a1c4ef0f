"""The sink runtime behind ``sentio sink <backend>``: consume, batch, write, commit.

    Kafka --consume/decode--> Batcher --write (retry)--> backend --> dead letters flushed
          --> offsets committed (in order)

- One consumer group per backend (``sentio-sink-<backend>``; with another topic prefix
  ``<prefix>sink-<backend>``, so pipelines on different prefixes never share a group): several processes share the
  partitions. Offsets are committed only after the writer returned for every record up to
  them (at-least-once); VictoriaMetrics drops identical samples, so a replay adds nothing.
  An idle sink with everything committed also commits its position past transaction
  markers, so its group's lag reaches 0 on topics the stream workers write in transactions.
- A batch closes at ``sinks.batch_size`` records or ``sinks.batch_timeout_s`` of age. Up to
  ``sinks.max_in_flight`` batches are written at once; commits stay in consumption order.
- ``BackendUnavailable`` (or any unexpected error): the batch is written again after an
  exponential backoff with jitter, and consumption pauses (``consumer.pause``) until a write
  succeeds, so memory stays bounded. ``RejectedRecords``: those records go to the
  dead-letter topic with the backend's answer; the rest counts as written once the writer's
  ``verify`` (a backend that answers 2xx and may drop rows) confirmed it stored them; what it
  did not store is dead-lettered too. A batch being verified no longer holds a write slot
  (up to ``UNCONFIRMED_PER_SLOT`` times ``max_in_flight`` batches in all), and its offsets
  wait for the answer.
- SIGINT/SIGTERM (or ``duration_s``): the open batch is written, offsets committed, the
  consumer closed. A backend still down after ``STOP_GRACE_S`` is given up on: nothing
  unwritten is committed, the next start writes it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import random
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import Any

from opentelemetry import trace

from sentio_iot.config import SentioConfig
from sentio_iot.errors import ConfigError, ConnectError, SentioError
from sentio_iot.health import HealthServer
from sentio_iot.plugins import load_sink_plugin
from sentio_iot.registry import SchemaRegistry
from sentio_iot.sinks.batcher import Batch, Batcher
from sentio_iot.sinks.consuming import Polled, SinkConsumer
from sentio_iot.sinks.deadletter import DeadLetters
from sentio_iot.sinks.metrics import SinkMetrics
from sentio_iot.sinks.spans import batch_span
from sentio_iot.sinks.writer import BackendUnavailable, RejectedRecords, Writer

log = logging.getLogger(__name__)

POLL_S = 0.2  # longest a poll waits, so stop requests and due batches are seen quickly
STOP_GRACE_S = 15.0  # how long a stopping sink keeps retrying its last batches
LAG_EVERY_S = 5.0
MARKERS_EVERY_S = 1.0  # how often an idle sink commits its position past transaction markers
UNCONFIRMED_PER_SLOT = 8  # batches written and awaiting verify, per write slot


@dataclass
class InFlight:
    batch: Batch
    task: asyncio.Task[None]
    sent: asyncio.Event  # set once the backend took the batch (verification may still run)


class SinkStopped(SentioError):
    """The sink stopped before the backend took a batch; its offsets stay uncommitted."""


def backoff_delay(attempt: int, first_s: float, max_s: float, rng: random.Random) -> float:
    """Exponential backoff with "equal jitter": half fixed, half random, capped at ``max_s``."""
    ceiling: float = min(max_s, first_s * 2.0 ** max(0, attempt - 1))
    return ceiling / 2 + float(rng.uniform(0, ceiling / 2))


class SinkRuntime:
    """Runs one backend's writer over its topics until stopped."""

    def __init__(
        self,
        config: SentioConfig,
        backend: str,
        *,
        writer: Writer | None = None,
        group_id: str | None = None,
        progress_every_s: float = 10.0,
        health_port: int | None = None,
    ) -> None:
        self.config = config
        self.backend = backend
        self.settings = config.sinks
        plugin = load_sink_plugin(backend) if writer is None or health_port is None else None
        self.writer: Writer = writer if writer is not None else plugin.load_writer()(config)  # type: ignore[union-attr]
        if not self.writer.topics:
            raise ConfigError(f"sink {backend}: its writer consumes no topics")
        if health_port is None:
            assert plugin is not None
            health_port = int(getattr(config.sinks, plugin.section_name).health_port)
        self.health_port = health_port
        self.group_id = group_id or default_group_id(config.topics.prefix, backend)
        self.progress_every_s = progress_every_s
        self.metrics = SinkMetrics(backend)
        self.tracer = trace.get_tracer("sentio_iot.sinks")
        self.batcher = Batcher(self.settings.batch_size, self.settings.batch_timeout_s)
        self.state = "starting"
        self.backend_down = False
        self.first_consumed_at: float | None = None  # time.monotonic() of the first record
        self._in_flight: collections.deque[InFlight] = collections.deque()
        self._stop = asyncio.Event()
        self._stop_deadline: float | None = None
        self._signal: str | None = None
        self._rng = random.Random()
        self._consumer: SinkConsumer | None = None
        self._dead_letters: DeadLetters | None = None

    # -- running -----------------------------------------------------------------------------

    async def run(self, duration_s: float | None = None) -> None:
        """Consume and write until SIGINT/SIGTERM, ``duration_s`` or :meth:`stop`."""
        loop = asyncio.get_running_loop()
        restore = self._install_signal_handlers(loop)
        health = self._start_health()
        registry = SchemaRegistry(self.config.schema_registry)
        try:
            await self.writer.start()
            self._dead_letters = DeadLetters(self.config, registry, self.backend)
            self._consumer = SinkConsumer(
                self.config,
                registry,
                group_id=self.group_id,
                catalog_names=self.writer.topics,
                dead_letters=self._dead_letters,
                on_revoke=self.batcher.drop_partitions,
            )
            await self._consumer.call(self._consumer.subscribe)
            if duration_s is not None:
                loop.call_later(duration_s, self.stop)
            self.state = "ok"
            log.info(
                "sink %s: group %s, topics %s",
                self.backend,
                self.group_id,
                ", ".join(self._consumer.topics),
            )
            progress = asyncio.create_task(self._report_progress(), name="sink-progress")
            try:
                await self._consume_until_stopped()
            finally:
                progress.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await progress
        finally:
            self.state = "stopping"
            await self._close(registry)
            if health is not None:
                health.stop()
            restore()
            self._log_totals()

    def stop(self) -> None:
        self._stop.set()

    async def assigned(self) -> list[tuple[str, int]]:
        """The (topic, partition) pairs this process consumes now (none before it joined)."""
        consumer = self._consumer
        if consumer is None:
            return []
        return await consumer.call(consumer.assigned)

    async def _consume_until_stopped(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        last_lag = last_markers = 0.0
        while not self._stop.is_set():
            await self._settle()
            full = self._full()
            if full:
                # Wait for the oldest write rather than on a paused consumer, then poll at
                # once: the group must hear from us even while a write retries for minutes.
                await asyncio.wait([self._in_flight[0].task], timeout=POLL_S)
                await self._settle()
                full = self._full()
            pause = self.backend_down or full
            now = time.monotonic()
            timeout = 0.0 if full else min(POLL_S, self.batcher.time_left(now))
            polled = await consumer.call(consumer.poll, self.batcher.room(), timeout, pause)
            self._add(polled)
            if self.batcher.is_due(time.monotonic()) and not pause:
                self._launch()
            idle = not (polled.records or polled.handled or self._in_flight or pause)
            if idle and self.batcher.empty and now - last_markers >= MARKERS_EVERY_S:
                await consumer.call(consumer.commit_markers)  # everything consumed is committed
                last_markers = now
            if now - last_lag >= LAG_EVERY_S:
                self.metrics.set_lag(await consumer.call(consumer.lag))
                last_lag = now
        log.info("stopping (%s): writing what was consumed", self._signal or "requested")
        self.state = "stopping"
        consumer.stopping = True
        self._stop_deadline = time.monotonic() + STOP_GRACE_S
        self._launch()
        while self._in_flight:
            await asyncio.wait([self._in_flight[0].task])
            await self._settle()

    def _full(self) -> bool:
        sending = sum(1 for flight in self._in_flight if not flight.sent.is_set())
        limit = self.settings.max_in_flight
        return sending >= limit or len(self._in_flight) >= limit * UNCONFIRMED_PER_SLOT

    def _add(self, polled: Polled) -> None:
        now = time.monotonic()
        if self.first_consumed_at is None and (polled.records or polled.handled):
            self.first_consumed_at = now
        for record in polled.records:
            self.batcher.add(record, now)
        for topic, partition, offset in polled.handled:
            self.batcher.cover(topic, partition, offset, now)
        if polled.dead_lettered:
            self.metrics.dead_lettered(polled.dead_lettered)

    def _launch(self) -> None:
        batch = self.batcher.take()
        if batch is None:
            return
        sent = asyncio.Event()
        task = asyncio.create_task(self._write(batch, sent), name=f"write-{self.backend}")
        self._in_flight.append(InFlight(batch, task, sent))

    async def _settle(self) -> None:
        """Commit, in order, every batch whose write finished; stop at the first still running."""
        consumer, dead_letters = self._consumer, self._dead_letters
        assert consumer is not None and dead_letters is not None
        while self._in_flight and self._in_flight[0].task.done():
            done = self._in_flight.popleft()
            try:
                done.task.result()
            except SinkStopped as exc:
                log.warning("%s; the next start writes it again", exc)
                # Later batches must not be committed past this one: give them up too.
                await self._give_up_in_flight()
                return
            if not await self._flush_dead_letters(dead_letters):
                await self._give_up_in_flight()
                return
            await consumer.call(consumer.commit, done.batch.next_offsets)

    async def _flush_dead_letters(self, dead_letters: DeadLetters) -> bool:
        """Wait until Kafka has every dead letter (offsets must not pass one it lacks).

        False when the sink is stopping and its grace ran out first.
        """
        while True:
            try:
                await asyncio.to_thread(dead_letters.flush)
                return True
            except ConnectError as exc:
                if self._stop_deadline is not None and time.monotonic() >= self._stop_deadline:
                    log.warning("dead letters unconfirmed at stop (%s): offsets not committed", exc)
                    return False
                log.warning("dead letters unconfirmed (%s): trying again", exc)
                await asyncio.sleep(1.0)

    async def _give_up_in_flight(self) -> None:
        """Cancel (and await) every write still running: their offsets stay uncommitted."""
        for flight in self._in_flight:
            flight.task.cancel()
        for flight in self._in_flight:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await flight.task
        self._in_flight.clear()

    async def _write(self, batch: Batch, sent: asyncio.Event | None = None) -> None:
        """Write until the backend took the batch, then verify it; SinkStopped when stopping
        ran out of time."""
        sent = sent or asyncio.Event()
        records = batch.records
        if not records:
            sent.set()
            return
        started, rejected, receipt = await self._send(batch)
        sent.set()
        if receipt is not None:
            rejected.update(await self._verify(receipt))
        if rejected:
            self._dead_letter_rejected(batch, RejectedRecords(rejected))
        self.metrics.batch_written(len(records) - len(rejected), time.monotonic() - started)

    async def _verify(self, receipt: object) -> dict[int, str]:
        attempt = 0
        while True:
            attempt += 1
            try:
                return dict(await self.writer.verify(receipt))
            except Exception as exc:
                wait = self._retry_wait(attempt, None)
                log.warning(
                    "%s: cannot verify a written batch yet (%s): asking again in %.1f s",
                    self.backend,
                    exc,
                    wait,
                )
            await self._wait_retry(wait)

    async def _send(self, batch: Batch) -> tuple[float, dict[int, str], object | None]:
        """Write until the backend took the batch: (start, rejected, receipt)."""
        records = batch.records
        attempt = 0
        while True:
            attempt += 1
            started = time.monotonic()
            span = batch_span(self.tracer, self.backend, records)
            try:
                with trace.use_span(span, end_on_exit=True):
                    receipt = await self.writer.write(records)
            except RejectedRecords as exc:
                result = (started, dict(exc.reasons), exc.receipt)
                break
            except BackendUnavailable as exc:
                wait = self._retry_wait(attempt, exc.retry_after_s)
                log.warning("%s unavailable (%s): retrying in %.1f s", self.backend, exc, wait)
            except Exception as exc:
                wait = self._retry_wait(attempt, None)
                log.error(
                    "%s write failed unexpectedly: retrying in %.1f s",
                    self.backend,
                    wait,
                    exc_info=exc if attempt == 1 else None,
                )
            else:
                result = (started, {}, receipt)
                break
            self.metrics.retried()
            self.backend_down = True
            await self._wait_retry(wait)
        if self.backend_down:
            log.info("%s is back: batch written after %d attempt(s)", self.backend, attempt)
        self.backend_down = False
        return result

    def _retry_wait(self, attempt: int, retry_after_s: float | None) -> float:
        if retry_after_s is not None:
            return min(retry_after_s, self.settings.retry_backoff_max_s)
        return backoff_delay(
            attempt,
            self.settings.retry_backoff_initial_s,
            self.settings.retry_backoff_max_s,
            self._rng,
        )

    async def _wait_retry(self, wait: float) -> None:
        if self._stop_deadline is None:
            await asyncio.sleep(wait)
            return
        left = self._stop_deadline - time.monotonic()
        if left <= 0:
            raise SinkStopped(f"stopped while {self.backend} was unavailable: batch not committed")
        await asyncio.sleep(min(wait, left))

    def _dead_letter_rejected(self, batch: Batch, rejected: RejectedRecords) -> None:
        assert self._dead_letters is not None
        for index, reason in sorted(rejected.reasons.items()):
            record = batch.records[index]
            self._dead_letters.send_record(record, reason, "RejectedRecords")
        self.metrics.dead_lettered(len(rejected.reasons))
        log.warning(
            "%s rejected %d record(s); sent to the dead-letter topic (first: %s)",
            self.backend,
            len(rejected.reasons),
            next(iter(rejected.reasons.values()), ""),
        )

    async def _close(self, registry: SchemaRegistry) -> None:
        await self._give_up_in_flight()
        try:
            await self.writer.close()
        except Exception:
            log.exception("%s: closing the writer failed", self.backend)
        if self._dead_letters is not None:
            await asyncio.to_thread(self._dead_letters.close)
        if self._consumer is not None:
            await self._consumer.call(self._consumer.close)
        registry.close()

    # -- reporting ---------------------------------------------------------------------------

    def health_report(self) -> dict[str, Any]:
        """``status``: starting, ok, degraded (backend unavailable, retrying), stopping."""
        status = "degraded" if self.state == "ok" and self.backend_down else self.state
        return {
            "status": status,
            "sink": self.backend,
            "group": self.group_id,
            "records_written": self.metrics.records_written,
            "batches_in_flight": len(self._in_flight),
            "paused": bool(self._consumer and self._consumer.paused),
        }

    def _start_health(self) -> HealthServer | None:
        if self.health_port == 0:
            return None
        server = HealthServer(
            self.settings.health_host,
            self.health_port,
            health=self.health_report,
            metrics=lambda: self.metrics.render() + self.writer.metrics_text(),
        )
        try:
            server.start()
        except OSError as exc:
            log.error(
                "cannot serve /health on %s:%d (%s): running without it (fix: set sinks.%s.health_port)",
                self.settings.health_host,
                self.health_port,
                exc,
                self.backend,
            )
            return None
        return server

    async def _report_progress(self) -> None:
        last = self.metrics.records_written
        while True:
            await asyncio.sleep(self.progress_every_s)
            now = self.metrics.records_written
            log.info(
                "progress: %.1f records/s written to %s (%d in all), %d batch(es), %d retries, %d dead-lettered",
                (now - last) / self.progress_every_s,
                self.backend,
                now,
                self.metrics.batches,
                self.metrics.retries,
                self.metrics.deadletter,
            )
            last = now

    def _log_totals(self) -> None:
        log.info(
            "stopped: %d record(s) written to %s in %d batch(es), %d retries, %d dead-lettered",
            self.metrics.records_written,
            self.backend,
            self.metrics.batches,
            self.metrics.retries,
            self.metrics.deadletter,
        )

    # -- signals -----------------------------------------------------------------------------

    def _install_signal_handlers(self, loop: asyncio.AbstractEventLoop) -> Callable[[], None]:
        if threading.current_thread() is not threading.main_thread():
            return lambda: None

        def handle(signum: int, _frame: FrameType | None) -> None:
            self._signal = signal.Signals(signum).name
            loop.call_soon_threadsafe(self._stop.set)

        previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}

        def restore() -> None:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

        return restore


def default_group_id(topic_prefix: str, backend: str) -> str:
    """``sentio-sink-<backend>`` for the default prefix, else one named after the prefix."""
    if topic_prefix == "sentio.":
        return f"sentio-sink-{backend}"
    return f"{topic_prefix}sink-{backend}"
