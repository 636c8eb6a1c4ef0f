"""The live API against the real stack: readings produced to Kafka reach a subscribed
WebSocket client (latency reported), tenants filter live messages, a reconnect with the
cursor gets what the views hold, and an acknowledgement through the API reaches the alerts
agent and shows in `sentio alerts list` with the user's name and in the alert's history."""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import statistics
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import yaml
from click.testing import CliRunner
from confluent_kafka import Producer
from pydantic import SecretStr
from stream_worker import SENTIO, StreamTestbed, free_port, stream_testbed_fixture  # noqa: F401
from websockets.sync.client import ClientConnection, connect

from sentio_iot.api.app import create_app
from sentio_iot.api.roles import Role
from sentio_iot.api.server import serving
from sentio_iot.api.services import Services
from sentio_iot.api.store import AuthStore
from sentio_iot.api.users import UserStore
from sentio_iot.cli.main import cli
from sentio_iot.config import SentioConfig, load_config
from sentio_iot.records import now_us

PASSWORD = "a long test password"
READINGS = 300
RATE = 150.0  # readings/s


def api_config(bed: StreamTestbed, tmp_path: Path) -> SentioConfig:
    data = yaml.safe_load(bed.config_path.read_text())
    data["api"] = {"state_dir": str(tmp_path / "api"), "views": {"readings_lookback_s": 600}}
    return load_config(data=data)


@contextmanager
def running_api(config: SentioConfig) -> Iterator[tuple[str, Services]]:
    app = create_app(config)
    svc: Services = app.state.services
    svc.users.add("vic", SecretStr(PASSWORD), Role.VIEWER, ("acme",))
    svc.users.add("olga", SecretStr(PASSWORD), Role.OPERATOR, ("acme",))
    with serving(app) as url:
        deadline = time.monotonic() + 60
        while not httpx.get(f"{url}/api/health").json()["views_ready"]:
            assert time.monotonic() < deadline, "the views were not rebuilt in 60 s"
            time.sleep(0.2)
        yield url, svc


def token(url: str, user: str) -> str:
    response = httpx.post(f"{url}/api/v1/auth/login", json={"username": user, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def reading(device: str, tenant: str, value: float, seq: int) -> dict[str, Any]:
    return {
        "device_id": device,
        "ts": now_us(),
        "metrics": [
            {"name": "pressure", "value": value, "text": None, "unit": "bar", "quality": "GOOD"}
        ],
        "labels": {"tenant": tenant, "site": "north", "kind": "press"},
        "source": "simulate",
        "seq": seq,
    }


@contextmanager
def live(
    url: str, access: str, queue_size: int | None = None, **options: Any
) -> Iterator[ClientConnection]:
    with connect(url.replace("http", "ws") + "/api/v1/live", open_timeout=10, **options) as ws:
        auth: dict[str, Any] = {"type": "auth", "token": access}
        if queue_size is not None:
            auth["queue_size"] = queue_size
        ws.send(json.dumps(auth))
        ready = json.loads(ws.recv(timeout=10))
        assert ready["type"] == "ready" and ready["tenants"] == ["acme"], ready
        yield ws


def until(ws: ClientConnection, kind: str, timeout_s: float = 15) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        message: dict[str, Any] = json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic())))
        if message["type"] == kind:
            return message


def test_readings_reach_a_subscribed_client_and_a_reconnect_resumes(
    stream_testbed: StreamTestbed, tmp_path: Path
) -> None:
    bed = stream_testbed
    serde = bed.serde("readings")
    serde.register()
    bed.produce("readings", [("press-0", reading("press-0", "acme", 0.0, 0))])  # makes the topic
    with running_api(api_config(bed, tmp_path)) as (url, _svc):
        access = token(url, "vic")
        with live(url, access) as ws:
            ws.send(
                json.dumps(
                    {"type": "subscribe", "id": "p", "kinds": ["readings"], "sites": ["north"]}
                )
            )
            assert until(ws, "subscribed")["id"] == "p"

            producer = Producer(
                {"bootstrap.servers": bed.config.kafka.bootstrap_servers, "linger.ms": 0}
            )

            def produce() -> None:
                for i in range(1, READINGS + 1):
                    for device, tenant in (("press-1", "acme"), ("press-9", "globex")):
                        record = reading(device, tenant, float(i), i)
                        producer.produce(
                            bed.topic("readings"), key=device.encode(), value=serde.encode(record)
                        )
                    producer.poll(0)
                    time.sleep(1 / RATE)
                assert producer.flush(30) == 0

            sender = threading.Thread(target=produce)
            sender.start()
            latencies_ms: list[float] = []
            values: list[float] = []
            cursor = ""
            while len(values) < READINGS:
                message = until(ws, "update")
                received = now_us()
                data = message["data"]
                assert data["labels"]["tenant"] == "acme", data  # another tenant's never arrives
                if data["device_id"] != "press-1":
                    continue
                values.append(data["metrics"][0]["value"])
                latencies_ms.append((received - data["ts"]) / 1000)
                cursor = message["cursor"]
            sender.join()
            assert values == [float(i) for i in range(1, READINGS + 1)]  # every one, in order
            p50 = statistics.median(latencies_ms)
            p99 = statistics.quantiles(latencies_ms, n=100)[98]
            print(
                f"\nKafka -> WebSocket latency over {READINGS} readings at {RATE:g}/s: p50 {p50:.1f} ms, p99 {p99:.1f} ms"
            )

        # Missed while away: the views hold the latest reading per device; a resume gets it.
        for i in range(1, 6):
            record = reading("press-1", "acme", 1000.0 + i, READINGS + i)
            producer.produce(bed.topic("readings"), key=b"press-1", value=serde.encode(record))
        record = reading("press-2", "acme", 7.0, 1)
        producer.produce(bed.topic("readings"), key=b"press-2", value=serde.encode(record))
        assert producer.flush(30) == 0
        headers = {"Authorization": f"Bearer {access}"}
        deadline = time.monotonic() + 15
        while True:
            devices = httpx.get(f"{url}/api/v1/devices", headers=headers).json()["items"]
            values_now = {d["device_id"]: d["last_values"]["pressure"]["value"] for d in devices}
            if values_now.get("press-1") == 1005.0 and "press-2" in values_now:
                break
            assert time.monotonic() < deadline, values_now
            time.sleep(0.1)
        assert "press-9" not in values_now  # globex's device is not listed to acme's viewer
        health = httpx.get(f"{url}/api/v1/health/pipeline", headers=headers).json()
        assert health["views_ready"] is True
        assert health["view_records"] == 1 + 2 * READINGS + 6  # every record read, once
        with live(url, access) as ws:
            ws.send(
                json.dumps(
                    {"type": "subscribe", "id": "p", "kinds": ["readings"], "cursor": cursor}
                )
            )
            until(ws, "subscribed")
            missed = [until(ws, "update")["data"] for _ in range(2)]
            got = {d["device_id"]: d["metrics"][0]["value"] for d in missed}
            assert got == {"press-1": 1005.0, "press-2": 7.0}


def test_an_acknowledgement_through_the_api_shows_in_alerts_list_with_the_user(
    stream_testbed: StreamTestbed, tmp_path: Path
) -> None:
    bed = stream_testbed.configure(streams={"alerts": {"check_interval_s": 1}})
    worker = bed.start_worker(agents="alerts")
    event = {
        "device_id": "pump-2",
        "ts": now_us(),
        "kind": "OFFLINE",
        "message": "no reading for 30 s",
        "source": "streams",
        "details": {},
        "labels": {"tenant": "acme", "kind": "pump"},
    }
    bed.produce("device-events", [("pump-2", event)])
    with running_api(api_config(bed, tmp_path)) as (url, _svc):
        operator = {"Authorization": f"Bearer {token(url, 'olga')}"}
        viewer = {"Authorization": f"Bearer {token(url, 'vic')}"}

        def alert() -> dict[str, Any] | None:
            items = httpx.get(
                f"{url}/api/v1/alerts", params={"state": "all"}, headers=viewer
            ).json()["items"]
            return next(
                (a for a in items if (a["device_id"], a["type"]) == ("pump-2", "device_offline")),
                None,
            )

        deadline = time.monotonic() + 60
        while (found := alert()) is None:
            assert time.monotonic() < deadline, worker.log()
            time.sleep(0.3)
        assert found["status"] == "FIRING"
        refused = httpx.post(
            f"{url}/api/v1/alerts/pump-2/device_offline/acknowledge", headers=viewer
        )
        assert refused.status_code == 403 and "operator" in refused.json()["error"]
        sent = httpx.post(
            f"{url}/api/v1/alerts/pump-2/device_offline/acknowledge",
            headers=operator,
            json={"comment": "on my way"},
        )
        assert sent.status_code == 202, sent.text
        assert (sent.json()["user"], sent.json()["action"], sent.json()["comment"]) == (
            "olga",
            "ACK",
            "on my way",
        )
        deadline = time.monotonic() + 30
        while (found := alert()) is None or found["status"] != "ACKNOWLEDGED":
            assert time.monotonic() < deadline, worker.log()
            time.sleep(0.3)
        assert found["details"]["acked_by"] == "olga"
        # the history: the command read back from the alert-commands topic by the views
        deadline = time.monotonic() + 30
        while True:
            history = httpx.get(
                f"{url}/api/v1/alerts/pump-2/device_offline/history", headers=viewer
            ).json()
            events = [(e["event"], e["user"], e["comment"]) for e in history["entries"]]
            if ("ACK", "olga", "on my way") in events:
                break
            assert time.monotonic() < deadline, history
            time.sleep(0.3)
        assert events == [("FIRING", "", ""), ("ACK", "olga", "on my way")]
        assert history["entries"][1]["command_id"] == sent.json()["command_id"]
    listed = CliRunner().invoke(cli, ["alerts", "list", "-c", str(bed.config_path)])
    assert listed.exit_code == 0, listed.output
    row = next(
        line for line in listed.stdout.splitlines() if line.startswith("pump-2/device_offline")
    )
    assert row.split()[1] == "ACKNOWLEDGED"
    assert row.endswith("[acknowledged by olga]")
    assert worker.stop() == 0


SLOW_UPDATES = 1000
SLOW_KEYS = 10
PADDING = "x" * 16_000  # 16 kB a message: a client that stops reading fills its buffers soon


def metric(url: str, name: str) -> float:
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


class StalledClient:
    """A WebSocket client that stops reading: a raw socket with a 4 kB receive buffer (set
    before connecting, so the window stays small), the handshake and its frames by hand."""

    def __init__(self, port: int) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.settimeout(10)
        self.sock.connect(("127.0.0.1", port))
        self.sock.sendall(
            b"GET /api/v1/live HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            b"Sec-WebSocket-Version: 13\r\n\r\n"
        )
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self.sock.recv(4096)
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 101"), head

    def send(self, message: dict[str, Any]) -> None:
        payload = json.dumps(message).encode()
        mask = b"\x01\x02\x03\x04"
        size = len(payload)
        length = bytes([0x80 | size]) if size < 126 else bytes([0xFE]) + size.to_bytes(2, "big")
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(b"\x81" + length + mask + masked)

    def _take(self, count: int) -> bytes:
        while len(self.buffer) < count:
            chunk = self.sock.recv(65536)
            assert chunk, "the server closed the connection"
            self.buffer += chunk
        taken, self.buffer = self.buffer[:count], self.buffer[count:]
        return taken

    def recv(self) -> dict[str, Any]:
        """The next text message (the server's frames are unmasked and unfragmented)."""
        first, second = self._take(2)
        size = second & 0x7F
        if size == 126:
            size = int.from_bytes(self._take(2), "big")
        elif size == 127:
            size = int.from_bytes(self._take(8), "big")
        payload = self._take(size)
        if first & 0x0F != 1:
            return self.recv()  # a ping or another control frame
        message: dict[str, Any] = json.loads(payload)
        return message

    def until(self, kind: str) -> dict[str, Any]:
        while (message := self.recv())["type"] != kind:
            pass
        return message


def test_a_slow_client_is_coalesced_and_the_others_are_not_slowed(
    stream_testbed: StreamTestbed, tmp_path: Path
) -> None:
    """`sentio api` in its own process; one client stops reading (a 4 kB receive buffer, no
    reads, a queue of 16), another reads everything (the default queue of 1000): the fast one gets every reading in order, the slow
    one is coalesced and, when it reads again, gets the latest value of every device."""
    bed = stream_testbed
    serde = bed.serde("readings")
    serde.register()
    bed.produce("readings", [("slow-0", reading("slow-0", "acme", 0.0, 0))])
    port = free_port()
    data = yaml.safe_load(bed.config_path.read_text())
    data["api"] = {
        "state_dir": str(tmp_path / "api"),
        "port": port,
        "live": {"max_messages_per_s": 100_000},
    }
    config_file = tmp_path / "api.yaml"
    config_file.write_text(yaml.safe_dump(data))
    UserStore(AuthStore(tmp_path / "api")).add("vic", SecretStr(PASSWORD), Role.VIEWER, ("acme",))
    url = f"http://127.0.0.1:{port}"
    stalled: StalledClient | None = None
    with (tmp_path / "api.log").open("wb") as log:
        process = subprocess.Popen(
            [SENTIO, "api", "-c", str(config_file)], stdout=log, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, (tmp_path / "api.log").read_text()
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/health").status_code == 200:
                    break
            assert time.monotonic() < deadline, (tmp_path / "api.log").read_text()
            time.sleep(0.3)
        access = token(url, "vic")
        subscribe = {"type": "subscribe", "id": "all", "kinds": ["readings"]}
        slow = stalled = StalledClient(port)
        slow.send({"type": "auth", "token": access, "queue_size": 16})
        assert slow.until("ready")["limits"]["queue_size"] == 16
        slow.send(subscribe)
        assert slow.until("subscribed")["id"] == "all"
        with live(url, access) as fast:
            fast.send(json.dumps(subscribe))
            assert until(fast, "subscribed")["id"] == "all"
            producer = Producer(
                {"bootstrap.servers": bed.config.kafka.bootstrap_servers, "linger.ms": 0}
            )
            expected: list[tuple[str, float]] = []

            def produce() -> None:
                for i in range(SLOW_UPDATES):
                    device = f"slow-{i % SLOW_KEYS}"
                    record = reading(device, "acme", float(i), i)
                    record["labels"]["padding"] = PADDING
                    producer.produce(
                        bed.topic("readings"), key=device.encode(), value=serde.encode(record)
                    )
                    expected.append((device, float(i)))
                    producer.poll(0)
                    time.sleep(1 / 200)
                assert producer.flush(30) == 0

            sender = threading.Thread(target=produce)
            sender.start()
            got = []
            while len(got) < SLOW_UPDATES:
                data_ = until(fast, "update", timeout_s=30)["data"]
                got.append((data_["device_id"], data_["metrics"][0]["value"]))
            sender.join()
            # The fast client: every reading, each device's in order (devices on different
            # partitions may interleave differently than they were produced).
            assert sorted(got) == sorted(expected)
            for k in range(SLOW_KEYS):
                device = f"slow-{k}"
                assert [v for d, v in got if d == device] == [v for d, v in expected if d == device]
            coalesced = metric(url, "sentio_api_live_coalesced_total")
            assert coalesced > 0  # the slow client's queue, never the feed or the fast one
            # It reads again: the latest value of every device (ten fit its queue of 16; had
            # they not, an overflow message would say where to resume from).
            latest: dict[str, float] = {}
            final = {f"slow-{k}": float(SLOW_UPDATES - SLOW_KEYS + k) for k in range(SLOW_KEYS)}
            overflows = 0
            deadline = time.monotonic() + 30
            while latest != final:
                assert time.monotonic() < deadline, latest
                message = slow.recv()
                if message["type"] == "overflow":
                    overflows += 1
                    slow.send({**subscribe, "cursor": message["resume_cursor"]})
                elif message["type"] == "update":
                    device, value = (
                        message["data"]["device_id"],
                        message["data"]["metrics"][0]["value"],
                    )
                    assert value >= latest.get(device, -1.0)  # never older after newer
                    latest[device] = value
            print(
                f"\nslow client: {coalesced:.0f} updates coalesced, {overflows} overflow(s); fast client: all {len(got)}"
            )
    finally:
        if stalled is not None:
            stalled.sock.close()
        process.send_signal(signal.SIGTERM)
        # uvicorn re-raises SIGTERM once it has shut down (exit -15); a stalled client does
        # not hold the shutdown up (timeout_graceful_shutdown)
        assert process.wait(30) in (0, -signal.SIGTERM)
