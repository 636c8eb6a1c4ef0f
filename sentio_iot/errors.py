"""One error hierarchy for Sentio, split by what the caller can do about it.

    SentioError                      base; carries an optional ``fix`` hint
    ├── ConfigError                  bad configuration: stop at start-up, print every problem
    ├── PrerequisiteError            a tool the local stack needs (java, mvn, go, ...) is missing
    ├── TransientError               retry with backoff; ``retryable`` is True
    │   ├── ConnectError             a broker, registry, device or sink cannot be reached
    │   │   └── AccessRefused        Kafka refused the login or its ACLs refuse a topic or
    │   │                            group: bad credentials, not retried (exit status 77)
    │   └── OperationTimeout         an operation did not finish in time
    ├── StackError                   a local service failed to start or stop
    ├── RegistryError                the schema registry refused a request (status, error code)
    └── DataError                    poison data: goes to the dead-letter topic, never retried
        ├── SerializationError       a value does not fit its Avro schema
        └── DeserializationError     bytes that cannot be decoded; carries the raw bytes

Raise with ``raise ... from exc`` so the cause is kept for ``--debug``.

The CLI's exit status says which (``exit_status``), so a supervisor (``sentio run``, systemd,
Compose) tells a worker to fix from one to restart without reading its output.
"""

from __future__ import annotations


class SentioError(Exception):
    """Base of every error Sentio raises on purpose."""

    retryable = False

    def __init__(self, message: str, *, fix: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix

    def __str__(self) -> str:
        if self.fix:
            return f"{self.message} (fix: {self.fix})"
        return self.message


class ConfigError(SentioError):
    """Configuration is invalid. ``problems`` lists every ``path: message`` found."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []

    def __str__(self) -> str:
        if not self.problems:
            return self.message
        return self.message + "\n" + "\n".join(f"  {p}" for p in self.problems)


class PrerequisiteError(SentioError):
    """A program the local stack needs is not installed."""


class StackError(SentioError):
    """A local stack service failed to start, answer or stop."""


class RegistryError(SentioError):
    """The registry answered, but refused: ``status_code`` and Confluent ``error_code`` say why."""

    def __init__(self, message: str, *, status_code: int, error_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.error_code = error_code


class TransientError(SentioError):
    """Something that may work if tried again later."""

    retryable = True


class ConnectError(TransientError):
    """A broker, schema registry, device or sink cannot be reached."""


class AccessRefused(ConnectError):
    """Kafka refused the login (wrong user or password, revoked) or its ACLs refuse a topic or
    group, at start or while running: the credentials are wrong, which no retry mends."""

    retryable = False


class OperationTimeout(TransientError):
    """An operation did not finish in time."""


class DataError(SentioError):
    """Poison data: it will never succeed, so it goes to the dead-letter topic."""


class SerializationError(DataError):
    """A value does not fit its Avro schema."""

    def __init__(self, message: str, *, topic: str | None = None, fix: str | None = None) -> None:
        super().__init__(message, fix=fix)
        self.topic = topic


class DeserializationError(DataError):
    """Bytes that cannot be decoded. ``raw`` keeps them for the dead-letter topic."""

    def __init__(self, message: str, *, raw: bytes, topic: str | None = None) -> None:
        super().__init__(message)
        self.raw = raw
        self.topic = topic


EXIT_ERROR = 1  # any other SentioError
EXIT_CONFIG = 2  # ConfigError: the configuration is invalid
EXIT_ACCESS_REFUSED = 77  # AccessRefused: sysexits.h EX_NOPERM


def exit_status(error: SentioError) -> int:
    """The CLI's exit status for ``error``."""
    if isinstance(error, ConfigError):
        return EXIT_CONFIG
    if isinstance(error, AccessRefused):
        return EXIT_ACCESS_REFUSED
    return EXIT_ERROR
