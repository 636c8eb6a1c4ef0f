"""The one interface every sink backend implements, and the errors it answers with.

A writer takes a batch and either returns (the backend acknowledged every record), or raises:

- :class:`BackendUnavailable` — the backend is down, overloaded or timed out. Nothing in the
  batch counts as written; the runtime pauses consumption, waits ``retry_after_s`` (or its
  own backoff) and calls ``write`` again with the same batch. Writes must therefore be
  idempotent where the backend allows (VictoriaMetrics drops identical samples).
- :class:`RejectedRecords` — the backend refused some records for good (invalid data). The
  runtime sends exactly those to the dead-letter topic with ``reasons[i]`` (the backend's
  answer) and treats the rest of the batch as written.

A backend that answers 2xx and then drops some records (VictoriaMetrics, VictoriaLogs) is
checked after the write: ``write`` returns a receipt (or passes it in
``RejectedRecords.receipt``), and the runtime calls ``verify(receipt)`` outside the write
slots, for the records the backend took; it answers ``index -> reason`` for those not
stored, which go to the dead-letter topic like rejected ones. Offsets wait for ``verify``.

Any other exception is a bug: the runtime logs it and retries like BackendUnavailable.
``start`` checks the endpoint and credentials once and raises ConfigError (wrong URL, bad
credentials) so a misconfigured sink stops at start-up instead of retrying forever.

Writers register as ``sentio_iot.sinks`` entry points: ``name = "module:PLUGIN"``, a
:class:`~sentio_iot.plugins.SinkPlugin`, loaded lazily by name like the connectors. The
runtime (``sinks/runtime.py``) builds the writer as ``writer_class(config)`` with the whole
SentioConfig; the writer reads its own section ``config.sinks.<name>`` (which also holds
the ``health_port`` the runtime serves /health and /metrics on). ``start`` may use
``sinks.http_endpoint.HttpEndpoint.probe`` for the ConfigError on a wrong URL or credentials.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sentio_iot.errors import TransientError


@dataclass(frozen=True, slots=True)
class SinkRecord:
    """One consumed Kafka message, its value decoded (Avro topics) or raw (``otlp-spans``)."""

    topic: str  # the Kafka topic name
    catalog_name: str  # the catalog entry, e.g. "readings", "rollups", "otlp-spans"
    partition: int
    offset: int
    key: bytes | None
    value: Mapping[str, Any] | bytes
    headers: Sequence[tuple[str, bytes | None]] = ()
    timestamp_ms: int = 0
    raw_value: bytes = field(default=b"", repr=False)  # the bytes as consumed, for dead letters


class BackendUnavailable(TransientError):
    """The backend cannot take the batch now; retry the whole batch later."""

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class RejectedRecords(Exception):
    """The backend refused these records for good; ``reasons`` maps batch index -> answer."""

    def __init__(self, reasons: Mapping[int, str], *, receipt: object | None = None) -> None:
        super().__init__(f"{len(reasons)} record(s) rejected")
        self.reasons = dict(reasons)
        self.receipt = receipt  # for Writer.verify: the rest of the batch is still checked


class Writer(abc.ABC):
    """A sink backend: writes batches of records to one store."""

    #: Catalog names of the topics this writer consumes, e.g. ("readings", "rollups").
    topics: tuple[str, ...] = ()

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Check endpoint and credentials; raise ConfigError when they are wrong."""

    @abc.abstractmethod
    async def write(self, batch: Sequence[SinkRecord]) -> object | None:
        """Write every record or raise BackendUnavailable / RejectedRecords; a receipt for
        :meth:`verify` when the backend's 2xx must be checked, else None."""

    async def verify(self, receipt: object) -> Mapping[int, str]:
        """``index -> reason`` for each record the backend answered 2xx for but did not store.

        Raise BackendUnavailable when it cannot tell yet (the runtime asks again later).
        """
        return {}

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

    def metrics_text(self) -> str:
        """Families of its own for ``/metrics`` (Prometheus text, ending in a newline); none."""
        return ""
