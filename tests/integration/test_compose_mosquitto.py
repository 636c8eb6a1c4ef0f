"""Mosquitto as docker-compose.yml runs it: deploy/mosquitto/mosquitto.conf and acl, with the
password file `init` generates (`sentio compose secrets`, hashed in Python without
mosquitto_passwd), served by a real mosquitto on its own port.

No Docker here: `sentio compose secrets` writes the volume into a temporary folder (no chown
when not root), the configuration runs with its paths and port moved; every other line is the
deployed one.
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from sentio_iot.stack.kafka_secure import ROLES

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


SENTIO = Path(os.environ.get("VIRTUAL_ENV", ROOT / ".venv")) / "bin" / "sentio"


def run_init(root: Path) -> None:
    """What deploy/init/init.sh runs, with the secrets volume at ``root``/secrets."""
    script = (DEPLOY / "init" / "init.sh").read_text()
    assert "\nsentio compose secrets /secrets\n" in script
    result = subprocess.run(
        [str(SENTIO), "compose", "secrets", str(root / "secrets")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


@dataclass
class Broker:
    port: int
    secrets: Path

    def password(self, user: str) -> str:
        return (self.secrets / "passwords" / f"mqtt-{user}.password").read_text()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    run_init(tmp_path)
    port = free_port()
    conf = (DEPLOY / "mosquitto" / "mosquitto.conf").read_text()
    conf = conf.replace("listener 1883 0.0.0.0", f"listener {port} 127.0.0.1")
    # docker-compose.yml mounts the volume's mosquitto/ folder at /run/secrets/sentio.
    conf = conf.replace("/run/secrets/sentio", str(tmp_path / "secrets" / "mosquitto"))
    conf = conf.replace("/mosquitto/config/acl", str(DEPLOY / "mosquitto" / "acl"))
    conf = conf.replace("/mosquitto/data/", f"{tmp_path}/data/")
    (tmp_path / "data").mkdir()
    # Started as root, mosquitto would switch to the 'mosquitto' user and lose the files.
    conf += f"user {getpass.getuser()}\n"
    (tmp_path / "mosquitto.conf").write_text(conf)
    log = (tmp_path / "mosquitto.log").open("w")
    process = subprocess.Popen(
        [MOSQUITTO, "-c", str(tmp_path / "mosquitto.conf")], stdout=log, stderr=log
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert process.poll() is None, (tmp_path / "mosquitto.log").read_text()
            assert time.monotonic() < deadline, "mosquitto did not listen"
            time.sleep(0.05)
        yield Broker(port, tmp_path / "secrets")
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


def connect(broker: Broker, user: str | None, password: str | None) -> tuple[mqtt.Client, str]:
    """A connected client and the broker's answer ('Success' or the refusal)."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    answered = threading.Event()
    answer: list[str] = []

    def on_connect(_c: mqtt.Client, _u: object, _f: object, code: ReasonCode, _p: object) -> None:
        answer.append(str(code))
        answered.set()

    client.on_connect = on_connect
    if user is not None:
        client.username_pw_set(user, password)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    assert answered.wait(10)
    return client, answer[0]


def close(client: mqtt.Client) -> None:
    client.disconnect()
    client.loop_stop()


def test_anonymous_clients_and_wrong_passwords_are_refused(broker: Broker) -> None:
    for user, password in [(None, None), ("devices", "wrong"), ("nobody", "x")]:
        client, answer = connect(broker, user, password)
        close(client)
        assert answer == "Not authorized", (user, answer)


def test_the_generated_passwords_work_and_the_acls_hold(broker: Broker) -> None:
    devices, answer = connect(broker, "devices", broker.password("devices"))
    assert answer == "Success"
    sentio, answer = connect(broker, "sentio", broker.password("sentio"))
    assert answer == "Success"
    got: list[tuple[str, bytes]] = []

    def on_message(_c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
        got.append((message.topic, message.payload))

    subscribed: list[list[ReasonCode]] = []
    acked = threading.Event()

    def on_subscribe(
        _c: mqtt.Client, _u: object, _m: int, codes: list[ReasonCode], _p: object
    ) -> None:
        subscribed.append(codes)
        acked.set()

    sentio.on_message = on_message
    sentio.on_subscribe = on_subscribe
    sentio.subscribe("#", qos=1)
    assert acked.wait(10) and str(subscribed[-1][0]) == "Granted QoS 1"
    # devices may subscribe (Mosquitto 2 grants it) but is sent nothing.
    heard: list[str] = []
    devices.on_message = lambda _c, _u, message: heard.append(message.topic)
    devices.on_subscribe = on_subscribe
    acked.clear()
    devices.subscribe("#", qos=1)
    assert acked.wait(10)
    # sentio writes only under homeassistant/: its other publication is dropped.
    sentio.publish("plant/pump-1/temperature", b"-999", qos=1).wait_for_publish(10)
    sentio.publish("homeassistant/status", b"online", qos=1).wait_for_publish(10)
    devices.publish("plant/pump-1/temperature", b"21.5", qos=1).wait_for_publish(10)
    deadline = time.monotonic() + 10
    while len(got) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.2)  # anything wrongly delivered would have come with these
    assert got == [("homeassistant/status", b"online"), ("plant/pump-1/temperature", b"21.5")]
    assert heard == []
    close(devices)
    close(sentio)


def test_a_second_start_keeps_the_passwords(tmp_path: Path) -> None:
    run_init(tmp_path)
    kept = tmp_path / "secrets" / "passwords"
    first = {p.name: p.read_text() for p in kept.iterdir()}
    passwd = tmp_path / "secrets" / "mosquitto" / "passwd"
    hashes = passwd.read_text()
    run_init(tmp_path)
    second = {p.name: p.read_text() for p in kept.iterdir()}
    passwords = {
        f"{name}.password"
        for name in (
            "grafana-admin",
            "victoriametrics",
            "alertmanager",
            "mqtt-devices",
            "mqtt-sentio",
        )
    }
    registry = {"keycloak-admin.password", *(f"registry-{role}.secret" for role in ROLES)}
    assert set(first) == passwords | registry
    assert first == second
    assert all(len(first[name]) == 32 for name in passwords)  # token_urlsafe(24)
    assert len(set(first.values())) == len(first)
    lines = passwd.read_text().splitlines()
    assert [line.split(":")[0] for line in lines] == ["devices", "sentio"]
    assert all(first["mqtt-devices.password"] not in line for line in lines)  # hashed
    assert passwd.read_text() != hashes  # a new salt at each start, the same passwords
    assert passwd.stat().st_mode & 0o077 == 0
