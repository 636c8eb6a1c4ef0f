"""The producer's counters, rendered in the Prometheus text format for ``/metrics``.

Dimensions are labels, not parts of names: ``sentio_producer_readings_published_total
{device="press-1",protocol="modbus"}``. Thread-safe: connectors count from the event loop,
Kafka's delivery reports from the publisher's poll thread.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from sentio_iot.prometheus import Family, MetricType, render_families


class ProducerMetrics:
    """Counters and gauges of one producer process (one protocol)."""

    def __init__(self, protocol: str) -> None:
        self.protocol = protocol
        self._lock = threading.Lock()
        self._families: dict[str, Family] = {}
        self._gauges: dict[str, Callable[[], float]] = {}
        device = ("device", "protocol")
        self.polled = self._family(
            "readings_polled_total", "Readings the connectors took from devices.", "counter", device
        )
        self.published = self._family(
            "readings_published_total", "Readings Kafka confirmed.", "counter", device
        )
        self.events = self._family(
            "events_published_total", "Device events Kafka confirmed.", "counter", device
        )
        self.buffered = self._family(
            "buffered_total",
            "Messages written to the disk buffer while Kafka was unreachable.",
            "counter",
            (*device, "record"),
        )
        self.dropped = self._family(
            "dropped_total",
            "Messages given up, by reason: buffer_full, rejected (by Kafka), unencodable, closed.",
            "counter",
            (*device, "record", "reason"),
        )
        self.errors = self._family(
            "errors_total",
            "Device errors (events of kind ERROR, TIMEOUT, EXCEPTION) and messages Kafka rejected (kind publish).",
            "counter",
            (*device, "kind"),
        )
        self.dead_lettered = self._family(
            "dead_lettered_total",
            "Inputs sent to the dead-letter topic.",
            "counter",
            ("protocol", "origin"),
        )
        self.last_success = self._family(
            "last_success_timestamp_seconds",
            "When each device last gave a reading (Unix seconds).",
            "gauge",
            device,
        )

    def _family(self, name: str, help: str, type: MetricType, labels: tuple[str, ...]) -> Family:
        family = Family(f"sentio_producer_{name}", help, type, labels)
        self._families[family.name] = family
        return family

    def gauge(self, name: str, help: str, read: Callable[[], float]) -> None:
        """A gauge read when scraped (buffer size, Kafka connected), labelled with the protocol."""
        self._family(name, help, "gauge", ("protocol",))
        self._gauges[f"sentio_producer_{name}"] = read

    # -- counting --------------------------------------------------------------------------

    def inc(self, family: Family, device: str, *more: str, amount: float = 1) -> None:
        key = (device, self.protocol, *more)
        if len(key) != len(family.labels):
            raise ValueError(f"{family.name} takes labels {family.labels}, not {key}")
        with self._lock:
            family.values[key] = family.values.get(key, 0) + amount

    def reading_polled(self, device: str) -> None:
        now = time.time()
        with self._lock:
            key = (device, self.protocol)
            self.polled.values[key] = self.polled.values.get(key, 0) + 1
            self.last_success.values[key] = now

    def delivered(self, device: str, record: str) -> None:
        """Kafka confirmed a message of this kind ("reading", "event", "dead_letter")."""
        if record == "reading":
            self.inc(self.published, device)
        elif record == "event":
            self.inc(self.events, device)

    def dropped_message(self, device: str, record: str, reason: str) -> None:
        self.inc(self.dropped, device, record, reason)

    def dead_letter(self, origin: str) -> None:
        key = (self.protocol, origin)
        with self._lock:
            self.dead_lettered.values[key] = self.dead_lettered.values.get(key, 0) + 1

    def total(self, family: Family) -> float:
        with self._lock:
            return sum(family.values.values())

    def value(self, family: Family, *labels: str) -> float:
        with self._lock:
            return family.values.get(labels, 0)

    # -- exposition ------------------------------------------------------------------------

    def render(self) -> str:
        """Every family in the Prometheus text exposition format (version 0.0.4)."""
        readings = {name: float(read()) for name, read in self._gauges.items()}
        with self._lock:
            for name, value in readings.items():
                self._families[name].values[(self.protocol,)] = value
            return render_families(self._families.values())
