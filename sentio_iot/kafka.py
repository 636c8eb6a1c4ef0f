"""Kafka client settings and factories (confluent-kafka), one place for every stage."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from pydantic import SecretStr

from sentio_iot.config import KafkaSettings
from sentio_iot.errors import AccessRefused
from sentio_iot.secret_values import secret_value

LIBRDKAFKA_LOG = logging.getLogger("sentio_iot.librdkafka")
log = logging.getLogger(__name__)


def _refusal_said_once(record: logging.LogRecord) -> bool:
    """librdkafka's "SASL authentication error" lines (one per client: the spans exporter's
    too) are said once, by the worker's own error (LoginRefusals); ``--debug`` shows them."""
    return "SASL authentication error" not in record.getMessage() or LIBRDKAFKA_LOG.isEnabledFor(
        logging.DEBUG
    )


LIBRDKAFKA_LOG.addFilter(_refusal_said_once)
# Metadata and fetch errors that mean "these credentials may not do this": ACLs, not an outage.
ACCESS_REFUSED = frozenset(
    {
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.GROUP_AUTHORIZATION_FAILED,
        KafkaError.CLUSTER_AUTHORIZATION_FAILED,
        KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
    }
)
CREDENTIALS_FIX = (
    "`sentio stack up --secure` writes each role's settings in "
    "<stack home>/state/secure/clients/<role>.env"
)


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


def login_of(config: dict[str, Any]) -> tuple[str, str | None]:
    """Bootstrap servers and SASL user of a librdkafka configuration (never the password)."""
    user = config.get("sasl.username")
    return str(config.get("bootstrap.servers", "?")), None if user is None else str(user)


class LoginRefusals:
    """librdkafka's error callback: remembers a refused SASL login (wrong user or password).

    Every Kafka client that must tell a refused login (bad configuration: exit with one line)
    from an unreachable broker (an outage: buffer and retry) passes one as ``error_cb`` and
    ``logger``: `sentio topics`, the producers' forwarder, the sinks' consumer.
    """

    def __init__(self, client_config: dict[str, Any] | None = None, then: Any = None) -> None:
        self.refused: str | None = None
        # Whom the error line names: the client's bootstrap servers and user (no password).
        self.bootstrap, self.user = login_of(client_config or {})
        self._then = then  # another error callback to hand every error on to
        self.quiet = True
        self.unreachable = False  # librdkafka said a broker could not be reached

    def __call__(self, error: KafkaError) -> None:
        if error.code() in (KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN):
            self.unreachable = True  # after a refused login too: that says it first
        if error.code() == KafkaError._AUTHENTICATION:
            # the worker stops with ``refusal()``'s line (AccessRefused), at start or later
            self.refused = error.str()
        if self._then is not None:
            self._then(error)

    def error(self, kafka: KafkaSettings) -> AccessRefused:
        user = kafka.sasl_username or kafka.extra.get("sasl.username")
        return self.refusal(kafka.bootstrap_servers, None if user is None else str(user))

    def refusal(self, bootstrap: str, user: str | None) -> AccessRefused:
        reason = (self.refused or "").split("SASL authentication error: ", 1)[-1]
        return AccessRefused(
            f"cannot reach Kafka at {bootstrap}: it refused the login of "
            f"{user!r}: {reason.split(' (after ', 1)[0]}",
            fix="check kafka.sasl_username and kafka.sasl_password, and do "
            "kafka.security_protocol, kafka.sasl_* and the ssl.* properties of kafka.extra "
            f"match its listener? {CREDENTIALS_FIX}",
        )

    def log(self, level: int, message: str, *args: Any) -> None:
        """librdkafka's log lines (served by the same poll): while ``quiet`` (until the login
        is known good) the error says it once, so they go at DEBUG (``--debug`` shows them)."""
        if self.quiet:
            log.debug(message, *args)
        else:
            LIBRDKAFKA_LOG.log(level, message, *args)


def access_refused(bootstrap: str, user: str | None, what: str, error: KafkaError) -> AccessRefused:
    """Kafka took the login but its ACLs refuse ``user`` ``what`` (a topic, a group)."""
    return AccessRefused(
        f"Kafka at {bootstrap} refused {user!r} access to {what}: {error.name()}",
        fix="give this worker its own role's credentials (producers: producer, stream "
        f"workers: streams, sinks: sink, the API: api) and the matching topics.prefix; "
        f"{CREDENTIALS_FIX}",
    )


def probe_access(
    client: Any,
    login: LoginRefusals,
    topics: Sequence[str],
    timeout_s: float,
    handshake_s: float = 10.0,
) -> list[str] | None:
    """Ask for each topic's metadata as a worker starts: the topics that do not exist yet
    (empty: all there), or None when no broker answered within ``timeout_s`` (an outage: the
    worker buffers or retries). A refused login or a topic the ACLs hide raises AccessRefused
    at once: bad configuration, which no retry mends. While librdkafka has not said that the
    broker is unreachable (a TLS and SASL handshake under way), it waits up to ``handshake_s``
    for the verdict.

    ``client`` (a Producer, or a Consumer not subscribed yet) was made with ``login`` as its
    ``error_cb``; its ``poll`` serves that callback.
    """
    bootstrap, user = login.bootstrap, login.user
    deadline = time.monotonic() + timeout_s
    extra_s = max(handshake_s - timeout_s, 0.0)
    missing: list[str] = []
    for topic in topics:
        while True:
            try:
                metadata = client.list_topics(topic, timeout=0.5).topics.get(topic)
                break
            except KafkaException:
                client.poll(0)  # serves the error callback
                if login.refused is not None:
                    raise login.refusal(bootstrap, user) from None
                if time.monotonic() >= deadline + (0 if login.unreachable else extra_s):
                    return None
        error = None if metadata is None else metadata.error
        if error is not None and error.code() in ACCESS_REFUSED:
            raise access_refused(bootstrap, user, f"topic {topic}", error)
        if metadata is None or error is not None or not metadata.partitions:
            missing.append(topic)
    return missing
