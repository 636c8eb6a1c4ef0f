"""Home Assistant WebSocket connector: entity states as readings and device events.

Per connection: authenticate, (device modes) read the entity and device registries,
``subscribe_events`` for ``state_changed``, then ``get_states`` for the current state of every
entity. Subscribing first means no change is missed; updates no newer than what was already
emitted for an entity (by ``last_updated``) are skipped, so the snapshot after a reconnect
repeats nothing. Entities that vanished while disconnected are reported REMOVED.

The connection is checked with ``ping`` every ``ping_interval_s``; a missing ``pong`` or a
dropped socket ends it, and ``run()`` reconnects with exponential backoff, emitting
DISCONNECTED/CONNECTED for the instance. A refused token is a ConfigError: it stops the
connector instead of hammering Home Assistant (which bans addresses after failed logins).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import BaseModel

from sentio_iot.errors import ConfigError, ConnectError, DataError, TransientError
from sentio_iot.producers.connector import Connector, ConnectorContext, Emitter
from sentio_iot.producers.homeassistant_ws.client import CommandFailed, HomeAssistantConnection
from sentio_iot.producers.homeassistant_ws.config import DeviceIdSource, HomeAssistantWsConfig
from sentio_iot.producers.homeassistant_ws.states import (
    SOURCE,
    DeviceInfo,
    entity_selected,
    map_state,
    names_for,
    parse_time_us,
    updated_us,
)
from sentio_iot.producers.reconnect import Backoff, FailureStreak
from sentio_iot.records import DeviceEvent, EventKind, now_us

logger = logging.getLogger(__name__)

REGISTRY_EVENTS = ("entity_registry_updated", "device_registry_updated")


class HomeAssistantWsConnector(Connector):
    protocol: ClassVar[str] = "homeassistant_ws"

    def __init__(self, config: BaseModel, emit: Emitter, context: ConnectorContext) -> None:
        if not isinstance(config, HomeAssistantWsConfig):
            raise ConfigError(f"homeassistant_ws needs a HomeAssistantWsConfig, not {config!r}")
        super().__init__(config, emit, context)
        self.settings = config
        self.labels = {**context.base_labels(), **config.labels}
        self._connection: HomeAssistantConnection | None = None
        self._states: dict[str, str] = {}  # entity_id -> last state string emitted for
        self._updated_us: dict[str, int] = {}  # entity_id -> last_updated of that state
        self._device_of: dict[str, DeviceInfo] = {}
        self._registry_refresh: asyncio.Task[None] | None = None
        self._connected: bool | None = None  # None: not tried yet
        self._failures = FailureStreak(logger, f"homeassistant_ws {config.instance_id}")

    async def connect(self) -> None:
        """First connection; a wrong token stops here, an unreachable server is left to run()."""
        try:
            self._connection = await self._open()
        except TransientError as exc:
            self._note_failure(exc)

    async def run(self) -> None:
        """Serve the connection; after it ends wait, doubling the wait while it keeps failing."""
        loop = asyncio.get_running_loop()
        backoff = Backoff(self.settings.reconnect_initial_s, self.settings.reconnect_max_s)
        while True:
            up_since: float | None = None
            try:
                if self._connection is None:
                    self._connection = await self._open()
                up_since = loop.time()
                await self._keep_alive(self._connection)
                self._note_failure(ConnectError(self._connection.close_reason))
            except TransientError as exc:
                self._note_failure(exc)
            finally:
                await self._drop_connection()
            if up_since is not None:
                backoff.held(loop.time() - up_since)
            await backoff.wait()

    async def close(self) -> None:
        await self._drop_connection()

    def _access_token(self) -> str:
        if self.settings.access_token is not None:
            return str(self.settings.access_token.get_secret_value())
        name = self.settings.access_token_env or ""
        token = os.environ.get(name, "")
        if not token:
            raise ConfigError(
                f"homeassistant_ws {self.settings.instance_id}: environment variable {name} (access_token_env) is not set; export the long-lived access token there"
            )
        return token

    async def _open(self) -> HomeAssistantConnection:
        """Connect, authenticate, subscribe and emit the snapshot; closes what it opened on error."""
        token = self._access_token()
        connection = HomeAssistantConnection(
            self.settings.url,
            timeout_s=self.settings.timeout_s,
            verify_tls=self.settings.verify_tls,
            on_bad_message=self._dead_letter,
        )
        try:
            await connection.open(token)
            self._mark_connected(connection)
            if self.settings.device_id_from in (
                DeviceIdSource.DEVICE_ID,
                DeviceIdSource.DEVICE_NAME,
            ):
                await self._load_registry(connection)
                for event_type in REGISTRY_EVENTS:
                    await connection.subscribe(event_type, self._on_registry_updated)
            await connection.subscribe("state_changed", self._on_state_changed)
            states = await connection.call("get_states")
        except ConfigError as exc:
            await connection.close()
            self._emit_instance_event(EventKind.ERROR, str(exc), {"url": self.settings.url})
            logger.error("homeassistant_ws %s: %s", self.settings.instance_id, exc)
            raise
        except BaseException:
            await connection.close()
            raise
        self._apply_snapshot(states)
        return connection

    async def _keep_alive(self, connection: HomeAssistantConnection) -> None:
        """Ping every ping_interval_s until the connection ends; no pong raises OperationTimeout."""
        while not connection.closed.is_set():
            try:
                async with asyncio.timeout(self.settings.ping_interval_s):
                    await connection.closed.wait()
            except TimeoutError:
                await connection.ping()

    async def _drop_connection(self) -> None:
        if self._registry_refresh is not None:
            self._registry_refresh.cancel()
            await asyncio.gather(self._registry_refresh, return_exceptions=True)
            self._registry_refresh = None
        if self._connection is not None:
            connection, self._connection = self._connection, None
            await connection.close()

    def _mark_connected(self, connection: HomeAssistantConnection) -> None:
        self._failures.ended()
        self._connected = True
        details = {"url": self.settings.url, "ha_version": connection.ha_version}
        self._emit_instance_event(EventKind.CONNECTED, "connected to Home Assistant", details)

    def _note_failure(self, exc: Exception) -> None:
        """Log the 1st, 10th, 100th, ... failure of a streak; one DISCONNECTED per streak.

        A first connection that fails also counts as DISCONNECTED: the instance is unreachable.
        """
        self._failures.failed(exc)
        if self._connected is not False:
            self._connected = False
            details = {"url": self.settings.url, "reason": str(exc)}
            self._emit_instance_event(EventKind.DISCONNECTED, f"disconnected: {exc}", details)

    def _emit_instance_event(self, kind: EventKind, message: str, details: dict[str, str]) -> None:
        device_id = self.settings.instance_id
        event = DeviceEvent(device_id, now_us(), kind, message, SOURCE, details, self.labels)
        self.emit.event(event)

    async def _load_registry(self, connection: HomeAssistantConnection) -> None:
        """Entity -> device, for the device naming modes; without admin rights fall back."""
        try:
            entities = await connection.call("config/entity_registry/list")
            devices = await connection.call("config/device_registry/list")
        except CommandFailed as exc:
            logger.warning(
                "homeassistant_ws %s: cannot read the device registry (%s); device ids fall back to object ids",
                self.settings.instance_id,
                exc,
            )
            return
        by_id: dict[str, DeviceInfo] = {}
        for device in devices if isinstance(devices, list) else []:
            if isinstance(device, Mapping) and isinstance(device.get("id"), str):
                name = device.get("name_by_user") or device.get("name")
                by_id[device["id"]] = DeviceInfo(
                    device["id"], name if isinstance(name, str) else None
                )
        self._device_of = {
            entry["entity_id"]: by_id[entry["device_id"]]
            for entry in (entities if isinstance(entities, list) else [])
            if isinstance(entry, Mapping) and entry.get("device_id") in by_id
        }

    def _on_registry_updated(self, event: dict[str, Any]) -> None:
        connection = self._connection
        if connection is None or (self._registry_refresh and not self._registry_refresh.done()):
            return
        self._registry_refresh = asyncio.create_task(self._refresh_registry(connection))

    async def _refresh_registry(self, connection: HomeAssistantConnection) -> None:
        try:
            await self._load_registry(connection)
        except TransientError as exc:  # the connection is ending; the next one reloads it
            logger.debug("registry refresh failed: %s", exc)

    def _on_state_changed(self, event: dict[str, Any]) -> None:
        data = event.get("data")
        entity_id = data.get("entity_id") if isinstance(data, Mapping) else None
        if not isinstance(data, Mapping) or not isinstance(entity_id, str):
            self._dead_letter(_raw(event), "state_changed event without data.entity_id")
            return
        try:
            fired_us = parse_time_us(event["time_fired"]) if "time_fired" in event else now_us()
        except DataError:
            fired_us = now_us()
        self._apply(entity_id, data.get("new_state"), fired_us, data.get("old_state"))

    def _apply_snapshot(self, states: Any) -> None:
        if not isinstance(states, list):
            self._dead_letter(_raw(states)[:65536], "get_states result is not a list")
            return
        seen: set[str] = set()
        for state in states:
            entity_id = state.get("entity_id") if isinstance(state, Mapping) else None
            if not isinstance(entity_id, str):
                self._dead_letter(_raw(state), "state object without entity_id")
                continue
            seen.add(entity_id)
            self._apply(entity_id, state, now_us(), None)
        for entity_id in set(self._states) - seen:  # removed while we were away
            self._apply(entity_id, None, now_us(), None)

    def _apply(self, entity_id: str, new_state: Any, fired_us: int, old_state: Any) -> None:
        """Map one entity's new state, skipping updates already emitted; bad shapes dead-letter."""
        if not entity_selected(entity_id, self.settings):
            return
        previous = self._states.get(entity_id)
        if previous is None and isinstance(old_state, Mapping):
            old_text = old_state.get("state")
            previous = old_text if isinstance(old_text, str) else None
        try:
            if new_state is not None and not isinstance(new_state, Mapping):
                raise DataError(f"{entity_id}: state object is not a JSON object")
            updated = updated_us(entity_id, new_state) if new_state is not None else -1
            if new_state is not None and updated <= self._updated_us.get(entity_id, -1):
                return  # already emitted (snapshot after subscribing, or after a reconnect)
            attributes = new_state.get("attributes") if new_state is not None else None
            names = names_for(
                entity_id,
                attributes if isinstance(attributes, Mapping) else {},
                self.settings,
                self._device_of,
            )
            records = map_state(
                entity_id,
                new_state,
                previous=previous,
                names=names,
                removed_at_us=fired_us,
                labels=self.labels,
            )
        except DataError as exc:
            self._dead_letter(_raw(new_state), str(exc), origin=entity_id)
            return
        if new_state is None:
            self._states.pop(entity_id, None)
            self._updated_us.pop(entity_id, None)
        else:
            self._states[entity_id] = new_state["state"]
            self._updated_us[entity_id] = updated
        for record in records:
            if isinstance(record, DeviceEvent):
                self.emit.event(record)
            else:
                self.emit.reading(record)

    def _dead_letter(self, raw: bytes, reason: str, origin: str | None = None) -> None:
        where = f"{self.settings.url}#{origin}" if origin else self.settings.url
        # one line, whatever the entity id holds
        self.emit.dead_letter(raw, " ".join(reason.splitlines()), origin=where)


def _raw(value: Any) -> bytes:
    """What came over the wire, re-encoded as JSON for the dead-letter topic."""
    return json.dumps(value, default=str).encode()
