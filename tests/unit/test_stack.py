"""The local stack without its services: configuration files, pid files, prerequisites, ports."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from sentio_iot.cli.main import cli
from sentio_iot.config import StackSettings
from sentio_iot.errors import PrerequisiteError, StackError
from sentio_iot.stack import ServiceStatus, Stack, prerequisites
from sentio_iot.stack.install import fill_once, first_error, go_binary
from sentio_iot.stack.kafka import new_cluster_id, render_server_properties
from sentio_iot.stack.lock import stack_lock
from sentio_iot.stack.mosquitto import render_mosquitto_conf
from sentio_iot.stack.paths import StackPaths
from sentio_iot.stack.probes import (
    MQTT_CONNECT,
    mqtt_answers,
    port_in_use,
    reply_is_connack_accepted,
)
from sentio_iot.stack.process import (
    ProcessRecord,
    is_running,
    log_tail,
    parse_start_time,
    read_record,
    spawn,
    stop,
    write_record,
)
from sentio_iot.stack.services import SERVICE_TYPES

STAT = "4242 (java (x) y) S 1 4242 4242 0 -1 4194560 1 0 0 0 5 6 0 0 20 0 30 0 {start} 100 10"


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@pytest.fixture
def settings(tmp_path: Path) -> StackSettings:
    names = ["kafka", "kafka_controller", "registry", "victoriametrics", "victorialogs", "mqtt"]
    names.append("alertmanager")
    ports = dict(zip([f"{name}_port" for name in names], free_ports(len(names)), strict=True))
    return StackSettings.model_validate({"home": tmp_path / "home", **ports})


@pytest.fixture
def sleeper(tmp_path: Path) -> Iterator[ProcessRecord]:
    """A real detached process that the test owns, stopped afterwards whatever happens."""
    record = spawn(["sleep", "60"], log_path=tmp_path / "sleep.log", cwd=tmp_path)
    yield record
    stop(record, grace_s=2.0)


def parse_properties(text: str) -> dict[str, str]:
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    return dict(line.split("=", 1) for line in lines)


def test_server_properties_describe_one_kraft_node_on_loopback(settings: StackSettings) -> None:
    properties = parse_properties(render_server_properties(settings, Path("/data/kafka")))

    broker, controller = settings.kafka_port, settings.kafka_controller_port
    assert properties["process.roles"] == "broker,controller"
    assert properties["node.id"] == "1"
    assert properties["controller.quorum.voters"] == f"1@127.0.0.1:{controller}"
    assert properties["listeners"] == (
        f"PLAINTEXT://127.0.0.1:{broker},CONTROLLER://127.0.0.1:{controller}"
    )
    assert properties["advertised.listeners"] == f"PLAINTEXT://127.0.0.1:{broker}"
    assert properties["controller.listener.names"] == "CONTROLLER"
    assert properties["inter.broker.listener.name"] == "PLAINTEXT"
    assert properties["log.dirs"] == "/data/kafka"
    assert properties["auto.create.topics.enable"] == "false"
    assert properties["group.initial.rebalance.delay.ms"] == "0"
    for topic in ("offsets.topic", "transaction.state.log", "share.coordinator.state.topic"):
        assert properties[f"{topic}.replication.factor"] == "1"
        assert properties[f"{topic}.min.isr"] == "1"


def test_cluster_id_is_a_kafka_uuid() -> None:
    cluster_id = new_cluster_id()
    assert len(cluster_id) == 22
    assert set(cluster_id) <= set(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    )
    assert new_cluster_id() != cluster_id


def test_mosquitto_conf_listens_on_loopback_only() -> None:
    conf = render_mosquitto_conf(1884, Path("/d/mosquitto"), Path("/l/mosquitto.log"), "me")
    lines = conf.splitlines()
    assert "listener 1884 127.0.0.1" in lines
    assert "allow_anonymous true" in lines
    assert "persistence_location /d/mosquitto/" in lines
    assert "log_dest file /l/mosquitto.log" in lines
    assert "user me" in lines


def test_start_time_is_read_after_the_command_name() -> None:
    assert parse_start_time(STAT.format(start=987654)) == 987654
    zombie = STAT.format(start=987654).replace(") S ", ") Z ")
    assert parse_start_time(zombie) is None


def test_pid_file_round_trip_and_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "kafka.pid"
    record = ProcessRecord(pid=123, start_time=456, command=("java", "-version"))
    write_record(path, record)
    assert read_record(path) == record
    path.write_text("{not json", encoding="utf-8")
    assert read_record(path) is None
    assert read_record(tmp_path / "missing.pid") is None


def test_spawned_process_is_detached_and_stopped(sleeper: ProcessRecord) -> None:
    assert is_running(sleeper)
    assert sleeper.command == ("sleep", "60")
    assert stop(sleeper, grace_s=5.0) is True
    assert not is_running(sleeper)
    assert stop(sleeper) is False


def test_a_reused_pid_is_never_signalled(sleeper: ProcessRecord) -> None:
    # Same pid, different start time: the kernel gave the pid to another process.
    impostor = ProcessRecord(pid=sleeper.pid, start_time=sleeper.start_time + 1)
    assert not is_running(impostor)
    assert stop(impostor) is False
    assert is_running(sleeper)


def test_down_stops_what_it_recorded_and_nothing_else(
    settings: StackSettings, sleeper: ProcessRecord, tmp_path: Path
) -> None:
    paths = StackPaths(settings.home)
    other = spawn(["sleep", "60"], log_path=tmp_path / "other.log", cwd=tmp_path)
    try:
        write_record(paths.pid("mosquitto"), sleeper)
        write_record(paths.pid("kafka"), ProcessRecord(other.pid, other.start_time + 7))

        assert Stack(settings).down() == ["mosquitto"]

        assert not is_running(sleeper)
        assert is_running(other)
        assert not paths.pid("mosquitto").exists()
        assert not paths.pid("kafka").exists()  # stale: removed, its pid left alone
    finally:
        stop(other, grace_s=2.0)


def test_missing_programs_are_one_line_naming_what_to_install(
    settings: StackSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setattr(prerequisites, "SYSTEM_DIRS", ())

    with pytest.raises(PrerequisiteError) as caught:
        Stack(settings).up()

    message = str(caught.value)
    assert "\n" not in message
    assert "mosquitto not found; install it with: apt-get install mosquitto" in message
    assert "java not found (needed by Kafka and Apicurio Registry); install it with:" in message
    assert "mvn not found" in message
    assert "go not found (needed to build victoria-logs)" in message
    assert "victoria-metrics not found" in message
    assert message.count("java not found") == 1
    assert not list(settings.home.rglob("*.pid"))  # nothing was started
    assert not (settings.home / "state" / "data").exists()


def test_old_java_is_reported_with_its_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    java = tmp_path / "jdk" / "bin" / "java"
    java.parent.mkdir(parents=True)
    java.write_text("#!/bin/sh\necho 'openjdk version \"11.0.2\" 2019-01-15' >&2\n")
    java.chmod(0o755)
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "jdk"))

    problem = prerequisites.java_problem()

    assert problem is not None
    assert problem.startswith(f"java 17 or newer needed, found java 11 at {java}")


@pytest.mark.parametrize(
    ("text", "major"),
    [
        ('openjdk version "17.0.15" 2025-04-15', 17),
        ('java version "1.8.0_392"', 8),
        ('openjdk version "25" 2025-09-16', 25),
        ("no version here", None),
    ],
)
def test_java_version_parsing(text: str, major: int | None) -> None:
    assert prerequisites.parse_java_version(text) == major


def no_problems(monkeypatch: pytest.MonkeyPatch) -> None:
    for service_type in SERVICE_TYPES:
        monkeypatch.setattr(service_type, "problems", lambda self: [])


def test_a_port_held_by_someone_else_is_named_with_its_setting(
    settings: StackSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_problems(monkeypatch)
    with socket.socket() as foreign:
        foreign.bind(("127.0.0.1", settings.mqtt_port))
        foreign.listen()
        assert port_in_use(settings.mqtt_port)

        with pytest.raises(StackError) as caught:
            Stack(settings).up()
        statuses = Stack(settings).status()

    message = str(caught.value)
    assert "\n" not in message
    assert f"port {settings.mqtt_port} is already in use" in message
    assert "change stack.mqtt_port" in message
    assert f"port {settings.kafka_port}" not in message
    mosquitto = next(s for s in statuses if s.name == "mosquitto")
    assert "in use by a process sentio did not start" in mosquitto.detail


def test_two_services_on_one_port_are_refused(
    settings: StackSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_problems(monkeypatch)
    clashing = settings.model_copy(update={"registry_port": settings.kafka_port})
    with pytest.raises(StackError, match=r"two services share a port: stack\.kafka_port="):
        Stack(clashing).up()


def test_status_when_nothing_runs(settings: StackSettings) -> None:
    stack = Stack(settings)
    statuses = stack.status()

    assert [s.name for s in statuses] == [
        "kafka",
        "registry",
        "victoriametrics",
        "victorialogs",
        "mosquitto",
        "alertmanager",
    ]
    assert all(isinstance(s, ServiceStatus) for s in statuses)
    assert all(not s.running and not s.healthy and s.pid is None for s in statuses)
    assert statuses[0].address == f"127.0.0.1:{settings.kafka_port}"
    assert statuses[1].address == f"http://127.0.0.1:{settings.registry_port}"
    assert statuses[0].state == "stopped"
    assert stack.healthy() is False


def test_cli_status_prints_a_table_and_fails_when_not_healthy(
    settings: StackSettings, tmp_path: Path
) -> None:
    config = tmp_path / "sentio.yaml"
    config.write_text(
        "stack:\n"
        f"  home: {settings.home}\n"
        f"  kafka_port: {settings.kafka_port}\n"
        f"  kafka_controller_port: {settings.kafka_controller_port}\n"
        f"  registry_port: {settings.registry_port}\n"
        f"  victoriametrics_port: {settings.victoriametrics_port}\n"
        f"  victorialogs_port: {settings.victorialogs_port}\n"
        f"  mqtt_port: {settings.mqtt_port}\n"
        f"  alertmanager_port: {settings.alertmanager_port}\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(cli, ["stack", "status", "-c", str(config)])

    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["SERVICE", "STATE", "PID", "ADDRESS", "DETAIL"]
    assert lines[5].split()[:4] == ["mosquitto", "stopped", "-", f"127.0.0.1:{settings.mqtt_port}"]

    down = CliRunner().invoke(cli, ["stack", "down", "-c", str(config)])
    assert down.exit_code == 0
    assert down.output == "stack: nothing to stop\n"


def test_one_stack_command_at_a_time(tmp_path: Path) -> None:
    lock = tmp_path / "state" / "stack.lock"
    said: list[str] = []
    with (
        stack_lock(lock, on_wait=said.append),
        pytest.raises(StackError, match="another `sentio stack` command still holds"),
        stack_lock(lock, on_wait=said.append, timeout_s=0.3),
    ):
        pass  # pragma: no cover
    with stack_lock(lock, on_wait=said.append, timeout_s=0.3):
        pass
    assert len(said) == 1
    assert said[0].startswith("stack: waiting for another `sentio stack` command to finish")


def test_an_interrupted_download_is_redone(tmp_path: Path) -> None:
    folder = tmp_path / "kafka-9.9.9" / "libs"
    calls: list[str] = []

    def interrupted(target: Path) -> None:
        (target / "half.jar").write_bytes(b"PK")
        calls.append("interrupted")
        raise KeyboardInterrupt

    def complete(target: Path) -> None:
        assert not (target / "half.jar").exists()
        (target / "whole.jar").write_bytes(b"PK")
        calls.append("complete")

    with pytest.raises(KeyboardInterrupt):
        fill_once(folder, interrupted)
    assert fill_once(folder, complete) is True
    assert fill_once(folder, complete) is False
    assert calls == ["interrupted", "complete"]
    assert (folder / "whole.jar").exists()


def test_a_go_binary_counts_only_for_its_version(tmp_path: Path) -> None:
    (tmp_path / "victoria-logs").write_bytes(b"\x7fELF")
    assert go_binary(tmp_path, "victoria-logs", "v1.52.1") is None
    (tmp_path / "victoria-logs.version").write_text("v1.52.1\n")
    assert go_binary(tmp_path, "victoria-logs", "v1.52.1") == tmp_path / "victoria-logs"
    assert go_binary(tmp_path, "victoria-logs", "v1.60.0") is None


def test_tool_failures_show_their_first_error() -> None:
    output = "[INFO] x\n[ERROR] Failed to execute goal: artifact not found\n[ERROR] more\n"
    assert first_error(output) == "[ERROR] Failed to execute goal: artifact not found"
    assert first_error("line one\nlast line\n") == "last line"
    assert first_error("") == "no output"


def test_log_tail_is_one_line(tmp_path: Path) -> None:
    log = tmp_path / "kafka.log"
    log.write_text("a\n\nb\nc\nERROR boom\n", encoding="utf-8")
    assert log_tail(log) == "b | c | ERROR boom"
    assert log_tail(tmp_path / "nothing.log") == "(no log)"


def test_mqtt_connect_packet_and_connack() -> None:
    assert len(MQTT_CONNECT) == 14
    assert MQTT_CONNECT[:2] == bytes([0x10, 12])
    assert MQTT_CONNECT[4:8] == b"MQTT"
    assert reply_is_connack_accepted(bytes([0x20, 2, 0, 0]))
    assert not reply_is_connack_accepted(bytes([0x20, 2, 0, 5]))  # not authorised
    assert not reply_is_connack_accepted(b"")


def test_mqtt_probe_needs_a_real_connack() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        received: list[bytes] = []

        def broker() -> None:
            connection, _ = server.accept()
            with connection:
                received.append(connection.recv(14))
                connection.sendall(bytes([0x20, 2, 0, 0]))
                received.append(connection.recv(2))

        thread = threading.Thread(target=broker)
        thread.start()
        health = mqtt_answers(port)
        thread.join(timeout=5)

    assert health.healthy, health.detail
    assert received == [MQTT_CONNECT, bytes([0xE0, 0])]
    refused = mqtt_answers(free_ports(1)[0])
    assert not refused.healthy


@pytest.mark.parametrize(
    ("healthy", "calls"), [(True, ["block"]), (False, ["up", "block", "down"])]
)
def test_used_or_started_starts_and_stops_only_a_stack_that_was_not_running(
    settings: StackSettings, monkeypatch: pytest.MonkeyPatch, healthy: bool, calls: list[str]
) -> None:
    stack = Stack(settings)
    seen: list[str] = []
    monkeypatch.setattr(stack, "healthy", lambda: healthy)
    monkeypatch.setattr(stack, "up", lambda progress=None: seen.append("up"))
    monkeypatch.setattr(stack, "down", lambda progress=None: seen.append("down"))
    with stack.used_or_started() as used:
        assert used is stack
        seen.append("block")
    assert seen == calls


def test_a_started_stack_is_left_running_while_another_session_uses_it(
    settings: StackSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = Stack(settings)
    seen: list[str] = []
    monkeypatch.setattr(stack, "healthy", lambda: False)
    monkeypatch.setattr(stack, "up", lambda progress=None: seen.append("up"))
    monkeypatch.setattr(stack, "down", lambda progress=None: seen.append("down"))
    leases = stack.paths.state / "leases"
    leases.mkdir(parents=True)
    (leases / str(os.getppid())).touch()  # a live session beside this one
    (leases / "999999999").touch()  # a session killed without removing its lease
    with stack.used_or_started():
        assert {p.name for p in leases.iterdir()} >= {str(os.getpid()), str(os.getppid())}
    assert seen == ["up"]  # not taken from the other session
    assert sorted(p.name for p in leases.iterdir()) == [str(os.getppid())]
