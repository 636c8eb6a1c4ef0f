"""A Home Assistant WebSocket API server for tests: the documented messages, nothing more.

It speaks ``/api/websocket`` as Home Assistant does (``auth_required`` -> ``auth`` ->
``auth_ok``/``auth_invalid``; ``get_states``, ``subscribe_events``, ``ping``, the registry
lists; ``result``/``event``/``pong`` answers) on a free 127.0.0.1 port, and it records and
checks what clients send: the token, and that ids increase on each connection (a violation is
answered with Home Assistant's ``id_reuse`` error and kept in ``protocol_errors``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import WSMsgType, web

HA_VERSION = "2025.1.0"


def iso(moment: datetime) -> str:
    """Home Assistant's timestamp format: ISO 8601 with the UTC offset."""
    return moment.astimezone(UTC).isoformat()


def state_object(
    entity_id: str, state: str, attributes: dict[str, Any], changed: datetime, updated: datetime
) -> dict[str, Any]:
    return {
        "entity_id": entity_id,
        "state": state,
        "attributes": attributes,
        "last_changed": iso(changed),
        "last_reported": iso(updated),
        "last_updated": iso(updated),
        "context": {"id": "01JTEST0000000000000000000", "parent_id": None, "user_id": None},
    }


@dataclass
class ClientConnection:
    """One client's socket and what it sent."""

    ws: web.WebSocketResponse
    received: list[dict[str, Any]] = field(default_factory=list)
    subscriptions: dict[int, str] = field(default_factory=dict)  # id -> event_type
    authenticated: bool = False
    last_id: int = 0


class HomeAssistantServer:
    """Start with :meth:`start`; change entities with :meth:`set_state` and :meth:`remove`."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.states: dict[str, dict[str, Any]] = {}
        self.devices: list[dict[str, Any]] = []  # config/device_registry/list
        self.entity_registry: list[dict[str, Any]] = []  # config/entity_registry/list
        self.answer_pings = True
        self.connections: list[ClientConnection] = []
        self.auth_attempts: list[str] = []  # the tokens offered
        self.protocol_errors: list[str] = []
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def start(self, port: int = 0) -> str:
        app = web.Application()
        app.router.add_get("/api/websocket", self._websocket)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"ws://127.0.0.1:{port}/api/websocket"
        return self.url

    async def stop(self) -> None:
        await self.drop_connections()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def live(self) -> list[ClientConnection]:
        return [c for c in self.connections if c.authenticated and not c.ws.closed]

    def subscribed(self, event_type: str = "state_changed") -> list[ClientConnection]:
        return [c for c in self.live if event_type in c.subscriptions.values()]

    async def set_state(
        self,
        entity_id: str,
        state: str,
        attributes: dict[str, Any] | None = None,
        *,
        when: datetime,
        changed: datetime | None = None,
    ) -> dict[str, Any]:
        """Store a state and fire ``state_changed`` to every subscriber; returns the new state."""
        old = self.states.get(entity_id)
        if changed is None:
            changed = when if old is None or old["state"] != state else _parse(old["last_changed"])
        new = state_object(entity_id, state, attributes or {}, changed, when)
        self.states[entity_id] = new
        await self._fire(entity_id, old, new, when)
        return new

    async def remove(self, entity_id: str, *, when: datetime) -> None:
        old = self.states.pop(entity_id)
        await self._fire(entity_id, old, None, when)

    async def drop_connections(self) -> None:
        """Close every client socket, as a Home Assistant restart does."""
        for connection in list(self.connections):
            await connection.ws.close()

    async def _fire(
        self, entity_id: str, old: dict[str, Any] | None, new: dict[str, Any] | None, when: datetime
    ) -> None:
        event = {
            "event_type": "state_changed",
            "data": {"entity_id": entity_id, "old_state": old, "new_state": new},
            "origin": "LOCAL",
            "time_fired": iso(when),
            "context": {"id": "01JTEST0000000000000000001", "parent_id": None, "user_id": None},
        }
        for connection in self.live:
            for sub_id, event_type in connection.subscriptions.items():
                if event_type == "state_changed":
                    message = {"id": sub_id, "type": "event", "event": event}
                    await connection.ws.send_str(json.dumps(message))

    async def _websocket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        connection = ClientConnection(ws)
        self.connections.append(connection)
        await ws.send_json({"type": "auth_required", "ha_version": HA_VERSION})
        async for message in ws:
            if message.type is not WSMsgType.TEXT:
                break
            data = json.loads(message.data)
            connection.received.append(data)
            if not connection.authenticated:
                if not await self._authenticate(connection, data):
                    break
                continue
            await self._command(connection, data)
        await ws.close()
        return ws

    async def _authenticate(self, connection: ClientConnection, data: dict[str, Any]) -> bool:
        if data.get("type") != "auth" or set(data) != {"type", "access_token"}:
            self.protocol_errors.append(f"first message is not an auth message: {data}")
            await connection.ws.send_json(
                {"type": "auth_invalid", "message": "Auth message incorrectly formatted"}
            )
            return False
        self.auth_attempts.append(data["access_token"])
        if data["access_token"] != self.token:
            await connection.ws.send_json(
                {"type": "auth_invalid", "message": "Invalid access token or password"}
            )
            return False
        connection.authenticated = True
        await connection.ws.send_json({"type": "auth_ok", "ha_version": HA_VERSION})
        return True

    async def _command(self, connection: ClientConnection, data: dict[str, Any]) -> None:
        message_id = data.get("id")
        if not isinstance(message_id, int) or message_id <= connection.last_id:
            self.protocol_errors.append(f"id {message_id!r} after {connection.last_id}: {data}")
            await connection.ws.send_json(
                _error(message_id, "id_reuse", "Identifier values have to increase.")
            )
            return
        connection.last_id = message_id
        command = data.get("type")
        if command == "ping":
            if self.answer_pings:
                await connection.ws.send_json({"id": message_id, "type": "pong"})
            return
        handler = self._handlers().get(str(command))
        if handler is None:
            await connection.ws.send_json(_error(message_id, "unknown_command", "Unknown command."))
            return
        await connection.ws.send_json(_result(message_id, handler(connection, data)))

    def _handlers(self) -> dict[str, Callable[[ClientConnection, dict[str, Any]], Any]]:
        return {
            "get_states": lambda c, d: list(self.states.values()),
            "subscribe_events": self._subscribe,
            "config/entity_registry/list": lambda c, d: self.entity_registry,
            "config/device_registry/list": lambda c, d: self.devices,
        }

    def _subscribe(self, connection: ClientConnection, data: dict[str, Any]) -> None:
        connection.subscriptions[data["id"]] = data.get("event_type", "*")


def _result(message_id: int, result: Any) -> dict[str, Any]:
    return {"id": message_id, "type": "result", "success": True, "result": result}


def _error(message_id: Any, code: str, message: str) -> dict[str, Any]:
    error = {"code": code, "message": message}
    return {"id": message_id, "type": "result", "success": False, "error": error}


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text)
