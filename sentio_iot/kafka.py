"""Kafka client settings and factories (confluent-kafka), one place for every stage."""

from __future__ import annotations

import logging
from typing import Any

from confluent_kafka.admin import AdminClient
from pydantic import SecretStr

from sentio_iot.config import KafkaSettings
from sentio_iot.secret_values import secret_value

LIBRDKAFKA_LOG = logging.getLogger("sentio_iot.librdkafka")


def client_config(settings: KafkaSettings, **overrides: Any) -> dict[str, Any]:
    """librdkafka properties shared by producers, consumers and the admin client."""
    config: dict[str, Any] = {
        "bootstrap.servers": settings.bootstrap_servers,
        "client.id": settings.client_id,
        "security.protocol": settings.security_protocol.lower(),
        "logger": LIBRDKAFKA_LOG,  # librdkafka's own lines through logging, not raw stderr
    }
    if settings.sasl_mechanism:
        config["sasl.mechanism"] = settings.sasl_mechanism
        config["sasl.username"] = settings.sasl_username or ""
        config["sasl.password"] = secret_value(settings.sasl_password) or ""
    config.update(extra_properties(settings))
    config.update(overrides)
    return config


def extra_properties(settings: KafkaSettings) -> dict[str, Any]:
    """``kafka.extra`` with the clear values of its secrets, for librdkafka."""
    return {
        key: value.get_secret_value() if isinstance(value, SecretStr) else value
        for key, value in settings.extra.items()
    }


def producer_config(settings: KafkaSettings, **overrides: Any) -> dict[str, Any]:
    """Idempotent producer: acks=all, batching with linger, lz4 batches."""
    defaults = {
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 20,
        "batch.num.messages": 10000,
        "compression.type": "lz4",
    }
    return client_config(settings, **{**defaults, **overrides})


def consumer_config(settings: KafkaSettings, group_id: str, **overrides: Any) -> dict[str, Any]:
    """Consumer that commits only what the caller says it has processed."""
    defaults = {
        "group.id": group_id,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
    }
    return client_config(settings, **{**defaults, **overrides})


def admin_client(settings: KafkaSettings, **overrides: Any) -> AdminClient:
    return AdminClient(client_config(settings, **overrides))
