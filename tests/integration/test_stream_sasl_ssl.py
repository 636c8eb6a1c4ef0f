"""The stream worker against a Kafka that asks for SASL/SCRAM over TLS with client certificates.

A second Kafka of this module (own ports and data, the stack's jars) has two listeners: PLAINTEXT
for the test's own producer, reader and the SCRAM user's creation, and SASL_SSL (SCRAM-SHA-512,
server certificate from a test CA, client certificate required) for the worker, whose
configuration names only the SASL_SSL listener, its CA, certificate, encrypted key and password.
"""

from __future__ import annotations

import os
import secrets
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from confluent_kafka.admin import (
    AdminClient,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)
from stream_worker import StreamTestbed, WorkerProcess, free_port
from tls_files import CertificateAuthority

from sentio_iot.config import SentioConfig
from sentio_iot.errors import EXIT_ACCESS_REFUSED
from sentio_iot.records import Metric, Reading, now_us
from sentio_iot.stack.kafka import KafkaService
from sentio_iot.stack.paths import StackPaths
from sentio_iot.stack.probes import kafka_answers
from sentio_iot.stack.process import ProcessRecord, is_running, log_tail, spawn, wait_gone

USER = "streams"
START_TIMEOUT_S = 60.0


class SaslSslKafka:
    def __init__(self, config: SentioConfig, home: Path) -> None:
        shared = config.stack
        jars = shared.home / f"kafka-{shared.kafka_version}"
        (home / jars.name).symlink_to(jars, target_is_directory=True)
        self.plain_port, self.secure_port = free_port(), free_port()
        settings = shared.model_copy(
            update={
                "home": home,
                "kafka_port": self.plain_port,
                "kafka_controller_port": free_port(),
            }
        )
        self.service = KafkaService(settings, StackPaths(home))
        self.tls = home / "tls"
        self.tls.mkdir()
        self.authority = CertificateAuthority(self.tls)
        self.key_password = secrets.token_urlsafe(12)
        self.password = secrets.token_urlsafe(16)
        self.record: ProcessRecord | None = None

    def start(self) -> None:
        self.service.install(progress=lambda _line: None)
        self.service.prepare(progress=lambda _line: None)
        server = self.authority.issue("broker", ["localhost"], ips=["127.0.0.1"])
        keystore = self.tls / "broker-keystore.pem"
        keystore.write_text(server.key.read_text() + server.certificate.read_text())
        plain, secure = f"127.0.0.1:{self.plain_port}", f"127.0.0.1:{self.secure_port}"
        controller = f"127.0.0.1:{self.service.settings.kafka_controller_port}"
        extra = {
            "listeners": f"PLAINTEXT://{plain},SASL_SSL://{secure},CONTROLLER://{controller}",
            "advertised.listeners": f"PLAINTEXT://{plain},SASL_SSL://{secure}",
            "listener.security.protocol.map": (
                "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL"
            ),
            "sasl.enabled.mechanisms": "SCRAM-SHA-512",
            "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": (
                "org.apache.kafka.common.security.scram.ScramLoginModule required;"
            ),
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(keystore),
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(self.authority.ca_file),
            "ssl.client.auth": "required",
        }
        lines = [
            line
            for line in self.service.server_properties.read_text().splitlines()
            if line.split("=", 1)[0] not in extra
        ]
        lines += [f"{key}={value}" for key, value in extra.items()]
        self.service.server_properties.write_text("\n".join(lines) + "\n")
        self.record = spawn(
            self.service.command(), log_path=self.service.log_path, cwd=self.service.data_dir
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while not kafka_answers(self.plain_port).healthy:
            if not is_running(self.record) or time.monotonic() > deadline:
                raise AssertionError(f"own Kafka did not start: {log_tail(self.service.log_path)}")
            time.sleep(0.2)
        admin = AdminClient({"bootstrap.servers": plain})
        upsert = UserScramCredentialUpsertion(
            USER,
            ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096),
            self.password.encode(),
        )
        for future in admin.alter_user_scram_credentials([upsert]).values():
            future.result(30)

    def stop(self) -> None:
        if self.record is not None and is_running(self.record):
            os.killpg(self.record.pid, signal.SIGKILL)
            assert wait_gone(self.record, 30)


@pytest.fixture(scope="module")
def kafka(
    sentio_config: SentioConfig, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SaslSslKafka]:
    broker = SaslSslKafka(sentio_config, tmp_path_factory.mktemp("sasl-ssl"))
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def bed(
    tmp_path: Path, unique_name: str, sentio_config: SentioConfig, kafka: SaslSslKafka
) -> Iterator[StreamTestbed]:
    base = sentio_config.model_copy(
        update={
            "kafka": sentio_config.kafka.model_copy(
                update={"bootstrap_servers": f"127.0.0.1:{kafka.plain_port}"}
            )
        }
    )
    testbed = StreamTestbed(tmp_path, unique_name, base)
    try:
        yield testbed
    finally:
        testbed.close()


def secure_worker(bed: StreamTestbed, kafka: SaslSslKafka, **kafka_fields: object) -> WorkerProcess:
    """A device_state worker whose configuration names only the SASL_SSL listener."""
    client = kafka.authority.issue("streams", [USER], password=kafka.key_password)
    data = yaml.safe_load(bed.config_path.read_text())
    data["kafka"] = {
        "bootstrap_servers": f"127.0.0.1:{kafka.secure_port}",
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_username": USER,
        "sasl_password": kafka.password,
        "extra": {
            "ssl.ca.location": str(kafka.authority.ca_file),
            "ssl.certificate.location": str(client.certificate),
            "ssl.key.location": str(client.key),
            "ssl.key.password": kafka.key_password,
        },
        **kafka_fields,
    }
    data["streams"]["device_state"] = {"offline_after_s": 2, "check_interval_s": 0.5}
    path = bed.tmp_path / "secure.yaml"
    path.write_text(yaml.safe_dump(data))
    port = free_port()
    worker = WorkerProcess(path, port, "device_state", bed.tmp_path / f"worker-{port}.log")
    bed.workers.append(worker)
    return worker


def record(device: str, temp: float) -> tuple[str, dict[str, object]]:
    reading = Reading(device, now_us(), [Metric("temp", temp, "degC")], "modbus", {"kind": "pump"})
    return device, reading.to_record()


def test_the_worker_reads_and_writes_exactly_once_over_sasl_ssl(
    bed: StreamTestbed, kafka: SaslSslKafka
) -> None:
    bed.configure()
    worker = secure_worker(bed, kafka).start()
    bed.produce("readings", [record("pump-1", 20.0), record("pump-2", 30.0)])
    events = bed.read("device-events", count=2, timeout_s=40, settle_s=0.5)
    assert sorted((e.key, e.value["kind"]) for e in events) == [
        (b"pump-1", "OFFLINE"),
        (b"pump-2", "OFFLINE"),
    ]
    assert worker.stop() == 0
    assert kafka.password not in worker.log(tail=100_000)
    assert kafka.key_password not in worker.log(tail=100_000)


def test_a_wrong_password_stops_the_worker_at_start_without_showing_it(
    bed: StreamTestbed, kafka: SaslSslKafka
) -> None:
    bed.configure()
    worker = secure_worker(bed, kafka, sasl_password="not-the-Password-42")
    refused = f"worker exited with {EXIT_ACCESS_REFUSED}: error: cannot reach Kafka at"
    with pytest.raises(AssertionError, match=refused):
        worker.start(ready_timeout_s=60)
    log = worker.log(tail=100_000)
    assert "do kafka.security_protocol, kafka.sasl_* and the ssl.* properties" in log
    assert f"127.0.0.1:{kafka.secure_port}" in log
    assert "not-the-Password-42" not in log and kafka.key_password not in log
