"""`sentio stack up --secure` for VictoriaMetrics and VictoriaLogs without running them: the
password in the environment and never on the command line, the marker a plain start removes,
what `sentio run`'s children and the API's reads get. (On real servers:
tests/integration/test_stack_secure_victoria.py.)"""

from __future__ import annotations

import base64
import stat
from pathlib import Path
from types import SimpleNamespace

import pytest

from sentio_iot.api.services import Services
from sentio_iot.config import load_config
from sentio_iot.pipeline.secure_roles import secure_roles
from sentio_iot.stack.alertmanager_secure import SecureAlertmanagerFiles
from sentio_iot.stack.kafka_secure import SecureKafkaFiles
from sentio_iot.stack.paths import StackPaths
from sentio_iot.stack.victoria_secure import PASSWORD_ENV, SecureVictoriaFiles, client_settings
from sentio_iot.stack.victorialogs import VictoriaLogsService
from sentio_iot.stack.victoriametrics import VictoriaMetricsService

BOOTSTRAP = "127.0.0.1:39092"


def services(home: Path, secure: bool) -> list[VictoriaMetricsService | VictoriaLogsService]:
    settings = load_config(data={"stack": {"home": str(home)}}).stack
    paths = StackPaths(home)
    found: list[VictoriaMetricsService | VictoriaLogsService] = [
        VictoriaMetricsService(settings, paths),
        VictoriaLogsService(settings, paths),
    ]
    for service in found:
        service.secure = secure
        service.prepare(lambda _line: None)
    return found


def test_the_password_goes_by_environment_never_the_command_line(tmp_path: Path) -> None:
    for service in services(tmp_path, secure=True):
        files = service.secure_files
        password = files.password()
        assert len(password) >= 32
        assert stat.S_IMODE(files.password_path.stat().st_mode) == 0o600
        assert service.environment() == {PASSWORD_ENV: password}
        assert files.flags() == [
            "-envflag.enable",
            "-envflag.prefix=SENTIO_STACK_HTTPAUTH_",
            "-httpAuth.username=sentio",
        ]
        if isinstance(service, VictoriaLogsService):  # victoria-metrics' needs its binary
            line = service.command()
            assert line[-3:] == files.flags() and password not in " ".join(line)
        user, _, secret = base64.b64decode(files.authorization().split()[1]).decode().partition(":")
        assert (user, secret) == ("sentio", password)


def test_the_password_is_kept_and_a_plain_start_drops_the_marker(tmp_path: Path) -> None:
    first = {s.name: s.secure_files.password() for s in services(tmp_path, secure=True)}
    again = {s.name: s.secure_files.password() for s in services(tmp_path, secure=True)}
    assert first == again and first["victoriametrics"] != first["victorialogs"]
    assert len(client_settings(StackPaths(tmp_path))) == 4
    plain = services(tmp_path, secure=False)
    assert [s.environment() for s in plain] == [{}, {}]
    assert not any(s.secure_files.marker.exists() for s in plain)
    assert client_settings(StackPaths(tmp_path)) == ()


@pytest.fixture
def secure_home(tmp_path: Path) -> Path:
    """Kafka's client files (as `sentio stack up --secure` leaves them) and both services'."""
    paths = StackPaths(tmp_path)
    files = SecureKafkaFiles(paths)
    files.ensure()
    files.write_client_files(BOOTSTRAP)
    services(tmp_path, secure=True)
    return tmp_path


def test_every_child_of_sentio_run_gets_both_services_credentials(secure_home: Path) -> None:
    config = load_config(data={"stack": {"home": str(secure_home)}})
    roles = secure_roles(config, secure=True)
    assert roles is not None
    paths = StackPaths(secure_home)
    vm = SecureVictoriaFiles(paths, "victoriametrics").password()
    vl = SecureVictoriaFiles(paths, "victorialogs").password()
    for role in ("producer", "streams", "sink", "api"):
        env = dict(roles.env(role, config.kafka))
        assert env["SENTIO_SINKS__VICTORIAMETRICS__AUTH__BASIC_AUTH"] == f"sentio:{vm}"
        assert env["SENTIO_API__HISTORY__AUTH__BASIC_AUTH"] == f"sentio:{vm}"
        assert env["SENTIO_SINKS__LOKI__AUTH__BASIC_AUTH"] == f"sentio:{vl}"
        assert env["SENTIO_API__HISTORY__LOGS_AUTH__BASIC_AUTH"] == f"sentio:{vl}"
        assert env["SENTIO_KAFKA__SASL_USERNAME"] == role


def test_the_api_reads_history_with_its_own_credentials_else_the_sinks() -> None:
    def headers(data: dict[str, object]) -> tuple[dict[str, str], dict[str, str]]:
        svc = SimpleNamespace(config=load_config(data=data))
        return Services.history_headers.fget(svc), Services.logs_headers.fget(svc)  # type: ignore[attr-defined]

    basic = "Basic " + base64.b64encode(b"sentio:vm-pass").decode()
    sink = {"sinks": {"victoriametrics": {"auth": {"basic_auth": "sentio:vm-pass"}}}}
    assert headers(sink) == ({"Authorization": basic}, {})
    own_url = {**sink, "api": {"history": {"url": "http://elsewhere:8428"}}}
    assert headers(own_url) == ({}, {})  # another backend: not the sink's credentials
    logs = {"api": {"history": {"logs_auth": {"bearer_token": "t0k"}}}}
    assert headers(logs) == ({}, {"Authorization": "Bearer t0k"})


def test_with_alertmanager_secured_the_children_get_its_credentials_too(
    secure_home: Path,
) -> None:
    config = load_config(data={"stack": {"home": str(secure_home)}})
    paths = StackPaths(secure_home)
    alertmanager = SecureAlertmanagerFiles(paths)
    roles = secure_roles(config, secure=True)
    assert roles is not None
    assert "SENTIO_SINKS__ALERTMANAGER__AUTH__BASIC_AUTH" not in dict(
        roles.env("sink", config.kafka)
    )
    alertmanager.ensure()  # what a secure start of Alertmanager writes
    roles = secure_roles(config, secure=True)
    assert roles is not None
    env = dict(roles.env("sink", config.kafka))
    assert (
        env["SENTIO_SINKS__ALERTMANAGER__AUTH__BASIC_AUTH"] == f"sentio:{alertmanager.password()}"
    )
    alertmanager.web_config.unlink()  # a plain start removes it: no credentials handed out
    roles = secure_roles(config, secure=True)
    assert roles is not None
    assert "SENTIO_SINKS__ALERTMANAGER__AUTH__BASIC_AUTH" not in dict(
        roles.env("sink", config.kafka)
    )
