"""HTTPS and WSS on the API's port (api.tls), with a certificate from a test CA: real clients
that trust only that CA sign in over HTTPS and over WSS, a client that does not trust it is
refused, plain HTTP gets no answer on the TLS port, and each unusable setting is a one-line
ConfigError naming its field (from `sentio api` too)."""

from __future__ import annotations

import json
import socket
import ssl
import stat
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from click.testing import CliRunner
from pki import Issued, certificate_authority, issue
from pydantic import SecretStr
from websockets.sync.client import connect

from sentio_iot.api.app import create_app
from sentio_iot.api.first_admin import notice
from sentio_iot.api.roles import Role
from sentio_iot.api.server import serving
from sentio_iot.api.services import Services
from sentio_iot.api.tls import server_context
from sentio_iot.cli.main import cli
from sentio_iot.config import load_config
from sentio_iot.errors import ConfigError
from sentio_iot.pipeline.plant import plant_entry
from sentio_iot.pipeline.probes import probe_workers
from sentio_iot.pipeline.processes import ChildSpec
from sentio_iot.pipeline.run_config import write_run_config
from sentio_iot.pipeline.workers import pipeline_children
from sentio_iot.settings.api import ApiTlsSettings

PASSWORD = "a TLS test password"
KEY_PASSWORD = "key password 42"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[Issued, Issued, Issued]:
    folder = tmp_path_factory.mktemp("pki")
    ca = certificate_authority(folder)
    plain = issue(ca, folder, "api")
    encrypted = issue(ca, folder, "api-encrypted", key_password=KEY_PASSWORD)
    return ca, plain, encrypted


@pytest.fixture
def tls_api(tmp_path: Path, pki: tuple[Issued, Issued, Issued]) -> Iterator[str]:
    _ca, _plain, leaf = pki
    tls = {
        "cert_file": str(leaf.cert_path),
        "key_file": str(leaf.key_path),
        "key_password": KEY_PASSWORD,
    }
    config = load_config(data={"api": {"state_dir": str(tmp_path / "api"), "tls": tls}})
    app = create_app(config, start_feed=False)
    svc: Services = app.state.services
    svc.users.add("vic", SecretStr(PASSWORD), Role.VIEWER, ("acme",))
    with serving(app) as url:
        yield url


def test_https_and_wss_work_and_plain_http_is_not_served(
    tls_api: str, pki: tuple[Issued, Issued, Issued]
) -> None:
    ca = pki[0]
    assert tls_api.startswith("https://127.0.0.1:")
    trusting = ssl.create_default_context(cafile=str(ca.cert_path))
    with httpx.Client(verify=trusting) as client:
        login = {"username": "vic", "password": PASSWORD}
        response = client.post(f"{tls_api}/api/v1/auth/login", json=login)
        assert response.status_code == 200, response.text
        token = response.json()["access_token"]
        me = client.get(f"{tls_api}/api/v1/devices", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 200
        assert me.json()["items"] == []
    # a client trusting only the system's CAs refuses the test CA's certificate
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"{tls_api}/api/health")

    wss = tls_api.replace("https://", "wss://") + "/api/v1/live"
    with connect(wss, ssl=trusting) as ws:
        ws.send(json.dumps({"type": "auth", "token": token}))
        ready = json.loads(ws.recv(timeout=5))
        assert ready["type"] == "ready"
        assert ready["user"] == "vic"

    # plain HTTP on the TLS port: no HTTP answer (the TLS handshake fails, the socket closes)
    with pytest.raises(httpx.HTTPError):
        httpx.get(tls_api.replace("https://", "http://") + "/api/health", timeout=5)
    parts = urlsplit(tls_api)
    assert parts.hostname is not None and parts.port is not None
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as raw:
        raw.sendall(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        answer = b""
        while chunk := raw.recv(4096):
            answer += chunk
    assert not answer.startswith(b"HTTP/")
    assert b"views_ready" not in answer


def settings(**fields: object) -> ApiTlsSettings:
    return ApiTlsSettings.model_validate(fields)


def test_each_unusable_setting_names_its_field(
    tmp_path: Path, pki: tuple[Issued, Issued, Issued]
) -> None:
    ca, plain, encrypted = pki
    missing = tmp_path / "nope.pem"
    cases = [
        (
            settings(cert_file=missing, key_file=plain.key_path),
            f"api.tls.cert_file: {missing} does not exist; give the path of a PEM file",
        ),
        (
            settings(cert_file=plain.cert_path, key_file=missing),
            f"api.tls.key_file: {missing} does not exist; give the path of a PEM file",
        ),
        (
            settings(cert_file=tmp_path, key_file=plain.key_path),
            f"api.tls.cert_file: {tmp_path} is a folder; give the path of a PEM file",
        ),
        (
            settings(cert_file=plain.key_path, key_file=plain.key_path),
            f"api.tls.cert_file: {plain.key_path} is not a PEM certificate",
        ),
        (
            settings(cert_file=plain.cert_path, key_file=plain.cert_path),
            f"api.tls.key_file: {plain.cert_path} is not a PEM private key",
        ),
        (
            settings(cert_file=encrypted.cert_path, key_file=encrypted.key_path),
            f"api.tls.key_password: {encrypted.key_path} is encrypted; set key_password",
        ),
        (
            settings(
                cert_file=encrypted.cert_path, key_file=encrypted.key_path, key_password="wrong"
            ),
            f"api.tls.key_password: it does not decrypt {encrypted.key_path}",
        ),
        (
            settings(cert_file=plain.cert_path, key_file=plain.key_path, key_password="x"),
            f"api.tls.key_password: {plain.key_path} is not encrypted; remove key_password",
        ),
        (
            settings(cert_file=ca.cert_path, key_file=plain.key_path),
            f"api.tls.key_file: {plain.key_path} cannot be used with cert_file {ca.cert_path}",
        ),
    ]
    for tls, message in cases:
        with pytest.raises(ConfigError) as error:
            server_context(tls)
        assert str(error.value).startswith(message), str(error.value)
        assert "\n" not in str(error.value)
        assert "wrong" not in str(error.value)  # a password never appears in an error
    assert server_context(settings(cert_file=plain.cert_path, key_file=plain.key_path))


def test_half_a_setting_and_a_bad_file_fail_the_command(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="key_file is required"):
        ApiTlsSettings.model_validate({"cert_file": "/x.pem"})
    config = tmp_path / "sentio.yaml"
    missing = tmp_path / "missing.pem"
    config.write_text(
        f"api:\n  state_dir: {tmp_path / 'api'}\n  tls:\n    cert_file: {missing}\n"
        f"    key_file: {missing}\n    key_password: hush-hush\n"
    )
    result = CliRunner().invoke(cli, ["api", "-c", str(config)])
    assert result.exit_code == 2, result.output
    assert f"api.tls.cert_file: {missing} does not exist" in result.output
    assert "hush-hush" not in result.output
    shown = CliRunner().invoke(cli, ["config", "show", "-c", str(config)])
    assert "hush-hush" not in shown.output


def test_sentio_run_probes_and_names_the_tls_api(
    tls_api: str, pki: tuple[Issued, Issued, Issued]
) -> None:
    leaf = pki[2]
    port = urlsplit(tls_api).port
    assert port is not None
    pinned = ChildSpec("api", ("sentio", "api"), port=port, tls_cert=str(leaf.cert_path))
    plain = ChildSpec("api-plain", ("sentio", "api"), port=port)
    assert pinned.health_url == f"https://127.0.0.1:{port}/health"
    probes = probe_workers([pinned, plain])
    assert probes["api"].healthy
    assert any(s.name == "sentio_api_view_records_total" for s in probes["api"].samples)
    assert not probes["api-plain"].healthy  # http:// on the TLS port gets no answer
    # a certificate other than the API's own is not trusted by the pinned probe
    other = ChildSpec("api", ("sentio", "api"), port=port, tls_cert=str(pki[1].cert_path))
    assert not probe_workers([other])["api"].healthy
    config = load_config(
        data={
            "api": {
                "host": "0.0.0.0",
                "port": 8443,
                "tls": {"cert_file": str(leaf.cert_path), "key_file": str(leaf.key_path)},
            }
        }
    )
    assert config.api.base_url() == "https://127.0.0.1:8443"
    assert notice(config.api.base_url(), None)[0] == "Dashboard: https://127.0.0.1:8443/"


def test_sentio_run_hands_its_api_the_tls_settings(
    tmp_path: Path, pki: tuple[Issued, Issued, Issued]
) -> None:
    leaf = pki[2]
    tls = {
        "cert_file": str(leaf.cert_path),
        "key_file": str(leaf.key_path),
        "key_password": KEY_PASSWORD,
    }
    config = load_config(data={"api": {"state_dir": str(tmp_path / "api"), "tls": tls}})
    plant = plant_entry(2, 1.0, tmp_path / "truth.csv", datetime.now(UTC))
    path = tmp_path / "run" / "config.yaml"
    child = write_run_config(config, path, plant)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # it holds the key's password
    assert child.api.tls == config.api.tls
    assert server_context(child.api.tls)  # the API child can decrypt its key
    [api] = [s for s in pipeline_children(child, path, stream_workers=1) if s.name == "api"]
    assert api.tls_cert == str(leaf.cert_path)
    assert api.health_url == f"https://127.0.0.1:{child.api.port}/health"
