"""OPC-UA connector: data-change subscriptions become readings, the session's health events.

Per connection (an :class:`OpcUaSession`): secure the channel, log in, resolve node ids and
browse paths, create one subscription and a monitored item per node. Every data change is a
reading of one metric, timestamped with its source timestamp (else the server's, else now) and
with its status code as quality. A node whose status changes (to Bad, to Uncertain, back to
Good) gets a device event naming the status, so the name is kept where it fits.

When the session is lost (the watchdog probe fails, the socket closes, the server ends the
subscription) ``run()`` closes it, emits DISCONNECTED, waits with exponential backoff and opens
a new one, which subscribes again and emits CONNECTED. A value the new subscription repeats
(same value, status and timestamp as the last one emitted) is not emitted twice. Only a
ConfigError (a certificate file that cannot be read) leaves ``run()``.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from typing import ClassVar

from asyncua import ua
from pydantic import BaseModel

from sentio_iot.errors import ConfigError, ConnectError, DataError, TransientError
from sentio_iot.producers.connector import Connector, ConnectorContext, Emitter
from sentio_iot.producers.opcua.config import OpcUaServerConfig
from sentio_iot.producers.opcua.quality import quality_of, status_hex, status_name
from sentio_iot.producers.opcua.security import ClientIdentity, load_identity
from sentio_iot.producers.opcua.session import OpcUaSession
from sentio_iot.producers.opcua.values import SampledValue, decode
from sentio_iot.producers.reconnect import Backoff, FailureStreak
from sentio_iot.records import DeviceEvent, EventKind, Quality, Reading, now_us

logger = logging.getLogger(__name__)

SOURCE = "opcua"
GOOD = 0


class OpcUaConnector(Connector):
    protocol: ClassVar[str] = "opcua"

    def __init__(self, config: BaseModel, emit: Emitter, context: ConnectorContext) -> None:
        if not isinstance(config, OpcUaServerConfig):
            raise ConfigError(f"opcua needs an OpcUaServerConfig, not {config!r}")
        super().__init__(config, emit, context)
        self.settings = config
        self.labels = {**context.base_labels(), **config.labels}
        self._node_labels = [{**self.labels, **node.labels} for node in config.nodes]
        self._identity: ClientIdentity | None = None
        self._session: OpcUaSession | None = None
        self._connected: bool | None = None  # None: not tried yet
        self._failures = FailureStreak(logger, f"opcua {config.device_id}")
        self._seq: Counter[str] = Counter()
        self._last: dict[int, SampledValue] = {}  # node index -> last value emitted
        self._status: dict[int, int] = {}  # node index -> last status code seen
        self._node_errors: dict[int, str] = {}  # node index -> last subscribe problem reported

    async def connect(self) -> None:
        """Load the certificates (ConfigError if unusable); an unreachable server is left to run()."""
        self._identity = await load_identity(self.settings)
        try:
            self._session = await self._open()
        except TransientError as exc:
            self._note_failure(exc)

    async def run(self) -> None:
        """Serve the session; after it ends wait, doubling the wait while it keeps failing."""
        loop = asyncio.get_running_loop()
        backoff = Backoff(self.settings.reconnect_initial_s, self.settings.reconnect_max_s)
        while True:
            up_since: float | None = None
            try:
                if self._session is None:
                    self._session = await self._open()
                up_since = loop.time()
                await self._session.lost.wait()
                self._note_failure(ConnectError(self._session.lost_reason))
            except TransientError as exc:
                self._note_failure(exc)
            finally:
                await self._drop_session()
            _raise_if_cancelled()
            if up_since is not None:
                backoff.held(loop.time() - up_since)
            await backoff.wait()

    async def close(self) -> None:
        await self._drop_session()

    async def _open(self) -> OpcUaSession:
        if self._identity is None:
            self._identity = await load_identity(self.settings)
        session = OpcUaSession(self.settings, self._identity, self._on_change, self._on_node_error)
        subscribed = await session.open()
        self._mark_connected(f"{subscribed.monitored}/{subscribed.configured}")
        return session

    async def _drop_session(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    def _on_change(self, index: int, data_value: ua.DataValue) -> None:
        node = self.settings.nodes[index]
        self._node_errors.pop(index, None)
        try:
            sample = decode(data_value)
        except DataError as exc:
            origin = f"{self.settings.url}#{node.address}"
            self.emit.dead_letter(repr(data_value).encode(), str(exc), origin=origin)
            return
        self._note_status(index, sample.status_code)
        if self._last.get(index) == sample:
            return  # the new subscription's first value repeats the one already emitted
        self._last[index] = sample
        device_id = self.settings.device_of(node)
        self._seq[device_id] += 1
        metric = sample.metric(node.metric, node.unit)
        labels = self._node_labels[index]
        reading = Reading(device_id, sample.ts_us, [metric], SOURCE, labels, self._seq[device_id])
        self.emit.reading(reading)

    def _note_status(self, index: int, code: int) -> None:
        """An event when a node's status changes: the status name has no place in a reading."""
        previous = self._status.get(index, GOOD)
        self._status[index] = code
        if code == previous:
            return
        node = self.settings.nodes[index]
        name = status_name(code)
        kind = EventKind.ERROR if quality_of(code) is Quality.BAD else EventKind.INFO
        details = {
            "node": node.address,
            "metric": node.metric,
            "status": name,
            "status_code": status_hex(code),
            "previous_status": status_name(previous),
        }
        message = f"{node.metric}: status {name}"
        device_id = self.settings.device_of(node)
        self.emit.event(
            DeviceEvent(
                device_id, now_us(), kind, message, SOURCE, details, self._node_labels[index]
            )
        )

    def _on_node_error(self, index: int, problem: str) -> None:
        """A node that cannot be subscribed: one event and warning per distinct problem."""
        if self._node_errors.get(index) == problem:
            return
        self._node_errors[index] = problem
        node = self.settings.nodes[index]
        logger.warning(
            "opcua %s: node %s (%s): %s",
            self.settings.device_id,
            node.address,
            node.metric,
            problem,
        )
        details = {"node": node.address, "metric": node.metric, "url": self.settings.url}
        device_id = self.settings.device_of(node)
        event = DeviceEvent(
            device_id,
            now_us(),
            EventKind.ERROR,
            f"{node.metric}: cannot subscribe {node.address}: {problem}",
            SOURCE,
            details,
            self._node_labels[index],
        )
        self.emit.event(event)

    def _mark_connected(self, subscribed: str) -> None:
        self._failures.ended()
        self._connected = True
        details = {
            "url": self.settings.url,
            "security_mode": self.settings.security_mode.value,
            "nodes_subscribed": subscribed,
        }
        self._emit_server_event(EventKind.CONNECTED, "connected to the OPC-UA server", details)

    def _note_failure(self, exc: Exception) -> None:
        """Log the 1st, 10th, 100th, ... failure of a streak; one DISCONNECTED per streak.

        A first connection that fails also counts as DISCONNECTED: the server is unreachable.
        """
        self._failures.failed(exc)
        if self._connected is not False:
            self._connected = False
            details = {"url": self.settings.url, "reason": str(exc)}
            self._emit_server_event(EventKind.DISCONNECTED, f"disconnected: {exc}", details)

    def _emit_server_event(self, kind: EventKind, message: str, details: dict[str, str]) -> None:
        device_id = self.settings.device_id
        self.emit.event(
            DeviceEvent(device_id, now_us(), kind, message, SOURCE, details, self.labels)
        )


def _raise_if_cancelled() -> None:
    """asyncua may swallow a cancellation while it stops its tasks; honour it anyway."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
