"""A device that answers a batched read with fewer registers than asked: the block's metrics
are BAD (no value), it is logged, and the poll goes on, not a traceback and a reconnect."""

from __future__ import annotations

import logging

import pytest

from sentio_iot.producers.connector import ConnectorContext
from sentio_iot.producers.modbus.config import ModbusDeviceConfig
from sentio_iot.producers.modbus.connector import ModbusConnector
from sentio_iot.producers.recording import RecordingEmitter
from sentio_iot.records import Metric, Quality


def test_a_short_answer_marks_the_block_bad(caplog: pytest.LogCaptureFixture) -> None:
    config = ModbusDeviceConfig.model_validate(
        {
            "device_id": "press-3",
            "host": "127.0.0.1",
            "registers": [
                {"name": "pressure", "address": 0, "data_type": "FLOAT32"},
                {"name": "current", "address": 2, "data_type": "INT16", "unit": "A"},
            ],
        }
    )
    connector = ModbusConnector(config, RecordingEmitter(), ConnectorContext())
    (request,) = connector.plan
    with caplog.at_level(logging.WARNING):
        metrics = connector._decoded(request, [0x4120, 0x0000])  # 3 registers asked, 2 came
    assert [(m.name, m.value, m.quality) for m in metrics] == [
        ("pressure", None, Quality.BAD),
        ("current", None, Quality.BAD),
    ]
    assert caplog.messages == ["modbus press-3: holding 0..2: answer holds 2 values, not 3"]
    assert connector._decoded(request, [0x4120, 0x0000, 7]) == [
        Metric("pressure", 10.0),
        Metric("current", 7.0, "A"),
    ]
