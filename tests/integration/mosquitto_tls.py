"""A Mosquitto of one test with TLS, client certificates required, and an ACL.

A throwaway CA (tests/pki.py) issues the broker's certificate (for 127.0.0.1 and localhost)
and the clients': ``sentio`` (its key encrypted with KEY_PASSWORD) and ``device``. Another
CA issues ``stranger``. The broker (free port, its own folder; never the stack's) requires a
certificate its CA issued, takes the certificate's CN as the user name, and allows ``sentio``
and ``device`` everything but ``refused/#``.
"""

from __future__ import annotations

import contextlib
import getpass
import shutil
import socket
import ssl
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from pki import Issued, certificate_authority, issue

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
KEY_PASSWORD = "k3y-pass-for-tests"
ACL = """\
user sentio
topic deny refused/#
topic readwrite #
user device
topic readwrite #
"""


@dataclass(frozen=True)
class TlsBroker:
    port: int
    ca: Issued
    sentio: Issued  # key encrypted with KEY_PASSWORD
    device: Issued
    stranger: Issued  # issued by another CA
    other_ca: Issued
    log: Path

    def client(self, who: Issued, password: str | None = None) -> mqtt.Client:
        """A connected paho client (MQTT 5) with ``who``'s certificate."""
        context = ssl.create_default_context(cafile=str(self.ca.cert_path))
        context.load_cert_chain(who.cert_path, who.key_path, password)
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"test-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv5,
        )
        client.tls_set_context(context)
        client.connect("127.0.0.1", self.port)
        client.loop_start()
        return client


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def tls_broker(folder: Path) -> Iterator[TlsBroker]:
    ca = certificate_authority(folder / "ca", "Broker CA")
    other_ca = certificate_authority(folder / "other", "Other CA")
    server = issue(ca, folder / "broker", "broker")
    broker = TlsBroker(
        port=free_port(),
        ca=ca,
        sentio=issue(ca, folder / "clients", "sentio", server=False, key_password=KEY_PASSWORD),
        device=issue(ca, folder / "clients", "device", server=False),
        stranger=issue(other_ca, folder / "clients", "stranger", server=False),
        other_ca=other_ca,
        log=folder / "mosquitto.log",
    )
    (folder / "acl").write_text(ACL)
    config = folder / "mosquitto.conf"
    config.write_text(
        # started as root, mosquitto would switch to the 'mosquitto' user and lose the files
        f"user {getpass.getuser()}\n"
        "per_listener_settings false\n"
        "persistence false\n"
        "allow_anonymous false\n"
        f"acl_file {folder / 'acl'}\n"
        f"listener {broker.port} 127.0.0.1\n"
        f"cafile {ca.cert_path}\n"
        f"certfile {server.cert_path}\n"
        f"keyfile {server.key_path}\n"
        "require_certificate true\n"
        "use_identity_as_username true\n"
    )
    with broker.log.open("wb") as log:
        process = subprocess.Popen([MOSQUITTO, "-c", str(config)], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 10
        while True:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", broker.port), 0.2),
            ):
                break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(broker.log.read_text())
            time.sleep(0.02)
        yield broker
    finally:
        process.terminate()
        process.wait(10)
