"""The Compose registry's login, run for real without Docker: the realm `sentio compose secrets`
generates, imported by the stack's Keycloak (keycloak.py, the same 26.5.6), and the real
Apicurio 3.0.9 configured only by the `registry` service's environment of docker-compose.yml
(Keycloak's address moved to a free local port, the H2 file to a temporary folder). Each
worker's client, read from its own folder of the generated secrets volume, has its role's
rights; anonymous callers get nothing. Docker itself is not run (the images, Keycloak's
entrypoint and its health check are checked by rendering: tests/unit/test_deploy.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml
from pydantic import SecretStr
from stream_worker import free_port

from sentio_iot.config import SchemaRegistrySettings, SentioConfig
from sentio_iot.errors import RegistryError
from sentio_iot.registry import SchemaRegistry
from sentio_iot.stack import Stack
from sentio_iot.stack.compose_secrets import (
    ACCESS_ROLE,
    ACCESS_SERVICE,
    KEYCLOAK_ADMIN_PASSWORD,
    REGISTRY_BASIC_AUTH,
    WORKERS,
    ComposeSecrets,
)
from sentio_iot.stack.keycloak import REALM_FILE, KeycloakService
from sentio_iot.stack.paths import StackPaths
from sentio_iot.stack.prerequisites import find_java
from sentio_iot.stack.registry_secure import REALM, ROLE_GRANTS

pytestmark = pytest.mark.timeout(400)

ROOT = Path(__file__).resolve().parents[2]
CCOMPAT = "/apis/ccompat/v7"
COMPOSE_REALM = f"http://keycloak:8080/realms/{REALM}"
SCHEMA = {
    "type": "record",
    "name": "ComposeProbe",
    "namespace": "sentio.test",
    "fields": [{"name": "value", "type": "double"}],
}


@dataclass
class Deployment:
    secrets: Path  # the generated secrets volume
    registry_url: str
    registry_log: Path
    keycloak_port: int


def wait_ready(url: str, process: subprocess.Popen[bytes], log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text(errors="replace")[-3000:]
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise AssertionError(
        f"{url} not ready in {timeout_s} s: {log.read_text(errors='replace')[-3000:]}"
    )


@pytest.fixture(scope="module")
def deployment(
    sentio_config: SentioConfig, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    shared = sentio_config.stack
    keycloak = KeycloakService(shared, StackPaths(shared.home))
    assert keycloak.problems() == []
    keycloak.install(lambda line: None)
    home = tmp_path_factory.mktemp("compose-registry")
    secrets = home / "volume"
    ComposeSecrets(secrets).ensure()
    # The stack's Keycloak with the deployment's secrets: both keep them under the same names
    # (registry_secure.RegistrySecrets), so it writes the realm the Compose init wrote.
    credentials = home / "state" / "secure" / "credentials"
    credentials.mkdir(parents=True)
    for path in (secrets / "passwords").glob("*"):
        if path.name.startswith(("registry-", "keycloak-admin")):
            shutil.copy2(path, credentials / path.name)
    name = f"keycloak-{shared.keycloak_version}"
    (home / name).symlink_to(shared.home / name, target_is_directory=True)
    settings = shared.model_copy(update={"home": home, "keycloak_port": free_port()})
    stack = Stack(settings, secure=True, only={"keycloak"})
    # The import folder holds what the compose one holds: the admin's password file beside the
    # realm (--import-realm must take only the realm).
    import_dir = stack.paths.data("keycloak") / "data" / "import"
    import_dir.mkdir(parents=True)
    shutil.copy2(
        secrets / "keycloak" / KEYCLOAK_ADMIN_PASSWORD, import_dir / KEYCLOAK_ADMIN_PASSWORD
    )
    stack.up(progress=lambda line: None)
    imported = import_dir / REALM_FILE
    assert imported.read_bytes() == (secrets / "keycloak" / REALM_FILE).read_bytes()
    assert {p.name for p in import_dir.iterdir()} == {
        p.name for p in (secrets / "keycloak").iterdir()
    }
    # Apicurio as the `registry` service runs it: its environment, no -D flag.
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    environment = compose["services"]["registry"]["environment"]
    assert not any("$" in str(value) for value in environment.values())  # nothing to render
    realm = f"http://127.0.0.1:{settings.keycloak_port}/realms/{REALM}"
    env = {key: str(value).replace(COMPOSE_REALM, realm) for key, value in environment.items()}
    env["APICURIO_DATASOURCE_URL"] = f"jdbc:h2:file:{home / 'registry' / 'db'};WRITE_DELAY=0"
    port = free_port()
    env |= {"QUARKUS_HTTP_HOST": "127.0.0.1", "QUARKUS_HTTP_PORT": str(port)}
    java = find_java()
    assert java is not None
    runner = (
        shared.home
        / f"apicurio-{shared.apicurio_version}"
        / f"apicurio-registry-app-{shared.apicurio_version}-runner.jar"
    )
    log = home / "registry.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(java), "-Xmx512m", "-jar", str(runner)],
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=home,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(f"{url}/health/ready", process, log, 180)
        yield Deployment(secrets, url, log, settings.keycloak_port)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        stack.down()


def worker_registry(deployment: Deployment, service: str) -> SchemaRegistry:
    """The registry client of a compose service, with the file its environment names."""
    auth = (deployment.secrets / service / REGISTRY_BASIC_AUTH).read_text()
    return SchemaRegistry(
        SchemaRegistrySettings(url=deployment.registry_url + CCOMPAT, basic_auth=SecretStr(auth))
    )


def test_anonymous_callers_get_nothing_and_the_health_check_answers(
    deployment: Deployment,
) -> None:
    url = deployment.registry_url
    assert httpx.get(f"{url}/health/ready", timeout=10).status_code == 200
    for method, path in [
        ("GET", f"{CCOMPAT}/subjects"),
        ("POST", f"{CCOMPAT}/subjects/anon-value/versions"),
        ("GET", "/apis/registry/v3/admin/rules"),
    ]:
        answer = httpx.request(method, url + path, json={"schema": "{}"}, timeout=10)
        assert answer.status_code == 401, (method, path, answer.status_code, answer.text)


def test_each_worker_has_its_roles_rights(deployment: Deployment) -> None:
    roles = {service: worker.role for service, worker in WORKERS.items()}
    roles[ACCESS_SERVICE] = ACCESS_ROLE
    writers = {s for s, r in roles.items() if ROLE_GRANTS[r] in ("sr-admin", "sr-developer")}
    assert writers == {"topics", ACCESS_SERVICE, "producer-simulate", "streams", "api"}
    subjects = {}
    for service in sorted(writers):
        subject = f"t-compose-{service}-{uuid.uuid4().hex[:8]}-value"
        with worker_registry(deployment, service) as client:
            assert client.register(subject, SCHEMA) > 0
            assert subject in client.subjects()
        subjects[service] = subject
    for service in sorted(set(roles) - writers):
        assert roles[service] == "sink"
        with worker_registry(deployment, service) as client:
            assert set(subjects.values()) <= set(client.subjects())
            assert client.versions(subjects["producer-simulate"]) == [1]
            with pytest.raises(RegistryError) as refused:
                client.register(f"t-compose-sink-{uuid.uuid4().hex[:8]}-value", SCHEMA)
            assert refused.value.status_code == 403, service
    # Another client's id with the sink's secret: refused.
    sink_auth = (deployment.secrets / "sink-loki" / REGISTRY_BASIC_AUTH).read_text()
    forged = "sentio-admin:" + sink_auth.split(":", 1)[1]
    answer = httpx.get(
        deployment.registry_url + f"{CCOMPAT}/subjects",
        auth=tuple(forged.split(":", 1)),
        timeout=10,
    )
    assert answer.status_code == 401
    # No secret in the registry's log.
    log = deployment.registry_log.read_text(errors="replace")
    for service in roles:
        secret = (deployment.secrets / service / REGISTRY_BASIC_AUTH).read_text().split(":", 1)[1]
        assert secret not in log, service


def test_keycloaks_health_check_asks_the_realm(deployment: Deployment) -> None:
    """The compose `keycloak` health check (bash only: the image has no curl or wget), run by
    a real bash against the real Keycloak: healthy with the realm, not with another."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    test = compose["services"]["keycloak"]["healthcheck"]["test"]
    assert test[:3] == ["CMD", "bash", "-c"]
    script = test[3].replace("$$", "$")  # Compose's escape of a dollar sign
    local = script.replace(
        "/dev/tcp/127.0.0.1/8080", f"/dev/tcp/127.0.0.1/{deployment.keycloak_port}"
    )
    assert local != script

    def probe(text: str) -> int:
        return subprocess.run(["bash", "-c", text], timeout=20, check=False).returncode

    assert probe(local) == 0
    assert probe(local.replace(f"/realms/{REALM}/", "/realms/absent/")) != 0
