"""Workers on the secure stack (`sentio stack up --secure`): a refused login or topic is one
line and an exit within seconds (bad configuration), an unreachable broker still buffers, and
`sentio run` gives each child its own role's credentials.

The module starts its own secure Kafka with the stack's code on free ports, in its own home
(the shared stack's jars linked in), with the default topic prefix and stream app id (its own
broker: nothing is shared with the stack's Kafka), and its own secure schema registry (OIDC
through its own Keycloak: each role its registry client); VictoriaMetrics and VictoriaLogs
are the shared stack's (data under this module's own tenant).
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
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import yaml
from stream_worker import SENTIO, free_port

from sentio_iot.config import SentioConfig, load_config
from sentio_iot.errors import EXIT_ACCESS_REFUSED
from sentio_iot.pipeline.plant import plant_entry
from sentio_iot.pipeline.secure_roles import role_of, secure_roles
from sentio_iot.pipeline.workers import pipeline_children
from sentio_iot.stack import Stack
from sentio_iot.stack.kafka_secure import KafkaAccess, SecureKafkaFiles
from sentio_iot.stack.keycloak import KeycloakService
from sentio_iot.stack.paths import StackPaths
from sentio_iot.stack.registry_secure import SecureRegistryFiles

# The fixture (Kafka, Keycloak and the registry, secure) starts in the first test run.
pytestmark = pytest.mark.timeout(300)
WRONG = "Not-the-Password-42"
REFUSED_LOGIN = (
    "it refused the login of {user!r}: Authentication failed during authentication due to "
    "invalid credentials with SASL mechanism SCRAM-SHA-512 (fix: check kafka.sasl_username"
)


@dataclass
class SecureHome:
    home: Path
    bootstrap: str
    files: SecureKafkaFiles
    config_path: Path
    tenant: str

    def role_env(self, role: str, **changes: str) -> dict[str, str]:
        """The environment a worker of ``role`` gets from ``clients/<role>.env``."""
        files = f'"{self.files.clients}/{role}.env" "{self.files.clients}/registry-{role}.env"'
        out = subprocess.run(
            ["bash", "-c", f'set -a; for f in {files}; do . "$f"; done; env -0'],
            capture_output=True,
            check=True,
        )
        pairs = (item.split(b"=", 1) for item in out.stdout.split(b"\0") if b"=" in item)
        env = {k.decode(): v.decode() for k, v in pairs}
        return {**env, **changes}

    def sentio(
        self, env: dict[str, str], *args: str, timeout: float = 30, config: str = "sentio.yaml"
    ) -> tuple[subprocess.CompletedProcess[str], float]:
        began = time.monotonic()
        done = subprocess.run(
            [SENTIO, *args, "-c", str(self.home / config)],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return done, time.monotonic() - began


@pytest.fixture(scope="module")
def secure(
    sentio_config: SentioConfig, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SecureHome]:
    home = tmp_path_factory.mktemp("secure-run")
    shared = sentio_config.stack
    KeycloakService(shared, StackPaths(shared.home)).install(lambda _line: None)
    for name in ("kafka", "apicurio", "keycloak"):
        jars = shared.home / f"{name}-{getattr(shared, f'{name}_version')}"
        (home / jars.name).symlink_to(jars, target_is_directory=True)
    ports = ("kafka_port", "kafka_controller_port", "registry_port", "keycloak_port")
    settings = shared.model_copy(update={"home": home, **{p: free_port() for p in ports}})
    only = {"kafka", "keycloak", "registry"}
    stack = Stack(settings, secure=True, access=KafkaAccess(), only=only)
    stack.up(progress=lambda _line: None)
    tenant = f"secrun{uuid.uuid4().hex[:8]}"
    bootstrap = f"127.0.0.1:{settings.kafka_port}"
    start = datetime.now(UTC)
    config = {
        "tenant": tenant,
        "stack": settings.model_dump(mode="json"),
        # The secure listener, no credentials of its own: `sentio run` detects the roles.
        "kafka": {"bootstrap_servers": bootstrap},
        "schema_registry": {"url": f"http://127.0.0.1:{settings.registry_port}/apis/ccompat/v7"},
        "streams": {"state_dir": str(home / "streams"), "web_port": free_port()},
        "api": {"state_dir": str(home / "api"), "port": free_port()},
        "producer": {"buffer_dir": str(home / "buffer"), "health_port": free_port()},
        "producers": {"simulate": [plant_entry(2, 1.0, home / "truth.csv", start)]},
        "sinks": {
            **{b: {"health_port": free_port()} for b in ("victoriametrics", "loki", "tempo")},
            # Not the shared Alertmanager: nothing answers, so `sentio run` leaves it out.
            "alertmanager": {"health_port": free_port(), "url": f"http://127.0.0.1:{free_port()}"},
        },
    }
    # `sentio run` adds its plant (--devices) to a configuration without one.
    (home / "run.yaml").write_text(yaml.safe_dump({**config, "producers": {}}))
    config_path = home / "sentio.yaml"
    config_path.write_text(yaml.safe_dump(config))
    files = SecureKafkaFiles(stack.paths)
    try:
        yield SecureHome(home, bootstrap, files, config_path, tenant)
    finally:
        stack.down()


def test_a_topic_admin_with_the_admin_role_applies_the_catalog(secure: SecureHome) -> None:
    applied, _ = secure.sentio(secure.role_env("admin"), "topics", "apply")
    assert applied.returncode == 0, applied.stderr


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    """The error line: the only line on stderr that is not a log line of the start."""
    lines = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr and "SASL authentication error" not in done.stderr
    return lines[0]


@pytest.mark.parametrize(
    "command", [("produce", "simulate"), ("sink", "victoriametrics")], ids=["produce", "sink"]
)
def test_a_wrong_password_is_one_line_and_an_exit_within_seconds(
    secure: SecureHome, command: tuple[str, ...]
) -> None:
    role = "producer" if command[0] == "produce" else "sink"
    env = secure.role_env(role, SENTIO_KAFKA__SASL_PASSWORD=WRONG)
    done, took = secure.sentio(env, *command)
    assert done.returncode == EXIT_ACCESS_REFUSED, done.stderr
    assert took < 10, took
    line = one_line_error(done)
    assert line.startswith(
        f"error: cannot reach Kafka at {secure.bootstrap}: " + REFUSED_LOGIN.format(user=role)
    ), line
    assert WRONG not in done.stdout + done.stderr
    assert secure.files.password(role) not in done.stdout + done.stderr


@pytest.mark.parametrize(
    ("command", "role", "topic"),
    [
        (("produce", "simulate"), "api", "sentio.deadletter"),  # it may read readings
        (("sink", "victoriametrics"), "producer", "sentio.alerts"),  # the first it may not read
    ],
    ids=["produce-as-api", "sink-as-producer"],
)
def test_a_role_the_acls_refuse_is_one_line_and_an_exit_within_seconds(
    secure: SecureHome, command: tuple[str, ...], role: str, topic: str
) -> None:
    done, took = secure.sentio(secure.role_env(role), *command)
    assert done.returncode == EXIT_ACCESS_REFUSED, done.stderr
    assert took < 10, took
    line = one_line_error(done)
    assert line.startswith(
        f"error: Kafka at {secure.bootstrap} refused {role!r} access to topic {topic}: "
        "TOPIC_AUTHORIZATION_FAILED (fix: give this worker its own role's credentials"
    ), line
    assert secure.files.password(role) not in done.stdout + done.stderr


def test_a_producer_the_acls_refuse_to_write_stops_and_keeps_its_messages(
    secure: SecureHome,
) -> None:
    """The sink role may describe (read) every topic, so the start passes; its first writes
    are refused: the producer stops with one line and the refused messages stay buffered."""
    buffer = secure.home / "refused-buffer"
    # The producer's registry client (the sink's may not register the producer's schemas).
    registry = SecureRegistryFiles(StackPaths(secure.home)).basic_auth("producer")
    env = secure.role_env(
        "sink", SENTIO_PRODUCER__BUFFER_DIR=str(buffer), SENTIO_SCHEMA_REGISTRY__BASIC_AUTH=registry
    )
    done, took = secure.sentio(env, "produce", "simulate")
    assert done.returncode == EXIT_ACCESS_REFUSED, done.stderr
    assert took < 15, took
    line = one_line_error(done)
    assert re.match(
        rf"error: Kafka at {secure.bootstrap} refused 'sink' access to topic "
        r"sentio\.(readings|device-events): TOPIC_AUTHORIZATION_FAILED \(fix: give this worker",
        line,
    ), line
    kept = re.search(r"(\d+) message\(s\), \d+ bytes wait in .*refused-buffer", done.stderr)
    assert kept is not None and int(kept.group(1)) > 0, done.stderr


def test_a_sink_refused_its_group_while_consuming_is_one_line_and_an_exit(
    secure: SecureHome,
) -> None:
    """The sink's own role and topics, but a group its ACLs do not grant."""
    done, took = secure.sentio(
        secure.role_env("sink"), "sink", "victoriametrics", "--group-id", "someone-elses"
    )
    assert done.returncode == EXIT_ACCESS_REFUSED, done.stderr
    assert took < 15, took
    line = one_line_error(done)
    assert line.startswith(
        f"error: Kafka at {secure.bootstrap} refused 'sink' access to group someone-elses: "
        "GROUP_AUTHORIZATION_FAILED (fix: give this worker its own role's credentials"
    ), line


def test_an_unreachable_broker_still_means_buffering_not_an_exit(secure: SecureHome) -> None:
    """The producer's credentials, but nothing listens: it keeps running and buffers."""
    down = f"127.0.0.1:{free_port()}"
    env = secure.role_env(
        "producer",
        SENTIO_KAFKA__BOOTSTRAP_SERVERS=down,
        SENTIO_PRODUCER__BUFFER_DIR=str(secure.home / "outage-buffer"),
    )
    process = subprocess.Popen(
        [SENTIO, "produce", "simulate", "-c", str(secure.config_path)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        time.sleep(8)
        assert process.poll() is None, process.communicate()[0]
    finally:
        process.send_signal(signal.SIGTERM)
        out = process.communicate(timeout=30)[0]
    assert process.returncode == 0, out
    assert "error:" not in out
    assert re.search(r"message\(s\), \d+ bytes wait in .*outage-buffer", out), out


def test_run_children_get_their_roles_credentials_in_their_environment(
    secure: SecureHome,
) -> None:
    config = load_config(secure.config_path)
    roles = secure_roles(config, secure=False)  # detected: the secure listener, no user
    assert roles is not None and roles.bootstrap == secure.bootstrap
    specs = pipeline_children(config, secure.config_path, stream_workers=2, roles=roles)
    assert [s.name for s in specs][:3] == ["producer", "streams-1", "streams-2"]
    for spec in specs:
        role = role_of(spec.name)
        env = dict(spec.env)
        assert env["SENTIO_KAFKA__SASL_USERNAME"] == role
        assert env["SENTIO_KAFKA__SASL_PASSWORD"] == secure.files.password(role)
        assert env["SENTIO_KAFKA__SECURITY_PROTOCOL"] == "SASL_SSL"
        assert env["SENTIO_KAFKA__BOOTSTRAP_SERVERS"] == secure.bootstrap
        assert secure.files.password(role) not in " ".join(spec.argv)
        registry = SecureRegistryFiles(StackPaths(secure.home))
        assert env["SENTIO_SCHEMA_REGISTRY__BASIC_AUTH"] == registry.basic_auth(role)
    # A configuration with its own user is left alone; another address is not the stack's.
    own = config.model_copy(
        update={"kafka": config.kafka.model_copy(update={"sasl_username": "me"})}
    )
    assert secure_roles(own, secure=False) is None
    elsewhere = config.model_copy(
        update={"kafka": config.kafka.model_copy(update={"bootstrap_servers": "10.0.0.1:9092"})}
    )
    assert secure_roles(elsewhere, secure=False) is None
    assert secure_roles(elsewhere, secure=True) is not None


@pytest.mark.timeout(360)  # the fixture's start too, when it runs alone
def test_sentio_run_on_the_secure_stack_reaches_rollups(
    secure: SecureHome, sentio_config: SentioConfig
) -> None:
    """`sentio run` detects the secure stack from the configuration and starts each child
    with its role: readings reach the stream worker, rollups reach VictoriaMetrics."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENTIO_")}
    # 60 s: on a loaded machine the stream worker's start (TensorFlow, recovery) takes ~20 s.
    args = ["run", "--headless", "--devices", "small", "--duration", "60", "--no-stack"]
    done, _ = secure.sentio(env, *args, "--count", "50", timeout=220, config="run.yaml")
    out = done.stdout + done.stderr
    logs = secure.home / "state" / "run" / "sentio"
    streams_log = logs / "streams-1.log"
    worker = streams_log.read_text(errors="replace") if streams_log.is_file() else ""
    # What the stream worker said beyond INFO, should the run fall short.
    said = "\n".join(line for line in worker.splitlines() if " INFO " not in line)[-4000:]
    assert done.returncode == 0, out
    assert f"== secure Kafka at {secure.bootstrap}: each worker with its role's credentials" in out
    assert "== round trip: 50/50 readings came back identical" in out, out
    rollups = int(re.search(r"rollups: (\d+)", out).group(1))  # type: ignore[union-attr]
    assert rollups > 0, f"{out}\n== streams-1.log beyond INFO:\n{said}"
    secrets = [
        *secure.files.credentials.glob("*.password"),
        *secure.files.credentials.glob("*.secret"),
    ]
    assert len(secrets) > 5  # Kafka's passwords and the registry clients' secrets
    for password in secrets:
        assert password.read_text().strip() not in out
    for log in logs.glob("*.log"):
        text = log.read_text(errors="replace")
        assert not [p for p in secrets if p.read_text().strip() in text]
    vm = f"http://127.0.0.1:{sentio_config.stack.victoriametrics_port}"
    deadline = time.monotonic() + 20
    while True:
        found = httpx.get(
            f"{vm}/api/v1/series",
            params={"match[]": f'sentio_flow_mean{{tenant="{secure.tenant}"}}', "start": "-1h"},
            timeout=10,
        ).json()["data"]
        if found or time.monotonic() > deadline:
            break
        time.sleep(1)
    # Every pump's rollups, written by the sink role: one series per pump and window size
    # (a run that outlasts a window boundary has more than one window label per pump).
    assert len({series["device"] for series in found}) == 6, (out, found)
