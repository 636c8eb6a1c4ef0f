"""The WebSocket /api/v1/live on a real server (no Kafka needed): refusals close the socket
with a code and a reason; bad messages are answered with an error and the socket stays."""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from sentio_iot.api.app import apply_batch, create_app
from sentio_iot.api.roles import Role
from sentio_iot.api.server import serving
from sentio_iot.api.services import Services
from sentio_iot.config import load_config

PASSWORD = "websocket test password"
KEYS = 20
UPDATES = 1000
PADDING = "x" * 16_000  # 16 kB per message: a client that stops reading fills the buffers soon


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[str, Services, str]]:
    live = {
        "queue_size": 64,
        "max_messages_per_s": 100_000,
        "auth_timeout_s": 0.5,
        "heartbeat_s": 0.3,
        "max_subscriptions": 2,
    }
    config = load_config(data={"api": {"state_dir": str(tmp_path / "api"), "live": live}})
    app = create_app(config, start_feed=False)
    svc: Services = app.state.services
    svc.users.add("vic", SecretStr(PASSWORD), Role.VIEWER, ("acme",))
    with serving(app) as url:
        login = {"username": "vic", "password": PASSWORD}
        token = httpx.post(f"{url}/api/v1/auth/login", json=login).json()["access_token"]
        yield url.replace("http", "ws") + "/api/v1/live", svc, token


def closed_with(ws: ClientConnection) -> tuple[int, str]:
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            ws.recv(timeout=5)
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code, closed.value.rcvd.reason


def test_refusals_close_with_a_code_and_a_reason(api: tuple[str, Services, str]) -> None:
    url, _svc, token = api
    with connect(url) as ws:
        ws.send(json.dumps({"type": "auth", "token": token[:-4] + "AAAA"}))
        assert closed_with(ws) == (4401, "the token's signature does not verify")
    with connect(url) as ws:  # says nothing: the server does not wait for ever
        assert closed_with(ws) == (4408, "no auth message within 0.5 s")
    with connect(url) as ws:
        ws.send(json.dumps({"type": "subscribe", "id": "s"}))
        assert closed_with(ws)[0] == 4401
    with connect(url) as ws:
        ws.send(json.dumps({"type": "auth", "token": token}))
        assert json.loads(ws.recv(timeout=5))["type"] == "ready"
        ws.send(json.dumps({"type": "subscribe", "id": "s", "kinds": ["nope"]}))
        error = json.loads(ws.recv(timeout=5))
        assert error == {
            "type": "error",
            "reason": "kinds: unknown nope; kinds are readings, anomalies, alerts, rul, device_events, pipeline",
        }
        ws.send("not json")
        assert json.loads(ws.recv(timeout=5)) == {"type": "error", "reason": "not JSON"}


def test_a_client_that_asks_for_batches_gets_waiting_updates_in_one_frame(
    api: tuple[str, Services, str],
) -> None:
    url, svc, token = api
    with connect(url) as ws:
        ws.send(json.dumps({"type": "auth", "token": token, "queue_size": 64, "batch": 50}))
        ready = json.loads(ws.recv(timeout=5))
        assert (ready["limits"]["queue_size"], ready["limits"]["batch"]) == (64, 50)
        ws.send(json.dumps({"type": "subscribe", "id": "s", "kinds": ["readings"]}))
        assert json.loads(ws.recv(timeout=5))["type"] == "subscribed"
        records = [
            {
                "device_id": f"d{i}",
                "ts": 1_700_000_000_000_000 + i,
                "source": "simulate",
                "seq": i,
                "metrics": [
                    {"name": "v", "value": float(i), "text": None, "unit": None, "quality": "GOOD"}
                ],
                "labels": {"tenant": "acme"},
            }
            for i in range(40)
        ]
        assert svc.loop is not None
        svc.loop.call_soon_threadsafe(apply_batch, svc, [("readings", r) for r in records])
        values: list[float] = []
        frames = 0
        while len(values) < 40:
            message = json.loads(ws.recv(timeout=5))
            frames += 1
            items = message["items"] if message["type"] == "updates" else [message]
            values += [
                item["data"]["metrics"][0]["value"] for item in items if item["type"] == "update"
            ]
        assert values == [float(i) for i in range(40)]  # all of them, in order
        assert frames < 40  # in fewer frames than updates
    with connect(url) as ws:
        ws.send(json.dumps({"type": "auth", "token": token, "batch": 0}))
        assert closed_with(ws) == (4400, "batch must be an integer from 1 to 1000")


def test_heartbeat_ping_subscription_limit_and_unsubscribe(api: tuple[str, Services, str]) -> None:
    url, svc, token = api
    with connect(url) as ws:
        ws.send(json.dumps({"type": "auth", "token": token}))
        ready = json.loads(ws.recv(timeout=5))
        assert ready["limits"]["max_subscriptions"] == 2
        heartbeat = json.loads(ws.recv(timeout=5))  # nothing to send for 0.3 s
        assert heartbeat == {"type": "heartbeat", "cursor": svc.views.cursor}
        ws.send(json.dumps({"type": "ping"}))
        assert json.loads(ws.recv(timeout=5))["type"] in ("pong", "heartbeat")
        for sub in ("a", "b", "c"):
            ws.send(json.dumps({"type": "subscribe", "id": sub}))
        answers = []
        while len(answers) < 3:
            message = json.loads(ws.recv(timeout=5))
            if message["type"] not in ("heartbeat", "pong"):
                answers.append(message)
        assert [m["type"] for m in answers] == ["subscribed", "subscribed", "error"]
        assert answers[2]["reason"] == "at most 2 subscriptions"
        ws.send(json.dumps({"type": "unsubscribe", "id": "a"}))
        while (message := json.loads(ws.recv(timeout=5)))["type"] in ("heartbeat", "pong"):
            pass
        assert message == {"type": "unsubscribed", "id": "a"}


def test_an_expired_token_closes_the_socket_unless_renewed(tmp_path: Path) -> None:
    import time

    import jwt

    live = {"heartbeat_s": 0.2}
    data = {"api": {"state_dir": str(tmp_path / "api"), "live": live, "tokens": {"leeway_s": 0}}}
    app = create_app(load_config(data=data), start_feed=False)
    svc: Services = app.state.services

    def token(ttl_s: int) -> str:
        now = int(time.time())
        claims = {
            "iss": "sentio-iot",
            "aud": "sentio-api",
            "sub": "vic",
            "role": "viewer",
            "tenants": ["acme"],
            "iat": now,
            "nbf": now,
            "exp": now + ttl_s,
            "typ": "access",
        }
        key = svc.keys.signing
        return jwt.encode(claims, key.private, algorithm="EdDSA", headers={"kid": key.kid})

    with serving(app) as url:
        ws_url = url.replace("http", "ws") + "/api/v1/live"
        with connect(ws_url) as ws:
            ws.send(json.dumps({"type": "auth", "token": token(2)}))
            assert json.loads(ws.recv(timeout=5))["type"] == "ready"
            code, reason = closed_with(ws)
            assert (code, reason) == (
                4401,
                "the access token expired; send a new one with an auth message",
            )
        with connect(ws_url) as ws:
            ws.send(json.dumps({"type": "auth", "token": token(2)}))
            assert json.loads(ws.recv(timeout=5))["type"] == "ready"
            ws.send(json.dumps({"type": "auth", "token": token(600)}))
            while (message := json.loads(ws.recv(timeout=5)))["type"] == "heartbeat":
                pass
            assert message["type"] == "renewed"
            time.sleep(3)  # past the first token's expiry: still open
            assert json.loads(ws.recv(timeout=5))["type"] == "heartbeat"


def stalled_socket(url: str) -> socket.socket:
    """A WebSocket that never reads: a raw socket with a 4 kB receive buffer (set before
    connecting, so the window stays small); the handshake and the client's frames by hand."""
    host, port = url.removeprefix("ws://").split("/", 1)[0].split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(5)
    sock.connect((host, int(port)))
    sock.sendall(
        b"GET /api/v1/live HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\n\r\n"
    )
    assert sock.recv(4096).startswith(b"HTTP/1.1 101")
    return sock


def send_masked(sock: socket.socket, message: dict[str, object]) -> None:
    payload = json.dumps(message).encode()
    assert len(payload) < 65536
    mask = b"\x01\x02\x03\x04"
    length = bytes([0x80 | len(payload)]) if len(payload) < 126 else b"\xfe"
    if len(payload) >= 126:
        length += len(payload).to_bytes(2, "big")
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    sock.sendall(b"\x81" + length + mask + masked)


def test_a_stalled_client_is_closed_4429_and_a_reading_one_catches_up(tmp_path: Path) -> None:
    """One client stops reading: its queue overflows (counted), then the frame it cannot take
    closes it (4429, counted). Another, reading slowly, is sent an overflow and then the
    latest value of every key it missed; the hub forgets both."""
    import time

    live = {"queue_size": 16, "stall_timeout_s": 0.5, "frame_interval_s": 0.0}
    data = {"api": {"state_dir": str(tmp_path / "api"), "live": live}}
    app = create_app(load_config(data=data), start_feed=False)
    svc: Services = app.state.services
    svc.users.add("vic", SecretStr(PASSWORD), Role.VIEWER, ("acme",))
    padding = "x" * 16_000
    records = [
        {
            "device_id": f"d{i % KEYS}",
            "ts": 1_700_000_000_000_000 + i,
            "source": "simulate",
            "seq": i,
            "metrics": [
                {"name": "v", "value": float(i), "text": None, "unit": None, "quality": "GOOD"}
            ],
            "labels": {"tenant": "acme", "padding": padding},
        }
        for i in range(400)
    ]
    with serving(app) as url:
        login = {"username": "vic", "password": PASSWORD}
        token = httpx.post(f"{url}/api/v1/auth/login", json=login).json()["access_token"]
        ws_url = url.replace("http", "ws") + "/api/v1/live"
        subscribe = {"type": "subscribe", "id": "s", "kinds": ["readings"]}
        stalled = stalled_socket(ws_url)
        send_masked(stalled, {"type": "auth", "token": token})
        send_masked(stalled, subscribe)
        with connect(ws_url, max_queue=1) as reader:
            reader.send(json.dumps({"type": "auth", "token": token}))
            assert json.loads(reader.recv(timeout=5))["type"] == "ready"
            reader.send(json.dumps(subscribe))
            assert json.loads(reader.recv(timeout=5))["type"] == "subscribed"
            deadline = time.monotonic() + 5
            while len(svc.hub.groups) != 1 or len(svc.hub.clients) != 2:
                assert time.monotonic() < deadline
                time.sleep(0.02)
            assert svc.loop is not None
            for start in range(0, len(records), 20):
                batch = [("readings", r) for r in records[start : start + 20]]
                svc.loop.call_soon_threadsafe(apply_batch, svc, batch)
            latest: dict[str, float] = {}
            final = {f"d{k}": float(len(records) - KEYS + k) for k in range(KEYS)}
            overflows = 0
            while latest != final:
                message = json.loads(reader.recv(timeout=5))
                overflows += message["type"] == "overflow"
                for item in message.get("items", [message]):
                    if item["type"] == "update":
                        device, value = item["data"]["device_id"], item["data"]["metrics"][0]
                        assert value["value"] >= latest.get(device, -1.0)  # never older
                        latest[device] = value["value"]
                time.sleep(0.002)  # slower than the feed
            deadline = time.monotonic() + 20
            while svc.hub.slow_disconnects < 1 or len(svc.hub.clients) != 1:
                # more for the stalled one until its buffers are full and a frame waits
                assert time.monotonic() < deadline, (svc.hub.slow_disconnects, svc.hub.clients)
                batch = [("readings", r) for r in records[:KEYS]]
                svc.loop.call_soon_threadsafe(apply_batch, svc, batch)
                with contextlib.suppress(TimeoutError):
                    while True:
                        reader.recv(timeout=0.05)
            metrics = httpx.get(f"{url}/metrics").text
            assert "sentio_api_live_slow_disconnects_total 1" in metrics
            overflowed = [ln for ln in metrics.splitlines() if ln.startswith("sentio_api_live_ov")]
            assert float(overflowed[0].split()[1]) >= 2  # both clients fell behind at least once
            coalesced = [ln for ln in metrics.splitlines() if ln.startswith("sentio_api_live_co")]
            assert float(coalesced[0].split()[1]) > 0
            assert overflows >= 1
        stalled.close()


def test_pipeline_health_is_pushed_to_subscribers_of_every_tenant(tmp_path: Path) -> None:
    """Each new measurement goes to clients subscribed to kind pipeline, whatever their
    tenants (it has none); a subscription that names devices does not get it; a resume does.
    The workers are not running here: the poller measures a fixed snapshot."""
    from sentio_iot.api.pipeline_health import Snapshot
    from sentio_iot.pipeline.probes import Poller

    data = {"api": {"state_dir": str(tmp_path / "api"), "live": {"heartbeat_s": 0.3}}}
    app = create_app(load_config(data=data), start_feed=False)
    svc: Services = app.state.services
    svc.users.add("vic", SecretStr(PASSWORD), Role.VIEWER, ("globex",))
    rates = iter(range(1000))
    svc.health = Poller(
        "test-health",
        lambda: Snapshot([("sink-victoriametrics", True, float(next(rates)))], {"sink-vm": 7}),
        0.2,
    )
    with serving(app) as url:
        svc.health.start()
        try:
            login = {"username": "vic", "password": PASSWORD}
            token = httpx.post(f"{url}/api/v1/auth/login", json=login).json()["access_token"]
            ws_url = url.replace("http", "ws") + "/api/v1/live"
            with connect(ws_url) as ws, connect(ws_url) as other:
                for client, sub in (
                    (ws, {"id": "p", "kinds": ["pipeline"]}),
                    (other, {"id": "d", "kinds": ["pipeline"], "devices": ["pump-1"]}),
                ):
                    client.send(json.dumps({"type": "auth", "token": token}))
                    assert json.loads(client.recv(timeout=5))["type"] == "ready"
                    client.send(json.dumps({"type": "subscribe", **sub}))
                    assert json.loads(client.recv(timeout=5))["type"] == "subscribed"
                got = []
                while len(got) < 2:
                    message = json.loads(ws.recv(timeout=5))
                    if message["type"] == "update":
                        got.append(message)
                assert got[0]["kind"] == "pipeline"
                assert got[0]["data"]["lag"] == {"sink-vm": 7}
                worker = got[0]["data"]["workers"][0]
                assert (worker["name"], worker["healthy"]) == ("sink-victoriametrics", True)
                assert got[1]["data"]["workers"][0]["rate_per_s"] > worker["rate_per_s"]
                seen = [json.loads(other.recv(timeout=1))["type"] for _ in range(3)]
                assert "update" not in seen  # heartbeats only
            svc.health.stop()  # no more measurements: what follows comes from the views
            with connect(ws_url) as late:  # a resume from an old cursor: the latest health
                late.send(json.dumps({"type": "auth", "token": token}))
                assert json.loads(late.recv(timeout=5))["type"] == "ready"
                sub = {"type": "subscribe", "id": "p", "kinds": ["pipeline"], "cursor": "old.0"}
                late.send(json.dumps(sub))
                assert json.loads(late.recv(timeout=5))["type"] == "subscribed"
                while (message := json.loads(late.recv(timeout=5)))["type"] != "update":
                    pass
                assert message["kind"] == "pipeline"
            rest = httpx.get(
                f"{url}/api/v1/health/pipeline", headers={"Authorization": f"Bearer {token}"}
            ).json()
            assert rest["lag"] == {"sink-vm": 7} and rest["workers"][0]["healthy"] is True
        finally:
            svc.health.stop()
