"""/api/v1/models on the real model store (the shipped models, a user store in tmp_path):
viewers list, admins promote and roll back, operators are refused."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from sentio_iot.api.app import create_app
from sentio_iot.api.roles import Role
from sentio_iot.api.server import serving
from sentio_iot.config import load_config

PASSWORD = "model store password"


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[httpx.Client, dict[str, str]]]:
    config = load_config(
        data={
            "api": {"state_dir": str(tmp_path / "api")},
            "streams": {"rul": {"store_dir": str(tmp_path / "models")}},
        }
    )
    app = create_app(config, start_feed=False)
    app.state.services.users.add("ada", SecretStr(PASSWORD), Role.ADMIN, ("*",))
    app.state.services.users.add("otto", SecretStr(PASSWORD), Role.OPERATOR, ("*",))
    with serving(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        tokens = {}
        for user in ("ada", "otto"):
            body = {"username": user, "password": PASSWORD}
            tokens[user] = client.post("/api/v1/auth/login", json=body).json()["access_token"]
        yield client, tokens


def current(client: httpx.Client, token: str, name: str) -> list[int]:
    listed = client.get("/api/v1/models", headers={"Authorization": f"Bearer {token}"}).json()
    return [m["version"] for m in listed if m["name"] == name and m["current"]]


def test_admin_promotes_and_rolls_back_and_an_operator_may_not(
    api: tuple[httpx.Client, dict[str, str]],
) -> None:
    client, tokens = api
    admin = {"Authorization": f"Bearer {tokens['ada']}"}
    operator = {"Authorization": f"Bearer {tokens['otto']}"}
    listed = client.get("/api/v1/models", headers=operator).json()
    fd001 = [
        (m["version"], m["current"], m["shipped"]) for m in listed if m["name"] == "cmapss_fd001"
    ]
    assert fd001 == [(1, False, True), (2, True, True)]
    assert {"plant_pump", "plant_motor", "plant_press"} <= {m["name"] for m in listed}

    refused = client.post("/api/v1/models/cmapss_fd001/1/promote", headers=operator)
    assert refused.status_code == 403 and "needs role admin" in refused.json()["error"]
    promoted = client.post("/api/v1/models/cmapss_fd001/1/promote", headers=admin)
    assert promoted.status_code == 200, promoted.text
    assert (promoted.json()["version"], promoted.json()["current"]) == (1, True)
    assert current(client, tokens["ada"], "cmapss_fd001") == [1]
    rolled = client.post("/api/v1/models/cmapss_fd001/rollback", headers=admin)
    assert (rolled.status_code, rolled.json()["version"]) == (200, 2)
    assert current(client, tokens["ada"], "cmapss_fd001") == [2]

    missing = client.post("/api/v1/models/cmapss_fd001/99/promote", headers=admin)
    assert missing.status_code == 404 and "99" in missing.json()["error"]
