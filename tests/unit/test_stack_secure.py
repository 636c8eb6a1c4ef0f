"""The files and ACL plan of `sentio stack up --secure` (no broker: see
tests/integration/test_stack_secure_kafka.py for the real one)."""

from __future__ import annotations

import datetime
import ipaddress
import shlex
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from sentio_iot.config import StackSettings, load_config
from sentio_iot.kafka import extra_properties
from sentio_iot.stack.kafka import render_server_properties
from sentio_iot.stack.kafka_secure import (
    BROKER_USER,
    ROLES,
    KafkaAccess,
    SecureKafkaFiles,
    role_grants,
)
from sentio_iot.stack.paths import StackPaths


@pytest.fixture
def files(tmp_path: Path) -> SecureKafkaFiles:
    secure = SecureKafkaFiles(StackPaths(tmp_path))
    secure.ensure()
    return secure


def test_the_broker_certificate_is_signed_by_the_stack_ca_for_127_0_0_1(
    files: SecureKafkaFiles,
) -> None:
    ca = x509.load_pem_x509_certificate(files.ca_file.read_bytes())
    broker = x509.load_pem_x509_certificate(files.broker_keystore.read_bytes())
    broker.verify_directly_issued_by(ca)
    names = broker.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert broker.subject.rfc4514_string() == f"CN={BROKER_USER}"
    assert b"PRIVATE KEY" in files.broker_keystore.read_bytes()
    assert stat.S_IMODE(files.broker_keystore.stat().st_mode) == 0o600
    assert stat.S_IMODE((files.tls / "ca.key").stat().st_mode) == 0o600


def test_a_second_start_keeps_every_password_and_certificate(files: SecureKafkaFiles) -> None:
    before = {p.name: p.read_bytes() for p in [*files.credentials.iterdir(), *files.tls.iterdir()]}
    files.ensure()
    after = {p.name: p.read_bytes() for p in [*files.credentials.iterdir(), *files.tls.iterdir()]}
    assert after == before
    passwords = {files.password(user) for user in (BROKER_USER, *ROLES)}
    assert len(passwords) == 6 and all(len(p) == 32 for p in passwords)


def test_the_secure_broker_has_no_plaintext_listener(
    files: SecureKafkaFiles, tmp_path: Path
) -> None:
    settings = StackSettings(home=tmp_path, kafka_port=19092, kafka_controller_port=19093)
    overrides = files.server_properties(19092, 19093)
    text = render_server_properties(settings, tmp_path / "data", overrides)
    lines = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    assert lines["listeners"] == "SASL_SSL://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert lines["listener.security.protocol.map"] == "CONTROLLER:SSL,SASL_SSL:SASL_SSL"
    assert lines["listener.name.controller.ssl.client.auth"] == "required"
    assert lines["super.users"] == f"User:{BROKER_USER}"
    assert lines["allow.everyone.if.no.acl.found"] == "false"
    assert "PLAINTEXT" not in text.replace("CONTROLLER:", "")
    assert lines["auto.create.topics.enable"] == "false"  # the plain settings are kept


def test_a_role_env_file_configures_the_cli(
    files: SecureKafkaFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    files.write_client_files("127.0.0.1:19092")
    env = files.clients / "producer.env"
    assert stat.S_IMODE(env.stat().st_mode) == 0o600
    for line in env.read_text().splitlines():
        key, value = line.split("=", 1)
        monkeypatch.setenv(key, shlex.split(value)[0])
    kafka = load_config(None).kafka
    assert kafka.bootstrap_servers == "127.0.0.1:19092"
    assert (kafka.security_protocol, kafka.sasl_mechanism) == ("SASL_SSL", "SCRAM-SHA-512")
    assert kafka.sasl_username == "producer"
    assert kafka.sasl_password is not None
    assert kafka.sasl_password.get_secret_value() == files.password("producer")
    assert extra_properties(kafka) == {"ssl.ca.location": str(files.ca_file)}


def test_only_the_api_may_write_alert_commands() -> None:
    access = KafkaAccess("plant.", "plant-streams")
    topic = "plant.alert-commands"
    writers = {
        g.role
        for g in role_grants(access)
        if g.resource == "topic"
        and g.operation in ("WRITE", "ALL")
        and not g.deny
        and (topic.startswith(g.name) if g.prefixed else g.name == topic)
    }
    denied = {
        g.role for g in role_grants(access) if g.deny and g.name == topic and g.operation == "WRITE"
    }
    assert writers - denied == {"api"}
    assert access.sink_group_prefix == "plant.sink-"
    assert KafkaAccess().sink_group_prefix == "sentio-sink-"


def test_a_broker_certificate_near_its_end_is_issued_anew(files: SecureKafkaFiles) -> None:
    ca = x509.load_pem_x509_certificate(files.ca_file.read_bytes())
    old = x509.load_pem_x509_certificate(files.broker_keystore.read_bytes())
    ca_key = serialization.load_pem_private_key((files.tls / "ca.key").read_bytes(), None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    now = datetime.datetime.now(datetime.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    ending = (
        x509.CertificateBuilder()
        .subject_name(old.subject)
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=800))
        .not_valid_after(now + datetime.timedelta(days=10))
        .sign(ca_key, hashes.SHA256())
    )
    files.broker_keystore.write_bytes(ending.public_bytes(serialization.Encoding.PEM))
    files.ensure()
    renewed = x509.load_pem_x509_certificate(files.broker_keystore.read_bytes())
    renewed.verify_directly_issued_by(ca)
    assert renewed.not_valid_after_utc - now > datetime.timedelta(days=800)
