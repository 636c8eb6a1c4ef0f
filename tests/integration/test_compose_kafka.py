"""Kafka as docker-compose.yml runs it, without Docker: deploy/kafka/start.sh and
server.properties on the stack's Kafka jars, with the secrets `sentio compose secrets` writes,
the roles' users and ACLs from `sentio compose kafka-access`, and the workers' environments of
docker-compose.yml, on free ports in a temporary folder (the shared broker is not touched).

What moves: the broker's host and ports (``kafka:9092``/``:9093`` -> ``localhost:<free>``; the
certificate names both), the data and secrets folders; ``bin/kafka-storage.sh`` and
``bin/kafka-server-start.sh`` are two-line stand-ins for the image's (which run the same main
classes on the same arguments). Every other line is the deployed one.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient
from stream_worker import SENTIO, free_port

from sentio_iot.config import SentioConfig, load_config
from sentio_iot.kafka import producer_config
from sentio_iot.stack.compose_secrets import BROKER_NAMES, CA_NAME
from sentio_iot.stack.kafka_secure import BROKER_USER, SecureKafkaFiles
from sentio_iot.stack.prerequisites import find_java

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
SECRETS_TARGET = "/run/secrets/sentio"
DENIED = "TOPIC_AUTHORIZATION_FAILED"


@dataclass
class ComposeKafka:
    bootstrap: str
    secrets: Path
    work: Path
    config_path: Path
    prefix: str
    log: Path

    def worker_env(self, service: str) -> dict[str, str]:
        """The service's environment in docker-compose.yml, its secrets folder moved here."""
        compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
        env = compose["services"][service]["environment"]
        folder = str(self.secrets / service)
        return {key: str(value).replace(SECRETS_TARGET, folder) for key, value in env.items()}

    def worker_config(self, service: str, monkeypatch: pytest.MonkeyPatch) -> SentioConfig:
        for key, value in self.worker_env(service).items():
            monkeypatch.setenv(key, value)
        # deploy/sentio.yaml's CA location, moved with the folder.
        ca = str(self.secrets / service / "kafka-ca.pem")
        monkeypatch.setenv("SENTIO_KAFKA__EXTRA", f'{{"ssl.ca.location": "{ca}"}}')
        return load_config(self.config_path)


def stand_in(path: Path, main_class: str, java: Path) -> None:
    log4j = ROOT / "sentio_iot" / "stack" / "log4j2.properties"
    path.write_text(
        "#!/bin/sh\n"
        f'exec "{java}" -Xms128m -Xmx512m -Dlog4j2.configurationFile={log4j} '
        f'-cp "$KAFKA_HOME/libs/*" {main_class} "$@"\n'
    )
    path.chmod(0o755)


def deployed_properties(port: int, controller: int, data: Path, secrets: Path) -> str:
    text = (DEPLOY / "kafka" / "server.properties").read_text()
    for old, new in [
        (
            "controller.quorum.voters=1@kafka:9093",
            f"controller.quorum.voters=1@localhost:{controller}",
        ),
        (
            "listeners=SASL_SSL://:9092,CONTROLLER://:9093",
            f"listeners=SASL_SSL://localhost:{port},CONTROLLER://localhost:{controller}",
        ),
        (
            "advertised.listeners=SASL_SSL://kafka:9092",
            f"advertised.listeners=SASL_SSL://localhost:{port}",
        ),
        ("log.dirs=/var/lib/kafka/data", f"log.dirs={data}"),
    ]:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    assert text.count(f"={SECRETS_TARGET}/") == 2  # the keystore and the CA
    return text.replace(SECRETS_TARGET, str(secrets))


def wait_for_broker(
    admin_config: dict[str, Any], process: subprocess.Popen[bytes], log: Path
) -> None:
    deadline = time.monotonic() + 120
    while True:
        assert process.poll() is None, log.read_text()[-3000:]
        try:
            AdminClient(admin_config).list_topics(timeout=5)
            return
        except KafkaException:
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(1)


@pytest.fixture(scope="module")
def kafka(
    sentio_config: SentioConfig, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ComposeKafka]:
    tmp = tmp_path_factory.mktemp("compose-kafka")
    java = find_java()
    assert java is not None
    home = tmp / "kafka-home"
    (home / "bin").mkdir(parents=True)
    jars = sentio_config.stack.home / f"kafka-{sentio_config.stack.kafka_version}" / "libs"
    (home / "libs").symlink_to(jars, target_is_directory=True)
    stand_in(home / "bin" / "kafka-storage.sh", "kafka.tools.StorageTool", java)
    stand_in(home / "bin" / "kafka-server-start.sh", "kafka.Kafka", java)

    secrets = tmp / "secrets"
    made = subprocess.run(
        [SENTIO, "compose", "secrets", str(secrets)], capture_output=True, text=True, timeout=60
    )
    assert made.returncode == 0, made.stderr
    port, controller = free_port(), free_port()
    properties = tmp / "server.properties"
    properties.write_text(deployed_properties(port, controller, tmp / "data", secrets / "kafka"))
    prefix = f"cmp{uuid.uuid4().hex[:8]}."
    config_path = tmp / "sentio.yaml"
    deployed = yaml.safe_load((DEPLOY / "sentio.yaml").read_text())
    config = {
        "kafka": {**deployed["kafka"], "bootstrap_servers": f"localhost:{port}"},
        "schema_registry": {"url": sentio_config.schema_registry.url},
        "topics": {"prefix": prefix, "partitions": 1},
        "streams": {"app_id": prefix.rstrip(".")},
    }
    config_path.write_text(yaml.safe_dump(config))

    log = tmp / "kafka.log"
    env = {
        **os.environ,
        "KAFKA_HOME": str(home),
        "SENTIO_SECRETS": str(secrets / "kafka"),
        "SENTIO_KAFKA_PROPERTIES": str(properties),
        "SENTIO_KAFKA_WORK": str(tmp / "work"),
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            ["bash", str(DEPLOY / "kafka" / "start.sh")],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    broker = ComposeKafka(f"localhost:{port}", secrets, tmp / "work", config_path, prefix, log)
    try:
        files = SecureKafkaFiles.in_folder(secrets / "kafka-access", BROKER_NAMES, CA_NAME)
        wait_for_broker(files.librdkafka(BROKER_USER, broker.bootstrap), process, log)
        access = subprocess.run(
            [
                SENTIO,
                "compose",
                "kafka-access",
                "-c",
                str(config_path),
                "--secrets",
                str(secrets / "kafka-access"),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert access.returncode == 0, access.stderr
        assert re.fullmatch(
            r"kafka access: users admin, producer, streams, sink, api; \d+ ACLs\n", access.stdout
        )
        yield broker
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=60)


def produce(config: SentioConfig, topic: str) -> str | None:
    """Write one record as ``config``'s user; None when delivered, else the error's name."""
    answers: list[KafkaError | None] = []
    producer = Producer(producer_config(config.kafka, **{"message.timeout.ms": 15000}))
    producer.produce(topic, key=b"k", value=b"v", on_delivery=lambda e, _m: answers.append(e))
    producer.flush(30)
    assert len(answers) == 1
    return None if answers[0] is None else answers[0].name()


def test_the_broker_formats_with_its_scram_user_and_keeps_its_password_private(
    kafka: ComposeKafka,
) -> None:
    password = (kafka.secrets / "kafka" / "broker.password").read_text()
    log = kafka.log.read_text()
    assert "Formatting" in log or "formatted" in log.lower()
    assert password not in log
    assert not (kafka.work / "format.args").exists()  # removed after the format
    for name in ("server.properties", "client.properties"):
        assert (kafka.work / name).stat().st_mode & 0o077 == 0
    assert (kafka.work.stat().st_mode & 0o077) == 0
    # The health check's client settings log in as the broker over TLS with the CA.
    client = dict(
        line.split("=", 1) for line in (kafka.work / "client.properties").read_text().splitlines()
    )
    user, secret = re.findall(r'username="([^"]+)" password="([^"]+)"', client["sasl.jaas.config"])[
        0
    ]
    assert (user, secret) == (BROKER_USER, password)
    admin = AdminClient(
        {
            "bootstrap.servers": kafka.bootstrap,
            "security.protocol": client["security.protocol"],
            "sasl.mechanism": client["sasl.mechanism"],
            "sasl.username": user,
            "sasl.password": secret,
            "ssl.ca.location": client["ssl.truststore.location"],
        }
    )
    assert admin.list_topics(timeout=10).brokers


def test_the_topics_one_shot_creates_the_catalog_as_admin(kafka: ComposeKafka) -> None:
    env = {**os.environ, **kafka.worker_env("topics")}
    env["SENTIO_KAFKA__EXTRA"] = (
        f'{{"ssl.ca.location": "{kafka.secrets / "topics" / "kafka-ca.pem"}"}}'
    )
    result = subprocess.run(
        [SENTIO, "topics", "apply", "-c", str(kafka.config_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    password = (kafka.secrets / "topics" / "kafka.password").read_text()
    assert password not in result.stdout + result.stderr
    listed = subprocess.run(
        [SENTIO, "topics", "list", "-c", str(kafka.config_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listed.returncode == 0, listed.stderr
    assert f"{kafka.prefix}readings" in listed.stdout
    assert f"{kafka.prefix}alert-commands" in listed.stdout


@pytest.mark.parametrize(
    ("service", "allowed", "refused"),
    [
        ("producer-simulate", "readings", "alert-commands"),
        ("sink-victoriametrics", "deadletter", "readings"),
        ("api", "alert-commands", "readings"),
        ("streams", "rollups", "alert-commands"),
    ],
)
def test_each_worker_writes_with_its_own_role_and_is_refused_the_others_topics(
    kafka: ComposeKafka,
    monkeypatch: pytest.MonkeyPatch,
    service: str,
    allowed: str,
    refused: str,
) -> None:
    test_the_topics_one_shot_creates_the_catalog_as_admin(kafka)  # idempotent
    config = kafka.worker_config(service, monkeypatch)
    assert config.kafka.security_protocol == "SASL_SSL"
    assert produce(config, f"{kafka.prefix}{allowed}") is None
    assert produce(config, f"{kafka.prefix}{refused}") == DENIED


def test_a_client_without_the_login_gets_nothing(kafka: ComposeKafka) -> None:
    ca = str(kafka.secrets / "producer-simulate" / "kafka-ca.pem")
    for settings in (
        {"security.protocol": "plaintext"},
        {"security.protocol": "ssl", "ssl.ca.location": ca},
        {
            "security.protocol": "sasl_ssl",
            "ssl.ca.location": ca,
            "sasl.mechanism": "SCRAM-SHA-512",
            "sasl.username": "producer",
            "sasl.password": "wrong",
        },
    ):
        admin = AdminClient({"bootstrap.servers": kafka.bootstrap, **settings})
        with pytest.raises(KafkaException):
            admin.list_topics(timeout=5)
