"""`sentio run` on the secure stack: when it takes the roles' credentials, which child gets
which, and a child Kafka refused is not restarted. (The run itself, on a real secure Kafka:
tests/integration/test_secure_workers.py.)"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from confluent_kafka import KafkaError

from sentio_iot.config import SentioConfig, load_config
from sentio_iot.errors import (
    EXIT_ACCESS_REFUSED,
    AccessRefused,
    ConfigError,
    ConnectError,
    OperationTimeout,
    exit_status,
)
from sentio_iot.kafka import access_refused, extra_properties
from sentio_iot.pipeline.processes import ChildSpec, Supervisor
from sentio_iot.pipeline.secure_roles import as_admin, role_of, secure_roles
from sentio_iot.pipeline.workers import pipeline_children
from sentio_iot.stack.kafka_secure import SecureKafkaFiles
from sentio_iot.stack.paths import StackPaths

BOOTSTRAP = "127.0.0.1:39092"


def config_in(home: Path, **kafka: str) -> SentioConfig:
    return load_config(
        data={"stack": {"home": str(home)}, "kafka": {"bootstrap_servers": BOOTSTRAP, **kafka}}
    )


@pytest.fixture
def secure_home(tmp_path: Path) -> Path:
    """What `sentio stack up --secure` leaves: the files, the client settings, the marker."""
    paths = StackPaths(tmp_path)
    files = SecureKafkaFiles(paths)
    files.ensure()
    files.write_client_files(BOOTSTRAP)
    paths.conf.mkdir(parents=True, exist_ok=True)
    (paths.conf / "kafka-secure").touch()
    return tmp_path


def test_each_child_has_its_role() -> None:
    names = ["producer", "streams-1", "streams-4", "sink-loki", "sink-alertmanager", "api"]
    assert [role_of(n) for n in names] == [
        "producer",
        "streams",
        "streams",
        "sink",
        "sink",
        "api",
    ]


def test_secure_without_the_stacks_client_files_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        secure_roles(config_in(tmp_path), secure=True)
    clients = tmp_path / "state" / "secure" / "clients"
    assert str(raised.value) == (
        f"--secure: no Kafka client settings in {clients}: start the secure stack first "
        "(`sentio stack up --secure`, with this configuration's -c)"
    )
    assert secure_roles(config_in(tmp_path), secure=False) is None  # plain stack: as before


def test_detected_only_for_the_secure_listener_without_a_user_of_its_own(
    secure_home: Path,
) -> None:
    roles = secure_roles(config_in(secure_home), secure=False)
    assert roles is not None and roles.bootstrap == BOOTSTRAP
    assert secure_roles(config_in(secure_home, sasl_username="me"), secure=False) is None
    other = config_in(secure_home, bootstrap_servers="127.0.0.1:9092")
    assert secure_roles(other, secure=False) is None
    assert secure_roles(other, secure=True) is not None  # the flag: the stack's own address
    (secure_home / "state" / "conf" / "kafka-secure").unlink()  # Kafka restarted plain
    assert secure_roles(config_in(secure_home), secure=False) is None


def test_children_get_their_role_and_the_run_admin(secure_home: Path) -> None:
    config = load_config(
        data={
            "stack": {"home": str(secure_home)},
            "kafka": {"bootstrap_servers": BOOTSTRAP, "extra": {"socket.timeout.ms": 9000}},
        }
    )
    roles = secure_roles(config, secure=False)
    files = SecureKafkaFiles(StackPaths(secure_home))
    specs = pipeline_children(config, secure_home / "run.yaml", stream_workers=2, roles=roles)
    seen = {}
    for spec in specs:
        env = dict(spec.env)
        seen[spec.name] = env["SENTIO_KAFKA__SASL_USERNAME"]
        assert env["SENTIO_KAFKA__SASL_PASSWORD"] == files.password(seen[spec.name])
        assert env["SENTIO_KAFKA__EXTRA"] == (
            f'{{"socket.timeout.ms": 9000, "ssl.ca.location": "{files.ca_file}"}}'
        )
        assert not [a for a in spec.argv if files.password(seen[spec.name]) in a]
    assert seen == {
        "producer": "producer",
        "streams-1": "streams",
        "streams-2": "streams",
        "sink-victoriametrics": "sink",
        "sink-loki": "sink",
        "sink-tempo": "sink",
        "sink-alertmanager": "sink",
        "api": "api",
    }
    run = as_admin(config, roles)
    assert run.kafka.sasl_username == "admin" and run.kafka.security_protocol == "SASL_SSL"
    assert extra_properties(run.kafka)["ssl.ca.location"] == str(files.ca_file)
    assert "SecretStr" in repr(run.kafka.sasl_password)  # still a secret in the run's config


REFUSAL = (
    "error: cannot reach Kafka at 127.0.0.1:9092: it refused the login of 'producer': "
    "Authentication failed during authentication due to invalid credentials with SASL "
    "mechanism SCRAM-SHA-512 (fix: check kafka.sasl_username and kafka.sasl_password, "
    + "x" * 300
    + ")"
)


def exiting_child(tmp_path: Path, status: int) -> Supervisor:
    code = f"import sys; print('starting'); print({REFUSAL!r}); sys.exit({status})"
    supervisor = Supervisor([ChildSpec("producer", (sys.executable, "-c", code))], tmp_path)
    supervisor.start(now=0.0)
    child = supervisor.children[0]
    assert child.process is not None
    child.process.wait(10)
    return supervisor


def test_a_child_kafka_refused_is_failed_not_restarted_with_its_whole_line(
    tmp_path: Path,
) -> None:
    supervisor = exiting_child(tmp_path, EXIT_ACCESS_REFUSED)
    assert supervisor.check(now=1.0) == [
        f"producer: Kafka refused its access (exit status 77): {REFUSAL} "
        "(not restarted: fix its credentials)"
    ]
    assert supervisor.children[0].state == "failed"
    assert supervisor.check(now=100.0) == []


def test_the_exit_status_not_the_text_says_refused(tmp_path: Path) -> None:
    """The same line with status 1 (any other error) is restarted with backoff."""
    supervisor = exiting_child(tmp_path, 1)
    [line] = supervisor.check(now=1.0)
    assert line.startswith("producer: exited with status 1: ") and "restarting in 1 s" in line
    assert supervisor.children[0].state == "restarting"
    supervisor.stop()


def test_each_error_has_its_exit_status() -> None:
    bootstrap, user = "127.0.0.1:9092", "sink"
    error = KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED)
    refused = access_refused(bootstrap, user, "topic sentio.readings", error)
    assert isinstance(refused, AccessRefused) and not refused.retryable
    assert exit_status(refused) == EXIT_ACCESS_REFUSED == 77
    assert exit_status(ConfigError("x")) == 2
    assert exit_status(ConnectError("cannot reach Kafka")) == 1
    assert exit_status(OperationTimeout("slow")) == 1
