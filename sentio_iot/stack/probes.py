"""Does a service really answer? One probe per protocol, each with a short timeout."""

from __future__ import annotations

import errno
import http.client
import logging
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

HOST = "127.0.0.1"

# MQTT 3.1.1 CONNECT: protocol "MQTT" level 4, clean session, keep-alive 60 s, empty client id.
MQTT_CONNECT = bytes([0x10, 12, 0, 4]) + b"MQTT" + bytes([4, 0x02, 0, 60, 0, 0])
MQTT_DISCONNECT = bytes([0xE0, 0])


@dataclass(frozen=True)
class Health:
    healthy: bool
    detail: str


def port_in_use(port: int, host: str = HOST) -> bool:
    """True when something already listens on (or holds) host:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


def tcp_open(port: int, host: str = HOST, timeout_s: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def http_ok(
    port: int, path: str, timeout_s: float = 2.0, headers: Mapping[str, str] | None = None
) -> Health:
    """Healthy when GET http://127.0.0.1:<port><path> answers 200.

    http.client, not httpx: no proxy settings from the environment, no log line per probe.
    """
    connection = http.client.HTTPConnection(HOST, port, timeout=timeout_s)
    try:
        connection.request("GET", path, headers=dict(headers or {}))
        status = connection.getresponse().status
    except (OSError, http.client.HTTPException) as exc:
        return Health(False, f"GET {path}: {getattr(exc, 'strerror', None) or type(exc).__name__}")
    finally:
        connection.close()
    if status != 200:
        return Health(False, f"GET {path}: HTTP {status}")
    return Health(True, "ok")


def http_all_ok(port: int, paths: list[str], timeout_s: float = 2.0) -> Health:
    for path in paths:
        health = http_ok(port, path, timeout_s)
        if not health.healthy:
            return health
    return Health(True, "ok")


def kafka_answers(
    port: int, timeout_s: float = 3.0, client: Mapping[str, Any] | None = None
) -> Health:
    """Healthy when the broker answers a metadata request and lists itself (``client``: the
    librdkafka security properties of a secure broker)."""
    if not tcp_open(port):
        return Health(False, f"nothing listens on {HOST}:{port}")
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    # The logger config keeps librdkafka's connection errors off stderr.
    config: dict[str, Any] = {
        "bootstrap.servers": f"{HOST}:{port}",
        **(client or {}),
        "logger": log,
    }
    admin = AdminClient(config)
    try:
        metadata = admin.list_topics(timeout=timeout_s)
    except KafkaException as exc:
        return Health(False, f"metadata request failed: {exc.args[0]}")
    if not metadata.brokers:
        return Health(False, "metadata lists no broker yet")
    return Health(True, f"{len(metadata.brokers)} broker(s), {len(metadata.topics)} topic(s)")


def mqtt_answers(port: int, timeout_s: float = 2.0, anonymous_refused: bool = False) -> Health:
    """Healthy when a real MQTT CONNECT is accepted with a CONNACK (``anonymous_refused``: when
    the anonymous CONNECT is refused as not authorized, as a broker with users must)."""
    try:
        with socket.create_connection((HOST, port), timeout=timeout_s) as sock:
            sock.sendall(MQTT_CONNECT)
            reply = _read_exactly(sock, 4)
            if reply_is_connack_accepted(reply) and not anonymous_refused:
                sock.sendall(MQTT_DISCONNECT)
                return Health(True, "ok")
            if anonymous_refused and reply[:2] == bytes([0x20, 2]) and reply[3:] == b"\x05":
                return Health(True, "ok; anonymous refused")
            return Health(False, f"unexpected CONNACK {reply.hex()}")
    except OSError as exc:
        return Health(False, f"MQTT connect to {HOST}:{port}: {exc.strerror or exc}")


def reply_is_connack_accepted(reply: bytes) -> bool:
    """CONNACK (0x20), remaining length 2, any session-present flag, return code 0."""
    return len(reply) == 4 and reply[0] == 0x20 and reply[1] == 2 and reply[3] == 0


def _read_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return data
