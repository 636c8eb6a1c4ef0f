"""MQTT over TLS with client certificates, against a real Mosquitto of each test.

The broker (tests/integration/mosquitto_tls.py) requires a certificate its CA issued. The
MQTT connector with its certificate (an encrypted key, the password a SecretStr) reads what
a device publishes; without one, with a stranger's, or trusting another CA it is refused
with one line naming the field to change. The Home Assistant sink publishes through the
same broker, and a publish the broker's ACL refuses (MQTT 5 PUBACK "Not authorized") is
dead-lettered with that reason instead of counting as written.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from mosquitto_tls import KEY_PASSWORD, TlsBroker, tls_broker

from sentio_iot.config import load_config
from sentio_iot.errors import ConfigError
from sentio_iot.producers.connector import ConnectorContext
from sentio_iot.producers.mqtt.config import MqttSourceConfig
from sentio_iot.producers.mqtt.connector import MqttConnector
from sentio_iot.producers.recording import RecordingEmitter, wait_until
from sentio_iot.records import EventKind
from sentio_iot.sinks.homeassistant import HomeAssistantWriter
from sentio_iot.sinks.writer import RejectedRecords, SinkRecord

TS = 1_795_000_000_000_000
SOURCE = "producers.mqtt source plant"


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsBroker]:
    with tls_broker(tmp_path_factory.mktemp("mosquitto-tls")) as broker:
        yield broker


def source(broker: TlsBroker, **fields: Any) -> MqttSourceConfig:
    return MqttSourceConfig.model_validate(
        {
            "source_id": "plant",
            "port": broker.port,
            "client_id": f"sentio-test-{uuid.uuid4().hex[:8]}",
            "tls": True,
            "ca_file": str(broker.ca.cert_path),
            "reconnect_min_s": 1,
            "reconnect_max_s": 1,
            "mappings": [
                {
                    "topic": "plant/{device}/state",
                    "device_id": "{device}",
                    "fields": [{"path": "$.flow", "metric": "flow", "unit": "m3/h"}],
                }
            ],
        }
        | fields
    )


def with_certificate(broker: TlsBroker) -> dict[str, Any]:
    return {
        "cert_file": str(broker.sentio.cert_path),
        "key_file": str(broker.sentio.key_path),
        "key_password": KEY_PASSWORD,
    }


@contextlib.asynccontextmanager
async def running(
    config: MqttSourceConfig,
) -> AsyncIterator[tuple[MqttConnector, RecordingEmitter]]:
    recorder = RecordingEmitter()
    connector = MqttConnector(config, recorder, ConnectorContext())
    await connector.connect()
    task = asyncio.create_task(connector.run())
    try:
        yield connector, recorder
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await connector.close()


async def test_with_its_client_certificate_the_connector_reads(broker: TlsBroker) -> None:
    config = source(broker, **with_certificate(broker))
    assert KEY_PASSWORD not in repr(config)
    async with running(config) as (connector, got):
        await connector.wait_subscribed(10)
        device = broker.client(broker.device)
        try:
            info = device.publish("plant/pump-7/state", json.dumps({"flow": 12.5}), qos=1)
            await asyncio.to_thread(info.wait_for_publish, 5)
            await wait_until(lambda: len(got.readings) == 1)
        finally:
            device.disconnect()
            device.loop_stop()
        reading = got.readings[0]
        assert (reading.device_id, [(m.name, m.value, m.unit) for m in reading.metrics]) == (
            "pump-7",
            [("flow", 12.5, "m3/h")],
        )
        assert [e.kind for e in got.events] == [EventKind.CONNECTED]


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (
            {},
            f"{SOURCE}: cert_file: the broker refused the TLS connection (",
        ),
        (
            "stranger",
            f"{SOURCE}: cert_file: the broker refused our client certificate ",
        ),
        (
            "other_ca",
            f"{SOURCE}: ca_file: the broker 127.0.0.1:",
        ),
    ],
)
async def test_without_a_certificate_it_trusts_the_connector_is_refused_in_one_line(
    broker: TlsBroker,
    fields: dict[str, Any] | str,
    expected: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    if fields == "stranger":
        fields = {
            "cert_file": str(broker.stranger.cert_path),
            "key_file": str(broker.stranger.key_path),
        }
    elif fields == "other_ca":
        fields = with_certificate(broker) | {"ca_file": str(broker.other_ca.cert_path)}
    assert isinstance(fields, dict)
    caplog.set_level(logging.WARNING)
    async with running(source(broker, **fields)) as (_, got):
        await wait_until(lambda: len(got.events) >= 1, timeout_s=10)
        await asyncio.sleep(1.5)  # a retry or two: still one event
        assert got.readings == []
        assert [e.kind for e in got.events] == [EventKind.ERROR]
        message = got.events[0].message
    assert "\n" not in message
    assert message.startswith(f"cannot connect to the broker: {expected}"), message
    if fields.get("ca_file") == str(broker.other_ca.cert_path):
        assert "presents a certificate that is not trusted (" in message
        assert f"; trusted: {broker.other_ca.cert_path}); fix: " in message
        assert message.endswith(
            "fix: set ca_file to the CA that issued it, and connect by a host name the certificate names"
        )
    elif "cert_file" in fields:
        assert message.endswith(
            "fix: use a certificate issued by a CA the broker trusts (its cafile)"
        )
    else:
        assert message.endswith(
            "it wants a client certificate; fix: set cert_file and key_file to one its CA issued"
        )
    assert expected in caplog.text
    assert KEY_PASSWORD not in caplog.text


def test_tls_settings_are_checked_at_once(broker: TlsBroker, tmp_path: Path) -> None:
    wrong = source(broker, **(with_certificate(broker) | {"key_password": "not-it"}))
    with pytest.raises(ConfigError) as caught:
        MqttConnector(wrong, RecordingEmitter(), ConnectorContext())
    assert str(caught.value).startswith(
        f"{SOURCE}: cert_file: {broker.sentio.cert_path} with key_file {broker.sentio.key_path} cannot be loaded ("
    )
    assert "not-it" not in str(caught.value)
    with pytest.raises(ValueError, match="a client certificate needs both cert_file and key_file"):
        source(broker, cert_file=str(broker.sentio.cert_path))
    with pytest.raises(ValueError, match="cert_file is set but tls is false; set tls: true"):
        source(broker, tls=False, ca_file=None, **with_certificate(broker))


def ha_config(broker: TlsBroker, base: str, **fields: Any) -> Any:
    return load_config(
        data={
            "sinks": {
                "startup_timeout_s": 5,
                "homeassistant": {
                    "host": "127.0.0.1",
                    "port": broker.port,
                    "base_topic": base,
                    "health_port": 0,
                    "tls": True,
                    "ca_file": str(broker.ca.cert_path),
                    **fields,
                },
            }
        }
    )


def rul_record(device: str, offset: int) -> SinkRecord:
    value = {
        "device_id": device,
        "ts": TS,
        "rul": 41.5,
        "rul_unit": "hours",
        "lower": 30.0,
        "upper": 55.0,
        "model_name": "cmapss_lstm",
        "model_version": "3",
        "window_size": 30,
        "labels": {"kind": "pump"},
    }
    return SinkRecord("sentio.rul", "rul", 0, offset, device.encode(), value)


async def test_home_assistant_sink_publishes_with_its_certificate_and_dead_letters_refusals(
    broker: TlsBroker,
) -> None:
    seen: list[tuple[str, bytes]] = []
    watcher = broker.client(broker.device)
    watcher.on_message = lambda _c, _u, m: seen.append((m.topic, m.payload))
    watcher.subscribe("#", qos=1)
    await asyncio.sleep(0.3)
    writer = HomeAssistantWriter(ha_config(broker, "sentio", **with_certificate(broker)))
    refused_writer = HomeAssistantWriter(ha_config(broker, "refused", **with_certificate(broker)))
    try:
        await writer.start()
        await writer.write([rul_record("pump-1", 0)])
        await refused_writer.start()  # its availability is refused too; it still starts
        with pytest.raises(RejectedRecords) as rejected:
            await refused_writer.write([rul_record("pump-2", 1), rul_record("pump-2", 2)])
        await wait_until(
            lambda: any(t == "sentio/pump-1/remaining_useful_life/state" for t, _ in seen)
        )
    finally:
        await writer.close()
        await refused_writer.close()
        watcher.disconnect()
        watcher.loop_stop()
    state = next(p for t, p in seen if t == "sentio/pump-1/remaining_useful_life/state")
    assert json.loads(state)["rul"] == 41.5
    assert not [t for t, _ in seen if t.startswith("refused/pump-2/")]
    reasons = rejected.value.reasons
    assert sorted(reasons) == [0, 1]
    assert reasons[0] == (
        f"the broker 127.0.0.1:{broker.port} refused the publish to "
        "refused/pump-2/remaining_useful_life/state: Not authorized (MQTT reason code 135); "
        "check its ACL and message size limit for this client"
    )

    without = HomeAssistantWriter(ha_config(broker, "sentio"))
    with pytest.raises(ConfigError) as caught:
        await without.start()
    assert str(caught.value).startswith(
        "sinks.homeassistant: cert_file: the broker refused the TLS connection ("
    )
