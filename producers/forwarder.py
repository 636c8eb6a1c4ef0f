"""Store-and-forward: Kafka messages delivered in order, through a disk buffer while Kafka is away.

The forwarder is in one of three modes:

- ``direct``: messages go to librdkafka; a poll thread serves the delivery reports.
- ``buffering``: Kafka is unreachable (librdkafka reported all brokers down, or a delivery
  failed with a timeout or another transient error). New messages go to the disk buffer;
  failed deliveries go there too, under the number they got when sent, so the buffer stays
  in send order. On a failed delivery, whatever still waits in librdkafka's queue is purged
  into the buffer as well, so nothing queued later can overtake it.
- ``replaying``: once every message handed to librdkafka has its outcome and a metadata
  probe finds the broker and the topics, the buffer is produced in order; new messages keep
  going behind it until it is drained, then the forwarder returns to ``direct``.

A forwarder started with data in its buffer starts in ``buffering`` and sends that first.

A message Kafka will refuse for good never enters the buffer: one larger than the producer's
``message.max.bytes`` (key, value and headers, as librdkafka counts) is handed to
``on_rejected`` (the publisher dead-letters it, bounded) in every mode, before it could be
buffered; a row that does get refused while replaying (a buffer written by an older
version) is taken out of the buffer and rejected the same way, so a replay never wedges.
Messages librdkafka is still retrying when all brokers go down are left to it: idempotence
removes the duplicates its retries can make, which a replay from the buffer could not.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from sentio_iot.errors import ConnectError
from sentio_iot.kafka import ACCESS_REFUSED, LoginRefusals, access_refused, probe_access
from sentio_iot.producers.buffer import (
    AppendResult,
    BufferedMessage,
    DiskBuffer,
    Headers,
    OutageLog,
)
from sentio_iot.producers.metrics import ProducerMetrics

log = logging.getLogger(__name__)

# Delivery errors that mean "Kafka cannot take it now": the message goes to the buffer.
TRANSIENT_ERRORS = frozenset(
    {
        KafkaError._MSG_TIMED_OUT,
        KafkaError._TIMED_OUT,
        KafkaError._TRANSPORT,
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError._PURGE_QUEUE,
        KafkaError._PURGE_INFLIGHT,
        KafkaError._UNKNOWN_TOPIC,  # topics not applied yet: keep the data until they are
        KafkaError._UNKNOWN_PARTITION,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.NOT_ENOUGH_REPLICAS,
        KafkaError.NOT_ENOUGH_REPLICAS_AFTER_APPEND,
        KafkaError.REQUEST_TIMED_OUT,
    }
)
PURGED = frozenset({KafkaError._PURGE_QUEUE, KafkaError._PURGE_INFLIGHT})
PROBE_EVERY_S = 1.0
DEFAULT_MESSAGE_MAX_BYTES = 1_000_000  # librdkafka's message.max.bytes
REPLAY_BATCH = 500
BLOCK_WAIT_S = 0.5

# Called for a message Kafka refused for good (too large, not authorized).
Rejected = Callable[[str, bytes | None, bytes, Headers, KafkaError], None]  # topic, key, value, ...


class Mode(StrEnum):
    DIRECT = "direct"
    BUFFERING = "buffering"
    REPLAYING = "replaying"


@dataclass(frozen=True)
class ForwarderStatus:
    mode: Mode
    kafka_connected: bool
    buffered_messages: int
    buffered_bytes: int
    in_flight: int


def is_transient(error: KafkaError) -> bool:
    """Kafka cannot take it now: the message is kept in the buffer. An ACL refusal too: the
    forwarder then says so (``refusal``) and the producer stops; the next start, with the
    right credentials, sends it."""
    return (
        error.code() in TRANSIENT_ERRORS
        or error.code() in ACCESS_REFUSED
        or bool(error.retriable())
    )


def device_of(key: bytes | None) -> str:
    return key.decode("utf-8", "replace") if key else ""


def _header_list(message: Message) -> Headers:
    headers = message.headers() or []
    return list(headers.items()) if isinstance(headers, dict) else headers


def kafka_size(key: bytes | None, value: bytes, headers: Headers) -> int:
    """A message's size as librdkafka compares it with ``message.max.bytes`` (a little more:
    headers are counted with room for their length prefixes, so none passes here and fails there)."""
    named = sum(len(name) + len(data or b"") + 16 for name, data in headers or ())
    return len(value) + len(key or b"") + named


def oversize_error(size: int, limit: int) -> KafkaError:
    return KafkaError(
        KafkaError.MSG_SIZE_TOO_LARGE,
        f"message of {size:,} bytes is larger than the producer's message.max.bytes ({limit:,})",
    )


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Forwarder:
    """Sends to Kafka in order without losing messages; thread-safe. start, send, close."""

    def __init__(
        self,
        producer_config: dict[str, Any],
        buffer: DiskBuffer,
        *,
        records: dict[str, str],
        metrics: ProducerMetrics,
        on_rejected: Rejected,
    ) -> None:
        self.buffer = buffer
        self.records = records  # topic -> record kind ("reading", "event", "dead_letter")
        self.metrics = metrics
        # A refused login at start is bad configuration (start() raises), not an outage.
        self._login = LoginRefusals(producer_config, then=self._on_error)
        self._config = {**producer_config, "error_cb": self._login, "logger": self._client_log()}
        self._starting = True
        # Kafka refused the login or the ACLs a topic, while running: stop the producer
        self.refusal: ConnectError | None = None
        self._on_rejected = on_rejected
        self.max_message_bytes = int(
            producer_config.get("message.max.bytes", DEFAULT_MESSAGE_MAX_BYTES)
        )
        self._producer: Producer | None = None
        self._lock = threading.Lock()
        self._mode = Mode.DIRECT
        self._connected = False
        self._seq = buffer.last_id()
        self._in_flight = 0
        self._acked: list[int] = []  # replayed rows Kafka confirmed, deleted by the poll thread
        self._purge_wanted = False
        self._cursor = 0
        self._next_probe = 0.0
        self._outage = OutageLog(buffer.path, policy=buffer.policy.value)
        self._rejections: dict[str, int] = {}
        self._closed = False
        self._unblock = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _client_log(self) -> logging.Logger:
        """librdkafka's log lines through Python logging, quiet while an outage is buffered:
        the outage is reported once, not with a connection failure every other second."""
        client_log = logging.Logger(f"{__name__}.librdkafka")
        client_log.parent = logging.getLogger(client_log.name)
        # While starting, a refused login is said once, by start()'s error.
        client_log.addFilter(lambda _record: self._mode is Mode.DIRECT and not self._starting)
        return client_log

    # -- life cycle --------------------------------------------------------------------------

    def start(self, probe_timeout_s: float = 5.0) -> None:
        """Connect and serve; ConnectError at once when Kafka refuses the login or the ACLs
        refuse a topic (no buffering can mend that), buffering when no broker answers."""
        self._producer = Producer(self._config)
        missing = probe_access(self._producer, self._login, list(self.records), probe_timeout_s)
        for topic in missing or ():
            self._outage.missing_topic(topic)
        self._starting = self._login.quiet = False
        if self.buffer.count:
            with self._lock:
                self._enter_buffering("data left by an earlier run goes first")
        elif missing == []:
            self._connected = True
        else:
            with self._lock:
                self._enter_buffering("Kafka or its topics are not ready at start-up")
        self._thread = threading.Thread(target=self._serve, name="sentio-forwarder", daemon=True)
        self._thread.start()

    def close(self, timeout_s: float = 10.0) -> None:
        """Deliver what librdkafka holds (up to ``timeout_s``); what is left goes to the buffer."""
        if self._producer is None or self._closed:
            return
        self._unblock = True
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        left = self._producer.flush(1.0 if self._mode is Mode.BUFFERING else timeout_s)
        if left:
            log.warning("%d message(s) unconfirmed at shutdown: moving them to the buffer", left)
            self._producer.purge(in_queue=True, in_flight=True)
            self._producer.flush(5.0)
        self.buffer.delete(self._take_acked())
        with self._lock:
            self._closed = True
            if self.buffer.count:
                log.warning(
                    "%d message(s), %d bytes wait in %s for the next start",
                    self.buffer.count,
                    self.buffer.size_bytes,
                    self.buffer.path,
                )
            self.buffer.close()

    def stop_waiting(self) -> None:
        """Let senders blocked on a full buffer store and return (safe in a signal handler)."""
        self._unblock = True

    def status(self) -> ForwarderStatus:
        count, size = (0, 0) if self._closed else (self.buffer.count, self.buffer.size_bytes)
        return ForwarderStatus(self._mode, self._connected, count, size, self._in_flight)

    # -- sending -----------------------------------------------------------------------------

    def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes,
        headers: Headers,
        *,
        may_block: bool = True,
    ) -> None:
        """Hand one message on; with the BLOCK policy and a full buffer, wait for room.

        A message larger than Kafka takes goes to ``on_rejected`` instead, never to the buffer.
        """
        assert self._producer is not None, "start() the forwarder first"
        size = kafka_size(key, value, headers)
        if size > self.max_message_bytes:
            self._reject_unsent(
                topic, key, value, headers, oversize_error(size, self.max_message_bytes)
            )
            return
        while True:
            with self._lock:
                if self._closed:
                    log.error("message to %s after shutdown: dropped", topic)
                    self.metrics.dropped_message(device_of(key), self.records[topic], "closed")
                    return
                self._seq += 1
                if self._mode is Mode.DIRECT and self._produce(
                    self._seq, topic, key, value, headers
                ):
                    return
                message = BufferedMessage(self._seq, topic, key, value, headers, now_ms())
                result = self.buffer.append(message, force=not may_block or self._unblock)
                self._count_append(result, message)
                if not result.full:
                    return
            self.buffer.wait_for_room(message.size, BLOCK_WAIT_S)

    def _produce(
        self, seq: int, topic: str, key: bytes | None, value: bytes, headers: Headers
    ) -> bool:
        """Hand one message to librdkafka (lock held); False: it goes to the buffer instead."""
        assert self._producer is not None
        try:
            self._producer.produce(
                topic,
                value,
                key,
                headers=headers,
                on_delivery=functools.partial(self._delivered, seq),
            )
        except BufferError:
            self._enter_buffering("the producer's queue is full")
            return False
        except KafkaException as exc:
            self._enter_buffering(f"the producer refused a message: {exc}")
            return False
        self._in_flight += 1
        return True

    # -- delivery reports (poll thread) ------------------------------------------------------

    def _refused(self, error: KafkaError | None, message: Message) -> None:
        if error is not None and error.code() in ACCESS_REFUSED and self.refusal is None:
            topic = f"topic {message.topic()}"
            self.refusal = access_refused(self._login.bootstrap, self._login.user, topic, error)

    def _delivered(self, seq: int, error: KafkaError | None, message: Message) -> None:
        self._refused(error, message)
        if error is None or not is_transient(error):
            self._settled(error, message)
            return
        created = message.timestamp()[1]
        stored = BufferedMessage(
            seq,
            message.topic() or "",
            message.key(),
            message.value() or b"",
            _header_list(message),
            created if created > 0 else now_ms(),
        )
        with self._lock:  # one step, so no message goes to librdkafka in between
            self._in_flight -= 1
            self._enter_buffering(
                f"delivery failed: {error.str()}", purge=error.code() not in PURGED
            )
            self._count_append(self.buffer.append(stored, force=True), stored)

    def _replayed(self, row_id: int, error: KafkaError | None, message: Message) -> None:
        self._refused(error, message)
        if error is None or not is_transient(error):
            with self._lock:
                self._acked.append(row_id)
            self._settled(error, message)
            return
        with self._lock:  # the row stays in the buffer for the next replay
            self._in_flight -= 1
            self._enter_buffering(
                f"delivery failed: {error.str()}", purge=error.code() not in PURGED
            )

    def _settled(self, error: KafkaError | None, message: Message) -> None:
        """Kafka confirmed the message, or refused it for good."""
        with self._lock:
            self._in_flight -= 1
            if error is None:
                self._connected = True
        if error is None:
            self.metrics.delivered(
                device_of(message.key()), self.records.get(message.topic() or "", "")
            )
        else:
            self._reject(error, message)

    def _reject(self, error: KafkaError, message: Message) -> None:
        self._reject_unsent(
            message.topic() or "",
            message.key(),
            message.value() or b"",
            _header_list(message),
            error,
        )

    def _reject_unsent(
        self, topic: str, key: bytes | None, value: bytes, headers: Headers, error: KafkaError
    ) -> None:
        """Kafka refuses this message for good: count, say so (quietly), hand it on (no lock held)."""
        self.metrics.inc(self.metrics.errors, device_of(key), "publish")
        seen = self._rejections[error.str()] = self._rejections.get(error.str(), 0) + 1
        if seen == 1 or seen % 1000 == 0:  # one line per reason, then one per thousand
            log.error(
                "Kafka refused a message to %s for good (%s); %d so far", topic, error.str(), seen
            )
        self._on_rejected(topic, key, value, headers, error)

    def _on_error(self, error: KafkaError) -> None:
        if self._starting:
            return  # start()'s probe decides: a refused login, an outage, or ready
        if error.code() == KafkaError._AUTHENTICATION and self.refusal is None:
            # the password changed or the user was removed while running: stop, as at start
            self.refusal = self._login.refusal(self._login.bootstrap, self._login.user)
        elif error.code() == KafkaError._ALL_BROKERS_DOWN:
            with self._lock:
                self._enter_buffering(error.str())
        elif error.fatal():
            log.error("Kafka producer fatal error: %s", error.str())
        else:
            log.debug("Kafka client error: %s", error.str())

    # -- modes -------------------------------------------------------------------------------

    def _enter_buffering(self, reason: str, *, purge: bool = False) -> None:
        """Kafka looks unreachable (lock held): new messages go to the buffer from now on."""
        self._purge_wanted |= purge
        self._connected = False
        if self._mode is Mode.DIRECT:
            self._outage.started(reason, self.buffer.count)
        elif self._mode is Mode.REPLAYING:
            log.warning("Kafka unreachable again while replaying (%s): replay paused", reason)
        self._mode = Mode.BUFFERING

    def _serve(self) -> None:
        """The poll thread: delivery reports, purges, deleting confirmed rows, replaying."""
        assert self._producer is not None
        failures = 0
        while not self._stop.is_set():
            try:
                self._producer.poll(0.05)
                if self._purge_wanted:
                    self._purge_wanted = False
                    self._producer.purge(in_queue=True, in_flight=False)
                self.buffer.delete(self._take_acked())
                if self._mode is not Mode.DIRECT:
                    self._replay_step()
            except Exception:  # e.g. the disk is full: keep serving, say so once in a while
                failures += 1
                if failures == 1 or failures % 100 == 0:
                    log.exception("publisher poll loop failed (%d time(s)); going on", failures)
                self._stop.wait(0.5)

    def _replay_step(self) -> None:
        assert self._producer is not None
        if self._mode is Mode.BUFFERING and not self._ready_to_replay():
            return
        rows = self.buffer.read(after_id=self._cursor, limit=REPLAY_BATCH)
        refused: list[tuple[BufferedMessage, KafkaError]] = []
        try:
            self._replay_rows(rows, refused)
        finally:
            for row, error in refused:  # outside the lock: on_rejected sends a dead letter
                self._reject_unsent(row.topic, row.key, row.value, row.headers, error)

    def _replay_rows(
        self, rows: list[BufferedMessage], refused: list[tuple[BufferedMessage, KafkaError]]
    ) -> None:
        assert self._producer is not None
        with self._lock:
            if self._mode is not Mode.REPLAYING:
                return
            if not rows and not self.buffer.read(after_id=self._cursor, limit=1):
                self._mode = Mode.DIRECT  # nothing was added since: new messages go direct
                self._outage.ended(self.buffer.count)
                return
            for row in rows:
                assert row.id is not None
                try:
                    self._producer.produce(
                        row.topic,
                        row.value,
                        row.key,
                        headers=row.headers,
                        timestamp=row.ts,
                        on_delivery=functools.partial(self._replayed, row.id),
                    )
                except BufferError:
                    break  # librdkafka's queue is full: serve deliveries, then go on
                except KafkaException as exc:
                    error = exc.args[0] if exc.args else None
                    if not isinstance(error, KafkaError) or is_transient(error):
                        raise
                    refused.append((row, error))  # too large, say: out of the buffer for good
                    self._acked.append(row.id)
                    self._cursor = row.id
                    continue
                self._cursor = row.id
                self._in_flight += 1
                self._outage.replayed += 1

    def _ready_to_replay(self) -> bool:
        """Start replaying once every earlier message has its outcome and Kafka answers."""
        with self._lock:
            if self._in_flight or time.monotonic() < self._next_probe:
                return False
            self._next_probe = time.monotonic() + PROBE_EVERY_S
        if not self._kafka_ready(PROBE_EVERY_S):  # without the lock: senders go on
            return False
        with self._lock:  # while buffering nothing else hands messages to librdkafka
            self._mode = Mode.REPLAYING
            self._cursor = 0
            self._connected = True
            self._outage.replaying(self.buffer.count)
        return True

    def _kafka_ready(self, timeout_s: float) -> bool:
        """A metadata probe: the broker answers and every topic exists."""
        assert self._producer is not None
        for topic in self.records:
            try:
                metadata = self._producer.list_topics(topic, timeout=timeout_s)
            except KafkaException:
                return False
            found = metadata.topics.get(topic)
            if found is None or found.error is not None or not found.partitions:
                self._outage.missing_topic(topic)
                return False
        return True

    # -- bookkeeping -------------------------------------------------------------------------

    def _count_append(self, result: AppendResult, message: BufferedMessage) -> None:
        if result.stored:
            self.metrics.inc(
                self.metrics.buffered, device_of(message.key), self.records.get(message.topic, "")
            )
            self._outage.buffered += 1
        for topic, key in result.dropped:
            self.metrics.dropped_message(device_of(key), self.records.get(topic, ""), "buffer_full")
        if result.dropped:
            self._outage.dropped(len(result.dropped), self.buffer.count)

    def _take_acked(self) -> list[int]:
        with self._lock:
            acked, self._acked = self._acked, []
        return acked
