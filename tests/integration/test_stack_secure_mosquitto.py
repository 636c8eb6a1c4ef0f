"""`sentio stack up --secure` for Mosquitto: anonymous clients and wrong passwords are refused,
the generated users work and their ACLs hold, on a real mosquitto started by the stack's code
(``Stack(..., secure=True, only={"mosquitto"})``) in its own home on a free port."""

from __future__ import annotations

import stat
import threading
import time
from collections.abc import Iterator

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode
from stream_worker import free_port

from sentio_iot.config import SentioConfig
from sentio_iot.errors import StackError
from sentio_iot.stack import Stack
from sentio_iot.stack.mosquitto_secure import SecureMosquittoFiles

SAID: list[str] = []  # what the module's `up` printed


@pytest.fixture(scope="module")
def stack(sentio_config: SentioConfig, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    home = tmp_path_factory.mktemp("secure-mqtt")
    settings = sentio_config.stack.model_copy(update={"home": home, "mqtt_port": free_port()})
    secure = Stack(settings, secure=True, only={"mosquitto"})
    secure.up(progress=SAID.append)
    try:
        yield secure
    finally:
        secure.down()


def files(stack: Stack) -> SecureMosquittoFiles:
    return SecureMosquittoFiles(stack.paths)


def connect(stack: Stack, user: str | None, password: str | None) -> tuple[mqtt.Client, str]:
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
    client.connect("127.0.0.1", stack.settings.mqtt_port)
    client.loop_start()
    assert answered.wait(10)
    return client, answer[0]


def close(client: mqtt.Client) -> None:
    client.disconnect()
    client.loop_stop()


def test_it_is_healthy_refuses_anonymous_and_wrong_passwords_and_keeps_them_private(
    stack: Stack,
) -> None:
    [status] = stack.status()
    assert (status.healthy, status.detail) == (True, "ok; anonymous refused")
    for user, password in [(None, None), ("devices", "wrong"), ("nobody", "x")]:
        client, answer = connect(stack, user, password)
        close(client)
        assert answer == "Not authorized", (user, answer)
    secret = files(stack)
    passwords = [secret.password("devices"), secret.password("sentio")]
    assert all(len(p) == 32 for p in passwords) and passwords[0] != passwords[1]
    for path in (secret.password_path("devices"), secret.password_file, secret.acl_file):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    hashed = secret.password_file.read_text()
    said = "\n".join(SAID)
    assert [line.split(":")[0] for line in hashed.splitlines()] == ["devices", "sentio"]
    assert not [p for p in passwords if p in hashed or p in said]
    assert "mqtt-<user>.password" in said


def test_the_generated_users_work_and_their_acls_hold(stack: Stack) -> None:
    secret = files(stack)
    devices, answer = connect(stack, "devices", secret.password("devices"))
    assert answer == "Success"
    sentio, answer = connect(stack, "sentio", secret.password("sentio"))
    assert answer == "Success"
    got: list[tuple[str, bytes]] = []
    heard: list[str] = []
    acked = threading.Event()
    sentio.on_message = lambda _c, _u, message: got.append((message.topic, message.payload))
    devices.on_message = lambda _c, _u, message: heard.append(message.topic)
    sentio.on_subscribe = devices.on_subscribe = lambda *_args: acked.set()
    for client in (sentio, devices):
        acked.clear()
        client.subscribe("#", qos=1)
        assert acked.wait(10)
    # sentio writes only under homeassistant/; devices write anywhere and read nothing.
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


def test_a_second_start_keeps_the_passwords_and_a_plain_one_is_not_taken_for_secure(
    stack: Stack,
) -> None:
    secret = files(stack)
    before = secret.password("sentio")
    stack.down()
    stack.up()
    assert secret.password("sentio") == before
    client, answer = connect(stack, "sentio", before)
    close(client)
    assert answer == "Success"
    plain = Stack(stack.settings, only={"mosquitto"})
    plain.down()
    plain.up()
    with pytest.raises(StackError, match="mosquitto is running without --secure"):
        stack.up()
    plain.down()
    stack.up()
    assert stack.status()[0].detail == "ok; anonymous refused"
