"""`sentio stack up --secure` for the schema registry: Apicurio with OIDC through Keycloak.

Started by the stack's code (``Stack(..., secure=True, only={"keycloak", "registry"})``) in
the module's own home on free ports, the shared stack's downloads linked in (Keycloak is
downloaded and built into the shared home first if it is not there yet, as `stack up
--secure` would). Anonymous callers get nothing; each role's client id and secret work as
HTTP basic auth with its role's rights; no secret is on a command line, in the output or in
a log.
"""

from __future__ import annotations

import stat
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from stream_worker import free_port

from sentio_iot.config import SchemaRegistrySettings, SentioConfig
from sentio_iot.errors import RegistryError
from sentio_iot.registry import SchemaRegistry
from sentio_iot.stack import Stack
from sentio_iot.stack.keycloak import KeycloakService
from sentio_iot.stack.paths import StackPaths
from sentio_iot.stack.process import read_record
from sentio_iot.stack.registry_secure import ROLE_GRANTS, SecureRegistryFiles, client_id
from sentio_iot.stack.victoria_secure import env_pairs

# The fixture's Keycloak start (and, on a fresh machine, its download and build) runs in the
# first test.
pytestmark = pytest.mark.timeout(400)

SAID: list[str] = []  # what the module's `up` printed
TIMES: dict[str, float] = {}
CCOMPAT = "/apis/ccompat/v7"
SCHEMA = {
    "type": "record",
    "name": "Probe",
    "namespace": "sentio.test",
    "fields": [{"name": "value", "type": "double"}],
}


def link_downloads(shared: Path, home: Path, names: list[str]) -> None:
    for name in names:
        (home / name).symlink_to(shared / name, target_is_directory=True)


@pytest.fixture(scope="module")
def stack(sentio_config: SentioConfig, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    shared = sentio_config.stack
    keycloak = KeycloakService(shared, StackPaths(shared.home))
    assert keycloak.problems() == []
    began = time.monotonic()
    keycloak.install(SAID.append)
    TIMES["install"] = time.monotonic() - began
    home = tmp_path_factory.mktemp("secure-registry")
    link_downloads(
        shared.home,
        home,
        [f"apicurio-{shared.apicurio_version}", f"keycloak-{shared.keycloak_version}"],
    )
    settings = shared.model_copy(
        update={"home": home, "registry_port": free_port(), "keycloak_port": free_port()}
    )
    secure = Stack(settings, secure=True, only={"keycloak", "registry"})
    began = time.monotonic()
    secure.up(progress=SAID.append)
    TIMES["up"] = time.monotonic() - began
    try:
        yield secure
    finally:
        secure.down()


def base(stack: Stack) -> str:
    return f"http://127.0.0.1:{stack.settings.registry_port}"


def registry(stack: Stack, role: str | None, secret: str | None = None) -> SchemaRegistry:
    files = SecureRegistryFiles(stack.paths)
    auth = None
    if role is not None:
        auth = SecretStr(
            f"{client_id(role)}:{secret if secret is not None else files.secret(role)}"
        )
    return SchemaRegistry(SchemaRegistrySettings(url=base(stack) + CCOMPAT, basic_auth=auth))


def test_anonymous_callers_get_nothing(stack: Stack) -> None:
    statuses = {s.name: (s.healthy, s.detail) for s in stack.status()}
    assert statuses == {
        "registry": (True, "OIDC via keycloak, anonymous refused; ok"),
        "keycloak": (True, "realm sentio; ok"),
    }
    print(f"keycloak install {TIMES['install']:.1f} s, secure up {TIMES['up']:.1f} s")
    with registry(stack, "admin") as admin:
        subject = f"t-anon-{uuid.uuid4().hex[:8]}-value"
        schema_id = admin.register(subject, SCHEMA)
    url = base(stack)
    calls = [
        ("GET", f"{CCOMPAT}/subjects"),
        ("GET", f"{CCOMPAT}/schemas/ids/{schema_id}"),
        ("GET", f"{CCOMPAT}/subjects/{subject}/versions"),
        ("DELETE", f"{CCOMPAT}/subjects/{subject}"),
        ("DELETE", f"{CCOMPAT}/subjects/{subject}?permanent=true"),
        ("POST", f"{CCOMPAT}/subjects/other-value/versions"),
        ("PUT", f"{CCOMPAT}/config"),
        ("GET", "/apis/registry/v3/admin/rules"),
        ("GET", "/apis/registry/v3/groups/default/artifacts"),
    ]
    for method, path in calls:
        answer = httpx.request(method, url + path, json={"schema": "{}"}, timeout=10)
        assert answer.status_code == 401, (method, path, answer.status_code, answer.text)
    # Still there: the anonymous deletes did nothing.
    with registry(stack, "sink") as sink:
        assert subject in sink.subjects()
        assert sink.versions(subject) == [1]
    with registry(stack, None) as anonymous, pytest.raises(RegistryError) as refused:
        anonymous.subjects()
    assert refused.value.status_code == 401
    assert "it asks for credentials and none are set" in refused.value.message
    assert "schema_registry.basic_auth" in refused.value.message


def test_the_producer_registers_and_the_sink_only_reads(stack: Stack) -> None:
    files = SecureRegistryFiles(stack.paths)
    subject = f"t-roles-{uuid.uuid4().hex[:8]}-value"
    with registry(stack, "producer") as producer:
        producer.set_compatibility(subject, "BACKWARD")
        schema_id = producer.register(subject, SCHEMA)
        assert producer.register(subject, SCHEMA) == schema_id  # idempotent
    with registry(stack, "streams") as streams:
        evolved = {
            **SCHEMA,
            "fields": [*SCHEMA["fields"], {"name": "unit", "type": "string", "default": ""}],
        }  # type: ignore[list-item]
        assert streams.is_compatible(subject, evolved)
        assert streams.register(subject, evolved) != schema_id
    with registry(stack, "sink") as sink:
        assert sink.schema_by_id(schema_id) == SCHEMA
        assert sink.versions(subject) == [1, 2]
        for attempt in (
            lambda: sink.register(subject, {**SCHEMA, "name": "Other"}),
            lambda: sink.register(f"t-sink-{uuid.uuid4().hex[:8]}-value", SCHEMA),
            lambda: sink.set_compatibility(subject, "NONE"),
        ):
            with pytest.raises(RegistryError) as refused:
                attempt()
            assert refused.value.status_code == 403
            assert "'sentio-sink' may not do this" in refused.value.message
            assert files.secret("sink") not in str(refused.value)
    url = base(stack)
    sink_auth = (client_id("sink"), files.secret("sink"))
    deleted = httpx.delete(f"{url}{CCOMPAT}/subjects/{subject}", auth=sink_auth, timeout=10)
    assert deleted.status_code == 403, deleted.text
    with registry(stack, "api") as api:
        assert api.versions(subject) == [1, 2]  # the sink's delete did nothing
    admin_auth = (client_id("admin"), files.secret("admin"))
    deleted = httpx.delete(f"{url}{CCOMPAT}/subjects/{subject}", auth=admin_auth, timeout=10)
    assert deleted.status_code == 200 and deleted.json() == [1, 2], deleted.text


def test_a_wrong_secret_or_another_roles_client_is_refused(stack: Stack) -> None:
    files = SecureRegistryFiles(stack.paths)
    wrong = "Not-the-Secret-42"
    with registry(stack, "producer", wrong) as producer, pytest.raises(RegistryError) as refused:
        producer.subjects()
    assert refused.value.status_code == 401
    assert "it refused the credentials of 'sentio-producer'" in refused.value.message
    assert wrong not in str(refused.value)
    # One client's secret does not open another's.
    mixed = (client_id("admin"), files.secret("sink"))
    answer = httpx.get(f"{base(stack)}{CCOMPAT}/subjects", auth=mixed, timeout=10)
    assert answer.status_code == 401


def test_secrets_are_private_and_never_shown(stack: Stack) -> None:
    files = SecureRegistryFiles(stack.paths)
    secrets = {role: files.secret(role) for role in ROLE_GRANTS}
    secrets["keycloak-admin"] = files.admin_password()
    assert len(set(secrets.values())) == len(secrets)
    assert stat.S_IMODE(files.credentials.stat().st_mode) == 0o700
    for path in [*files.credentials.glob("registry-*"), files.admin_password_path]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    for role in ROLE_GRANTS:
        env = files.client_env(role)
        assert stat.S_IMODE(env.stat().st_mode) == 0o600, env
        assert env_pairs(env) == [
            ("SENTIO_SCHEMA_REGISTRY__BASIC_AUTH", f"{client_id(role)}:{secrets[role]}")
        ]
    realm = stack.paths.data("keycloak") / "data" / "import" / "sentio-realm.json"
    assert stat.S_IMODE(realm.stat().st_mode) == 0o600
    assert stat.S_IMODE(stack.paths.data("keycloak").stat().st_mode) == 0o700
    said = "\n".join(SAID)
    for service in ("keycloak", "registry"):
        record = read_record(stack.paths.pid(service))
        assert record is not None
        cmdline = Path(f"/proc/{record.pid}/cmdline").read_bytes().decode()
        log = stack.paths.log(service).read_text(errors="replace")
        for name, secret in secrets.items():
            assert secret not in cmdline, (service, name)
            assert secret not in log, (service, name)
            assert secret not in said, name
