"""Access taken away while workers run (secure stack): an ACL deleted, a password rotated.

A refused login or ACL is bad credentials whether Kafka says so at start or later: the worker
stops with one line naming the role, the topic or group and the fix, and exit status
``EXIT_ACCESS_REFUSED`` (77), which `sentio run` does not restart; nothing refused counts as
written (the producer keeps its messages in the disk buffer, the sink commits nothing).

The module starts its own secure Kafka with the stack's code on free ports, in its own home
(the shared stack's jars linked in), with the default topic prefix; the schema registry and
VictoriaMetrics are the shared stack's (data under this module's own tenant). It deletes ACLs
and rotates passwords as the broker's super user, puts them back after each test, and restarts
its broker for the rotation.
"""

from __future__ import annotations

import re
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import yaml
from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import (
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
)
from confluent_kafka.admin import UserScramCredentialUpsertion as Upsertion
from stream_worker import SENTIO, free_port

from sentio_iot.config import SentioConfig
from sentio_iot.errors import EXIT_ACCESS_REFUSED
from sentio_iot.kafka import consumer_config
from sentio_iot.pipeline.plant import plant_entry
from sentio_iot.stack import Stack
from sentio_iot.stack.kafka_secure import (
    BROKER_USER,
    KafkaAccess,
    SecureKafkaFiles,
    apply_access,
    write_private,
)

pytestmark = pytest.mark.timeout(240)
FIX = "(fix: give this worker its own role's credentials"


@dataclass
class Broker:
    stack: Stack
    home: Path
    bootstrap: str
    files: SecureKafkaFiles
    config_path: Path

    def role_env(self, role: str, **changes: str) -> dict[str, str]:
        """The environment a worker of ``role`` gets from ``clients/<role>.env``."""
        out = subprocess.run(
            ["bash", "-c", f'set -a; . "{self.files.clients}/{role}.env"; env -0'],
            capture_output=True,
            check=True,
        )
        pairs = (item.split(b"=", 1) for item in out.stdout.split(b"\0") if b"=" in item)
        return {**{k.decode(): v.decode() for k, v in pairs}, **changes}

    def start(self, env: dict[str, str], *args: str) -> subprocess.Popen[str]:
        """``sentio <args>`` with its output to ``<home>/<args>.log`` (a pipe could fill up)."""
        log = self.home / f"{'-'.join(args)}-{uuid.uuid4().hex[:6]}.log"
        with log.open("w") as out:
            process = subprocess.Popen(
                [SENTIO, *args, "-c", str(self.config_path)],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
            )
        process.args = [*process.args, str(log)]  # where stops_with_one_line reads it
        return process

    def super_admin(self) -> AdminClient:
        return AdminClient(self.files.librdkafka(BROKER_USER, self.bootstrap))

    def delete_acl(self, user: str, topic_or_group: str, kind: ResourceType) -> None:
        """Delete ``user``'s READ/WRITE grants on ``topic_or_group`` (any pattern type)."""
        filters = [
            AclBindingFilter(
                kind,
                topic_or_group,
                ResourcePatternType.ANY,
                f"User:{user}",
                None,
                operation,
                AclPermissionType.ALLOW,
            )
            for operation in (AclOperation.READ, AclOperation.WRITE)
        ]
        deleted = 0
        admin = self.super_admin()  # held until the futures are done
        for future in admin.delete_acls(filters).values():
            deleted += len(future.result(timeout=30))
        assert deleted >= 1, f"no ACL of {user} on {topic_or_group} to delete"

    def restore(self) -> None:
        apply_access(self.files, self.bootstrap, KafkaAccess())

    def end_offsets(self, topic: str) -> int:
        consumer = Consumer(consumer_config(self.admin_settings(), f"sentio-t-{uuid.uuid4().hex}"))
        deadline = time.monotonic() + 30
        try:
            while True:
                try:
                    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
                    return sum(
                        consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                        for p in partitions
                    )
                except KafkaException:  # new topics: leaders still being elected
                    assert time.monotonic() < deadline
                    time.sleep(0.5)
        finally:
            consumer.close()

    def admin_settings(self) -> object:
        from sentio_iot.config import KafkaSettings

        return KafkaSettings(**self.files.client_fields("admin", self.bootstrap))


@pytest.fixture(scope="module")
def broker(
    sentio_config: SentioConfig, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Broker]:
    home = tmp_path_factory.mktemp("secure-revoked")
    shared = sentio_config.stack
    jars = shared.home / f"kafka-{shared.kafka_version}"
    (home / jars.name).symlink_to(jars, target_is_directory=True)
    settings = shared.model_copy(
        update={"home": home, "kafka_port": free_port(), "kafka_controller_port": free_port()}
    )
    stack = Stack(settings, secure=True, access=KafkaAccess(), only={"kafka"})
    stack.up(progress=lambda _line: None)
    bootstrap = f"127.0.0.1:{settings.kafka_port}"
    config = {
        "tenant": f"revoked{uuid.uuid4().hex[:8]}",
        "stack": settings.model_dump(mode="json"),
        "kafka": {"bootstrap_servers": bootstrap},
        "schema_registry": {"url": sentio_config.schema_registry.url},
        "producer": {"buffer_dir": str(home / "buffer")},
        "producers": {"simulate": [plant_entry(2, 0.2, home / "truth.csv", datetime.now(UTC))]},
        "sinks": {"batch_timeout_s": 0.2, "victoriametrics": {"health_port": 0}},
    }
    config_path = home / "sentio.yaml"
    config_path.write_text(yaml.safe_dump(config))
    found = Broker(stack, home, bootstrap, SecureKafkaFiles(stack.paths), config_path)
    try:
        applied = subprocess.run(
            [SENTIO, "topics", "apply", "-c", str(config_path)],
            env=found.role_env("admin"),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert applied.returncode == 0, applied.stderr
        yield found
    finally:
        stack.down()


def stops_with_one_line(process: subprocess.Popen[str], within_s: float) -> tuple[str, str]:
    """The process's error line and its whole stderr, once it exited with 77."""
    log = Path(str(process.args[-1]))  # type: ignore[index]
    try:
        process.wait(timeout=within_s)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        raise AssertionError(
            f"still running {within_s:g} s after the refusal: {log.read_text()[-3000:]}"
        ) from None
    err = log.read_text()
    assert process.returncode == EXIT_ACCESS_REFUSED, err[-3000:]
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, err[-3000:]
    assert "Traceback" not in err and "SASL authentication error" not in err
    return lines[0], err


def stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.kill()
    process.wait(30)


def wait_for_readings(broker: Broker, more_than: int, timeout_s: float = 60) -> int:
    deadline = time.monotonic() + timeout_s
    while (count := broker.end_offsets("sentio.readings")) <= more_than:
        assert time.monotonic() < deadline, f"no readings past {more_than}"
        time.sleep(0.5)
    return count


def buffered(err: str, folder: str) -> int:
    kept = re.search(rf"(\d+) message\(s\), \d+ bytes wait in .*{folder}", err)
    assert kept is not None, err[-3000:]
    return int(kept.group(1))


def test_a_producer_whose_write_acl_is_deleted_stops_and_keeps_its_messages(
    broker: Broker,
) -> None:
    before = broker.end_offsets("sentio.readings")
    env = broker.role_env("producer", SENTIO_PRODUCER__BUFFER_DIR=str(broker.home / "acl-buf"))
    producer = broker.start(env, "produce", "simulate")
    try:
        wait_for_readings(broker, before)
        broker.delete_acl("producer", "sentio.readings", ResourceType.TOPIC)
        line, err = stops_with_one_line(producer, 30)
    finally:
        stop(producer)
        broker.restore()
    assert line.startswith(
        f"error: Kafka at {broker.bootstrap} refused 'producer' access to topic "
        f"sentio.readings: TOPIC_AUTHORIZATION_FAILED {FIX}"
    ), line
    assert buffered(err, "acl-buf") > 0  # refused, so not written: kept for the next start


def test_a_sink_whose_read_acl_is_deleted_stops_with_one_line(broker: Broker) -> None:
    sink = broker.start(broker.role_env("sink"), "sink", "victoriametrics")
    try:
        time.sleep(8)  # started, in its group, consuming
        assert sink.poll() is None, Path(str(sink.args[-1])).read_text()[-3000:]  # type: ignore[index]
        broker.delete_acl("sink", "sentio.readings", ResourceType.TOPIC)
        line, _ = stops_with_one_line(sink, 60)
    finally:
        stop(sink)
        broker.restore()
    assert line.startswith(
        f"error: Kafka at {broker.bootstrap} refused 'sink' access to topic sentio.readings: "
        f"TOPIC_AUTHORIZATION_FAILED {FIX}"
    ), line


def test_a_password_rotated_while_running_stops_producer_and_sink(broker: Broker) -> None:
    """The operator rotates both passwords; sessions already open stay logged in, so the
    workers notice at their next login: the broker restarts, and each stops with one line."""
    env = broker.role_env("producer", SENTIO_PRODUCER__BUFFER_DIR=str(broker.home / "pw-buf"))
    producer = broker.start(env, "produce", "simulate")
    sink = broker.start(broker.role_env("sink"), "sink", "victoriametrics")
    old = {role: broker.files.password(role) for role in ("producer", "sink")}
    try:
        wait_for_readings(broker, broker.end_offsets("sentio.readings"))
        for role in old:  # on the broker (live sessions stay), and where `stack up` reads it
            write_private(
                broker.files.credentials / f"{role}.password", f"Rotated-{uuid.uuid4().hex}"
            )
        info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096)
        rotations = [Upsertion(r, info, broker.files.password(r).encode()) for r in old]
        admin = broker.super_admin()
        for future in admin.alter_user_scram_credentials(rotations).values():
            future.result(timeout=30)
        time.sleep(3)  # still running: a live session is not logged in again
        assert producer.poll() is None and sink.poll() is None
        broker.stack.down()
        broker.stack.up(progress=lambda _line: None)
        produced, produced_err = stops_with_one_line(producer, 90)
        sunk, _ = stops_with_one_line(sink, 90)
    finally:
        stop(producer)
        stop(sink)
    for role, line in (("producer", produced), ("sink", sunk)):
        assert line.startswith(
            f"error: cannot reach Kafka at {broker.bootstrap}: it refused the login of "
            f"{role!r}: Authentication failed"
        ), line
        assert "(fix: check kafka.sasl_username and kafka.sasl_password" in line
        assert old[role] not in line and broker.files.password(role) not in line
    assert buffered(produced_err, "pw-buf") > 0


def test_the_api_whose_read_acl_is_deleted_says_so_on_health_and_recovers(
    broker: Broker,
) -> None:
    """The API keeps serving: its /health turns 503 with the one refusal line (logged once),
    and once the ACL is back the views' feed takes up again and /health is 200."""
    port = free_port()
    env = broker.role_env(
        "api",
        SENTIO_API__PORT=str(port),
        SENTIO_API__STATE_DIR=str(broker.home / f"api-{uuid.uuid4().hex[:6]}"),
    )
    api = broker.start(env, "api")
    log = Path(str(api.args[-1]))  # type: ignore[index]
    health = f"http://127.0.0.1:{port}/health"

    def answer() -> tuple[int, dict[str, str]]:
        try:
            got = httpx.get(health, timeout=5)
        except httpx.TransportError:
            return 0, {}
        return got.status_code, got.json()

    def wait_for(status: int, timeout_s: float) -> dict[str, str]:
        deadline = time.monotonic() + timeout_s
        while (got := answer())[0] != status:
            assert api.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, (
                f"{got} after {timeout_s:g} s: {log.read_text()[-3000:]}"
            )
            time.sleep(0.5)
        return got[1]

    try:
        wait_for(200, 90)
        broker.delete_acl("api", "sentio.alerts", ResourceType.TOPIC)
        body = wait_for(503, 60)
        assert body["status"] == "kafka access refused", body
        assert body["error"].startswith(
            f"Kafka at {broker.bootstrap} refused 'api' access to topic sentio.alerts: "
            f"TOPIC_AUTHORIZATION_FAILED {FIX}"
        ), body
        broker.restore()
        assert wait_for(200, 90) == {"status": "ok"}
        assert api.poll() is None  # it kept serving all along
    finally:
        stop(api)
        broker.restore()
    text = log.read_text()
    assert text.count("the views' Kafka feed: Kafka at") == 1, text[-3000:]  # said once
    assert "Traceback" not in text
