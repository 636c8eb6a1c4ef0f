"""`sentio stack up --secure` for Alertmanager: basic auth on every page and API, on a real
Alertmanager started by the stack's code (``Stack(..., secure=True, only={"alertmanager"})``)
in its own home on a free port (the shared stack's build linked in)."""

from __future__ import annotations

import shlex
import stat
from collections.abc import Iterator

import httpx
import pytest
from stream_worker import free_port

from sentio_iot.config import SentioConfig, load_config
from sentio_iot.stack import Stack
from sentio_iot.stack.alertmanager_secure import SecureAlertmanagerFiles

SAID: list[str] = []  # what the module's `up` printed


@pytest.fixture(scope="module")
def stack(sentio_config: SentioConfig, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    home = tmp_path_factory.mktemp("secure-alertmanager")
    (home / "bin").symlink_to(sentio_config.stack.home / "bin", target_is_directory=True)
    settings = sentio_config.stack.model_copy(
        update={"home": home, "alertmanager_port": free_port()}
    )
    secure = Stack(settings, secure=True, only={"alertmanager"})
    secure.up(progress=SAID.append)
    try:
        yield secure
    finally:
        secure.down()


def test_every_request_needs_the_generated_password(stack: Stack) -> None:
    files = SecureAlertmanagerFiles(stack.paths)
    password = files.password()
    url = f"http://127.0.0.1:{stack.settings.alertmanager_port}"
    [status] = stack.status()
    assert (status.healthy, status.detail) == (True, "basic auth; ok")
    with httpx.Client(base_url=url, timeout=10, trust_env=False) as client:
        for path in ("/-/ready", "/api/v2/status", "/api/v2/alerts", "/"):
            assert client.get(path).status_code == 401, path
            assert client.get(path, auth=("sentio", "wrong-password")).status_code == 401, path
        alert = [{"labels": {"alertname": "Hot", "device_id": "pump-1"}}]
        assert client.post("/api/v2/alerts", json=alert).status_code == 401
        posted = client.post("/api/v2/alerts", json=alert, auth=("sentio", password))
        assert posted.status_code == 200
        alerts = client.get("/api/v2/alerts", auth=("sentio", password)).json()
    assert [a["labels"]["device_id"] for a in alerts] == ["pump-1"]
    for path in (files.password_path, files.web_config, files.client_env):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    said = "\n".join(SAID)
    assert password not in said and password not in files.web_config.read_text()
    assert str(files.client_env) in said


def test_the_client_env_gives_the_alertmanager_sink_its_credentials(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = SecureAlertmanagerFiles(stack.paths)
    key, value = files.client_env.read_text().strip().split("=", 1)
    monkeypatch.setenv(key, shlex.split(value)[0])
    auth = load_config(None).sinks.alertmanager.auth.basic_auth
    assert auth is not None and auth.get_secret_value() == f"sentio:{files.password()}"
