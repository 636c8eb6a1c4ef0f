"""What the MQTT handlers produce through: readings, events and dead letters with our labels.

Handlers (generic mappings and the two presets) see messages as :class:`Message` and emit
through :class:`Output`, which adds the base labels, numbers each device's readings and
keeps repeated dead-letter reasons from flooding the log.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from typing import Protocol

from sentio_iot.producers.connector import Emitter
from sentio_iot.records import DeviceEvent, EventKind, Metric, Reading

log = logging.getLogger(__name__)

SOURCE = "mqtt"


@dataclass(frozen=True, slots=True)
class Message:
    """One MQTT message as the handlers see it."""

    topic: str
    payload: bytes
    ts_us: int
    retain: bool = False


class Handler(Protocol):
    """A way of reading topics: generic mappings, Zigbee2MQTT, Home Assistant discovery."""

    def subscriptions(self) -> list[str]:
        """Topic filters this handler needs now (may grow as devices are discovered)."""

    def handle(self, message: Message) -> bool:
        """Emit what ``message`` means; False if this handler does not read its topic."""


class Output:
    """Emits records with the connector's labels; one instance per connector."""

    def __init__(self, emit: Emitter, labels: dict[str, str]) -> None:
        self.emit = emit
        self.labels = labels
        self._seq: Counter[str] = Counter()
        self._dead_letters: Counter[tuple[str, str]] = Counter()

    def reading(
        self,
        device_id: str,
        metrics: list[Metric],
        ts_us: int,
        labels: dict[str, str] | None = None,
    ) -> None:
        self._seq[device_id] += 1
        merged = {**self.labels, **(labels or {})}
        self.emit.reading(Reading(device_id, ts_us, metrics, SOURCE, merged, self._seq[device_id]))

    def event(
        self,
        device_id: str,
        kind: EventKind,
        message: str,
        ts_us: int,
        details: dict[str, str] | None = None,
        labels: dict[str, str] | None = None,
    ) -> None:
        merged = {**self.labels, **(labels or {})}
        self.emit.event(DeviceEvent(device_id, ts_us, kind, message, SOURCE, details or {}, merged))

    def dead_letter(self, message: Message, reason: str, device_id: str | None = None) -> None:
        """Keep a payload we cannot read; log the first of each (topic, reason), then a count."""
        key = (message.topic, reason)
        if len(self._dead_letters) > 1000 and key not in self._dead_letters:
            self._dead_letters.clear()  # bounded: many distinct topics only restart the counts
        self._dead_letters[key] += 1
        count = self._dead_letters[key]
        if count == 1 or count in (10, 100, 1000) or count % 10000 == 0:
            log.warning(
                "dead letter from topic=%s: %s (%d so far with this reason)",
                message.topic,
                reason,
                count,
            )
        self.emit.dead_letter(
            message.payload,
            reason,
            origin=message.topic,
            key=device_id.encode() if device_id else None,
        )
