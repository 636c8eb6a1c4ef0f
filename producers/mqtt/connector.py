"""The MQTT connector: one broker connection (paho-mqtt), messages handed to the asyncio loop.

paho runs its network loop in its own thread and reconnects by itself (with backoff from
``reconnect_min_s`` to ``reconnect_max_s``). Its callbacks only post to the event loop with
``call_soon_threadsafe``; everything else (handlers, subscriptions bookkeeping, emitting)
happens on the loop. Messages are acknowledged after they were emitted (manual acks), so
a crash before that leaves them with the broker, which sends them again.

The session is persistent: a fixed client id, clean start off and a session expiry
(MQTT 5; ``clean_session`` off for 3.1.1), so QoS 1/2 messages published while we are away
wait at the broker. On a resumed session only filters the session lacks are subscribed, and
(MQTT 5) with retain handling 1, so retained messages are not delivered twice. A concrete
topic that another wanted filter already covers is not subscribed on its own (brokers
deliver a message once per matching subscription).

A message goes to the first handler that reads its topic: Zigbee2MQTT, then Home Assistant
discovery, then the generic mappings.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions
from pydantic import BaseModel

from sentio_iot.errors import ConfigError
from sentio_iot.producers.connector import Connector, ConnectorContext, Emitter
from sentio_iot.producers.mqtt.config import MqttSourceConfig
from sentio_iot.producers.mqtt.homeassistant import HomeAssistantDiscovery
from sentio_iot.producers.mqtt.mappings import GenericMappings
from sentio_iot.producers.mqtt.output import Handler, Message, Output
from sentio_iot.producers.mqtt.patterns import filter_covers
from sentio_iot.producers.mqtt.zigbee2mqtt import Zigbee2Mqtt
from sentio_iot.producers.reconnect import FailureStreak
from sentio_iot.records import EventKind, now_us

log = logging.getLogger(__name__)


class MqttConnector(Connector):
    """Subscribes to one broker and turns its messages into readings and device events."""

    protocol = "mqtt"

    def __init__(self, config: BaseModel, emit: Emitter, context: ConnectorContext) -> None:
        super().__init__(config, emit, context)
        if not isinstance(config, MqttSourceConfig):
            raise ConfigError(
                f"mqtt connector needs an MqttSourceConfig, not {type(config).__name__}"
            )
        self.settings = config
        self.output = Output(emit, {**context.base_labels(), **config.labels})
        self.handlers: list[Handler] = []
        self._client: mqtt.Client | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wanted: dict[str, None] = {}  # every filter a handler needs, in order
        self._static: set[str] = set()  # the handlers' fixed filters, never unsubscribed
        self._in_session: set[str] = set()  # filters the broker's session holds for us
        self._pending_subacks: dict[int, list[str]] = {}  # SUBSCRIBE message id -> filters
        self._ready = asyncio.Event()
        self._connected = False
        self._closing = False
        self._connection_id = 0  # counted in paho's thread: acks go only to their connection
        self._timers: list[asyncio.TimerHandle] = []
        where = f"mqtt {config.source_id} at {config.host}:{config.port}"
        self._connection_log = FailureStreak(log, where)
        self._tls = config.tls_settings()
        # a file that cannot be loaded stops the connector at once (ConfigError naming it)
        self._tls_context = self._tls.context() if config.tls else None
        self._diagnosed = False  # one TLS diagnosis per run of failures

    # -- lifecycle -------------------------------------------------------------------------

    async def connect(self) -> None:
        """Start paho's network thread; it connects (and reconnects) in the background."""
        if self._client is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._closing = False
        self.handlers = self._build_handlers()
        for handler in self.handlers:
            self._wanted.update(dict.fromkeys(handler.subscriptions()))
        self._static = set(self._wanted)
        client = self._new_client()
        self._client = client
        if self.settings.protocol == "5":
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            properties.SessionExpiryInterval = self.settings.session_expiry_s
            client.connect_async(
                self.settings.host,
                self.settings.port,
                self.settings.keepalive_s,
                clean_start=False,
                properties=properties,
            )
        else:
            client.connect_async(self.settings.host, self.settings.port, self.settings.keepalive_s)
        client.loop_start()

    async def run(self) -> None:
        """Messages arrive through paho's thread; this only keeps the connector alive."""
        if self._client is None:
            await self.connect()
        await asyncio.Event().wait()

    async def close(self) -> None:
        client, self._client = self._client, None
        self._closing = True
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        if client is None:
            return
        client.disconnect()  # the broker keeps the session (its expiry was set at connect)
        await asyncio.to_thread(client.loop_stop)
        if self._connected:
            self._connected = False
            self.output.event(self.settings.source_id, EventKind.DISCONNECTED, "closed", now_us())
        self._ready.clear()

    async def wait_subscribed(self, timeout: float) -> None:
        """Wait until connected and every subscription is acknowledged (TimeoutError if not)."""
        await asyncio.wait_for(self._ready.wait(), timeout)

    # -- building ------------------------------------------------------------------------

    def _build_handlers(self) -> list[Handler]:
        handlers: list[Handler] = []
        if self.settings.zigbee2mqtt is not None:
            handlers.append(Zigbee2Mqtt(self.settings.zigbee2mqtt, self.output, self._schedule))
        if self.settings.homeassistant is not None:
            handlers.append(HomeAssistantDiscovery(self.settings.homeassistant, self.output, self))
        if self.settings.mappings:
            handlers.append(GenericMappings(self.settings.mappings, self.output))
        return handlers

    def _schedule(self, delay_s: float, callback: Any) -> asyncio.TimerHandle:
        assert self._loop is not None
        timer = self._loop.call_later(delay_s, callback)
        self._timers = [
            t for t in self._timers if not t.cancelled() and t.when() > self._loop.time()
        ]
        self._timers.append(timer)
        return timer

    def _new_client(self) -> mqtt.Client:
        settings = self.settings
        version = mqtt.MQTTv5 if settings.protocol == "5" else mqtt.MQTTv311
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=settings.effective_client_id,
            protocol=version,
            clean_session=None if version == mqtt.MQTTv5 else False,
            manual_ack=True,
        )
        if settings.username is not None:
            password = settings.password.get_secret_value() if settings.password else None
            client.username_pw_set(settings.username, password)
        if settings.tls:
            client.tls_set_context(self._tls_context)
        client.reconnect_delay_set(settings.reconnect_min_s, settings.reconnect_max_s)
        client.enable_logger(logging.getLogger(f"{__name__}.paho"))
        client.on_connect = self._paho_connected
        client.on_connect_fail = self._paho_connect_failed
        client.on_disconnect = self._paho_disconnected
        client.on_message = self._paho_message
        client.on_subscribe = self._paho_subscribed
        return client

    # -- paho's thread: only post to the loop ----------------------------------------------

    def _post(self, callback: Any, *args: Any) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed between check and call
            loop.call_soon_threadsafe(callback, *args)

    def _paho_connected(
        self, client: mqtt.Client, _: Any, flags: Any, reason: ReasonCode, __: Any
    ) -> None:
        if reason.is_failure:
            self._post(self._connect_failed, f"refused: {reason}")
            return
        self._connection_id += 1
        self._post(self._on_connected, bool(flags.session_present))

    def _paho_connect_failed(self, client: mqtt.Client, _: Any) -> None:
        self._post(self._connect_failed, self._tls_problem() or "no answer or connection refused")

    def _paho_disconnected(
        self, client: mqtt.Client, _: Any, flags: Any, reason: ReasonCode, __: Any
    ) -> None:
        if not self._connected and not self._closing:
            # never got a CONNACK: with TLS, a refused handshake reads as "Unspecified error"
            problem = self._tls_problem()
            if problem is not None:
                self._post(self._connect_failed, problem)
                return
        self._post(self._on_disconnected, str(reason))

    def _tls_problem(self) -> str | None:
        """In paho's thread: why TLS failed, once per run of failures (a probe connection)."""
        if not self.settings.tls or self._diagnosed:
            return None
        problem = self._tls.diagnose(self.settings.host, self.settings.port)
        self._diagnosed = problem is not None
        return problem

    def _paho_message(self, client: mqtt.Client, _: Any, message: mqtt.MQTTMessage) -> None:
        try:
            topic = message.topic
        except UnicodeDecodeError:
            topic = "(topic is not UTF-8)"
        self._post(
            self._on_message,
            topic,
            message.payload,
            message.retain,
            message.qos,
            message.mid,
            self._connection_id,
        )

    def _paho_subscribed(
        self, client: mqtt.Client, _: Any, mid: int, reasons: list[ReasonCode], __: Any
    ) -> None:
        self._post(self._on_subscribed, mid, [str(r) if r.is_failure else "" for r in reasons])

    # -- the event loop ------------------------------------------------------------------

    def _connect_failed(self, reason: str) -> None:
        self._connection_log.failed(f"cannot connect ({reason})")
        if self._connection_log.count == 1:  # one event per outage, not one per attempt
            text = f"cannot connect to the broker: {reason}"
            self.output.event(self.settings.source_id, EventKind.ERROR, text, now_us())

    def _on_connected(self, session_present: bool) -> None:
        if self._client is None:
            return  # closed meanwhile
        if not self._connection_log.count:
            log.info("%s: connected", self._connection_log.name)
        self._connection_log.ended("connected")
        self._diagnosed = False
        self._connected = True
        details = {"session_present": str(session_present).lower()}
        self.output.event(
            self.settings.source_id, EventKind.CONNECTED, "connected", now_us(), details
        )
        if not session_present:
            self._in_session.clear()
        # A resumed session keeps our subscriptions: send only what it lacks, and (MQTT 5)
        # without retained copies of what it already had.
        missing = [t for t in self._wanted if t not in self._in_session]
        self._send_subscribe(missing, resend_retained=not session_present)

    def _on_disconnected(self, reason: str) -> None:
        self._ready.clear()
        self._pending_subacks.clear()
        if not self._connected:
            return
        self._connected = False
        if self._closing:
            log.info("mqtt %s: disconnected (%s)", self.settings.source_id, reason)
            reason = "closed"
        else:
            log.warning("mqtt %s: disconnected (%s); reconnecting", self.settings.source_id, reason)
        self.output.event(self.settings.source_id, EventKind.DISCONNECTED, reason, now_us())

    def _on_subscribed(self, mid: int, failures: list[str]) -> None:
        filters = self._pending_subacks.pop(mid, [])
        refused = [f"{t} ({why})" for t, why in zip(filters, failures, strict=False) if why]
        self._in_session.update(t for t, why in zip(filters, failures, strict=False) if not why)
        if refused:
            text = f"broker refused subscriptions: {', '.join(refused)}"
            log.error("mqtt %s: %s", self.settings.source_id, text)
            self.output.event(self.settings.source_id, EventKind.ERROR, text, now_us())
        if not self._pending_subacks and self._connected:
            self._ready.set()

    def _on_message(
        self, topic: str, payload: bytes, retain: bool, qos: int, mid: int, connection_id: int
    ) -> None:
        message = Message(topic, payload, now_us(), retain)
        try:
            for handler in self.handlers:
                if handler.handle(message):
                    break
            else:
                log.debug("mqtt %s: no mapping reads topic %s", self.settings.source_id, topic)
        except Exception as exc:  # a bug in one message must not stop the others
            log.exception("mqtt %s: failed on topic %s", self.settings.source_id, topic)
            self.output.dead_letter(message, f"internal error: {exc!r}")
        client = self._client
        if qos > 0 and client is not None and connection_id == self._connection_id:
            client.ack(mid, qos)

    # -- subscriptions (also the Subscriber the Home Assistant preset uses) ----------------

    def subscribe(self, filters: list[str], *, resend_retained: bool = False) -> None:
        """Add filters (sent now if connected, else at the next connect)."""
        self._wanted.update(dict.fromkeys(filters))
        if self._connected:
            self._send_subscribe(filters, resend_retained=resend_retained)

    def unsubscribe(self, filters: list[str]) -> None:
        """Drop filters a handler no longer needs (the fixed ones of other handlers stay)."""
        dropped = [t for t in filters if t in self._wanted and t not in self._static]
        for topic in dropped:
            self._wanted.pop(topic)
        subscribed = [t for t in dropped if t in self._in_session]
        self._in_session.difference_update(subscribed)
        if self._connected and self._client is not None and subscribed:
            self._client.unsubscribe(subscribed)

    def _covered(self, topic: str) -> bool:
        """True when another wanted filter already receives this topic (avoids double delivery)."""
        return any(f != topic and filter_covers(f, topic) for f in self._wanted)

    def _send_subscribe(self, filters: list[str], *, resend_retained: bool) -> None:
        client = self._client
        needed = [t for t in filters if not self._covered(t)]
        if client is None or not needed:
            if not self._pending_subacks and self._connected:
                self._ready.set()
            return
        qos = self.settings.qos
        if self.settings.protocol == "5":
            handling = (
                SubscribeOptions.RETAIN_SEND_ON_SUBSCRIBE
                if resend_retained
                else SubscribeOptions.RETAIN_SEND_IF_NEW_SUB
            )
            options = SubscribeOptions(qos=qos, retainHandling=handling)
            result, mid = client.subscribe([(t, options) for t in needed])
        else:
            pairs: list[tuple[str, int]] = [(t, qos) for t in needed]
            result, mid = client.subscribe(pairs)
        if result == mqtt.MQTT_ERR_SUCCESS and mid is not None:
            self._pending_subacks[mid] = needed
            self._ready.clear()
