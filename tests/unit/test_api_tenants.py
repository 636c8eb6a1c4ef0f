"""Every list is filtered to the caller's tenants, and acting on another tenant's alert is
refused: alerts, anomalies (in a time range), the RUL ranking (the views fed by hand)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from sentio_iot.api.app import create_app
from sentio_iot.api.roles import Role
from sentio_iot.api.server import serving
from sentio_iot.config import load_config

PASSWORD = "tenants test password"
S = 1_000_000
T0 = 1_700_000_000 * S


def labels(tenant: str) -> dict[str, str]:
    return {"tenant": tenant, "site": "north", "kind": "pump"}


def alert(device: str, tenant: str, status: str, start: int) -> dict[str, Any]:
    return {
        "alert_id": f"{device}/anomaly/{start}",
        "device_id": device,
        "type": "anomaly",
        "severity": "MINOR",
        "status": status,
        "start_ts": start,
        "end_ts": None,
        "ack_ts": None,
        "count": 3,
        "message": f"{device} anomalies",
        "details": {},
        "labels": labels(tenant),
    }


def anomaly(device: str, tenant: str, ts: int) -> dict[str, Any]:
    return {
        "device_id": device,
        "metric": "temp",
        "ts": ts,
        "value": 99.0,
        "score": 0.97,
        "threshold": 0.9,
        "expected": 20.0,
        "lower": 18.0,
        "upper": 22.0,
        "detector": "novelty",
        "detector_version": "1",
        "labels": labels(tenant),
    }


def rul(device: str, tenant: str, value: float) -> dict[str, Any]:
    return {
        "device_id": device,
        "ts": T0,
        "rul": value,
        "rul_unit": "hours",
        "lower": None,
        "upper": None,
        "model_name": "plant_pump",
        "model_version": "1",
        "window_size": 30,
        "labels": labels(tenant),
    }


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[httpx.Client, dict[str, str]]]:
    config = load_config(data={"api": {"state_dir": str(tmp_path / "api")}})
    app = create_app(config, start_feed=False)
    svc = app.state.services
    svc.users.add("otto", SecretStr(PASSWORD), Role.OPERATOR, ("acme",))
    views = svc.views
    views.apply("alerts", alert("a-1", "acme", "FIRING", T0))
    views.apply("alerts", alert("a-2", "acme", "RESOLVED", T0 + S))
    views.apply("alerts", alert("g-1", "globex", "FIRING", T0 + 2 * S))
    for i, (device, tenant) in enumerate([("a-1", "acme"), ("g-1", "globex"), ("a-2", "acme")]):
        views.apply("anomalies", anomaly(device, tenant, T0 + i * 60 * S))
    for device, tenant, value in [
        ("a-1", "acme", 30.0),
        ("a-2", "acme", 5.0),
        ("g-1", "globex", 1.0),
    ]:
        views.apply("rul", rul(device, tenant, value))
    with serving(app) as url, httpx.Client(base_url=url, timeout=10) as client:
        body = {"username": "otto", "password": PASSWORD}
        token = client.post("/api/v1/auth/login", json=body).json()["access_token"]
        yield client, {"Authorization": f"Bearer {token}"}


def test_lists_hold_only_the_callers_tenants(api: tuple[httpx.Client, dict[str, str]]) -> None:
    client, operator = api
    open_alerts = client.get("/api/v1/alerts", headers=operator).json()
    assert [(a["device_id"], a["status"]) for a in open_alerts["items"]] == [("a-1", "FIRING")]
    every = client.get("/api/v1/alerts", params={"state": "all"}, headers=operator).json()
    assert [a["device_id"] for a in every["items"]] == ["a-2", "a-1"] and every["total"] == 2
    anomalies = client.get("/api/v1/anomalies", headers=operator).json()
    assert [a["device_id"] for a in anomalies["items"]] == ["a-2", "a-1"]  # newest first
    ranged = client.get(
        "/api/v1/anomalies", params={"from": T0 // S + 60, "to": T0 // S + 180}, headers=operator
    ).json()
    assert [a["device_id"] for a in ranged["items"]] == ["a-2"]
    ranking = client.get("/api/v1/rul", headers=operator).json()
    assert [(r["device_id"], r["rul"]) for r in ranking["items"]] == [("a-2", 5.0), ("a-1", 30.0)]
    paged = client.get("/api/v1/rul", params={"limit": 1, "offset": 1}, headers=operator).json()
    assert ([r["device_id"] for r in paged["items"]], paged["total"]) == (["a-1"], 2)


def test_acting_on_another_tenants_alert_is_refused(
    api: tuple[httpx.Client, dict[str, str]],
) -> None:
    client, operator = api
    refused = client.post("/api/v1/alerts/g-1/anomaly/acknowledge", headers=operator)
    assert refused.status_code == 403 and "tenant" in refused.json()["error"]
    missing = client.post("/api/v1/alerts/nope/anomaly/clear", headers=operator)
    assert missing.status_code == 404
