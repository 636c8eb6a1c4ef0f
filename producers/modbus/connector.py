"""Modbus TCP connector: polls one device's register map in batched reads.

Each poll sends the requests of :func:`plan_reads` (values close together share one request)
and emits ONE Reading with every metric of the device, in register-map order. Partial
readings are emitted: a request the device answered with a Modbus exception gives its
metrics no value and quality BAD, while the other requests' values are kept. A poll in which
no request returned data emits no Reading; the DeviceEvents say why.

Events (details carry host, port, unit_id and the request):

- CONNECTED: the device answers again (first answer after connecting);
- DISCONNECTED: it cannot be reached, closed the connection, or stopped answering;
- TIMEOUT: a request got no answer within ``timeout_s``; the connection is then dropped,
  since a late answer would be taken for the next request's;
- EXCEPTION: the device answered a request with a Modbus exception (``exception_code`` and
  ``exception_name`` in details). A batched read spanning unused addresses that fails with
  ILLEGAL DATA ADDRESS is split into contiguous reads at once (some devices refuse holes);
  only a value the device really lacks then raises the event.

Each failure is reported when a streak of it starts, not on every poll: one EXCEPTION per
request until it succeeds again, one TIMEOUT/DISCONNECTED per outage. Logs likewise show
the first failure of a streak, then the 10th, 100th, ... and a summary when it ends.
The connection is re-established by ``run()`` itself, waiting ``reconnect_initial_s``
doubled after each failure up to ``reconnect_max_s``; nothing but cancellation leaves run().
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import ClassVar

from pydantic import BaseModel
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from pymodbus.pdu import ModbusPDU

from sentio_iot.errors import ConfigError
from sentio_iot.producers.connector import Connector, ConnectorContext, Emitter
from sentio_iot.producers.modbus.config import ModbusDeviceConfig, RegisterKind
from sentio_iot.producers.modbus.registers import (
    ReadRequest,
    ShortAnswer,
    decode_block,
    failed_block,
    plan_reads,
)
from sentio_iot.producers.reconnect import Backoff, FailureStreak, worth_logging
from sentio_iot.producers.tracing import tracer_provider
from sentio_iot.records import DeviceEvent, EventKind, Metric, Quality, Reading, now_us

logger = logging.getLogger(__name__)

SOURCE = "modbus"
ILLEGAL_DATA_ADDRESS = 2
EXCEPTION_NAMES = {
    1: "ILLEGAL_FUNCTION",
    2: "ILLEGAL_DATA_ADDRESS",
    3: "ILLEGAL_DATA_VALUE",
    4: "SERVER_DEVICE_FAILURE",
    5: "ACKNOWLEDGE",
    6: "SERVER_DEVICE_BUSY",
    8: "MEMORY_PARITY_ERROR",
    10: "GATEWAY_PATH_UNAVAILABLE",
    11: "GATEWAY_TARGET_DEVICE_FAILED_TO_RESPOND",
}


class LinkDown(Exception):
    """The connection cannot be used any more; ``kind`` is TIMEOUT or DISCONNECTED."""

    def __init__(self, kind: EventKind, message: str, details: dict[str, str]) -> None:
        super().__init__(message)
        self.kind = kind
        self.details = details


class DeviceAnswer(Exception):
    """The device answered a request with a Modbus exception code."""

    def __init__(self, request: ReadRequest, code: int) -> None:
        self.code = code
        self.name = EXCEPTION_NAMES.get(code, f"UNKNOWN_{code}")
        super().__init__(f"{request.describe()}: exception {code} ({self.name})")


class ModbusConnector(Connector):
    protocol: ClassVar[str] = "modbus"

    def __init__(self, config: BaseModel, emit: Emitter, context: ConnectorContext) -> None:
        if not isinstance(config, ModbusDeviceConfig):
            raise ConfigError(f"modbus needs a ModbusDeviceConfig, not {config!r}")
        super().__init__(config, emit, context)
        self.settings = config
        self.labels = {**context.base_labels(), **config.labels}
        self.plan = plan_reads(config.registers, config.max_gap)
        self._client: AsyncModbusTcpClient | None = None
        self._online: bool | None = None  # None: not tried yet
        self._outage = FailureStreak(logger, f"modbus {config.device_id}")
        self._failing: dict[tuple[RegisterKind, int], tuple[str, int]] = {}  # streaks
        self._seq = 0
        self._tracer = tracer_provider().get_tracer(__name__)
        self._span: dict[str, str | int] = {
            "device.id": config.device_id,
            "modbus.unit_id": config.unit_id,
        }

    async def connect(self) -> None:
        """Open the first connection; a device that is not reachable yet is left to run()."""
        self._client = await self._open()

    async def run(self) -> None:
        """Poll every ``poll_interval_s``; on failure drop the connection and reconnect with backoff."""
        loop = asyncio.get_running_loop()
        backoff = Backoff(self.settings.reconnect_initial_s, self.settings.reconnect_max_s)
        next_poll = loop.time()
        while True:
            try:
                if self._client is None:
                    self._client = await self._open()
                if self._client is not None:
                    with self._tracer.start_as_current_span("modbus poll", attributes=self._span):
                        await self.poll(self._client)
                    backoff.reset()
                    next_poll = max(next_poll + self.settings.poll_interval_s, loop.time())
                    await asyncio.sleep(next_poll - loop.time())
                    continue
            except LinkDown as down:
                self._link_down(down.kind, str(down), down.details)
            except Exception as exc:  # a bug must not stop the producer: report and retry
                if worth_logging(self._outage.count + 1):
                    logger.exception("modbus %s: unexpected error", self.settings.device_id)
                self._link_down(EventKind.ERROR, f"unexpected error: {exc!r}", {})
            await self._drop_client()
            await backoff.wait()
            next_poll = loop.time()

    async def close(self) -> None:
        await self._drop_client()

    async def poll(self, client: AsyncModbusTcpClient) -> None:
        """Read every request once and emit one Reading; LinkDown when the connection fails.

        Values read before the connection failed are still emitted, the rest marked BAD.
        """
        ts_us = now_us()
        metrics: dict[str, Metric] = {}
        try:
            for request in list(self.plan):
                for part, values in await self._read_or_split(client, request):
                    if isinstance(values, DeviceAnswer):
                        self._block_failed(part, values)
                        metrics.update((m.name, m) for m in failed_block(part))
                    else:
                        metrics.update((m.name, m) for m in self._decoded(part, values))
        except LinkDown:
            self._emit_reading(ts_us, metrics)
            raise
        self._emit_reading(ts_us, metrics)

    async def _read_or_split(
        self, client: AsyncModbusTcpClient, request: ReadRequest
    ) -> list[tuple[ReadRequest, Sequence[int] | Sequence[bool] | DeviceAnswer]]:
        """Answers to ``request``; a batch refused for an illegal address is split in the plan."""
        try:
            return [(request, await self._read(client, request))]
        except DeviceAnswer as answer:
            parts = plan_reads(request.registers, max_gap=0)
            if answer.code != ILLEGAL_DATA_ADDRESS or len(parts) == 1:
                return [(request, answer)]
        logger.info(
            "modbus %s: %s refused as one read (illegal data address); reading it in %d parts",
            self.settings.device_id,
            request.describe(),
            len(parts),
        )
        at = self.plan.index(request)
        self.plan[at : at + 1] = parts
        results: list[tuple[ReadRequest, Sequence[int] | Sequence[bool] | DeviceAnswer]] = []
        for part in parts:
            try:
                results.append((part, await self._read(client, part)))
            except DeviceAnswer as part_answer:
                results.append((part, part_answer))
        return results

    async def _read(
        self, client: AsyncModbusTcpClient, request: ReadRequest
    ) -> Sequence[int] | Sequence[bool]:
        """One request's registers or bits; DeviceAnswer for a Modbus exception, else LinkDown."""
        unit = self.settings.unit_id
        try:
            response = await _send(client, request, unit)
        except ConnectionException as exc:
            raise LinkDown(EventKind.DISCONNECTED, "connection closed", {}) from exc
        except ModbusIOException as exc:
            if "No response" in str(exc):
                message = f"no answer to {request.describe()} within {self.settings.timeout_s}s"
                raise LinkDown(EventKind.TIMEOUT, message, _request_details(request)) from exc
            raise LinkDown(
                EventKind.ERROR, f"bad answer: {exc}", _request_details(request)
            ) from exc
        except ModbusException as exc:
            raise LinkDown(
                EventKind.ERROR, f"bad answer: {exc}", _request_details(request)
            ) from exc
        self._mark_online()  # an exception answer is an answer too
        if response.isError():
            raise DeviceAnswer(request, int(getattr(response, "exception_code", 0)))
        if request.kind in (RegisterKind.COIL, RegisterKind.DISCRETE_INPUT):
            return response.bits
        return response.registers

    async def _open(self) -> AsyncModbusTcpClient | None:
        # pymodbus must neither reconnect nor retry on its own: run() owns both
        client = AsyncModbusTcpClient(
            self.settings.host,
            port=self.settings.port,
            name=f"modbus {self.settings.device_id}",
            timeout=self.settings.timeout_s,
            retries=0,
            reconnect_delay=0,
        )
        try:
            connected = await client.connect()
        except (OSError, ModbusException) as exc:
            connected, reason = False, str(exc)
        else:
            reason = "connection refused or timed out"
        if connected:
            return client
        client.close()
        where = f"{self.settings.host}:{self.settings.port}"
        self._link_down(EventKind.DISCONNECTED, f"cannot connect to {where}: {reason}", {})
        return None

    async def _drop_client(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            client.close()

    def _mark_online(self) -> None:
        if self._online:
            return
        self._outage.ended("answering again")
        self._online = True
        self._emit_event(EventKind.CONNECTED, "device answers", {})

    def _link_down(self, kind: EventKind, message: str, details: dict[str, str]) -> None:
        """Count a failed attempt; events and a log line only when an outage starts (and logs 10th, 100th...)."""
        self._outage.failed(message)
        if self._online is False:
            return
        self._online = False
        if kind is not EventKind.DISCONNECTED:
            self._emit_event(kind, message, details)
        self._emit_event(EventKind.DISCONNECTED, f"disconnected: {message}", {"reason": message})

    def _block_failed(self, request: ReadRequest, answer: DeviceAnswer) -> None:
        key = (request.kind, request.address)
        signature, count = self._failing.get(key, ("", 0))
        count = count + 1 if signature == answer.name else 1
        self._failing[key] = (answer.name, count)
        if worth_logging(count):
            logger.warning(
                "modbus %s: %s (%d poll(s) in a row)", self.settings.device_id, answer, count
            )
        if count == 1:
            details = {
                **_request_details(request),
                "exception_code": str(answer.code),
                "exception_name": answer.name,
            }
            self._emit_event(EventKind.EXCEPTION, str(answer), details)

    def _decoded(
        self, request: ReadRequest, values: Sequence[int] | Sequence[bool]
    ) -> list[Metric]:
        """The block's metrics; a short answer marks them BAD and says so, the poll goes on."""
        try:
            metrics = decode_block(request, values)
        except ShortAnswer as exc:
            logger.warning("modbus %s: %s", self.settings.device_id, exc)
            return failed_block(request)
        self._block_answered(request)
        return metrics

    def _block_answered(self, request: ReadRequest) -> None:
        failed = self._failing.pop((request.kind, request.address), None)
        if failed is not None:
            logger.info(
                "modbus %s: %s answers again after %d polls with %s",
                self.settings.device_id,
                request.describe(),
                failed[1],
                failed[0],
            )

    def _emit_reading(self, ts_us: int, metrics: dict[str, Metric]) -> None:
        """One Reading in register-map order, unless no value at all was read."""
        if all(m.quality is Quality.BAD and m.text is None for m in metrics.values()):
            return
        ordered = [
            metrics.get(r.name) or Metric(r.name, None, r.unit, Quality.BAD)
            for r in self.settings.registers
        ]
        self._seq += 1
        reading = Reading(self.settings.device_id, ts_us, ordered, SOURCE, self.labels, self._seq)
        self.emit.reading(reading)

    def _emit_event(self, kind: EventKind, message: str, details: dict[str, str]) -> None:
        details = {
            "host": self.settings.host,
            "port": str(self.settings.port),
            "unit_id": str(self.settings.unit_id),
            **details,
        }
        event = DeviceEvent(
            self.settings.device_id, now_us(), kind, message, SOURCE, details, self.labels
        )
        self.emit.event(event)


async def _send(client: AsyncModbusTcpClient, request: ReadRequest, unit: int) -> ModbusPDU:
    if request.kind is RegisterKind.HOLDING:
        return await client.read_holding_registers(
            request.address, count=request.count, device_id=unit
        )
    if request.kind is RegisterKind.INPUT:
        return await client.read_input_registers(
            request.address, count=request.count, device_id=unit
        )
    if request.kind is RegisterKind.COIL:
        return await client.read_coils(request.address, count=request.count, device_id=unit)
    return await client.read_discrete_inputs(request.address, count=request.count, device_id=unit)


def _request_details(request: ReadRequest) -> dict[str, str]:
    return {
        "table": request.kind.value,
        "address": str(request.address),
        "count": str(request.count),
        "registers": ",".join(r.name for r in request.registers),
    }
