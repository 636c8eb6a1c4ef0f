"""Kafka: a single-node KRaft broker and controller run from Maven Central jars."""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Mapping
from importlib import resources
from pathlib import Path

from sentio_iot.config import StackSettings
from sentio_iot.errors import StackError
from sentio_iot.stack.install import fill_once, maven_copy_dependencies, run_tool
from sentio_iot.stack.kafka_secure import (
    BROKER_USER,
    KafkaAccess,
    SecureKafkaFiles,
    apply_access,
    write_private,
)
from sentio_iot.stack.paths import StackPaths
from sentio_iot.stack.prerequisites import find_java, find_program, java_problem, missing
from sentio_iot.stack.probes import HOST, Health, kafka_answers
from sentio_iot.stack.service import Progress, Service


def render_server_properties(
    settings: StackSettings, log_dir: Path, overrides: Mapping[str, str] | None = None
) -> str:
    """server.properties for one node that is both broker and controller, on 127.0.0.1
    (``overrides``: the secure listeners, see kafka_secure.py)."""
    broker = f"{HOST}:{settings.kafka_port}"
    controller = f"{HOST}:{settings.kafka_controller_port}"
    properties = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@{controller}",
        "listeners": f"PLAINTEXT://{broker},CONTROLLER://{controller}",
        "advertised.listeners": f"PLAINTEXT://{broker}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(log_dir),
        "num.partitions": "1",
        # One node: every internal topic has one replica (transactions need the second group).
        "offsets.topic.replication.factor": "1",
        "offsets.topic.min.isr": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        # Tests must not wait 3 s for each consumer group to settle.
        "group.initial.rebalance.delay.ms": "0",
        # Topics come from the catalog (`sentio topics apply`), never from a typo.
        "auto.create.topics.enable": "false",
        **(overrides or {}),
    }
    header = "# Written by `sentio stack up`; edits are overwritten at the next start.\n"
    return header + "".join(f"{key}={value}\n" for key, value in properties.items())


def new_cluster_id() -> str:
    """A Kafka cluster id: a random UUID in URL-safe base64 without padding (22 characters)."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode("ascii").rstrip("=")


class KafkaService(Service):
    name = "kafka"

    def __init__(self, settings: StackSettings, paths: StackPaths) -> None:
        super().__init__(settings, paths)
        self.dist = paths.home / f"kafka-{settings.kafka_version}"
        self.libs = self.dist / "libs"
        self.server_properties = paths.conf / "kafka-server.properties"
        self.log4j_properties = paths.conf / "kafka-log4j2.properties"
        # `sentio stack up --secure` sets these (Stack); the marker says how it last started.
        self.secure = False
        self.access = KafkaAccess()
        self.secure_files = SecureKafkaFiles(paths)
        self.secure_marker = paths.conf / "kafka-secure"

    @property
    def data_dir(self) -> Path:
        """The secure broker keeps its own data: its users exist from its first format on."""
        return self.paths.data("kafka-secure" if self.secure else self.name)

    @property
    def address(self) -> str:
        return f"{HOST}:{self.settings.kafka_port}"

    def ports(self) -> list[tuple[int, str]]:
        return [
            (self.settings.kafka_port, "stack.kafka_port"),
            (self.settings.kafka_controller_port, "stack.kafka_controller_port"),
        ]

    def problems(self) -> list[str]:
        found = [problem for problem in [java_problem()] if problem]
        if not (self.libs / ".complete").is_file() and find_program("mvn") is None:
            found.append(missing("mvn", "to download the Kafka jars"))
        return found

    def install(self, progress: Progress) -> None:
        mvn = find_program("mvn")
        assert mvn is not None  # problems() said so

        def download(libs: Path) -> None:
            progress(f"kafka: downloading kafka_2.13 {self.settings.kafka_version} jars with mvn")
            started = time.monotonic()
            pom = self.dist / "pom.xml"
            pom.write_text(_package_text("kafka-pom.xml"), encoding="utf-8")
            properties = {
                "kafka.version": self.settings.kafka_version,
                "log4j.version": self.settings.log4j_version,
            }
            maven_copy_dependencies(mvn, pom, libs, properties)
            jars = len(list(libs.glob("*.jar")))
            progress(f"kafka: {jars} jars ready in {time.monotonic() - started:.1f} s")

        self.dist.mkdir(parents=True, exist_ok=True)
        fill_once(self.libs, download)

    def prepare(self, progress: Progress) -> None:
        self.paths.conf.mkdir(parents=True, exist_ok=True)
        if self.secure:
            self.secure_files.ensure()
            overrides = self.secure_files.server_properties(
                self.settings.kafka_port, self.settings.kafka_controller_port
            )
            # It holds the broker's own password: readable by its owner only.
            write_private(
                self.server_properties,
                render_server_properties(self.settings, self.data_dir, overrides),
            )
            self.secure_marker.touch()
        else:
            self.secure_marker.unlink(missing_ok=True)
            self.server_properties.write_text(
                render_server_properties(self.settings, self.data_dir), encoding="utf-8"
            )
        self.log4j_properties.write_text(_package_text("log4j2.properties"), encoding="utf-8")
        if (self.data_dir / "meta.properties").is_file():
            return
        progress("kafka: formatting storage")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # Fixed controller.quorum.voters: format without --standalone (the tool refuses both).
        # --cluster-id=: an id may begin with "-", which a separate argument would not survive.
        arguments = [f"--cluster-id={new_cluster_id()}", "-c", str(self.server_properties)]
        command = [*self._java(), "kafka.tools.StorageTool", "format", *arguments]
        if not self.secure:
            run_tool([*command, "--ignore-formatted"], what="kafka storage format")
            return
        # The broker's SCRAM user, from a java argument file: never in a process list.
        argfile = self.paths.conf / "kafka-format.args"
        write_private(argfile, "\n".join(self.secure_files.format_scram_arguments()) + "\n")
        try:
            run_tool([*command, "--ignore-formatted", f"@{argfile}"], what="kafka storage format")
        finally:
            argfile.unlink(missing_ok=True)

    def command(self) -> list[str]:
        return [*self._java(), "kafka.Kafka", str(self.server_properties)]

    def check(self) -> Health:
        if not self.secure_marker.is_file():
            return kafka_answers(self.settings.kafka_port)
        client = self.secure_files.librdkafka(BROKER_USER, self.address)
        health = kafka_answers(self.settings.kafka_port, client=client)
        return Health(health.healthy, f"SASL_SSL; {health.detail}")

    def after_start(self, progress: Progress) -> None:
        """Secure: create the roles' users and ACLs, write their client settings."""
        if not self.secure:
            return
        if not self.secure_marker.is_file():
            raise StackError(
                "kafka is running without --secure",
                fix="stop it with `sentio stack down`, then run `sentio stack up --secure` "
                "(the secure broker keeps its own data)",
            )
        acls = apply_access(self.secure_files, self.address, self.access)
        self.secure_files.write_client_files(self.address)
        progress(
            f"kafka: SASL_SSL (SCRAM-SHA-512), {acls} ACLs for prefix "
            f"{self.access.topic_prefix!r}; client settings per role in "
            f"{self.secure_files.clients}/<role>.env (mode 0600)"
        )

    def _java(self) -> list[str]:
        java = find_java()
        assert java is not None  # problems() said so
        return [
            str(java),
            "-Xms256m",
            "-Xmx1g",
            f"-Dlog4j2.configurationFile={self.log4j_properties}",
            "-cp",
            f"{self.libs}/*",  # java expands the wildcard itself
        ]


def _package_text(name: str) -> str:
    return resources.files("sentio_iot.stack").joinpath(name).read_text(encoding="utf-8")
