"""The Home Assistant WebSocket connector against a stand-in server (ha_ws_server.py).

test_homeassistant_real.py runs the connector against the real Home Assistant core (state
changes, unknown/unavailable, removal, restart, bad token). What stays here is what real
Home Assistant cannot be made to do on cue, or cannot show: the exact messages the client
sent, how many times it tried a token, a token revoked between two connections, changes
made while the connector is away, a pong that never comes, a malformed state object, a
device registry answer, and no server at all at start-up.
"""

from __future__ import annotations

import asyncio
import calendar
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from ha_ws_server import HomeAssistantServer

from sentio_iot.errors import ConfigError
from sentio_iot.producers.connector import ConnectorContext
from sentio_iot.producers.homeassistant_ws.config import HomeAssistantWsConfig
from sentio_iot.producers.homeassistant_ws.connector import HomeAssistantWsConnector
from sentio_iot.producers.recording import RecordingEmitter, wait_until
from sentio_iot.records import DeviceEvent, EventKind, Metric, Reading

TOKEN = "ha-long-lived-token-for-tests"
T0 = datetime(2025, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)
LABELS = {"tenant": "acme", "site": "home", "floor": "1"}
CELSIUS = {"unit_of_measurement": "°C", "device_class": "temperature", "state_class": "measurement"}


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def us(moment: datetime) -> int:
    return calendar.timegm(moment.utctimetuple()) * 1_000_000 + moment.microsecond


@pytest.fixture(scope="session")
def running_stack() -> None:
    """These tests need no Kafka or other stack service: only the in-process server below."""


@pytest.fixture
async def ha() -> AsyncIterator[HomeAssistantServer]:
    server = HomeAssistantServer(TOKEN)
    await server.start()
    yield server
    await server.stop()


def make(
    ha: HomeAssistantServer, **fields: Any
) -> tuple[HomeAssistantWsConnector, RecordingEmitter]:
    settings = {
        "url": ha.url,
        "access_token": TOKEN,
        "labels": {"floor": "1"},
        "reconnect_initial_s": 0.05,
        "reconnect_max_s": 0.2,
        "timeout_s": 2.0,
        **fields,
    }
    recorder = RecordingEmitter()
    context = ConnectorContext(tenant="acme", site="home")
    config = HomeAssistantWsConfig.model_validate(settings)
    return HomeAssistantWsConnector(config, recorder, context), recorder


@asynccontextmanager
async def running(connector: HomeAssistantWsConnector) -> AsyncIterator[asyncio.Task[None]]:
    await connector.connect()
    task = asyncio.create_task(connector.run())
    try:
        yield task
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await connector.close()


def temperature(value: float, when: datetime, entity: str = "kitchen_temperature") -> Reading:
    return Reading(
        entity,
        us(when),
        [Metric("temperature", value, "°C")],
        "homeassistant_ws",
        {**LABELS, "entity_id": f"sensor.{entity}"},
    )


def commands(ha: HomeAssistantServer, connection: int = 0) -> list[tuple[Any, Any]]:
    return [(m.get("id"), m["type"]) for m in ha.connections[connection].received]


async def test_initial_states_come_from_get_states(
    ha: HomeAssistantServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    await ha.set_state("sensor.kitchen_temperature", "21.5", CELSIUS, when=at(0))
    await ha.set_state("binary_sensor.front_door", "off", {"friendly_name": "Door"}, when=at(1))
    await ha.set_state(
        "sensor.cellar_power", "unavailable", {"unit_of_measurement": "W"}, when=at(2)
    )
    await ha.set_state("light.porch", "on", when=at(3))
    monkeypatch.setenv("SENTIO_TEST_HA_TOKEN", TOKEN)
    connector, emitted = make(
        ha, access_token=None, access_token_env="SENTIO_TEST_HA_TOKEN", exclude_domains=["light"]
    )
    async with running(connector):
        await wait_until(lambda: len(emitted.events) == 3)
    assert ha.auth_attempts == [TOKEN]
    assert ha.connections[0].received[0] == {"type": "auth", "access_token": TOKEN}
    assert commands(ha) == [(None, "auth"), (1, "subscribe_events"), (2, "get_states")]
    assert ha.connections[0].received[1]["event_type"] == "state_changed"
    assert emitted.readings == [temperature(21.5, at(0))]
    connected, door, cellar = emitted.events
    assert (connected.device_id, connected.kind) == ("homeassistant", EventKind.CONNECTED)
    assert connected.details == {"url": ha.url, "ha_version": "2025.1.0"}
    assert door == DeviceEvent(
        "front_door",
        us(at(1)),
        EventKind.INFO,
        "binary_sensor.front_door is off",
        "homeassistant_ws",
        {"entity_id": "binary_sensor.front_door", "friendly_name": "Door", "state": "off"},
        LABELS,
    )
    assert (cellar.device_id, cellar.kind, cellar.ts_us) == (
        "cellar_power",
        EventKind.OFFLINE,
        us(at(2)),
    )
    assert ha.protocol_errors == []


async def test_wrong_token_is_one_clear_error_and_no_retries(ha: HomeAssistantServer) -> None:
    connector, emitted = make(ha, access_token="not-the-token")
    with pytest.raises(ConfigError, match="refused the access token") as caught:
        await connector.connect()
    assert "\n" not in str(caught.value)
    assert "not-the-token" not in str(caught.value)
    assert "long-lived access token" in str(caught.value)
    await asyncio.sleep(0.3)  # several backoff periods: nothing may try again on its own
    assert ha.auth_attempts == ["not-the-token"]
    assert emitted.kinds() == [EventKind.ERROR]
    await connector.close()


async def test_token_revoked_while_running_stops_run_after_one_attempt(
    ha: HomeAssistantServer,
) -> None:
    connector, emitted = make(ha)
    await connector.connect()
    task = asyncio.create_task(connector.run())
    await wait_until(lambda: len(ha.subscribed()) == 1)
    ha.token = "a-new-token"
    await ha.drop_connections()
    with pytest.raises(ConfigError, match="refused the access token"):
        await asyncio.wait_for(task, 5)
    await connector.close()
    assert ha.auth_attempts == [TOKEN, TOKEN]
    assert emitted.kinds("homeassistant") == [
        EventKind.CONNECTED,
        EventKind.DISCONNECTED,
        EventKind.ERROR,
    ]


async def test_reconnects_resubscribes_and_catches_up(ha: HomeAssistantServer) -> None:
    await ha.set_state("sensor.kitchen_temperature", "21.5", CELSIUS, when=at(0))
    await ha.set_state("sensor.attic_temperature", "15", CELSIUS, when=at(0))
    connector, emitted = make(ha, reconnect_initial_s=0.3, reconnect_max_s=1.0)
    async with running(connector):
        await wait_until(lambda: len(ha.subscribed()) == 1 and len(emitted.readings) == 2)
        await ha.drop_connections()
        # while the connector waits to reconnect: one change and one removal it must not miss
        await ha.set_state("sensor.kitchen_temperature", "23", CELSIUS, when=at(5))
        await ha.remove("sensor.attic_temperature", when=at(6))
        # resubscribed and caught up (23 from the snapshot): only then the next change, else
        # its event can beat the snapshot and 23 is superseded before anyone sees it
        await wait_until(lambda: len(ha.subscribed()) == 1 and len(emitted.readings) == 3)
        await ha.set_state("sensor.kitchen_temperature", "24.5", CELSIUS, when=at(9))
        await wait_until(lambda: len(emitted.readings) == 4)
    assert emitted.kinds("homeassistant") == [
        EventKind.CONNECTED,
        EventKind.DISCONNECTED,
        EventKind.CONNECTED,
    ]
    assert len(ha.connections) == 2
    assert commands(ha, 1) == [(None, "auth"), (1, "subscribe_events"), (2, "get_states")]
    assert ha.auth_attempts == [TOKEN, TOKEN]
    assert sorted(emitted.readings, key=lambda r: (r.ts_us, r.device_id)) == [
        temperature(15.0, at(0), "attic_temperature"),
        temperature(21.5, at(0)),
        temperature(23.0, at(5)),
        temperature(24.5, at(9)),
    ]
    assert [(e.device_id, e.kind) for e in emitted.events if e.device_id != "homeassistant"] == [
        ("attic_temperature", EventKind.REMOVED)
    ]
    assert ha.protocol_errors == []


async def test_keepalive_pings_and_a_missing_pong_reconnects(ha: HomeAssistantServer) -> None:
    connector, emitted = make(ha, ping_interval_s=0.05, timeout_s=0.3)
    async with running(connector):
        await wait_until(lambda: sum(m["type"] == "ping" for m in ha.connections[0].received) >= 3)
        ha.answer_pings = False
        await wait_until(lambda: EventKind.DISCONNECTED in emitted.kinds())
        ha.answer_pings = True
        await wait_until(lambda: emitted.kinds().count(EventKind.CONNECTED) == 2)
    ids = [m["id"] for m in ha.connections[0].received if "id" in m]
    assert ids == list(range(1, len(ids) + 1))
    disconnected = next(e for e in emitted.events if e.kind is EventKind.DISCONNECTED)
    assert "no answer to ping" in disconnected.details["reason"]
    assert ha.protocol_errors == []


async def test_device_registry_names_group_entities(ha: HomeAssistantServer) -> None:
    ha.devices = [{"id": "d1", "name": "Kitchen Sensor", "name_by_user": None}]
    ha.entity_registry = [
        {"entity_id": "sensor.kitchen_temperature", "device_id": "d1"},
        {"entity_id": "sensor.kitchen_humidity", "device_id": "d1"},
    ]
    humidity = {"unit_of_measurement": "%", "device_class": "humidity"}
    await ha.set_state("sensor.kitchen_temperature", "21.5", CELSIUS, when=at(0))
    await ha.set_state("sensor.kitchen_humidity", "40", humidity, when=at(0))
    connector, emitted = make(ha, device_id_from="device_name")
    async with running(connector):
        await wait_until(lambda: len(emitted.readings) == 2)
    assert sorted(
        (r.device_id, r.metrics[0].name, r.metrics[0].value) for r in emitted.readings
    ) == [
        ("kitchen_sensor", "humidity", 40.0),
        ("kitchen_sensor", "temperature", 21.5),
    ]
    sent = [m["type"] for m in ha.connections[0].received]
    assert sent[:3] == ["auth", "config/entity_registry/list", "config/device_registry/list"]


async def test_malformed_state_goes_to_dead_letters(ha: HomeAssistantServer) -> None:
    await ha.set_state("sensor.kitchen_temperature", "21.5", CELSIUS, when=at(0))
    ha.states["sensor.kitchen_temperature"]["last_updated"] = "not a time"
    connector, emitted = make(ha)
    async with running(connector):
        await wait_until(lambda: len(emitted.dead_letters) == 1)
    raw, reason, origin = emitted.dead_letters[0]
    assert reason == "timestamp 'not a time' is not ISO 8601"
    assert origin == f"{ha.url}#sensor.kitchen_temperature"
    assert b'"not a time"' in raw
    assert emitted.readings == []


async def test_unreachable_at_start_then_connects_when_home_assistant_is_up(
    ha: HomeAssistantServer,
) -> None:
    port = int(ha.url.rsplit(":", 1)[1].split("/")[0])
    await ha.stop()
    connector, emitted = make(ha)
    await connector.connect()  # not an error: run() keeps trying
    task = asyncio.create_task(connector.run())
    try:
        await asyncio.sleep(0.6)  # several failed attempts, at most 0.2 s apart
        assert emitted.kinds() == [EventKind.DISCONNECTED]
        await ha.set_state("sensor.kitchen_temperature", "21.5", CELSIUS, when=at(0))
        await ha.start(port)
        await wait_until(lambda: len(emitted.readings) == 1)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await connector.close()
    assert emitted.kinds() == [EventKind.DISCONNECTED, EventKind.CONNECTED]
    assert emitted.readings == [temperature(21.5, at(0))]
    assert "cannot connect" in emitted.events[0].details["reason"]
