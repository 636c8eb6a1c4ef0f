"""One authenticated connection to Home Assistant's WebSocket API (``/api/websocket``).

The documented exchange: the server sends ``auth_required``; we answer
``{"type": "auth", "access_token": ...}``; it answers ``auth_ok`` or ``auth_invalid``. After
that every command carries an ``id`` that increases on the connection; answers are
``{"id", "type": "result", "success", "result" | "error"}``, subscriptions deliver
``{"id", "type": "event", "event": {...}}`` and ``ping`` is answered by ``pong``.

A reader task owned by the connection routes answers to their callers and events to their
handlers; when the socket ends every caller still waiting gets a ConnectError.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

import aiohttp

from sentio_iot.errors import ConfigError, ConnectError, OperationTimeout

logger = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 64 * 1024 * 1024  # get_states of a large installation runs to megabytes

EventHandler = Callable[[dict[str, Any]], None]
BadMessageHandler = Callable[[bytes, str], None]


class AuthenticationFailed(ConfigError):
    """Home Assistant refused the access token; retrying cannot help."""


class CommandFailed(ConnectError):
    """Home Assistant answered a command with ``success: false``."""

    def __init__(self, command: str, code: str, message: str) -> None:
        super().__init__(f"Home Assistant refused {command}: {code}: {message}")
        self.code = code
        self.detail = message


class HomeAssistantConnection:
    """Open with :meth:`open`, then :meth:`call`, :meth:`subscribe`, :meth:`ping`; :meth:`close`."""

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float,
        verify_tls: bool = True,
        on_bad_message: BadMessageHandler | None = None,
    ) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self.verify_tls = verify_tls
        self.ha_version = ""
        self.closed = asyncio.Event()
        self.close_reason = ""
        self._on_bad_message = on_bad_message
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None
        self._last_id = 0
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._handlers: dict[int, EventHandler] = {}

    async def open(self, access_token: str) -> None:
        """Connect and authenticate; AuthenticationFailed for a wrong token, else ConnectError."""
        self._session = aiohttp.ClientSession()
        try:
            async with asyncio.timeout(self.timeout_s):
                self._ws = await self._session.ws_connect(
                    self.url,
                    max_msg_size=MAX_MESSAGE_BYTES,
                    ssl=self.verify_tls,
                )
                await self._expect("auth_required")
                await self._ws.send_json({"type": "auth", "access_token": access_token})
                answer = await self._receive_json()
        except TimeoutError as exc:
            raise OperationTimeout(f"{self.url}: no answer within {self.timeout_s} s") from exc
        except aiohttp.ClientError as exc:
            raise ConnectError(f"{self.url}: cannot connect: {exc}") from exc
        except OSError as exc:
            raise ConnectError(f"{self.url}: cannot connect: {exc}") from exc
        if answer.get("type") == "auth_invalid":
            raise AuthenticationFailed(
                f"Home Assistant at {self.url} refused the access token ({answer.get('message', 'auth_invalid')}): create a long-lived access token on your Home Assistant profile page and set it in access_token or access_token_env"
            )
        if answer.get("type") != "auth_ok":
            raise ConnectError(f"{self.url}: expected auth_ok, got {answer.get('type')!r}")
        self.ha_version = str(answer.get("ha_version", ""))
        self._reader = asyncio.create_task(self._read(), name=f"homeassistant-ws-reader {self.url}")

    async def call(self, command: str, **fields: Any) -> Any:
        """Send a command and wait for its ``result``; CommandFailed when it is refused."""
        return await self._request(command, fields)

    async def subscribe(self, event_type: str, handler: EventHandler) -> int:
        """``subscribe_events`` for one event type; the handler gets each ``event`` object."""
        subscription_id = self._last_id + 1  # the id _request takes before it first awaits
        await self._request("subscribe_events", {"event_type": event_type}, handler=handler)
        return subscription_id

    async def ping(self) -> None:
        """Send ``ping`` and wait for ``pong``; OperationTimeout if it does not come."""
        await self._request("ping", {})

    async def close(self) -> None:
        """Close the socket and the reader; safe to call twice."""
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
            self._reader = None
        if self._ws is not None:
            await self._ws.close()
        if self._session is not None:
            await self._session.close()
            self._session = None
        self.closed.set()
        self._fail_pending("connection closed")

    async def _request(
        self, command: str, fields: dict[str, Any], handler: EventHandler | None = None
    ) -> Any:
        if self._ws is None or self.closed.is_set():
            raise ConnectError(f"{self.url}: not connected ({self.close_reason or 'closed'})")
        self._last_id += 1
        message_id = self._last_id
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[message_id] = future
        if handler is not None:  # before sending: events may follow the result at once
            self._handlers[message_id] = handler
        try:
            async with asyncio.timeout(self.timeout_s):
                await self._ws.send_str(json.dumps({"id": message_id, "type": command, **fields}))
                return await future
        except TimeoutError as exc:
            raise OperationTimeout(
                f"{self.url}: no answer to {command} within {self.timeout_s} s"
            ) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise ConnectError(f"{self.url}: sending {command} failed: {exc}") from exc
        except CommandFailed as exc:
            raise CommandFailed(command, exc.code, exc.detail) from None
        finally:
            self._pending.pop(message_id, None)

    async def _receive_json(self) -> dict[str, Any]:
        assert self._ws is not None
        message = await self._ws.receive()
        if message.type is not aiohttp.WSMsgType.TEXT:
            raise ConnectError(f"{self.url}: connection ended during the handshake")
        try:
            data = json.loads(message.data)
        except ValueError as exc:
            raise ConnectError(f"{self.url}: handshake message is not JSON") from exc
        if not isinstance(data, dict):
            raise ConnectError(f"{self.url}: handshake message is not a JSON object")
        return data

    async def _expect(self, message_type: str) -> None:
        message = await self._receive_json()
        if message.get("type") != message_type:
            raise ConnectError(f"{self.url}: expected {message_type}, got {message.get('type')!r}")

    async def _read(self) -> None:
        assert self._ws is not None
        reason = "closed by Home Assistant"
        try:
            async for message in self._ws:
                if message.type is aiohttp.WSMsgType.TEXT:
                    self._dispatch_text(message.data)
                elif message.type is aiohttp.WSMsgType.BINARY:
                    self._bad(message.data, "binary frame; the API sends JSON text")
                elif message.type is aiohttp.WSMsgType.ERROR:
                    reason = f"socket error: {self._ws.exception()}"
                    break
        except Exception as exc:  # the socket broke under us: end the connection
            reason = f"socket error: {exc}"
        finally:
            self.close_reason = reason
            self.closed.set()
            self._fail_pending(reason)

    def _dispatch_text(self, text: str) -> None:
        try:
            data = json.loads(text)
        except ValueError as exc:
            self._bad(text.encode(), f"not JSON: {exc}")
            return
        for message in data if isinstance(data, list) else [data]:  # coalesced messages
            if isinstance(message, dict):
                self._dispatch(message)
            else:
                self._bad(json.dumps(message).encode(), "message is not a JSON object")

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind, message_id = message.get("type"), message.get("id")
        if kind == "event" and isinstance(message.get("event"), dict):
            handler = self._handlers.get(message_id) if isinstance(message_id, int) else None
            if handler is None:
                logger.debug("event for unknown subscription id=%s", message_id)
                return
            try:
                handler(message["event"])
            except Exception:  # a bug in a handler must not end the connection
                logger.exception("handling an event from %s failed", self.url)
            return
        future = self._pending.pop(message_id, None) if isinstance(message_id, int) else None
        if future is None or future.done():
            logger.debug("unexpected message type=%s id=%s", kind, message_id)
        elif kind == "pong":
            future.set_result(None)
        elif kind == "result" and message.get("success"):
            future.set_result(message.get("result"))
        elif kind == "result":
            error = message.get("error") or {}
            code, text = str(error.get("code", "unknown_error")), str(error.get("message", ""))
            future.set_exception(CommandFailed(str(kind), code, text))
        else:
            self._bad(json.dumps(message).encode(), f"unexpected answer type {kind!r}")

    def _bad(self, raw: bytes, reason: str) -> None:
        logger.warning("bad message from %s: %s", self.url, reason)
        if self._on_bad_message is not None:
            self._on_bad_message(raw, reason)

    def _fail_pending(self, reason: str) -> None:
        for future in self._pending.values():
            if not future.done():
                future.set_exception(ConnectError(f"{self.url}: {reason}"))
        self._pending.clear()
