"""``sentio stack up --secure``: Kafka with SASL/SCRAM-SHA-512 over TLS and ACLs per worker role.

Everything lives in ``<home>/state/secure/`` (folder mode 0700, every secret 0600), generated on
the first secure start and kept afterwards:

    tls/ca.pem, tls/ca.key              the stack's own certificate authority
    tls/broker.pem, tls/broker.key      the broker's certificate (127.0.0.1, localhost)
    credentials/<user>.password         one SCRAM-SHA-512 password per user
    clients/<role>.env, <role>.yaml     what a worker of that role needs (SENTIO_KAFKA__* / kafka:)

The broker listens with SASL_SSL on ``stack.kafka_port`` and nothing else for clients; its
controller listener takes TLS with a client certificate only (the broker's own). The user
``sentio-broker`` is the broker itself and the only super user; it is created when the storage
is formatted (``--add-scram``, read from an argument file so no password is in a process list)
and then creates the other users and their ACLs at each secure start (both idempotent).
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import logging
import os
import secrets
import shlex
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from sentio_iot.errors import StackError
from sentio_iot.stack.paths import StackPaths

log = logging.getLogger(__name__)

BROKER_USER = "sentio-broker"
ROLES = ("admin", "producer", "streams", "sink", "api")
MECHANISM = "SCRAM-SHA-512"
SCRAM_ITERATIONS = 8192
CA_DAYS = 3650
BROKER_DAYS = 825
RENEW_DAYS = 30  # a secure start issues the broker a new certificate this close to its end
TIMEOUT_S = 30.0


@dataclass(frozen=True)
class KafkaAccess:
    """What the ACLs name: the deployment's topic prefix and the stream workers' app id."""

    topic_prefix: str = "sentio."
    streams_app_id: str = "sentio-streams"

    def topic(self, catalog_name: str) -> str:
        return f"{self.topic_prefix}{catalog_name}"

    @property
    def sink_group_prefix(self) -> str:
        """As ``sinks.runtime.default_group_id`` names a sink's consumer group."""
        return "sentio-sink-" if self.topic_prefix == "sentio." else f"{self.topic_prefix}sink-"


# Catalog topics each role reads and writes (sentio_iot/schemas/catalog.py names them).
DERIVED = ("rollups", "anomalies", "rul", "device-events", "alerts")
EVERY_TOPIC = ("readings", *DERIVED, "alert-commands", "deadletter", "otlp-spans")
READS: dict[str, tuple[str, ...]] = {
    "producer": (),
    "streams": ("readings", "alert-commands", *DERIVED),
    "sink": EVERY_TOPIC,
    # alert-commands: the alerts' history in the views (who acknowledged, cleared, commented)
    "api": ("readings", "anomalies", "alerts", "rul", "device-events", "alert-commands"),
}
WRITES: dict[str, tuple[str, ...]] = {
    "producer": ("readings", "device-events", "deadletter", "otlp-spans"),
    "streams": (*DERIVED, "deadletter", "otlp-spans"),
    "sink": ("deadletter", "otlp-spans"),
    "api": ("alert-commands", "otlp-spans"),
}


@dataclass(frozen=True)
class Grant:
    """One ACL: ``principal`` may (or, with ``deny``, may not) do ``operation`` on a resource."""

    role: str
    resource: str  # topic | group | transactional_id | cluster
    name: str
    operation: str  # a confluent_kafka AclOperation name
    prefixed: bool = False
    deny: bool = False


def role_grants(access: KafkaAccess) -> list[Grant]:
    """The ACLs of every role; anything not granted is refused (no ACL means no access)."""
    grants: list[Grant] = []
    for role, names in READS.items():
        grants += [Grant(role, "topic", access.topic(n), "READ") for n in names]
    for role, names in WRITES.items():
        grants += [Grant(role, "topic", access.topic(n), "WRITE") for n in names]
    # Stages that run `apply_topics` at start compare the catalog's topic configs.
    for role in ("streams", "api"):
        used = dict.fromkeys((*READS[role], *WRITES[role]))
        grants += [Grant(role, "topic", access.topic(n), "DESCRIBE_CONFIGS") for n in used]
    app = access.streams_app_id
    grants += [
        # Changelogs, the assignor's topic and the ticks: <app id>-*, created by the worker.
        Grant("streams", "topic", f"{app}-", "ALL", prefixed=True),
        Grant("streams", "group", app, "READ"),
        Grant("streams", "transactional_id", f"{app}-", "WRITE", prefixed=True),
        Grant("streams", "transactional_id", f"{app}-", "DESCRIBE", prefixed=True),
        Grant("sink", "group", access.sink_group_prefix, "READ", prefixed=True),
        Grant("sink", "group", "sentio-alert-states-", "READ", prefixed=True),
        Grant("api", "group", "sentio-api-views", "READ"),
        # The operator's tools: topics apply/list, deadletter list/replay, alerts list.
        Grant("admin", "topic", access.topic_prefix, "ALL", prefixed=True),
        Grant("admin", "topic", access.topic("alert-commands"), "WRITE", deny=True),
        Grant("admin", "group", "sentio-", "ALL", prefixed=True),
        Grant("admin", "cluster", "kafka-cluster", "CREATE"),
        Grant("admin", "cluster", "kafka-cluster", "DESCRIBE"),
        Grant("admin", "cluster", "kafka-cluster", "DESCRIBE_CONFIGS"),
    ]
    return grants


class SecureKafkaFiles:
    """The certificate authority, the broker's certificate, the passwords and client files."""

    # The broker's certificate names what clients dial (host name verification).
    broker_names: tuple[str, ...] = ("localhost", "127.0.0.1")
    ca_name = "sentio local stack CA"

    def __init__(self, paths: StackPaths) -> None:
        self._use(paths.state / "secure")

    @classmethod
    def in_folder(cls, root: Path, broker_names: tuple[str, ...], ca_name: str) -> SecureKafkaFiles:
        """The same files under ``root`` (Compose's secrets volume: compose_secrets.py), the
        broker's certificate for ``broker_names`` (DNS names or IP addresses)."""
        files = cls.__new__(cls)
        files._use(root)
        files.broker_names, files.ca_name = broker_names, ca_name
        return files

    def _use(self, root: Path) -> None:
        self.root = root
        self.tls = self.root / "tls"
        self.credentials = self.root / "credentials"
        self.clients = self.root / "clients"
        self.ca_file = self.tls / "ca.pem"
        self.broker_keystore = self.tls / "broker-keystore.pem"

    def ensure(self) -> None:
        """Generate what is missing (CA, broker certificate, passwords); keep what exists."""
        for folder in (self.root, self.tls, self.credentials, self.clients):
            folder.mkdir(parents=True, exist_ok=True)
            folder.chmod(0o700)
        self._ensure_tls()
        for user in (BROKER_USER, *ROLES):
            path = self._password_path(user)
            if not path.is_file():
                write_private(path, secrets.token_urlsafe(24))

    def password(self, user: str) -> str:
        path = self._password_path(user)
        try:
            return path.read_text(encoding="utf-8").strip()
        except FileNotFoundError as exc:
            raise StackError(
                f"the Kafka password of {user} is missing ({path})",
                fix="run `sentio stack up --secure` to generate it",
            ) from exc

    def client_fields(self, role: str, bootstrap: str) -> dict[str, Any]:
        """The ``kafka:`` settings of one role (KafkaSettings fields, clear password)."""
        return {
            "bootstrap_servers": bootstrap,
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": MECHANISM,
            "sasl_username": role,
            "sasl_password": self.password(role),
            "extra": {"ssl.ca.location": str(self.ca_file)},
        }

    def librdkafka(self, user: str, bootstrap: str) -> dict[str, Any]:
        """librdkafka properties for ``user`` (the stack's own probe and admin use it)."""
        return {
            "bootstrap.servers": bootstrap,
            "security.protocol": "sasl_ssl",
            "sasl.mechanism": MECHANISM,
            "sasl.username": user,
            "sasl.password": self.password(user),
            "ssl.ca.location": str(self.ca_file),
        }

    def write_client_files(self, bootstrap: str) -> None:
        """``clients/<role>.env`` (SENTIO_KAFKA__*, to source) and ``clients/<role>.yaml``."""
        for role in ROLES:
            fields = self.client_fields(role, bootstrap)
            lines = [
                f"SENTIO_KAFKA__{key.upper()}="
                + shlex.quote(json.dumps(value) if isinstance(value, dict) else str(value))
                for key, value in fields.items()
            ]
            write_private(self.clients / f"{role}.env", "\n".join(lines) + "\n")
            text = yaml.safe_dump({"kafka": fields}, sort_keys=False)
            write_private(self.clients / f"{role}.yaml", text)

    def server_properties(self, port: int, controller_port: int) -> dict[str, str]:
        """What the secure broker changes in ``render_server_properties``."""
        client, controller = f"127.0.0.1:{port}", f"127.0.0.1:{controller_port}"
        password = self.password(BROKER_USER)
        return {
            "listeners": f"SASL_SSL://{client},CONTROLLER://{controller}",
            "advertised.listeners": f"SASL_SSL://{client}",
            "inter.broker.listener.name": "SASL_SSL",
            "listener.security.protocol.map": "CONTROLLER:SSL,SASL_SSL:SASL_SSL",
            "sasl.enabled.mechanisms": MECHANISM,
            "sasl.mechanism.inter.broker.protocol": MECHANISM,
            "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": (
                "org.apache.kafka.common.security.scram.ScramLoginModule required "
                f'username="{BROKER_USER}" password="{password}";'
            ),
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(self.broker_keystore),
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(self.ca_file),
            # Only the broker's own certificate may speak to the controller.
            "listener.name.controller.ssl.client.auth": "required",
            "ssl.principal.mapping.rules": "RULE:^CN=([^,]+)$/$1/,DEFAULT",
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users": f"User:{BROKER_USER}",
            "allow.everyone.if.no.acl.found": "false",
        }

    def format_scram_arguments(self) -> list[str]:
        """``kafka-storage format`` arguments creating the broker's own SCRAM user."""
        password = self.password(BROKER_USER)
        return ["--add-scram", f"{MECHANISM}=[name={BROKER_USER},password={password}]"]

    def _password_path(self, user: str) -> Path:
        return self.credentials / f"{user}.password"

    def _ensure_tls(self) -> None:
        ca_key_path = self.tls / "ca.key"
        if not (self.ca_file.is_file() and ca_key_path.is_file()):
            key = ec.generate_private_key(ec.SECP256R1())
            name = _name(self.ca_name)
            ca = _builder(name, name, key.public_key(), CA_DAYS).add_extension(
                x509.BasicConstraints(ca=True, path_length=0), critical=True
            )
            write_private(ca_key_path, _key_pem(key))
            self.ca_file.write_bytes(
                ca.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)
            )
            self.broker_keystore.unlink(missing_ok=True)  # signed by the old CA
        if self.broker_keystore.is_file() and not _expires_soon(self.broker_keystore):
            return
        ca_key = serialization.load_pem_private_key(ca_key_path.read_bytes(), None)
        assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
        ca_cert = x509.load_pem_x509_certificate(self.ca_file.read_bytes())
        key = ec.generate_private_key(ec.SECP256R1())
        names = [_general_name(name) for name in self.broker_names]
        usages = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
        certificate = (
            _builder(_name(BROKER_USER), ca_cert.subject, key.public_key(), BROKER_DAYS)
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        pem = certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")
        write_private(self.broker_keystore, _key_pem(key) + pem)


def apply_access(files: SecureKafkaFiles, bootstrap: str, access: KafkaAccess) -> int:
    """Create or update every role's SCRAM user and ACLs as the broker's super user.

    Both are idempotent; returns the number of ACL bindings the roles hold.
    """
    from confluent_kafka.admin import AdminClient, ScramCredentialInfo, ScramMechanism
    from confluent_kafka.admin import UserScramCredentialUpsertion as Upsertion

    admin = AdminClient({**files.librdkafka(BROKER_USER, bootstrap), "logger": log})
    info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, SCRAM_ITERATIONS)
    upserts = [Upsertion(role, info, files.password(role).encode()) for role in ROLES]
    for user, future in admin.alter_user_scram_credentials(upserts).items():
        _wait(future, f"create the Kafka user {user}")
    bindings = acl_bindings(role_grants(access))
    for binding, future in admin.create_acls(bindings, request_timeout=TIMEOUT_S).items():
        _wait(future, f"create the ACL {binding}")
    return len(bindings)


def acl_bindings(grants: Iterable[Grant]) -> list[Any]:
    """confluent_kafka ``AclBinding``s of ``grants`` (any host)."""
    from confluent_kafka.admin import (
        AclBinding,
        AclOperation,
        AclPermissionType,
        ResourcePatternType,
        ResourceType,
    )

    return [
        AclBinding(
            ResourceType.BROKER
            if grant.resource == "cluster"
            else ResourceType[grant.resource.upper()],
            grant.name,
            ResourcePatternType.PREFIXED if grant.prefixed else ResourcePatternType.LITERAL,
            f"User:{grant.role}",
            "*",
            AclOperation[grant.operation],
            AclPermissionType.DENY if grant.deny else AclPermissionType.ALLOW,
        )
        for grant in grants
    ]


def _wait(future: Any, what: str) -> None:
    from confluent_kafka import KafkaException

    try:
        future.result(timeout=TIMEOUT_S)
    except KafkaException as exc:
        error = exc.args[0]
        detail = error.str() if hasattr(error, "str") else str(error)
        raise StackError(f"cannot {what}: {detail}") from exc


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to a file only its owner may read (created 0600, never wider)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(text)
    path.chmod(0o600)


def _expires_soon(certificate_file: Path) -> bool:
    """True when the certificate in the file ends within RENEW_DAYS (then it is issued anew)."""
    certificate = x509.load_pem_x509_certificate(certificate_file.read_bytes())
    left = certificate.not_valid_after_utc - datetime.datetime.now(datetime.UTC)
    return left < datetime.timedelta(days=RENEW_DAYS)


def _general_name(name: str) -> x509.GeneralName:
    """A subject alternative name: an IP address, else a DNS name."""
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _builder(
    subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey, days: int
) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
    )


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")
