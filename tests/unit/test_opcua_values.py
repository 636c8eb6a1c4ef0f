"""OPC-UA status codes as quality, DataValues as metrics, and what is sent to subscribe."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from asyncua import ua

from sentio_iot.errors import DataError
from sentio_iot.producers.connector import ConnectorContext
from sentio_iot.producers.opcua.addresses import parse_node_id
from sentio_iot.producers.opcua.config import NodeConfig, OpcUaServerConfig
from sentio_iot.producers.opcua.connector import OpcUaConnector
from sentio_iot.producers.opcua.quality import quality_of, status_hex, status_name
from sentio_iot.producers.opcua.session import (
    deadband_filter,
    monitored_item_request,
    relative_path,
    to_node_id,
)
from sentio_iot.producers.opcua.values import decode, timestamp_us
from sentio_iot.producers.recording import RecordingEmitter
from sentio_iot.records import EventKind, Metric, Quality, Reading, now_us

S = ua.StatusCodes
T1 = datetime(2025, 3, 1, 8, 0, 0, 250000, tzinfo=UTC)
T1_US = 1740816000250000
T2 = datetime(2025, 3, 1, 8, 0, 1, tzinfo=UTC)
T2_US = 1740816001000000


@pytest.mark.parametrize(
    ("code", "quality", "name"),
    [
        (S.Good, Quality.GOOD, "Good"),
        (S.GoodMoreData, Quality.GOOD, "GoodMoreData"),
        (S.Good | 0x400, Quality.GOOD, "Good"),  # info bits (limits) keep the name
        (S.UncertainLastUsableValue, Quality.UNCERTAIN, "UncertainLastUsableValue"),
        (S.UncertainSensorNotAccurate, Quality.UNCERTAIN, "UncertainSensorNotAccurate"),
        (S.Uncertain, Quality.UNCERTAIN, "Uncertain"),
        (S.BadSensorFailure, Quality.BAD, "BadSensorFailure"),
        (S.BadCommunicationError, Quality.BAD, "BadCommunicationError"),
        (S.BadWaitingForInitialData, Quality.BAD, "BadWaitingForInitialData"),
        (0xC0000000, Quality.BAD, "Bad"),  # the reserved severity counts as Bad
        (0x4FFF0000, Quality.UNCERTAIN, "Uncertain"),  # unknown codes name their severity
    ],
)
def test_status_codes_map_to_quality(code: int, quality: Quality, name: str) -> None:
    assert (quality_of(code), status_name(code)) == (quality, name)


def test_status_hex() -> None:
    assert status_hex(S.BadSensorFailure) == "0x808C0000"
    assert status_hex(0) == "0x00000000"


def value(raw: Any, variant: ua.VariantType | None = None, **fields: Any) -> ua.DataValue:
    return ua.DataValue(ua.Variant(raw, variant), **fields)


@pytest.mark.parametrize(
    ("data_value", "metric"),
    [
        (value(1450.5, ua.VariantType.Double), Metric("m", 1450.5, "u")),
        (value(2.5, ua.VariantType.Float), Metric("m", 2.5, "u")),
        (value(-7, ua.VariantType.Int32), Metric("m", -7.0, "u")),
        (value(2**40, ua.VariantType.UInt64), Metric("m", float(2**40), "u")),
        (value(True, ua.VariantType.Boolean), Metric("m", 1.0, "u")),
        (value(False, ua.VariantType.Boolean), Metric("m", 0.0, "u")),
        (value("running", ua.VariantType.String), Metric("m", None, "u", text="running")),
        (value(ua.LocalizedText("Ein", "de")), Metric("m", None, "u", text="Ein")),
        (value(ua.QualifiedName("Auto", 2)), Metric("m", None, "u", text="2:Auto")),
        (
            value(T1, ua.VariantType.DateTime),
            Metric("m", None, "u", text="2025-03-01T08:00:00.250000+00:00"),
        ),
        (
            value(uuid.UUID(int=5), ua.VariantType.Guid),
            Metric("m", None, "u", text="00000000-0000-0000-0000-000000000005"),
        ),
        (
            value(None, StatusCode=ua.StatusCode(S.BadSensorFailure)),
            Metric("m", None, "u", Quality.BAD),
        ),
        (
            value(
                61.0, ua.VariantType.Double, StatusCode=ua.StatusCode(S.UncertainLastUsableValue)
            ),
            Metric("m", 61.0, "u", Quality.UNCERTAIN),
        ),
    ],
)
def test_values_become_metrics(data_value: ua.DataValue, metric: Metric) -> None:
    assert decode(data_value).metric("m", "u") == metric


def test_values_no_metric_can_hold() -> None:
    with pytest.raises(DataError, match="array values are not supported"):
        decode(value([1.0, 2.0], ua.VariantType.Double))
    with pytest.raises(DataError, match="a ByteString value cannot be a metric"):
        decode(value(b"\x00\x01", ua.VariantType.ByteString))


def test_timestamps_source_then_server_then_now() -> None:
    assert timestamp_us(value(1.0, SourceTimestamp=T1, ServerTimestamp=T2)) == T1_US
    assert timestamp_us(value(1.0, ServerTimestamp=T2)) == T2_US
    assert timestamp_us(value(1.0, SourceTimestamp=T1.replace(tzinfo=None))) == T1_US  # naive: UTC
    null = datetime(1601, 1, 1)  # OPC-UA's "no timestamp"
    assert timestamp_us(value(1.0, SourceTimestamp=null, ServerTimestamp=T2)) == T2_US
    before = now_us()
    assert before <= timestamp_us(value(1.0)) <= now_us()


def settings(**fields: Any) -> OpcUaServerConfig:
    return OpcUaServerConfig.model_validate(
        {
            "device_id": "plc1",
            "url": "opc.tcp://plc1:4840",
            "nodes": [{"node_id": "ns=2;i=1", "metric": "speed"}],
        }
        | fields
    )


def test_monitored_item_request_with_deadband() -> None:
    node = NodeConfig(
        node_id="ns=2;i=1", metric="speed", deadband_absolute=0.5, sampling_interval_ms=100
    )
    request = monitored_item_request(3, ua.NodeId(1, 2), node, settings(queue_size=4))
    parameters = request.RequestedParameters
    assert request.ItemToMonitor.NodeId == ua.NodeId(1, 2)
    assert request.ItemToMonitor.AttributeId == ua.AttributeIds.Value
    assert (parameters.ClientHandle, parameters.SamplingInterval, parameters.QueueSize) == (
        4,
        100,
        4,
    )
    data_filter = parameters.Filter
    assert isinstance(data_filter, ua.DataChangeFilter)
    assert (data_filter.Trigger, data_filter.DeadbandType, data_filter.DeadbandValue) == (
        ua.DataChangeTrigger.StatusValue,
        ua.DeadbandType.Absolute,
        0.5,
    )
    percent = deadband_filter(NodeConfig(node_id="i=1", metric="p", deadband_percent=2))
    assert percent is not None
    assert (percent.DeadbandType, percent.DeadbandValue) == (ua.DeadbandType.Percent, 2)
    assert deadband_filter(NodeConfig(node_id="i=1", metric="p")) is None
    plain = monitored_item_request(
        0, ua.NodeId(1, 2), NodeConfig(node_id="i=1", metric="p"), settings()
    )
    assert plain.RequestedParameters.SamplingInterval == 500.0  # the server's default
    assert plain.RequestedParameters.Filter == ua.ExtensionObject()  # the empty filter


@pytest.mark.parametrize(
    "text",
    [
        "ns=2;i=1001",
        "ns=2;s=Pump1.Speed",
        "i=2258",
        "ns=1;g=09087e75-8e5e-499b-954f-f2a9603db28a",
        "ns=4;b=AQID",
    ],
)
def test_node_ids_match_asyncua(text: str) -> None:
    assert to_node_id(parse_node_id(text), []) == ua.NodeId.from_string(text)


def test_namespace_uris_are_looked_up() -> None:
    parsed = parse_node_id("nsu=urn:plant;s=Pump1.Speed")
    assert to_node_id(
        parsed, ["http://opcfoundation.org/UA/", "urn:server", "urn:plant"]
    ) == ua.NodeId("Pump1.Speed", 2)
    assert to_node_id(parsed, ["http://opcfoundation.org/UA/"]) is None


def test_browse_path_as_relative_path() -> None:
    path = relative_path("0:Objects/2:Plant/2:Pump1")
    assert [(e.TargetName.NamespaceIndex, e.TargetName.Name) for e in path.Elements] == [
        (0, "Objects"),
        (2, "Plant"),
        (2, "Pump1"),
    ]
    assert all(not e.IsInverse and e.IncludeSubtypes for e in path.Elements)
    assert {e.ReferenceTypeId for e in path.Elements} == {
        ua.NodeId(ua.ObjectIds.HierarchicalReferences)
    }


def test_changes_become_readings_without_repeats() -> None:
    """What the subscription hands over: a value repeated by a new subscription is not emitted again."""
    recorder = RecordingEmitter()
    config = settings(
        labels={"line": "L1"},
        nodes=[
            {"node_id": "ns=2;i=1", "metric": "speed", "unit": "rpm", "device_id": "pump1"},
            {"node_id": "ns=2;i=2", "metric": "curve", "labels": {"kind": "array"}},
        ],
    )
    connector = OpcUaConnector(config, recorder, ConnectorContext(tenant="acme", site="p1"))
    good = value(1450.0, ua.VariantType.Double, SourceTimestamp=T1)
    bad = value(None, StatusCode=ua.StatusCode(S.BadSensorFailure), SourceTimestamp=T2)
    for data_value in (good, good, bad, bad, good):
        connector._on_change(0, data_value)
    connector._on_change(1, value([1.0, 2.0], ua.VariantType.Double))
    labels = {"tenant": "acme", "site": "p1", "line": "L1"}
    assert recorder.readings == [
        Reading("pump1", T1_US, [Metric("speed", 1450.0, "rpm")], "opcua", labels, 1),
        Reading("pump1", T2_US, [Metric("speed", None, "rpm", Quality.BAD)], "opcua", labels, 2),
        Reading("pump1", T1_US, [Metric("speed", 1450.0, "rpm")], "opcua", labels, 3),
    ]
    assert [(e.kind, e.message, e.details["previous_status"]) for e in recorder.events] == [
        (EventKind.ERROR, "speed: status BadSensorFailure", "Good"),
        (EventKind.INFO, "speed: status Good", "BadSensorFailure"),
    ]
    assert [(reason, origin) for _, reason, origin in recorder.dead_letters] == [
        (
            "array values are not supported; subscribe to single elements",
            "opc.tcp://plc1:4840#ns=2;i=2",
        )
    ]
