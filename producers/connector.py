"""The one interface every protocol connector implements, and what it emits into.

A connector is built from one validated config entry (``producers.<protocol>[i]``) and an
:class:`Emitter`. The runtime calls ``connect()``, then ``run()`` until it is cancelled,
then ``close()``. ``run()`` polls or subscribes and handles its own reconnects and backoff:
a device that times out, answers with an exception or disappears produces DeviceEvents,
never an exception out of ``run()``. Only a ConfigError may escape (stop the producer).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar, Protocol

from pydantic import BaseModel

from sentio_iot.records import DeviceEvent, Reading


class Emitter(Protocol):
    """Where connectors put what they produce. The publishing runtime implements it."""

    def reading(self, reading: Reading) -> None:
        """Publish a reading (keyed by its device id)."""

    def event(self, event: DeviceEvent) -> None:
        """Publish a device event."""

    def dead_letter(
        self, raw: bytes, reason: str, *, origin: str, key: bytes | None = None
    ) -> None:
        """Keep an input that cannot be parsed, with the reason (``origin``: e.g. the MQTT topic)."""


@dataclass(frozen=True)
class ConnectorContext:
    """What every connector is given besides its own config entry."""

    tenant: str = "default"
    site: str = "local"
    labels: dict[str, str] = field(default_factory=dict)

    def base_labels(self) -> dict[str, str]:
        return {"tenant": self.tenant, "site": self.site, **self.labels}


class Connector(ABC):
    """Base of every protocol connector; subclasses set ``protocol`` and implement the three steps."""

    protocol: ClassVar[str]

    def __init__(self, config: BaseModel, emit: Emitter, context: ConnectorContext) -> None:
        self.config = config
        self.emit = emit
        self.context = context

    @abstractmethod
    async def connect(self) -> None:
        """Open connections; a device that cannot be reached yet is not an error (run retries)."""

    @abstractmethod
    async def run(self) -> None:
        """Poll or subscribe until cancelled, emitting readings and events."""

    @abstractmethod
    async def close(self) -> None:
        """Release connections; safe to call twice and after a failed connect."""
