"""WebSocket ``/api/v1/live``: authenticate, subscribe, receive updates as JSON.

Protocol (one JSON object per text frame):

    client: {"type": "auth", "token": "<access token or API key>", "queue_size": 100,
             "batch": 50}
            first, and again to renew the token. Optional: queue_size (at most
            api.live.queue_size; a client that only shows the latest values asks for a small
            one), batch (at most 1000; default 1: up to that many waiting updates are sent
            in one frame as {"type": "updates", "items": [update, ...]})
    server: {"type": "ready", "user", "role", "tenants", "cursor", "limits"}
    client: {"type": "subscribe", "id": "s1", "kinds": [...], "devices": [...],
             "sites": [...], "metrics": [...], "cursor": "<from an earlier update>"}
            kinds: readings, anomalies, alerts, rul, device_events, pipeline (the body of
            GET /api/v1/health/pipeline at each new measurement: no device, every tenant)
    server: {"type": "subscribed", "id": "s1", "cursor": ...}, then what the views hold
            newer than the cursor (a resume), then live updates
    server: {"type": "update", "kind", "cursor", "data": {Avro field names}}
    server: {"type": "heartbeat", "cursor"}   after heartbeat_s without a message
    server: {"type": "overflow", "dropped", "resume_cursor"}   the queue was full: the
            server dropped what waited and now sends, by itself, the latest value per key
            newer than resume_cursor (coalesced), then live updates again
    client: {"type": "unsubscribe", "id": "s1"} | {"type": "ping"}

Every client with the same tenants, subscriptions and batch is sent the same frames, encoded
once (see hub.py). Refusals close the socket: 4401 (not authenticated; reason), 4403 (not
allowed), 4408 (no token in time), 4400 (a bad queue_size or batch), 4429 (too slow: a frame
could not be sent for api.live.stall_timeout_s; counted in
sentio_api_live_slow_disconnects_total). Bad messages get {"type": "error", "reason"} and the
socket stays open.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from sentio_iot.api.auth import authenticate
from sentio_iot.api.client_queue import Frame, Outbox, encode
from sentio_iot.api.errors import Refused
from sentio_iot.api.hub import LiveClient, Subscription, SubscriptionError, visible
from sentio_iot.api.principal import Principal
from sentio_iot.api.services import Services

log = logging.getLogger(__name__)
router = APIRouter()
MAX_FRAME = 64 * 1024


class Closed(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


async def _receive(ws: WebSocket) -> dict[str, Any]:
    text = await ws.receive_text()
    if len(text) > MAX_FRAME:
        raise Closed(1009, f"message larger than {MAX_FRAME} bytes")
    try:
        message = json.loads(text)
    except ValueError:
        return {"type": "invalid", "reason": "not JSON"}
    return message if isinstance(message, dict) else {"type": "invalid", "reason": "not an object"}


MAX_BATCH = 1000


@dataclass(frozen=True)
class Options:
    """What a client asks for in its auth message."""

    queue_size: int  # at most api.live.queue_size
    batch: int  # most updates in one frame; 1: one update a frame


def _int_option(message: dict[str, Any], name: str, default: int, limit: int) -> int:
    value = message.get(name, default)
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= limit:
        raise Closed(4400, f"{name} must be an integer from 1 to {limit}")
    return value


async def _authenticate(ws: WebSocket, svc: Services) -> tuple[Principal, Options]:
    """Who the first message proves the caller is, and the options they asked for."""
    settings = svc.config.api.live
    try:
        message = await asyncio.wait_for(_receive(ws), settings.auth_timeout_s)
    except TimeoutError:
        raise Closed(4408, f"no auth message within {settings.auth_timeout_s:g} s") from None
    token = message.get("token")
    if message.get("type") != "auth" or not isinstance(token, str):
        raise Closed(4401, 'the first message must be {"type": "auth", "token": ...}')
    options = Options(
        _int_option(message, "queue_size", settings.queue_size, settings.queue_size),
        _int_option(message, "batch", 1, MAX_BATCH),
    )
    try:
        return await asyncio.to_thread(authenticate, svc, token), options
    except Refused as exc:
        raise Closed(4401 if exc.status == 401 else 4403, exc.reason) from None


class Session:
    """One connection: its client in the hub, the sender and the receiver."""

    def __init__(
        self, ws: WebSocket, svc: Services, principal: Principal, options: Options
    ) -> None:
        self.ws = ws
        self.svc = svc
        self.settings = svc.config.api.live
        self.options = options
        self.client = LiveClient(principal, Outbox(options.queue_size), options.batch)
        self.last_sent = svc.views.seq  # every update up to it that the client wants is sent
        self.resume_floor: int | None = None  # a resume asked for older updates than that
        self.send_lock = asyncio.Lock()
        rate = self.settings.max_messages_per_s
        self._tokens, self._last = rate, time.monotonic()

    async def send(self, message: dict[str, Any]) -> None:
        await self.send_text(json.dumps(message, separators=(",", ":")))

    async def send_text(self, text: str) -> None:
        """Send one frame; a client that takes none for stall_timeout_s is closed (4429)."""
        stall = self.settings.stall_timeout_s
        async with self.send_lock:
            try:
                async with asyncio.timeout(stall):
                    await self.ws.send_text(text)
            except TimeoutError:
                self.svc.hub.slow_disconnects += 1
                raise Closed(
                    4429,
                    f"too slow: a frame waited {stall:g} s to be sent; "
                    "reconnect and subscribe with the last cursor",
                ) from None

    async def sender(self) -> None:
        outbox = self.client.outbox
        while True:
            self._check_expiry()
            frame = await outbox.get(self.settings.heartbeat_s)
            dropped = outbox.take_behind()
            if dropped is not None:
                await self._catch_up(dropped)
            elif frame is None:
                await self.send({"type": "heartbeat", "cursor": self.svc.views.cursor})
            else:
                await self._send_frame(frame)

    async def _send_frame(self, frame: Frame) -> None:
        await self._pace(frame.count)
        await self.send_text(frame.text)  # encoded once for every client of its group
        self.client.sent += frame.count
        self.last_sent = max(self.last_sent, frame.last_seq)

    async def _pace(self, count: int) -> None:
        """The per-connection message rate; while it waits the outbox fills and coalesces."""
        rate = self.settings.max_messages_per_s
        now = time.monotonic()
        self._tokens = min(rate, self._tokens + (now - self._last) * rate)
        self._last = now
        if self._tokens < count:
            await asyncio.sleep((count - self._tokens) / rate)
            self._tokens = float(count)
        self._tokens -= count

    async def _catch_up(self, dropped: int) -> None:
        """The outbox overflowed: send the latest value per key the client missed, from the
        views. Taken at once (no await before ``since``): frames queued from here on hold
        only newer updates."""
        views, client = self.svc.views, self.client
        since = self.last_sent if self.resume_floor is None else self.resume_floor
        since, self.resume_floor = min(since, self.last_sent), None
        resume = f"{views.epoch}.{since}"
        missed = self.svc.hub.catch_up(client, views, since)
        upto = views.seq
        await self.send({"type": "overflow", "dropped": dropped, "resume_cursor": resume})
        for frame in encode(missed, client.batch):
            await self._send_frame(frame)
        self.last_sent = max(self.last_sent, upto)

    def _check_expiry(self) -> None:
        expires = self.client.principal.expires_at
        if expires is not None and time.time() > expires + self.svc.config.api.tokens.leeway_s:
            raise Closed(4401, "the access token expired; send a new one with an auth message")

    async def receiver(self) -> None:
        while True:
            message = await _receive(self.ws)
            kind = message.get("type")
            if kind == "subscribe":
                await self._subscribe(message)
            elif kind == "unsubscribe":
                if self.client.subscriptions.pop(str(message.get("id")), None) is not None:
                    self.svc.hub.regroup(self.client)
                    self.client.refilter()
                await self.send({"type": "unsubscribed", "id": message.get("id")})
            elif kind == "auth":
                await self._renew(message)
            elif kind == "ping":
                await self.send({"type": "pong", "cursor": self.svc.views.cursor})
            else:
                reason = message.get("reason") or f"unknown message type {kind!r}"
                await self.send({"type": "error", "reason": reason})

    async def _subscribe(self, message: dict[str, Any]) -> None:
        try:
            sub = Subscription.parse(message)
        except SubscriptionError as exc:
            await self.send({"type": "error", "reason": str(exc)})
            return
        limit = self.settings.max_subscriptions
        if sub.id not in self.client.subscriptions and len(self.client.subscriptions) >= limit:
            await self.send({"type": "error", "reason": f"at most {limit} subscriptions"})
            return
        replaced = self.client.subscriptions.get(sub.id)
        self.client.subscriptions[sub.id] = sub
        self.svc.hub.regroup(self.client)
        if replaced is not None:
            self.client.refilter()
        views = self.svc.views
        await self.send({"type": "subscribed", "id": sub.id, "cursor": views.cursor})
        cursor = message.get("cursor")
        if isinstance(cursor, str):
            principal, since = self.client.principal, views.parse_cursor(cursor)
            self.resume_floor = (
                since if self.resume_floor is None else min(since, self.resume_floor)
            )
            resumed = [u for u in views.since(since) if visible(principal, u) and sub.matches(u)]
            self.client.push(encode(resumed, self.client.batch))

    async def _renew(self, message: dict[str, Any]) -> None:
        token = message.get("token")
        if not isinstance(token, str):
            await self.send({"type": "error", "reason": "auth: token must be a string"})
            return
        try:
            principal = await asyncio.to_thread(authenticate, self.svc, token)
        except Refused as exc:
            raise Closed(4401, exc.reason) from None
        if principal.name != self.client.principal.name:
            raise Closed(4403, "a connection cannot change who it belongs to")
        tenants_changed = principal.tenants != self.client.principal.tenants
        self.client.principal = principal
        if tenants_changed:
            self.svc.hub.regroup(self.client)
            self.client.refilter()
        await self.send({"type": "renewed", "cursor": self.svc.views.cursor})


@router.websocket("/api/v1/live")
async def live(ws: WebSocket) -> None:
    svc: Services = ws.app.state.services
    await ws.accept()
    try:
        principal, options = await _authenticate(ws, svc)
    except Closed as exc:
        await ws.close(exc.code, exc.reason)
        return
    except WebSocketDisconnect:
        return
    session = Session(ws, svc, principal, options)
    await session.send(
        {
            "type": "ready",
            "user": principal.name,
            "role": principal.role.value,
            "tenants": list(principal.tenants),
            "cursor": svc.views.cursor,
            "limits": {
                "max_subscriptions": session.settings.max_subscriptions,
                "max_messages_per_s": session.settings.max_messages_per_s,
                "heartbeat_s": session.settings.heartbeat_s,
                "queue_size": options.queue_size,
                "batch": options.batch,
            },
        }
    )
    svc.hub.join(session.client)
    tasks = [asyncio.create_task(session.sender()), asyncio.create_task(session.receiver())]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            error = task.exception()
            if isinstance(error, Closed):
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(1.0):  # a stalled client takes no close frame
                        await ws.close(error.code, error.reason)
            elif error is not None and not isinstance(error, WebSocketDisconnect):
                log.warning(
                    "live connection ended user=%s error=%s", principal.name, type(error).__name__
                )
    finally:
        svc.hub.leave(session.client)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
