"""`sentio compose secrets`: the Compose deployment's credentials, written for real into a
temporary folder (as the one-shot `init` writes the secrets volume)."""

from __future__ import annotations

import base64
import hashlib
import json
import stat
from pathlib import Path

import bcrypt
import pytest
import yaml
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from sentio_iot.cli.main import cli
from sentio_iot.stack.compose_secrets import (
    ACCESS_ROLE,
    ACCESS_SERVICE,
    KAFKA_CA,
    KAFKA_PASSWORD,
    KEYCLOAK_ADMIN_PASSWORD,
    REGISTRY_BASIC_AUTH,
    WORKERS,
    ComposeSecrets,
    kafka_cluster_id,
    mosquitto_hash,
)
from sentio_iot.stack.kafka_secure import BROKER_USER, ROLES, SecureKafkaFiles
from sentio_iot.stack.keycloak import REALM_FILE
from sentio_iot.stack.paths import StackPaths
from sentio_iot.stack.registry_secure import ROLE_GRANTS, RegistrySecrets, client_id


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "secrets"
    result = CliRunner().invoke(cli, ["compose", "secrets", str(root)])
    assert result.exit_code == 0, result.output
    assert result.output == f"compose secrets: 15 service folders in {root} (passwords kept)\n"
    return root


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_every_file_is_private_and_no_password_is_printed(root: Path) -> None:
    for path in (root, *root.rglob("*")):
        mode = stat.S_IMODE(path.stat().st_mode)
        if path.is_dir():
            assert mode == 0o700, path
        elif path.name != "ca.pem":  # the CA's certificate is public
            assert mode == 0o600, path
    passwords = [p.read_text() for p in (root / "passwords").iterdir()]
    passwords += [p.read_text() for p in (root / "pki" / "credentials").iterdir()]
    # 5 of passwords/, keycloak-admin and 5 registry clients; 6 of Kafka.
    assert len(set(passwords)) == 17 and all(len(p) == 32 for p in passwords)
    again = CliRunner().invoke(cli, ["compose", "secrets", str(root)])
    assert not any(password in again.output for password in passwords)


def test_a_second_start_keeps_every_password_and_the_certificates(root: Path) -> None:
    first = snapshot(root)
    ComposeSecrets(root).ensure()
    second = snapshot(root)
    assert set(first) == set(second)
    # Hashes get a new salt; every password, key and certificate stays.
    changed = {name for name in first if first[name] != second[name]}
    assert changed == {"mosquitto/passwd", "alertmanager/web.yml"}


def test_each_worker_gets_its_own_role_and_nothing_else(root: Path) -> None:
    credentials = root / "pki" / "credentials"
    for service, worker in WORKERS.items():
        folder = root / service
        expected = {KAFKA_CA, KAFKA_PASSWORD, REGISTRY_BASIC_AUTH}
        expected |= {f"{b}-basic-auth" for b in worker.http}
        assert {p.name for p in folder.iterdir()} == expected, service
        password = (credentials / f"{worker.role}.password").read_text()
        assert (folder / KAFKA_PASSWORD).read_text() == password
        for other in {*ROLES, BROKER_USER} - {worker.role}:
            assert (credentials / f"{other}.password").read_text() not in {
                p.read_text() for p in folder.iterdir()
            }
    assert {w.role for w in WORKERS.values()} == set(ROLES)
    broker = root / "kafka"
    assert {p.name for p in broker.iterdir()} == {
        "ca.pem",
        "broker-keystore.pem",
        "broker.password",
        "cluster-id",
    }
    assert (broker / "broker.password").read_text() == (
        credentials / f"{BROKER_USER}.password"
    ).read_text()
    assert not any(p.name == "ca.key" for p in root.rglob("*") if "pki" not in p.parts)


def test_the_broker_certificate_is_for_kafka_and_signed_by_the_workers_ca(root: Path) -> None:
    keystore = (root / "kafka" / "broker-keystore.pem").read_bytes()
    key = serialization.load_pem_private_key(keystore, None)
    certificate = x509.load_pem_x509_certificate(keystore)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert key.public_key().public_numbers() == certificate.public_key().public_numbers()  # type: ignore[union-attr]
    ca = x509.load_pem_x509_certificate((root / "producer-simulate" / KAFKA_CA).read_bytes())
    certificate.verify_directly_issued_by(ca)
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["kafka", "localhost"]
    usages = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    # The broker shows it to clients and to its own controller listener (client auth).
    assert set(usages) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    assert certificate.subject.rfc4514_string() == f"CN={BROKER_USER}"
    assert ca.subject.rfc4514_string() == "CN=sentio compose CA"
    for service in (*WORKERS, "kafka"):
        name = KAFKA_CA if service in WORKERS else "ca.pem"
        assert (root / service / name).read_bytes() == (root / "pki/tls/ca.pem").read_bytes()


def test_the_certificates_are_made_as_the_local_secure_stack_makes_its_own(
    root: Path, tmp_path: Path
) -> None:
    local = SecureKafkaFiles(StackPaths(tmp_path / "home"))
    local.ensure()
    ours = x509.load_pem_x509_certificate((root / "kafka" / "broker-keystore.pem").read_bytes())
    theirs = x509.load_pem_x509_certificate(local.broker_keystore.read_bytes())
    assert ours.subject == theirs.subject
    assert ours.signature_hash_algorithm.name == theirs.signature_hash_algorithm.name  # type: ignore[union-attr]
    assert type(ours.public_key()) is type(theirs.public_key())
    assert [e.oid for e in ours.extensions] == [e.oid for e in theirs.extensions]
    # ... and the local stack's own names are unchanged by the compose ones.
    names = theirs.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    ca = x509.load_pem_x509_certificate(local.ca_file.read_bytes())
    assert ca.subject.rfc4514_string() == "CN=sentio local stack CA"


def test_alertmanager_and_grafana_get_hashes_and_copies_of_the_same_password(root: Path) -> None:
    password = (root / "passwords" / "alertmanager.password").read_text()
    web = yaml.safe_load((root / "alertmanager" / "web.yml").read_text())
    assert bcrypt.checkpw(password.encode(), web["basic_auth_users"]["sentio"].encode())
    assert (root / "grafana" / "alertmanager-password").read_text() == password
    admin = (root / "passwords" / "grafana-admin.password").read_text()
    assert (root / "grafana" / "admin-password").read_text() == admin


def test_mosquitto_hashes_are_mosquitto_passwd_s_format() -> None:
    hashed = mosquitto_hash("pw")
    empty, version, iterations, salt, digest = hashed.split("$")
    assert (empty, version, iterations) == ("", "7", "101")
    expected = hashlib.pbkdf2_hmac("sha512", b"pw", base64.b64decode(salt), 101, 64)
    assert base64.b64decode(digest) == expected and len(base64.b64decode(salt)) == 12
    assert mosquitto_hash("pw") != hashed  # salted


def test_cluster_ids_are_kafka_uuids() -> None:
    for _ in range(50):
        text = kafka_cluster_id()
        assert len(text) == 22 and not text.startswith("-")
        assert len(base64.urlsafe_b64decode(text + "==")) == 16


def test_the_realm_is_generated_once_and_its_clients_are_the_workers_credentials(
    root: Path,
) -> None:
    """Keycloak's folder: the realm (made by registry_secure's code, as `stack up --secure`
    makes it) with one client per role whose secret is what that role's workers read."""
    realm_file = root / "keycloak" / REALM_FILE
    first = realm_file.read_bytes()
    kept = {
        role: (root / "passwords" / f"registry-{role}.secret").read_text() for role in ROLE_GRANTS
    }
    ComposeSecrets(root).ensure()
    ComposeSecrets(root).ensure()
    assert realm_file.read_bytes() == first
    assert {
        r: (root / "passwords" / f"registry-{r}.secret").read_text() for r in ROLE_GRANTS
    } == kept
    realm = json.loads(first)
    assert realm["realm"] == "sentio" and realm["enabled"] is True
    clients = {c["clientId"]: c for c in realm["clients"]}
    assert set(clients) == {client_id(role) for role in ROLE_GRANTS}
    for role, secret in kept.items():
        assert clients[client_id(role)]["secret"] == secret and len(secret) == 32
        assert clients[client_id(role)]["publicClient"] is False
    assert len(set(kept.values())) == len(kept)
    grants = {u["serviceAccountClientId"]: u["realmRoles"] for u in realm["users"]}
    assert grants == {client_id(role): [grant] for role, grant in ROLE_GRANTS.items()}
    assert {role: g for role, g in ROLE_GRANTS.items() if g == "sr-admin"} == {"admin": "sr-admin"}
    assert ROLE_GRANTS["sink"] == "sr-readonly"
    # The same realm as the local secure stack's for the same secrets.
    assert first.decode() == RegistrySecrets(root / "passwords").realm_json()
    # Each worker reads its own role's client, and no other secret.
    roles = {name: worker.role for name, worker in WORKERS.items()}
    roles[ACCESS_SERVICE] = ACCESS_ROLE
    for service, role in roles.items():
        text = (root / service / REGISTRY_BASIC_AUTH).read_text()
        assert text == f"{client_id(role)}:{kept[role]}", service
        others = set(kept.values()) - {kept[role]}
        assert not any(
            o in p.read_text() for o in others for p in (root / service).rglob("*") if p.is_file()
        )
    admin = (root / "passwords" / "keycloak-admin.password").read_text()
    assert (root / "keycloak" / KEYCLOAK_ADMIN_PASSWORD).read_text() == admin
    assert admin not in kept.values() and len(admin) == 32
    # The folder is private (0700) and the realm, holding every secret, 0600.
    assert stat.S_IMODE((root / "keycloak").stat().st_mode) == 0o700
    assert stat.S_IMODE(realm_file.stat().st_mode) == 0o600
    assert stat.S_IMODE((root / "passwords").stat().st_mode) == 0o700
    for role in ROLE_GRANTS:
        path = root / "passwords" / f"registry-{role}.secret"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
