"""GET /api/v1/alerts/{device}/{type}/history: every command the views hold for the alert
(acknowledge, an Alertmanager silence imported as an acknowledgement, clear) with user and
comment, and the occurrence's start and end, oldest first; alerts made by the real alert
engine, the views fed as the Kafka feed feeds them. Another tenant's alert is refused and
a command never becomes a device of the fleet."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from sentio_iot.api.app import apply_batch, create_app
from sentio_iot.api.roles import Role
from sentio_iot.api.server import serving
from sentio_iot.api.services import Services
from sentio_iot.api.views import COMMANDS, COMMANDS_KEPT
from sentio_iot.config import load_config
from sentio_iot.settings.alerts import AlertSettings
from sentio_iot.streams.alerting.engine import AlertEngine

PASSWORD = "history test password"
S = 1_000_000
T0 = 1_700_000_000 * S
SILENCE = "silenced in Alertmanager (silence 4f2a): night shift"


def anomaly(ts: int) -> dict[str, Any]:
    return {
        "device_id": "pump-1",
        "metric": "temp",
        "ts": ts,
        "value": 99.0,
        "score": 0.99,
        "threshold": 0.9,
        "expected": 20.0,
        "lower": 18.0,
        "upper": 22.0,
        "detector": "novelty",
        "detector_version": "1",
        "labels": {"tenant": "acme", "site": "north"},
    }


def command(action: str, ts: int, user: str, comment: str = "") -> dict[str, Any]:
    return {
        "command_id": f"c-{ts}",
        "device_id": "pump-1",
        "type": "anomaly",
        "action": action,
        "alert_id": None,
        "ts": ts,
        "user": user,
        "comment": comment,
    }


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[str, Services]]:
    config = load_config(data={"api": {"state_dir": str(tmp_path / "api")}})
    app = create_app(config, start_feed=False)
    svc: Services = app.state.services
    svc.users.add("vic", SecretStr(PASSWORD), Role.VIEWER, ("acme",))
    svc.users.add("eve", SecretStr(PASSWORD), Role.VIEWER, ("globex",))
    with serving(app) as url:
        yield url, svc


def headers(url: str, user: str) -> dict[str, str]:
    login = {"username": user, "password": PASSWORD}
    token = httpx.post(f"{url}/api/v1/auth/login", json=login).json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


def test_the_history_holds_every_command_and_the_occurrence(
    api: tuple[str, Services],
) -> None:
    url, svc = api
    engine = AlertEngine(AlertSettings.model_validate({"anomaly": {"repeat": 1, "suppress_s": 0}}))
    slot = engine.new_slot("pump-1", "anomaly")
    commands = [
        command("ACK", T0 + 1 * S, "olga", "on my way"),
        command("ACK", T0 + 2 * S, "sam", SILENCE),
        command("CLEAR", T0 + 3 * S, "ada", "valve replaced"),
    ]
    batch: list[tuple[str, dict[str, Any]]] = []
    batch += [("alerts", a) for a in engine.on_anomaly(slot, anomaly(T0), T0)]
    for c in commands:
        batch.append((COMMANDS, c))
        batch += [("alerts", a) for a in engine.on_command(slot, c)]
    loop = svc.loop
    assert loop is not None
    loop.call_soon_threadsafe(apply_batch, svc, batch)

    vic = headers(url, "vic")
    answer = httpx.get(f"{url}/api/v1/alerts/pump-1/anomaly/history", headers=vic)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["alert"]["status"] == "RESOLVED"
    alert_id = body["alert"]["alert_id"]
    seen = [(e["ts"], e["event"], e["user"], e["comment"]) for e in body["entries"]]
    assert seen == [
        (T0, "FIRING", "", ""),
        (T0 + 1 * S, "ACK", "olga", "on my way"),
        (T0 + 2 * S, "ACK", "sam", SILENCE),
        (T0 + 3 * S, "CLEAR", "ada", "valve replaced"),
        (T0 + 3 * S, "RESOLVED", "ada", ""),
    ]
    assert [e["command_id"] for e in body["entries"][1:4]] == [c["command_id"] for c in commands]
    assert body["entries"][0]["alert_id"] == alert_id
    # commands have no tenant: they are shown under their alert's, never as devices
    devices = httpx.get(f"{url}/api/v1/devices", headers=vic).json()["items"]
    assert [d["device_id"] for d in devices] == ["pump-1"]

    eve = headers(url, "eve")
    refused = httpx.get(f"{url}/api/v1/alerts/pump-1/anomaly/history", headers=eve)
    assert refused.status_code == 403
    assert "tenant" in refused.json()["error"]
    missing = httpx.get(f"{url}/api/v1/alerts/pump-9/anomaly/history", headers=vic)
    assert missing.status_code == 404
    assert httpx.get(f"{url}/api/v1/alerts/pump-1/anomaly/history").status_code == 401


def test_the_views_keep_a_bounded_history_per_alert(api: tuple[str, Services]) -> None:
    _url, svc = api
    for i in range(COMMANDS_KEPT + 5):
        svc.views.apply_command(command("ACK", T0 + i, "olga"))
    kept = svc.views.commands["alerts/pump-1/anomaly"]
    assert len(kept) == COMMANDS_KEPT
    assert kept[0]["ts"] == T0 + 5  # the oldest went first


def test_earlier_occurrences_keep_their_start_and_end(api: tuple[str, Services]) -> None:
    url, svc = api
    engine = AlertEngine(AlertSettings.model_validate({"anomaly": {"repeat": 1, "suppress_s": 0}}))
    slot = engine.new_slot("pump-1", "anomaly")
    clear = command("CLEAR", T0 + 5 * S, "ada")
    batch: list[tuple[str, dict[str, Any]]] = []
    batch += [("alerts", a) for a in engine.on_anomaly(slot, anomaly(T0), T0)]
    batch.append((COMMANDS, clear))
    batch += [("alerts", a) for a in engine.on_command(slot, clear)]
    second = engine.on_anomaly(slot, anomaly(T0 + 60 * S), T0 + 60 * S)
    assert second and second[-1]["alert_id"] != batch[0][1]["alert_id"]  # a new occurrence
    batch += [("alerts", a) for a in second]
    loop = svc.loop
    assert loop is not None
    loop.call_soon_threadsafe(apply_batch, svc, batch)

    body = httpx.get(
        f"{url}/api/v1/alerts/pump-1/anomaly/history", headers=headers(url, "vic")
    ).json()
    first_id, second_id = batch[0][1]["alert_id"], second[-1]["alert_id"]
    seen = [(e["ts"], e["event"], e["user"], e["alert_id"]) for e in body["entries"]]
    assert seen == [
        (T0, "FIRING", "", first_id),
        (T0 + 5 * S, "CLEAR", "ada", None),
        (T0 + 5 * S, "RESOLVED", "ada", first_id),
        (T0 + 60 * S, "FIRING", "", second_id),
    ]
    assert body["alert"]["alert_id"] == second_id
