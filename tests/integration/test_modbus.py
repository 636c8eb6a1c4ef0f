"""The Modbus connector against a real pymodbus TCP server holding known values."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from pymodbus.pdu import ModbusPDU
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType as SimType
from pymodbus.simulator import SimData, SimDevice

from sentio_iot.producers.connector import ConnectorContext
from sentio_iot.producers.modbus.config import (
    ByteOrder,
    DataType,
    ModbusDeviceConfig,
    RegisterConfig,
    RegisterKind,
)
from sentio_iot.producers.modbus.connector import ModbusConnector
from sentio_iot.producers.recording import RecordingEmitter, wait_until
from sentio_iot.records import EventKind, Metric, Quality

UNIT = 7
FORMATS = {
    DataType.INT16: "h",
    DataType.UINT16: "H",
    DataType.INT32: "i",
    DataType.UINT32: "I",
    DataType.INT64: "q",
    DataType.UINT64: "Q",
    DataType.FLOAT32: "f",
    DataType.FLOAT64: "d",
}
SAMPLES: dict[DataType, int | float] = {
    DataType.INT16: -12345,
    DataType.UINT16: 0xBEEF,
    DataType.INT32: -123456789,
    DataType.UINT32: 0xDEADBEEF,
    DataType.INT64: -1234567890123456,
    DataType.UINT64: 0xFEDCBA9876543210,
    DataType.FLOAT32: 123.456,
    DataType.FLOAT64: -98765.4321,
}
COILS = [True, False, True, True, False, False, False, True, False, True]
DISCRETE_INPUTS = [False, True, True, False]
FC_HOLDING, FC_INPUT, FC_COILS, FC_DISCRETE = 3, 4, 1, 2


@pytest.fixture(scope="session")
def running_stack() -> None:
    """These tests need no Kafka or other stack service: only the in-process Modbus server."""


def words_of(data: bytes) -> list[int]:
    return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]


def as_sent(data_type: DataType, value: float, byte_order: ByteOrder) -> list[int]:
    """The register words a device sends for ``value`` in ``byte_order``, built with struct."""
    fmt = FORMATS[data_type]
    big = struct.pack(">" + fmt, value)
    if byte_order is ByteOrder.ABCD:
        return words_of(big)
    if byte_order is ByteOrder.DCBA:
        return words_of(struct.pack("<" + fmt, value))
    if byte_order is ByteOrder.BADC:
        return words_of(bytes(big[i ^ 1] for i in range(len(big))))
    return words_of(big)[::-1]


def exact(data_type: DataType, value: float) -> float:
    """The value as the type holds it (FLOAT32 rounds)."""
    fmt = ">" + FORMATS[data_type]
    return float(struct.unpack(fmt, struct.pack(fmt, value))[0])


@dataclass
class DeviceMap:
    """Register words the server holds, the matching register map, and the expected metrics."""

    holding: list[int] = field(default_factory=list)
    inputs: list[int] = field(default_factory=list)
    registers: list[RegisterConfig] = field(default_factory=list)
    expected: list[Metric] = field(default_factory=list)

    def add(self, table: list[int], kind: RegisterKind, words: list[int], **fields: Any) -> None:
        self.registers.append(RegisterConfig(kind=kind, address=len(table), **fields))
        table.extend(words)


def device_map() -> DeviceMap:
    m = DeviceMap()
    for order in ByteOrder:
        for data_type, value in SAMPLES.items():
            name = f"{data_type.value.lower()}_{order.value.lower()}"
            words = as_sent(data_type, value, order)
            m.add(
                m.holding,
                RegisterKind.HOLDING,
                words,
                name=name,
                data_type=data_type,
                byte_order=order,
            )
            m.expected.append(Metric(name, exact(data_type, value)))
    for order in ByteOrder:
        text = b"PUMP-7\x00\x00"
        if order in (ByteOrder.BADC, ByteOrder.DCBA):
            text = bytes(text[i ^ 1] for i in range(len(text)))
        name = f"model_{order.value.lower()}"
        m.add(
            m.holding,
            RegisterKind.HOLDING,
            words_of(text),
            name=name,
            data_type=DataType.STRING,
            length=4,
            byte_order=order,
        )
        m.expected.append(Metric(name, None, None, Quality.GOOD, "PUMP-7"))
    status = len(m.holding)
    m.holding.append(0b1000_0000_0000_0101)
    for bit, is_set in ((0, 1.0), (1, 0.0), (2, 1.0), (15, 1.0)):
        m.registers.append(
            RegisterConfig(
                name=f"status_bit{bit}", address=status, data_type=DataType.BOOL, bit=bit
            )
        )
        m.expected.append(Metric(f"status_bit{bit}", is_set))
    m.add(
        m.holding,
        RegisterKind.HOLDING,
        as_sent(DataType.INT16, -215, ByteOrder.ABCD),
        name="oil_temp",
        data_type=DataType.INT16,
        scale=0.1,
        offset=-40.0,
        unit="degC",
    )
    m.expected.append(Metric("oil_temp", -215 * 0.1 - 40.0, "degC"))
    m.add(
        m.inputs,
        RegisterKind.INPUT,
        as_sent(DataType.FLOAT32, 2.5, ByteOrder.DCBA),
        name="pressure",
        data_type=DataType.FLOAT32,
        byte_order=ByteOrder.DCBA,
        unit="bar",
    )
    m.expected.append(Metric("pressure", 2.5, "bar"))
    m.add(
        m.inputs,
        RegisterKind.INPUT,
        as_sent(DataType.UINT32, 1234567, ByteOrder.CDAB),
        name="energy",
        data_type=DataType.UINT32,
        byte_order=ByteOrder.CDAB,
        scale=0.001,
        unit="kWh",
    )
    m.expected.append(Metric("energy", 1234567 * 0.001, "kWh"))
    for prefix, kind, bits, addresses in (
        ("coil", RegisterKind.COIL, COILS, (0, 2, 3, 7, 9)),
        ("input", RegisterKind.DISCRETE_INPUT, DISCRETE_INPUTS, range(4)),
    ):
        for address in addresses:
            name = f"{prefix}{address}"
            m.registers.append(
                RegisterConfig(name=name, kind=kind, address=address, data_type=DataType.BOOL)
            )
            m.expected.append(Metric(name, float(bits[address])))
    # 300 and 303 exist, 301-302 do not: read together they are refused, so the plan splits
    m.registers.append(RegisterConfig(name="left", address=300))
    m.registers.append(RegisterConfig(name="right", address=303, data_type=DataType.INT16))
    m.expected += [Metric("left", 300.0), Metric("right", -303.0)]
    m.registers.append(RegisterConfig(name="missing", address=1000, unit="rpm"))
    m.expected.append(Metric("missing", None, "rpm", Quality.BAD))
    return m


MAP = device_map()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ModbusDevice:
    """A pymodbus TCP server holding MAP; records every request and can turn slow."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.requests: list[tuple[int, int, int]] = []  # (function code, address, count)
        self.slow = False
        self._server: ModbusTcpServer | None = None

    async def start(self) -> None:
        simdata = (
            [SimData(0, values=COILS, datatype=SimType.BITS)],
            [SimData(0, values=DISCRETE_INPUTS, datatype=SimType.BITS)],
            [
                SimData(0, values=MAP.holding, datatype=SimType.REGISTERS),
                SimData(300, values=[300], datatype=SimType.REGISTERS),
                SimData(
                    303,
                    values=as_sent(DataType.INT16, -303, ByteOrder.ABCD),
                    datatype=SimType.REGISTERS,
                ),
            ],
            [SimData(0, values=MAP.inputs, datatype=SimType.REGISTERS)],
        )
        device = SimDevice(UNIT, simdata=simdata, action=self._action)
        self._server = ModbusTcpServer(
            device, address=("127.0.0.1", self.port), trace_pdu=self._trace
        )
        await self._server.serve_forever(background=True)

    async def stop(self) -> None:
        if self._server is not None:
            server, self._server = self._server, None
            await server.shutdown()

    def _trace(self, sending: bool, pdu: ModbusPDU) -> ModbusPDU:
        if not sending:
            self.requests.append((pdu.function_code, pdu.address, pdu.count))
        return pdu

    async def _action(self, *_args: Any) -> None:
        if self.slow:
            await asyncio.sleep(0.6)  # twice timeout_s


class Recorder(RecordingEmitter):
    """What the connector emitted; a Modbus register map never produces dead letters."""

    def dead_letter(
        self, raw: bytes, reason: str, *, origin: str, key: bytes | None = None
    ) -> None:
        raise AssertionError(f"unexpected dead letter: {reason}")


@pytest.fixture
async def device() -> AsyncIterator[ModbusDevice]:
    server = ModbusDevice(free_port())
    await server.start()
    yield server
    await server.stop()
    # nothing may be left running: a slow answer still being served gets a moment to end
    with contextlib.suppress(TimeoutError):
        await wait_until(lambda: not others(), timeout_s=1.0)
    assert not others(), f"tasks left behind: {others()}"


def others() -> set[asyncio.Task[Any]]:
    return {task for task in asyncio.all_tasks() if task is not asyncio.current_task()}


def make(port: int) -> tuple[ModbusConnector, Recorder]:
    config = ModbusDeviceConfig(
        device_id="press-7",
        host="127.0.0.1",
        port=port,
        unit_id=UNIT,
        poll_interval_s=0.1,
        timeout_s=0.3,
        reconnect_initial_s=0.05,
        reconnect_max_s=0.4,
        labels={"line": "2"},
        registers=MAP.registers,
    )
    recorder = Recorder()
    context = ConnectorContext(tenant="acme", site="plant-7")
    return ModbusConnector(config, recorder, context), recorder


@asynccontextmanager
async def running(connector: ModbusConnector) -> AsyncIterator[None]:
    await connector.connect()
    task = asyncio.create_task(connector.run())
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await connector.close()
    assert task.cancelled(), "run() must only end by cancellation"


async def test_every_type_and_byte_order_decodes_exactly(device: ModbusDevice) -> None:
    connector, out = make(device.port)
    async with running(connector):
        await out.wait_for_readings(3)
    first = out.readings[0]
    assert first.device_id == "press-7"
    assert first.source == "modbus"
    assert first.labels == {"tenant": "acme", "site": "plant-7", "line": "2"}
    assert first.metrics == MAP.expected
    assert [r.seq for r in out.readings[:3]] == [1, 2, 3]
    assert all(r.metrics == MAP.expected for r in out.readings)

    # one EXCEPTION for the missing register, not one per poll; the device stays up
    [exception] = [e for e in out.events if e.kind is EventKind.EXCEPTION]
    assert out.kinds() == [EventKind.CONNECTED, EventKind.EXCEPTION]
    assert exception.details == {
        "host": "127.0.0.1",
        "port": str(device.port),
        "unit_id": "7",
        "table": "holding",
        "address": "1000",
        "count": "1",
        "registers": "missing",
        "exception_code": "2",
        "exception_name": "ILLEGAL_DATA_ADDRESS",
    }


async def test_batched_reads_one_request_per_block(device: ModbusDevice) -> None:
    connector, out = make(device.port)
    async with running(connector):
        await out.wait_for_readings(3)
    polls = len(out.readings)
    holding = (FC_HOLDING, 0, len(MAP.holding))  # 98 registers of 41 values: ONE request
    per_poll = [
        holding,
        (FC_HOLDING, 300, 1),
        (FC_HOLDING, 303, 1),
        (FC_HOLDING, 1000, 1),
        (FC_INPUT, 0, 4),
        (FC_COILS, 0, 10),
        (FC_DISCRETE, 0, 4),
    ]
    assert len(MAP.holding) == 98
    # the first poll tried 300..303 as one read, was refused, and split it for good
    assert device.requests.count((FC_HOLDING, 300, 4)) == 1
    assert set(device.requests) == {*per_poll, (FC_HOLDING, 300, 4)}
    for request in per_poll:
        assert device.requests.count(request) in (polls, polls + 1), request
    assert device.requests[:8] == [
        holding,
        (FC_HOLDING, 300, 4),
        (FC_HOLDING, 300, 1),
        (FC_HOLDING, 303, 1),
        (FC_HOLDING, 1000, 1),
        (FC_INPUT, 0, 4),
        (FC_COILS, 0, 10),
        (FC_DISCRETE, 0, 4),
    ]


async def test_timeout_drops_the_connection_and_recovers(device: ModbusDevice) -> None:
    connector, out = make(device.port)
    async with running(connector):
        await out.wait_for_readings(1)
        device.slow = True
        await wait_until(lambda: EventKind.DISCONNECTED in out.kinds())
        [timeout] = [e for e in out.events if e.kind is EventKind.TIMEOUT]
        assert timeout.details["table"] == "holding"
        assert timeout.details["address"] == "0"
        assert timeout.details["count"] == "98"
        assert timeout.message == "no answer to holding 0..97 within 0.3s"
        await asyncio.sleep(1.0)  # several more timeouts: no further events
        assert out.kinds() == [
            EventKind.CONNECTED,
            EventKind.EXCEPTION,
            EventKind.TIMEOUT,
            EventKind.DISCONNECTED,
        ]
        device.slow = False
        seen = len(out.readings)
        await out.wait_for_readings(seen + 2)
    assert out.kinds()[4] is EventKind.CONNECTED
    assert out.readings[-1].metrics == MAP.expected


async def test_server_restart_resumes_readings_without_flooding(
    device: ModbusDevice, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="sentio_iot.producers.modbus")
    connector, out = make(device.port)
    async with running(connector):
        await out.wait_for_readings(2)
        await device.stop()
        await wait_until(lambda: EventKind.DISCONNECTED in out.kinds())
        stopped_at = len(out.readings)
        await asyncio.sleep(1.5)  # reconnects keep failing with backoff
        assert len(out.readings) <= stopped_at + 1  # at most a poll already under way
        await device.start()
        await out.wait_for_readings(stopped_at + 3, timeout_s=5.0)
    kinds = out.kinds()
    assert kinds[:2] == [EventKind.CONNECTED, EventKind.EXCEPTION]
    # one outage: DISCONNECTED once (after a TIMEOUT if a request was in flight), then CONNECTED
    assert kinds[2:] in (
        [EventKind.DISCONNECTED, EventKind.CONNECTED],
        [EventKind.TIMEOUT, EventKind.DISCONNECTED, EventKind.CONNECTED],
    )
    assert out.readings[-1].metrics == MAP.expected
    ours = [r for r in caplog.records if r.name.startswith("sentio_iot")]
    warnings = [r for r in ours if r.levelno >= logging.WARNING]
    # first exception + first failed attempt (+ the 10th, if the outage lasted that long)
    assert 2 <= len(warnings) <= 3, [r.getMessage() for r in warnings]
    assert any("answering again after" in r.getMessage() for r in ours)


async def test_device_absent_at_start_is_reached_later() -> None:
    port = free_port()
    connector, out = make(port)
    late = ModbusDevice(port)
    async with running(connector):
        await wait_until(lambda: EventKind.DISCONNECTED in out.kinds())
        assert out.readings == []
        await late.start()
        try:
            await out.wait_for_readings(1)
        finally:
            await late.stop()
    assert out.kinds()[:2] == [EventKind.DISCONNECTED, EventKind.CONNECTED]
    assert out.readings[0].metrics == MAP.expected
