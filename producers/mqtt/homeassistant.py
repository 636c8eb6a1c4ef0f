"""The Home Assistant MQTT discovery preset: entities announced by devices, read as readings.

Subscribes to ``<prefix>/+/+/config``, ``<prefix>/+/+/+/config`` and ``<prefix>/status``.

- A config (abbreviated keys and ``~`` accepted, see ``discovery.py``) for a component in
  ``components`` adds an entity: DISCOVERED, and its state and availability topics are
  subscribed. A changed config replaces the entity; an empty (retained) config removes it:
  REMOVED, and topics no other entity uses are unsubscribed.
- A message on a state topic is read by every entity on that topic (Zigbee2MQTT-style
  devices share one JSON topic, each entity with its own ``value_template``); the values
  of one device become one reading with the unit of each entity.
- Availability topics give ONLINE/OFFLINE, plain or through ``availability_template``.
- ``<prefix>/status`` = ``online`` (Home Assistant starting) re-subscribes everything, so
  retained configs and states are read again, as devices republish theirs.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Protocol

from sentio_iot.producers.mqtt.config import HomeAssistantPreset
from sentio_iot.producers.mqtt.discovery import (
    NO_VALUE,
    Availability,
    DiscoveredEntity,
    DiscoveryTopic,
    parse_entity,
)
from sentio_iot.producers.mqtt.output import Message, Output
from sentio_iot.producers.mqtt.payloads import PayloadError, to_number
from sentio_iot.producers.mqtt.templates import MissingValue, TemplateError, as_text
from sentio_iot.records import EventKind, Metric

log = logging.getLogger(__name__)


class Subscriber(Protocol):
    """How a handler changes what the connection is subscribed to."""

    def subscribe(self, filters: list[str], *, resend_retained: bool = False) -> None: ...

    def unsubscribe(self, filters: list[str]) -> None: ...


def entity_metric(entity: DiscoveredEntity, payload: bytes) -> Metric | None:
    """The entity's value in a state payload; None when it has none (PayloadError if unreadable)."""
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PayloadError(f"payload is not UTF-8 text: {exc.reason}") from exc
    try:
        value = entity.template.render(text) if entity.template else text
    except MissingValue:
        return None  # a shared topic whose message does not carry this entity's field
    except TemplateError as exc:
        raise PayloadError(f"{entity.metric}: {exc}") from exc
    shown = as_text(value).strip()
    if shown in NO_VALUE:
        return None
    if entity.on is not None:
        if shown == entity.on:
            return Metric(entity.metric, 1.0, entity.unit)
        if shown == entity.off:
            return Metric(entity.metric, 0.0, entity.unit)
        raise PayloadError(
            f"{entity.metric}: {shown[:40]!r} is neither {entity.on} nor {entity.off}"
        )
    try:
        return Metric(entity.metric, to_number(value), entity.unit)
    except PayloadError:
        if entity.numeric_only:
            raise PayloadError(f"{entity.metric}: {shown[:40]!r} is not a number") from None
        return Metric(entity.metric, None, entity.unit, text=shown)


def availability_kind(availability: Availability, payload: bytes) -> EventKind | None:
    """ONLINE/OFFLINE from an availability payload; None for any other word."""
    text = payload.decode("utf-8", errors="replace")
    if availability.template is not None:
        try:
            text = as_text(availability.template.render(text))
        except TemplateError:
            return None
    if text.strip() == availability.online:
        return EventKind.ONLINE
    if text.strip() == availability.offline:
        return EventKind.OFFLINE
    return None


class HomeAssistantDiscovery:
    """Reads the entities Home Assistant MQTT discovery announces."""

    def __init__(self, preset: HomeAssistantPreset, output: Output, subscriber: Subscriber) -> None:
        self.preset = preset
        self.output = output
        self.subscriber = subscriber
        self.prefix = preset.discovery_prefix
        self.status_topic = f"{self.prefix}/status"
        self.entities: dict[str, DiscoveredEntity] = {}  # by discovery topic
        self.configs: dict[str, bytes] = {}  # the config each entity came from
        self.readers: dict[str, list[DiscoveredEntity]] = {}  # by state topic
        self.watchers: dict[str, list[tuple[DiscoveredEntity, Availability]]] = {}

    def subscriptions(self) -> list[str]:
        fixed = [f"{self.prefix}/+/+/config", f"{self.prefix}/+/+/+/config", self.status_topic]
        return fixed + sorted(self._topics())

    def _topics(self) -> set[str]:
        return set(self.readers) | set(self.watchers)

    def _index(self) -> None:
        self.readers, self.watchers = {}, {}
        for entity in self.entities.values():
            self.readers.setdefault(entity.state_topic, []).append(entity)
            for availability in entity.availability:
                self.watchers.setdefault(availability.topic, []).append((entity, availability))

    def handle(self, message: Message) -> bool:
        if message.topic == self.status_topic:
            if message.payload.strip() == b"online":
                log.info("Home Assistant is online: reading discovery configs and states again")
                self.subscriber.subscribe(self.subscriptions(), resend_retained=True)
            return True
        where = DiscoveryTopic.parse(message.topic, self.prefix)
        if where is not None:
            self._config(message, where)
            return True
        readers = self.readers.get(message.topic)
        if readers:
            self._state(message, readers)
        watchers = self.watchers.get(message.topic)
        if watchers:
            self._availability(message, watchers)
        return bool(readers or watchers)

    def _config(self, message: Message, where: DiscoveryTopic) -> None:
        topic = message.topic
        before = self._topics()
        if not message.payload:
            removed = self.entities.pop(topic, None)
            self.configs.pop(topic, None)
            if removed is not None:
                self._entity_event(removed, EventKind.REMOVED, "removed", message.ts_us)
        else:
            if where.component not in self.preset.components:
                return
            if self.configs.get(topic) == message.payload:
                return  # the same config again (a republish or a re-read retained message)
            try:
                entity = parse_entity(topic, where, message.payload, self.preset)
            except PayloadError as exc:
                self.output.dead_letter(message, str(exc))
                return
            old = self.entities.get(topic)
            self.entities[topic] = entity
            self.configs[topic] = message.payload
            if old is None:
                self._entity_event(entity, EventKind.DISCOVERED, "discovered", message.ts_us)
        self._resubscribe(before)

    def _resubscribe(self, before: set[str]) -> None:
        """Subscribe to topics entities now need, unsubscribe those no entity needs any more."""
        self._index()
        after = self._topics()
        if added := sorted(after - before):
            self.subscriber.subscribe(added)
        if gone := sorted(before - after):
            self.subscriber.unsubscribe(gone)

    def _entity_event(
        self, entity: DiscoveredEntity, kind: EventKind, verb: str, ts_us: int
    ) -> None:
        details = {"component": entity.component, "state_topic": entity.state_topic}
        if entity.unique_id:
            details["unique_id"] = entity.unique_id
        if entity.unit:
            details["unit"] = entity.unit
        if entity.device_class:
            details["device_class"] = entity.device_class
        text = f"{entity.component} {entity.metric} {verb}"
        self.output.event(entity.device_id, kind, text, ts_us, details, entity.labels)

    def _state(self, message: Message, readers: list[DiscoveredEntity]) -> None:
        by_device: dict[str, list[Metric]] = defaultdict(list)
        labels: dict[str, dict[str, str]] = {}
        problems: list[str] = []
        for entity in readers:
            try:
                metric = entity_metric(entity, message.payload)
            except PayloadError as exc:
                problems.append(str(exc))
                continue
            if metric is not None:
                by_device[entity.device_id].append(metric)
                labels.setdefault(entity.device_id, entity.labels)
        for device_id, metrics in by_device.items():
            self.output.reading(device_id, metrics, message.ts_us, labels[device_id])
        if problems:
            device = readers[0].device_id if len({e.device_id for e in readers}) == 1 else None
            self.output.dead_letter(message, "; ".join(problems), device)

    def _availability(
        self, message: Message, watchers: list[tuple[DiscoveredEntity, Availability]]
    ) -> None:
        done: set[str] = set()
        for entity, availability in watchers:
            if entity.device_id in done:
                continue
            kind = availability_kind(availability, message.payload)
            if kind is None:
                self.output.dead_letter(
                    message,
                    f"availability is neither {availability.online!r} nor {availability.offline!r}",
                    entity.device_id,
                )
                return
            done.add(entity.device_id)
            text = f"{entity.device_id} is {kind.value.lower()}"
            self.output.event(entity.device_id, kind, text, message.ts_us, labels=entity.labels)
