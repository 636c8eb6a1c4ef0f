"""``sentio run`` on the secure stack: each child with its own role's Kafka credentials.

`sentio stack up --secure` writes, per role, the ``kafka:`` settings a worker of that role
needs (``<stack.home>/state/secure/clients/<role>.yaml``, mode 0600). ``sentio run`` uses
them, instead of the configuration's one ``kafka`` section, when

- ``--secure`` is given (the files must exist: else one line saying to start the stack so), or
- without the flag, when the stack's Kafka last started with ``--secure``, the files exist,
  their bootstrap servers are the configuration's ``kafka.bootstrap_servers`` and the
  configuration names no SASL user of its own (``kafka.sasl_username`` unset): the
  configuration points at the secure listener but has no credentials for it.

Then the children get the role's settings as ``SENTIO_KAFKA__*`` environment variables (the
environment wins over their configuration file), never on a command line and never in the
output: producer -> ``producer``, ``streams-N`` -> ``streams``, ``sink-*`` -> ``sink``,
``api`` -> ``api``; with VictoriaMetrics / VictoriaLogs secured too, every child also gets
their basic-auth settings (``clients/victoriametrics.env``, ``clients/victorialogs.env``), and
with Alertmanager secured, the Alertmanager sink's (``clients/alertmanager.env``); with the
registry secured (its last start a secure one) and ``schema_registry.url`` the stack's registry
with no ``basic_auth`` of its own, each child its role's registry client
(``clients/registry-<role>.env``: ``SENTIO_SCHEMA_REGISTRY__BASIC_AUTH``);
``sentio run`` itself (topics, schemas, round trip, backlog, the live
view's reads and consumer lag) -> ``admin``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from pydantic import SecretStr

from sentio_iot.config import KafkaSettings, SentioConfig
from sentio_iot.errors import ConfigError
from sentio_iot.secret_values import reveal
from sentio_iot.stack.alertmanager_secure import SecureAlertmanagerFiles
from sentio_iot.stack.paths import StackPaths
from sentio_iot.stack.registry_secure import SETTING as REGISTRY_SETTING
from sentio_iot.stack.registry_secure import role_settings
from sentio_iot.stack.victoria_secure import client_settings, env_pairs

log = logging.getLogger(__name__)

ROLES = ("admin", "producer", "streams", "sink", "api")
SECURE_MARKER = "kafka-secure"  # in <state>/conf: the stack's Kafka last started with --secure


def role_of(child: str) -> str:
    """The Kafka role a child of ``sentio run`` runs as."""
    if child.startswith("streams-"):
        return "streams"
    if child.startswith("sink-"):
        return "sink"
    if child in ("producer", "api"):
        return child
    raise ValueError(f"no Kafka role for child {child!r}")


@dataclass(frozen=True)
class SecureRoles:
    """Each role's ``kafka:`` settings (clear password), as the secure stack wrote them."""

    clients: Path
    fields: dict[str, dict[str, Any]]
    # SENTIO_* credentials of VictoriaMetrics / VictoriaLogs when they run with --secure.
    http: tuple[tuple[str, str], ...] = ()
    # Each role's schema_registry.basic_auth ('client-id:secret') when the stack's registry
    # runs with --secure and the configuration uses it without credentials of its own.
    registry: dict[str, str] = field(default_factory=dict)

    @property
    def bootstrap(self) -> str:
        return str(self.fields["admin"]["bootstrap_servers"])

    def settings(self, role: str, base: KafkaSettings) -> KafkaSettings:
        """``base`` (client id and the rest) with the role's address and credentials; the
        role's ``extra`` (the CA) on top of the configuration's."""
        fields = self.fields[role]
        extra = {**base.extra, **fields.get("extra", {})}
        return KafkaSettings.model_validate(
            {**base.model_dump(), **fields, "extra": extra, "client_id": base.client_id}
        )

    def env(self, role: str, base: KafkaSettings) -> tuple[tuple[str, str], ...]:
        """``SENTIO_KAFKA__*`` for a child of ``role``: what ``clients/<role>.env`` holds,
        with the configuration's other ``kafka.extra`` properties kept."""
        fields = reveal(self.settings(role, base))
        names = ("bootstrap_servers", "security_protocol", "sasl_mechanism", "sasl_username")
        pairs = [(f"SENTIO_KAFKA__{n.upper()}", str(fields[n])) for n in names]
        pairs.append(("SENTIO_KAFKA__SASL_PASSWORD", str(fields["sasl_password"])))
        pairs.append(("SENTIO_KAFKA__EXTRA", json.dumps(fields["extra"])))
        if role in self.registry:
            pairs.append((REGISTRY_SETTING, self.registry[role]))
        return (*pairs, *self.http)


def as_admin(config: SentioConfig, roles: SecureRoles | None) -> SentioConfig:
    """The configuration ``sentio run`` itself uses: with the ``admin`` role's Kafka settings
    on the secure stack."""
    if roles is None:
        return config
    update: dict[str, Any] = {"kafka": roles.settings("admin", config.kafka)}
    if "admin" in roles.registry:
        update["schema_registry"] = config.schema_registry.model_copy(
            update={"basic_auth": SecretStr(roles.registry["admin"])}
        )
    return config.model_copy(update=update)


def secure_roles(config: SentioConfig, *, secure: bool) -> SecureRoles | None:
    """The roles' settings when this run goes to the secure stack (module docstring), else
    None; ConfigError when ``secure`` is asked for and the stack has no client settings."""
    paths = StackPaths(config.stack.home)
    clients = paths.state / "secure" / "clients"
    found = all((clients / f"{role}.yaml").is_file() for role in ROLES)
    if secure and not found:
        raise ConfigError(
            f"--secure: no Kafka client settings in {clients}: start the secure stack first "
            "(`sentio stack up --secure`, with this configuration's -c)"
        )
    if not found:
        return None
    roles = SecureRoles(
        clients,
        {role: _read(clients / f"{role}.yaml") for role in ROLES},
        (*client_settings(paths), *alertmanager_settings(paths)),
        registry_settings(config, paths),
    )
    if secure:
        return roles
    detected = (
        (paths.conf / SECURE_MARKER).is_file()
        and roles.bootstrap == config.kafka.bootstrap_servers
        and config.kafka.sasl_username is None
    )
    if detected:
        log.info("kafka.bootstrap_servers is the secure stack's listener: roles' credentials")
    return roles if detected else None


def registry_settings(config: SentioConfig, paths: StackPaths) -> dict[str, str]:
    """Each role's registry credentials, when the stack's registry last started with --secure,
    ``schema_registry.url`` names it (127.0.0.1 or localhost, ``stack.registry_port``: never
    sent to another server) and the configuration has no ``basic_auth`` of its own."""
    url = urlsplit(config.schema_registry.url)
    try:
        port = url.port
    except ValueError:  # not a number: not the stack's registry
        return {}
    ours = url.hostname in ("127.0.0.1", "localhost") and port == config.stack.registry_port
    if not ours or config.schema_registry.basic_auth is not None:
        return {}
    return role_settings(paths)


def alertmanager_settings(paths: StackPaths) -> list[tuple[str, str]]:
    """The Alertmanager sink's basic auth when the stack's Alertmanager last started with
    --secure (its web configuration exists only then)."""
    files = SecureAlertmanagerFiles(paths)
    if files.web_config.is_file() and files.client_env.is_file():
        return env_pairs(files.client_env)
    return []


def _read(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        fields = data["kafka"]
        KafkaSettings.model_validate(fields)
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError) as exc:
        raise ConfigError(
            f"{path}: not the `kafka:` settings `sentio stack up --secure` writes "
            f"({type(exc).__name__}); run it again to rewrite them"
        ) from None
    return dict(fields)
