"""Alert commands from the API: an AlertCommand carrying the authenticated user's name.

One producer and serde for the process (made on first use); ``send`` blocks until the
broker has the command, so the caller runs it on a worker thread. A command Kafka refuses
(the ACLs: only the ``api`` role may write ``alert-commands``) raises, never counts as sent.
"""

from __future__ import annotations

import threading
from typing import Any

from sentio_iot.cli.alerts_cmd import SEND_TIMEOUT_S, command_record
from sentio_iot.config import SentioConfig
from sentio_iot.errors import ConnectError, OperationTimeout, SentioError


class AlertCommands:
    def __init__(self, config: SentioConfig) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._producer: Any = None
        self._serde: Any = None
        self._registry: Any = None
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
        failed: list[Any] = []
        with self._lock:
            self._open()
            self._producer.produce(
                self._topic,
                key=device_id.encode(),
                value=self._serde.encode(record),
                on_delivery=lambda error, _message: failed.append(error) if error else None,
            )
            if self._producer.flush(SEND_TIMEOUT_S) != 0:
                raise OperationTimeout(f"the command was not delivered to {self._topic} in time")
        if failed:  # flushed, but refused: never taken for written
            raise self._refused(failed[0])
        return record

    def _refused(self, error: Any) -> SentioError:
        from sentio_iot.kafka import ACCESS_REFUSED, access_refused, login_of, producer_config

        if error.code() in ACCESS_REFUSED:
            bootstrap, user = login_of(producer_config(self.config.kafka))
            return access_refused(bootstrap, user, f"topic {self._topic}", error)
        return ConnectError(f"Kafka refused the command on {self._topic}: {error.str()}")

    def _open(self) -> None:
        if self._producer is not None:
            return
        from confluent_kafka import KafkaException, Producer

        from sentio_iot.kafka import producer_config
        from sentio_iot.registry import SchemaRegistry
        from sentio_iot.schemas.catalog import spec
        from sentio_iot.serde import AvroSerde
        from sentio_iot.topic_admin import apply_topics

        entry = spec("alert-commands")
        self._topic = entry.topic(self.config.topics)
        try:
            apply_topics(self.config, (entry,))
        except KafkaException as exc:  # credentials that may not even describe the topic
            raise self._refused(exc.args[0]) from None
        registry = self._registry = SchemaRegistry(self.config.schema_registry)
        serde = AvroSerde(registry, self._topic, "AlertCommand")
        serde.register()
        self._serde = serde
        self._producer = Producer(producer_config(self.config.kafka, **{"linger.ms": 0}))

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(SEND_TIMEOUT_S)
        if self._registry is not None:
            self._registry.close()
            self._registry = None
