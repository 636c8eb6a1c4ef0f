"""How the stream worker (Faust on aiokafka) reaches Kafka: security and ``kafka.extra``.

Every other stage is a librdkafka client and takes ``kafka.extra`` verbatim
(sentio_iot/kafka.py). Faust cannot: this module maps the librdkafka properties it can honour
onto Faust's settings, with the same meaning. A security property it cannot honour
(``ssl.*``, ``sasl.*``, ``security.*``) is refused with a one-line error naming the key (a lock
silently left off is worse than a worker that does not start); any other property is the
other stages' (``kafka.extra`` is shared by every stage) and is named once in a warning at
start, never echoing a value:

- ``kafka.security_protocol`` (or ``security.protocol``) ``SSL``, ``SASL_PLAINTEXT``,
  ``SASL_SSL``: ``faust.SSLCredentials`` or ``faust.SASLCredentials`` with an SSL context;
- ``ssl.ca.location`` (file or folder), ``ssl.ca.pem``, ``ssl.certificate.location``,
  ``ssl.key.location``, ``ssl.key.password``, ``ssl.endpoint.identification.algorithm``
  (``https`` checks the host name, as librdkafka does by default; ``none`` does not),
  ``enable.ssl.certificate.verification``: the SSL context;
- ``sasl.mechanism(s)``, ``sasl.username``, ``sasl.password``: as the typed ``kafka.sasl_*``
  fields, which they override (as in librdkafka's configuration, where extra comes last);
- ``request.timeout.ms``, ``max.poll.interval.ms``, ``max.partition.fetch.bytes``,
  ``check.crcs``, ``message.max.bytes``: Faust's broker, consumer and producer settings.

Properties the worker sets itself for exactly once and throughput (``session.timeout.ms``,
``linger.ms``, ``isolation.level``, ...) are among those named in the warning, with the
Sentio setting that governs them for the stream worker.
"""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faust
from faust.types.auth import CredentialsT
from pydantic import SecretStr

from sentio_iot.config import KafkaSettings
from sentio_iot.errors import ConfigError
from sentio_iot.secret_values import secret_value

log = logging.getLogger(__name__)

SECURITY_PREFIXES = ("ssl.", "sasl.", "security.")
PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
SSL_KEYS = {
    "ssl.ca.location",
    "ssl.ca.pem",
    "ssl.certificate.location",
    "ssl.key.location",
    "ssl.key.password",
    "ssl.endpoint.identification.algorithm",
    "enable.ssl.certificate.verification",
}
SASL_KEYS = {"sasl.mechanism", "sasl.mechanisms", "sasl.username", "sasl.password"}
# librdkafka property -> (Faust setting, factor from the property's unit to Faust's, or None
# for a value taken as it is).
FAUST_SETTINGS: dict[str, tuple[str, float | None]] = {
    "request.timeout.ms": ("broker_request_timeout", 0.001),
    "max.poll.interval.ms": ("broker_max_poll_interval", 0.001),
    "max.partition.fetch.bytes": ("consumer_max_fetch_size", 1),
    "message.max.bytes": ("producer_max_request_size", 1),
    "check.crcs": ("broker_check_crcs", None),
}
# Set by the worker itself: the Sentio setting that governs each, or why it is fixed.
OWN_SETTINGS = {
    "bootstrap.servers": "kafka.bootstrap_servers",
    "client.id": "kafka.client_id",
    "group.id": "streams.app_id",
    "session.timeout.ms": "streams.session_timeout_s",
    "heartbeat.interval.ms": "streams.heartbeat_interval_s",
    "auto.commit.interval.ms": "streams.commit_interval_s",
    "fetch.wait.max.ms": "streams.fetch_max_wait_s",
    "fetch.min.bytes": "streams.fetch_min_bytes",
    "enable.auto.commit": "fixed: the worker commits with its transactions (exactly once)",
    "isolation.level": "fixed: read_committed (exactly once)",
    "enable.idempotence": "fixed: transactional producer (exactly once)",
    "transactional.id": "fixed: one per partition (exactly once)",
    "acks": "fixed: all (exactly once)",
    "auto.offset.reset": "fixed: earliest",
    "linger.ms": "fixed by the worker for its commits (docs/benchmarks.md)",
    "batch.size": "fixed by the worker for its commits (docs/benchmarks.md)",
    "batch.num.messages": "fixed by the worker for its commits (docs/benchmarks.md)",
    "compression.type": "fixed: lz4",
}
TRUE = {"true", "1", "yes", "on"}
FALSE = {"false", "0", "no", "off"}


@dataclass
class _Security:
    protocol: str
    mechanism: str | None
    username: str | None
    password: str | None


def faust_kafka_settings(kafka: KafkaSettings) -> dict[str, Any]:
    """Faust ``App`` settings for ``kafka``: ``broker_credentials`` and the mapped extras.

    Raises ConfigError listing every property of ``kafka.extra`` the worker cannot honour and
    every value it cannot use (named by key; values are never shown).
    """
    extra = {key: _plain(value) for key, value in kafka.extra.items()}
    problems: list[str] = []
    settings: dict[str, Any] = {}
    others: list[str] = []
    for key, value in extra.items():
        if key in SSL_KEYS or key in SASL_KEYS or key == "security.protocol":
            continue
        if key in FAUST_SETTINGS:
            name, factor = FAUST_SETTINGS[key]
            converted = _setting(key, value, factor, problems)
            if converted is not None:
                settings[name] = converted
        elif key.startswith(SECURITY_PREFIXES):
            problems.append(
                f"kafka.extra.{key}: the stream worker (Faust/aiokafka) cannot honour this "
                "security property; remove it (docs/security.md lists the ones it takes)"
            )
        elif key in OWN_SETTINGS:
            others.append(f"{key} (streams: {OWN_SETTINGS[key]})")
        else:
            others.append(key)
    security = _security(kafka, extra, problems)
    credentials = _credentials(security, extra, problems) if security else None
    if problems:
        raise ConfigError("kafka settings the stream worker cannot use", problems)
    if others:
        log.warning(
            "kafka.extra properties the stream worker does not use (the other stages do): %s",
            ", ".join(others),
        )
    if credentials is not None:
        settings["broker_credentials"] = credentials
    return settings


def _plain(value: SecretStr | str | int | bool) -> str | int | bool:
    return secret_value(value) or "" if isinstance(value, SecretStr) else value


def _setting(key: str, value: Any, factor: float | None, problems: list[str]) -> Any:
    if factor is None:
        flag = _flag(value)
        if flag is None:
            problems.append(f"kafka.extra.{key}: expected true or false")
        return flag
    try:
        number = int(str(value))
    except ValueError:
        problems.append(f"kafka.extra.{key}: expected a whole number")
        return None
    if number <= 0:
        problems.append(f"kafka.extra.{key}: expected a number above 0")
        return None
    return number * factor if factor != 1 else number


def _flag(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    return True if text in TRUE else False if text in FALSE else None


def _security(kafka: KafkaSettings, extra: dict[str, Any], problems: list[str]) -> _Security | None:
    """The protocol and SASL settings, ``kafka.extra`` overriding the typed fields; None for
    PLAINTEXT."""
    protocol = str(extra.get("security.protocol", kafka.security_protocol)).upper()
    if protocol not in PROTOCOLS:
        problems.append(f"kafka.extra.security.protocol: expected one of {', '.join(PROTOCOLS)}")
        return None
    mechanism = extra.get("sasl.mechanisms", extra.get("sasl.mechanism", kafka.sasl_mechanism))
    username = extra.get("sasl.username", kafka.sasl_username)
    password = extra.get("sasl.password", secret_value(kafka.sasl_password))
    sasl = protocol.startswith("SASL_")
    if sasl and mechanism is None:
        problems.append(
            f"kafka.sasl_mechanism: security_protocol {protocol} needs one of {', '.join(MECHANISMS)}"
        )
    elif sasl and str(mechanism).upper() not in MECHANISMS:
        problems.append(
            f"kafka.extra.sasl.mechanism: the stream worker supports {', '.join(MECHANISMS)}"
        )
    if sasl and not (username and password):
        problems.append(
            f"kafka.sasl_username, kafka.sasl_password: security_protocol {protocol} needs both"
        )
    if not protocol.endswith("SSL"):
        for key in sorted(SSL_KEYS & extra.keys()):
            problems.append(f"kafka.extra.{key}: needs security_protocol SSL or SASL_SSL")
    if protocol == "PLAINTEXT":
        return None
    return _Security(
        protocol,
        str(mechanism).upper() if sasl and mechanism else None,
        str(username) if username else None,
        str(password) if password else None,
    )


def _credentials(
    security: _Security, extra: dict[str, Any], problems: list[str]
) -> CredentialsT | None:
    context = _ssl_context(extra, problems) if security.protocol.endswith("SSL") else None
    if security.protocol.startswith("SASL_"):
        if security.mechanism is None:
            return None
        return faust.SASLCredentials(
            username=security.username,
            password=security.password,
            mechanism=security.mechanism,
            ssl_context=context,
        )
    return faust.SSLCredentials(context) if context is not None else None


def _ssl_context(extra: dict[str, Any], problems: list[str]) -> ssl.SSLContext | None:
    """A client context as librdkafka builds one from the same properties: the configured CA
    alone when one is given, else the system's."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # host name checked, certificate required
    failed = len(problems)
    ca = extra.get("ssl.ca.location")
    if ca is None and "ssl.ca.pem" not in extra:
        context.load_default_certs(ssl.Purpose.SERVER_AUTH)
    try:
        if ca is not None and Path(str(ca)).is_dir():
            context.load_verify_locations(capath=str(ca))
        elif ca is not None:
            context.load_verify_locations(cafile=str(ca))
    except (OSError, ssl.SSLError) as exc:
        problems.append(f"kafka.extra.ssl.ca.location: cannot load {ca} ({_reason(exc)})")
    if "ssl.ca.pem" in extra:
        try:
            context.load_verify_locations(cadata=str(extra["ssl.ca.pem"]))
        except (ValueError, ssl.SSLError) as exc:
            problems.append(f"kafka.extra.ssl.ca.pem: not a PEM certificate ({_reason(exc)})")
    _client_certificate(context, extra, problems)
    algorithm = str(extra.get("ssl.endpoint.identification.algorithm", "https")).lower()
    if algorithm not in ("https", "none"):
        problems.append("kafka.extra.ssl.endpoint.identification.algorithm: expected https or none")
    verify = _flag(extra.get("enable.ssl.certificate.verification", True))
    if verify is None:
        problems.append("kafka.extra.enable.ssl.certificate.verification: expected true or false")
    context.check_hostname = algorithm == "https" and verify is not False
    if verify is False:
        context.verify_mode = ssl.CERT_NONE
    return context if len(problems) == failed else None


def _client_certificate(
    context: ssl.SSLContext, extra: dict[str, Any], problems: list[str]
) -> None:
    certificate = extra.get("ssl.certificate.location")
    key = extra.get("ssl.key.location")
    if key is not None and certificate is None:
        problems.append("kafka.extra.ssl.key.location: needs ssl.certificate.location")
        return
    if certificate is None:
        if "ssl.key.password" in extra:
            problems.append("kafka.extra.ssl.key.password: needs ssl.certificate.location")
        return
    password = extra.get("ssl.key.password")
    try:
        context.load_cert_chain(
            str(certificate),
            keyfile=str(key) if key is not None else None,
            password=str(password) if password is not None else None,
        )
    except (OSError, ssl.SSLError) as exc:
        problems.append(
            "kafka.extra.ssl.certificate.location, ssl.key.location: cannot load the client "
            f"certificate and key ({_reason(exc)}; a wrong ssl.key.password reads the same)"
        )


def _reason(exc: BaseException) -> str:
    """The library's reason without any value: an errno text or an OpenSSL reason."""
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return str(exc.reason)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return type(exc).__name__
