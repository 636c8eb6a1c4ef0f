"""Home Assistant core as a test peer: installed once into its own venv, run on 127.0.0.1.

Home Assistant 2024.3.3 is the newest release that installs on Python 3.11 (2024.4 needs
3.12); it needs ``josepy<2`` beside it (with josepy 2.x every HTTP request fails on
``module 'josepy' has no attribute 'ComparableX509'``). The venv lives in
``<stack home>/homeassistant-2024.3.3-<hash of the requirements>/venv`` and is built once
(a ``.complete`` marker, like the stack's jars); the wheels it was built from stay in
``<stack home>/homeassistant-wheels`` so a rebuilt venv downloads only what is new. The requirements of the integrations Home Assistant
always loads and of those the tests configure are installed with it, and Home Assistant runs
with ``--skip-pip``, so it never installs anything at start-up.

``HomeAssistant`` writes a minimal configuration (``http``, ``api``, ``websocket_api``,
``config``, two ``input_number``, an ``input_boolean`` and template sensors), creates a user
with ``hass --script auth``, logs in through the login flow, asks for a long-lived token over
the WebSocket API and sets up the ``mqtt`` integration (pointed at the stack's Mosquitto)
through its config flow, as a user would in the UI.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import httpx

from sentio_iot.stack.install import fill_once, run_tool
from sentio_iot.stack.process import ProcessRecord, is_running, log_tail, spawn, wait_gone

log = logging.getLogger(__name__)

VERSION = "2024.3.3"
# What Home Assistant always loads (frontend, backup, hardware, person, ...) and the
# integrations of CONFIGURATION need, from their manifest.json "requirements".
INTEGRATION_REQUIREMENTS = [
    "Pillow==10.2.0",
    "PyTurboJPEG==1.7.1",  # camera, which mqtt sets up as one of its platforms
    "numpy==1.26.0",
    "SQLAlchemy==2.0.27",  # imported by analytics through recorder (not loaded)
    "fnv-hash-fast==0.5.0",
    "home-assistant-frontend==20240307.0",
    "ifaddr==0.2.0",
    "janus==1.0.0",
    "paho-mqtt==1.6.1",
    "psutil-home-assistant==0.0.1",
    "securetar==2024.2.1",
]
REQUIREMENTS = [f"homeassistant=={VERSION}", "josepy<2", *INTEGRATION_REQUIREMENTS]
USER, PASSWORD = "sentio", "sentio-test-password"
START_TIMEOUT_S = 180.0

CONFIGURATION = """\
homeassistant:
  name: Sentio test home
  latitude: 52.37
  longitude: 4.89
  elevation: 0
  unit_system: metric
  time_zone: UTC
  currency: EUR
  country: NL
http:
  server_host: 127.0.0.1
  server_port: {port}
api:
websocket_api:
config:
input_number:
  kitchen_temperature:
    name: Kitchen temperature setpoint
    min: -50
    max: 100
    step: 0.01
    mode: box
    unit_of_measurement: "°C"
  cellar_power:
    name: Cellar power input
    min: 0
    max: 10000
    step: 0.1
    mode: box
input_boolean:
  cellar_online:
    name: Cellar meter online
  cellar_metered:
    name: Cellar meter has a value
template:
  - sensor:
      - name: Kitchen temperature
        unique_id: sentio_test_kitchen_temperature
        unit_of_measurement: "°C"
        device_class: temperature
        state_class: measurement
        state: "{{{{ states('input_number.kitchen_temperature') }}}}"
      - name: Cellar power
        unique_id: sentio_test_cellar_power
        unit_of_measurement: W
        device_class: power
        state_class: measurement
        state: >-
          {{{{ states('input_number.cellar_power')
             if is_state('input_boolean.cellar_metered', 'on') else none }}}}
        availability: "{{{{ is_state('input_boolean.cellar_online', 'on') }}}}"
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def install(stack_home: Path) -> tuple[Path, float]:
    """The venv's ``hass``, installed unless cached; the seconds the install took (0: cached)."""
    digest = hashlib.sha256(" ".join(REQUIREMENTS).encode()).hexdigest()[:8]
    folder = stack_home / f"homeassistant-{VERSION}-{digest}"  # a new list: a new venv
    wheels = stack_home / "homeassistant-wheels"
    started = time.monotonic()

    def build(target: Path) -> None:
        venv = target / "venv"
        run_tool([sys.executable, "-m", "venv", str(venv)], what="python -m venv")
        pip = [str(venv / "bin" / "python"), "-m", "pip", "-q", "--disable-pip-version-check"]
        offline = [*pip, "install", "--no-index", "--find-links", str(wheels), *REQUIREMENTS]
        try:
            run_tool(offline, what="pip install Home Assistant from the cached wheels")
        except Exception:  # first install: fetch and build every wheel once, then offline
            wheels.mkdir(parents=True, exist_ok=True)
            fetch = [*pip, "wheel", "--wheel-dir", str(wheels), "--find-links", str(wheels)]
            run_tool([*fetch, *REQUIREMENTS], what=f"pip wheel homeassistant=={VERSION}")
            run_tool(offline, what="pip install Home Assistant from the cached wheels")

    built = fill_once(folder, build)
    return folder / "venv" / "bin" / "hass", (time.monotonic() - started) if built else 0.0


class HomeAssistant:
    """One Home Assistant instance with its own configuration folder and port."""

    def __init__(self, hass: Path, config_dir: Path, mqtt_port: int) -> None:
        self.hass = hass
        self.config_dir = config_dir
        self.port = free_port()
        self.mqtt_port = mqtt_port
        self.log_path = config_dir.parent / "hass.out"
        self.record: ProcessRecord | None = None
        self.token = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def websocket_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/api/websocket"

    def configure(self) -> None:
        """Configuration file and user: once, before the first start."""
        self.config_dir.mkdir(parents=True, exist_ok=True)
        configuration = CONFIGURATION.format(port=self.port)
        (self.config_dir / "configuration.yaml").write_text(configuration, encoding="utf-8")
        # The user below stands for the owner; without this the API answers "Onboarding not
        # finished" and expects a person at the browser.
        storage = self.config_dir / ".storage"
        storage.mkdir(exist_ok=True)
        onboarding = {"done": ["user", "core_config", "analytics", "integration"]}
        (storage / "onboarding").write_text(
            json.dumps({"version": 4, "minor_version": 1, "key": "onboarding", "data": onboarding}),
            encoding="utf-8",
        )
        run_tool(
            [str(self.hass), "--script", "auth", "-c", str(self.config_dir), "add", USER, PASSWORD],
            what="hass --script auth add",
        )

    def start(self) -> float:
        """Start it and wait until its core is RUNNING; the seconds that took."""
        started = time.monotonic()
        command = [str(self.hass), "-c", str(self.config_dir), "--skip-pip", "--log-no-color"]
        self.record = spawn(command, log_path=self.log_path, cwd=self.config_dir)
        while not self._running():
            assert is_running(self.record), f"Home Assistant exited: {log_tail(self.log_path)}"
            assert "Activating recovery mode" not in self.log_path.read_text(errors="replace"), (
                f"Home Assistant is in recovery mode (an integration failed); see {self.log_path}"
            )
            assert time.monotonic() - started < START_TIMEOUT_S, log_tail(self.log_path)
            time.sleep(0.3)
        return time.monotonic() - started

    def _running(self) -> bool:
        try:
            if not self.token:
                return httpx.get(f"{self.url}/auth/providers", timeout=2).status_code == 200
            return self.get("/api/config").get("state") == "RUNNING"
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        if self.record is not None and is_running(self.record):
            os.killpg(self.record.pid, signal.SIGTERM)
            if not wait_gone(self.record, 60):
                os.killpg(self.record.pid, signal.SIGKILL)
                assert wait_gone(self.record, 10), "Home Assistant did not exit"

    # --- the API, as a user's client uses it -------------------------------------------------

    def get(self, path: str) -> Any:
        response = httpx.get(f"{self.url}{path}", headers=self._auth(), timeout=10)
        return response.raise_for_status().json()

    def post(self, path: str, body: dict[str, Any]) -> Any:
        response = httpx.post(f"{self.url}{path}", json=body, headers=self._auth(), timeout=10)
        return response.raise_for_status().json()

    def delete(self, path: str) -> None:
        httpx.delete(f"{self.url}{path}", headers=self._auth(), timeout=10).raise_for_status()

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def call_service(self, domain: str, service: str, **data: Any) -> None:
        self.post(f"/api/services/{domain}/{service}", data)

    def state(self, entity_id: str) -> dict[str, Any] | None:
        response = httpx.get(f"{self.url}/api/states/{entity_id}", headers=self._auth(), timeout=10)
        if response.status_code == 404:
            return None
        result: dict[str, Any] = response.raise_for_status().json()
        return result

    def log_in(self) -> None:
        """Login flow -> access token -> long-lived token over the WebSocket API."""
        client_id = f"{self.url}/"
        flow = self.post_plain(
            "/auth/login_flow",
            {"client_id": client_id, "handler": ["homeassistant", None], "redirect_uri": client_id},
        )
        done = self.post_plain(
            f"/auth/login_flow/{flow['flow_id']}",
            {"client_id": client_id, "username": USER, "password": PASSWORD},
        )
        assert done["type"] == "create_entry", done
        tokens = httpx.post(
            f"{self.url}/auth/token",
            data={
                "grant_type": "authorization_code",
                "code": done["result"],
                "client_id": client_id,
            },
            timeout=10,
        ).raise_for_status()
        access = tokens.json()["access_token"]
        answer = asyncio.run(
            self.websocket(
                access,
                {
                    "type": "auth/long_lived_access_token",
                    "client_name": "sentio-tests",
                    "lifespan": 30,
                },
            )
        )
        self.token = str(answer["result"])

    def post_plain(self, path: str, body: dict[str, Any]) -> Any:
        return httpx.post(f"{self.url}{path}", json=body, timeout=10).raise_for_status().json()

    async def websocket(self, token: str, command: dict[str, Any]) -> dict[str, Any]:
        """One command over the WebSocket API; its result message."""
        async with aiohttp.ClientSession() as session, session.ws_connect(self.websocket_url) as ws:
            assert (await ws.receive_json())["type"] == "auth_required"
            await ws.send_json({"type": "auth", "access_token": token})
            assert (await ws.receive_json())["type"] == "auth_ok"
            await ws.send_json({"id": 1, **command})
            while True:
                message: dict[str, Any] = await ws.receive_json(timeout=20)
                if message.get("id") == 1:
                    assert message["success"], message
                    return message

    def websocket_command(self, command_type: str) -> list[dict[str, Any]]:
        """The result of a WebSocket command without arguments (blocking: call off the loop)."""
        answer = asyncio.run(self.websocket(self.token, {"type": command_type}))
        return list(answer["result"])

    def entity_registry(self) -> list[dict[str, Any]]:
        return self.websocket_command("config/entity_registry/list")

    def set_up_mqtt(self) -> None:
        """The mqtt integration on the stack's Mosquitto, through its config flow (as the UI)."""
        entries = self.get("/api/config/config_entries/entry?domain=mqtt")
        if entries:
            return
        flow = self.post("/api/config/config_entries/flow", {"handler": "mqtt"})
        if flow["type"] == "form":
            flow = self.post(
                f"/api/config/config_entries/flow/{flow['flow_id']}",
                {"broker": "127.0.0.1", "port": self.mqtt_port},
            )
        assert flow["type"] == "create_entry", json.dumps(flow)
