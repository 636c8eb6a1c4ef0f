"""The secure registry's files and realm, Keycloak's home, and how `sentio run` hands each
child its role's registry client. (Keycloak and Apicurio themselves, with real callers:
tests/integration/test_stack_secure_registry.py.)"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from pydantic import SecretStr

from sentio_iot.cli.main import cli
from sentio_iot.config import SentioConfig, StackSettings, load_config
from sentio_iot.pipeline.secure_roles import SecureRoles, as_admin, registry_settings
from sentio_iot.secret_values import MASK
from sentio_iot.stack import Stack
from sentio_iot.stack.keycloak import KeycloakService
from sentio_iot.stack.paths import StackPaths
from sentio_iot.stack.process import ProcessRecord, process_start_time, write_record
from sentio_iot.stack.registry import RegistryService
from sentio_iot.stack.registry_secure import (
    ROLE_GRANTS,
    SETTING,
    SecureRegistryFiles,
    client_id,
    role_settings,
)


@pytest.fixture
def files(tmp_path: Path) -> SecureRegistryFiles:
    secured = SecureRegistryFiles(StackPaths(tmp_path))
    secured.ensure()
    return secured


def test_secrets_are_generated_once_private_and_kept(files: SecureRegistryFiles) -> None:
    first = {role: files.secret(role) for role in ROLE_GRANTS}
    admin_password = files.admin_password()
    assert len({*first.values(), admin_password}) == len(ROLE_GRANTS) + 1
    assert all(len(secret) >= 32 for secret in first.values())
    files.ensure()
    assert {role: files.secret(role) for role in ROLE_GRANTS} == first
    assert files.admin_password() == admin_password
    for role in ROLE_GRANTS:
        for path in (files.secret_path(role), files.client_env(role)):
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE(files.credentials.stat().st_mode) == 0o700
    # The env file is what a shell sources for a worker of that role.
    out = subprocess.run(
        ["bash", "-c", f'set -a; . "{files.client_env("sink")}"; printf %s "${SETTING}"'],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out == f"sentio-sink:{first['sink']}"


def test_the_realm_has_one_client_per_role_with_its_grant(files: SecureRegistryFiles) -> None:
    realm = files.realm()
    assert realm["realm"] == "sentio"
    assert {r["name"] for r in realm["roles"]["realm"]} == {
        "sr-admin",
        "sr-developer",
        "sr-readonly",
    }
    clients = {c["clientId"]: c for c in realm["clients"]}
    assert set(clients) == {f"sentio-{role}" for role in ROLE_GRANTS}
    for role in ROLE_GRANTS:
        client = clients[client_id(role)]
        assert client["secret"] == files.secret(role)
        assert client["serviceAccountsEnabled"] and not client["publicClient"]
        assert not client["standardFlowEnabled"] and not client["directAccessGrantsEnabled"]
    grants = {u["serviceAccountClientId"]: u["realmRoles"] for u in realm["users"]}
    assert grants == {
        "sentio-admin": ["sr-admin"],
        "sentio-producer": ["sr-developer"],
        "sentio-streams": ["sr-developer"],
        "sentio-api": ["sr-developer"],  # it registers the alert-commands schema
        "sentio-sink": ["sr-readonly"],
    }


def test_keycloak_home_holds_the_realm_and_starts_anew_when_it_changes(tmp_path: Path) -> None:
    settings = StackSettings(home=tmp_path)
    keycloak = KeycloakService(settings, StackPaths(tmp_path))
    keycloak.prepare(lambda _line: None)
    home = keycloak.kc_home
    realm = home / "data" / "import" / "sentio-realm.json"
    assert stat.S_IMODE(realm.stat().st_mode) == 0o600
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert (home / "lib").resolve() == (keycloak.root / "lib").resolve()
    database = home / "data" / "h2"
    database.mkdir()
    (database / "keycloakdb.mv.db").write_text("imported")
    said: list[str] = []
    keycloak.prepare(said.append)  # same realm: the database stays
    assert (database / "keycloakdb.mv.db").is_file() and said == []
    keycloak.files.secret_path("sink").unlink()  # a new secret on the next start
    keycloak.prepare(said.append)
    assert not database.exists()
    assert said == ["keycloak: the realm changed; its database starts anew"]
    # Never a secret on its command line: the admin's password is in its environment.
    if keycloak.java() is not None:
        argv = " ".join(keycloak.command())
        assert keycloak.files.admin_password() not in argv
        assert "--db-url=jdbc:h2:file:" in argv and "AUTO_SERVER" not in argv
    assert keycloak.environment()["KC_BOOTSTRAP_ADMIN_PASSWORD"] == keycloak.files.admin_password()


def test_keycloak_is_a_service_only_with_secure(tmp_path: Path) -> None:
    settings = StackSettings(home=tmp_path)
    assert "keycloak" not in [s.name for s in Stack(settings).services]
    assert "keycloak" in [s.name for s in Stack(settings, secure=True).services]
    registry = next(s for s in Stack(settings, secure=True).services if s.name == "registry")
    assert isinstance(registry, RegistryService) and registry.secure
    # A Keycloak that runs (a live process in its pid file) is seen by a plain `status` and
    # `down`; a stale pid file is not.
    paths = StackPaths(tmp_path)
    paths.pid("keycloak").parent.mkdir(parents=True, exist_ok=True)
    live = ProcessRecord(os.getpid(), process_start_time(os.getpid()) or 0, ("java",))
    write_record(paths.pid("keycloak"), live)
    assert "keycloak" in [s.name for s in Stack(settings).services]
    write_record(paths.pid("keycloak"), ProcessRecord(live.pid, live.start_time + 1, ("java",)))
    assert "keycloak" not in [s.name for s in Stack(settings).services]


def test_the_registry_flags_turn_oidc_on_without_a_secret(tmp_path: Path) -> None:
    settings = StackSettings(home=tmp_path, keycloak_port=18180)
    registry = RegistryService(settings, StackPaths(tmp_path))
    registry.secure = True
    flags = registry._secure_flags()
    realm = "http://127.0.0.1:18180/realms/sentio"
    assert "-Dquarkus.oidc.tenant-enabled=true" in flags
    assert f"-Dquarkus.oidc.auth-server-url={realm}" in flags
    assert f"-Dquarkus.oidc.token-path={realm}/protocol/openid-connect/token" in flags
    assert "-Dapicurio.authn.basic-client-credentials.enabled=true" in flags
    assert "-Dapicurio.auth.role-based-authorization=true" in flags
    assert "-Dapicurio.auth.anonymous-read-access.enabled=false" in flags


def config_for(home: Path, url: str, **registry: str) -> SentioConfig:
    return load_config(
        data={"stack": {"home": str(home)}, "schema_registry": {"url": url, **registry}}
    )


def test_children_get_their_roles_registry_client_only_for_the_stacks_registry(
    files: SecureRegistryFiles, tmp_path: Path
) -> None:
    ours = "http://127.0.0.1:8081/apis/ccompat/v7"
    paths = StackPaths(tmp_path)
    assert role_settings(paths) == {}  # the registry did not start with --secure
    files.marker.parent.mkdir(parents=True, exist_ok=True)
    files.marker.touch()
    expected = {role: f"sentio-{role}:{files.secret(role)}" for role in ROLE_GRANTS}
    assert registry_settings(config_for(tmp_path, ours), paths) == expected
    localhost = "http://localhost:8081/apis/ccompat/v7"
    assert registry_settings(config_for(tmp_path, localhost), paths) == expected
    # Another registry never gets the stack's secrets; a configuration's own credentials win.
    for url in ("http://10.0.0.1:8081/apis/ccompat/v7", "http://127.0.0.1:9999/apis/ccompat/v7"):
        assert registry_settings(config_for(tmp_path, url), paths) == {}
    own = config_for(tmp_path, ours, basic_auth="me:mine")
    assert registry_settings(own, paths) == {}

    config = config_for(tmp_path, ours)
    roles = SecureRoles(
        tmp_path,
        {"admin": {"bootstrap_servers": "127.0.0.1:9092"}, "sink": {}},
        registry=expected,
    )
    sink_env = dict(roles.env("sink", config.kafka))
    assert sink_env[SETTING] == expected["sink"]
    run = as_admin(config, roles)
    assert isinstance(run.schema_registry.basic_auth, SecretStr)
    assert run.schema_registry.basic_auth.get_secret_value() == expected["admin"]
    assert expected["admin"] not in repr(run.schema_registry)


def test_config_show_masks_the_registry_secret(
    files: SecureRegistryFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = files.basic_auth("producer")
    monkeypatch.setenv(SETTING, secret)
    shown = CliRunner().invoke(cli, ["config", "show"])
    assert shown.exit_code == 0, shown.output
    assert secret not in shown.output and files.secret("producer") not in shown.output
    assert f"basic_auth: '{MASK}'" in shown.output
