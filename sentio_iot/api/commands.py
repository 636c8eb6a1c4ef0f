"""Alert commands from the API: an AlertCommand carrying the authenticated user's name.

One producer and serde for the process (made on first use); ``send`` blocks until the
broker has the command, so the caller runs it on a worker thread.
"""

from __future__ import annotations

import threading
from typing import Any

from sentio_iot.cli.alerts_cmd import SEND_TIMEOUT_S, command_record
from sentio_iot.config import SentioConfig
from sentio_iot.errors import OperationTimeout


class AlertCommands:
    def __init__(self, config: SentioConfig) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._producer: Any = None
        self._serde: Any = None
        self._topic = ""

    def send(
        self,
        device_id: str,
        alert_type: str,
        action: str,
        user: str,
        alert_id: str | None,
        comment: str,
    ) -> dict[str, Any]:
        record = command_record(
            device_id, alert_type, action, alert_id=alert_id, comment=comment, user=user
        )
        with self._lock:
            self._open()
            self._producer.produce(
                self._topic, key=device_id.encode(), value=self._serde.encode(record)
            )
            if self._producer.flush(SEND_TIMEOUT_S) != 0:
                raise OperationTimeout(f"the command was not delivered to {self._topic} in time")
        return record

    def _open(self) -> None:
        if self._producer is not None:
            return
        from confluent_kafka import Producer

        from sentio_iot.kafka import producer_config
        from sentio_iot.registry import SchemaRegistry
        from sentio_iot.schemas.catalog import spec
        from sentio_iot.serde import AvroSerde
        from sentio_iot.topic_admin import apply_topics

        entry = spec("alert-commands")
        apply_topics(self.config, (entry,))
        self._topic = entry.topic(self.config.topics)
        registry = SchemaRegistry(self.config.schema_registry)
        serde = AvroSerde(registry, self._topic, "AlertCommand")
        serde.register()
        self._serde = serde
        self._producer = Producer(producer_config(self.config.kafka, **{"linger.ms": 0}))

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(SEND_TIMEOUT_S)
