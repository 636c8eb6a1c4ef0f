"""Apicurio Registry: the Confluent-compatible schema registry, stored in an H2 file.

Apicurio keeps schemas in memory by default, so a restart would hand out schema ids 1, 2, ...
again while Kafka still holds messages carrying the old ids: those would decode with the wrong
schema. Its SQL storage on an H2 file (``<data>/registry/registry.mv.db``) keeps every id
across ``down`` and ``up``; ``WRITE_DELAY=0`` writes each commit to the file at once, so a
registry killed right after handing out an id still knows it when it comes back (with H2's
default delay it did not). Apicurio's default ``apicurio.app.name``, shown in its system
info, says "In Memory" whatever the storage; ours says "H2 file".
tests/integration/test_registry_durability.py restarts, kills and backs it up.

With ``sentio stack up --secure`` it asks every caller for credentials (registry_secure.py):
OIDC through the stack's Keycloak (keycloak.py), HTTP basic with a client's id and secret,
role-based authorization by the token's realm roles, no anonymous reads.
"""

from __future__ import annotations

import time
from pathlib import Path

from sentio_iot.config import StackSettings
from sentio_iot.errors import StackError
from sentio_iot.stack.install import fill_once, maven_unzip
from sentio_iot.stack.keycloak import realm_url
from sentio_iot.stack.paths import StackPaths
from sentio_iot.stack.prerequisites import find_java, find_program, java_problem, missing
from sentio_iot.stack.probes import HOST, Health, http_all_ok, http_ok
from sentio_iot.stack.registry_secure import REALM, SecureRegistryFiles, oidc_properties
from sentio_iot.stack.service import Progress, Service

APP_NAME = "Apicurio Registry (H2 file)"
DATABASE = "registry"  # H2 adds .mv.db
SUBJECTS = "/apis/ccompat/v7/subjects"
KEYCLOAK_WAIT_POLL_S = 1.0


class RegistryService(Service):
    name = "registry"

    def __init__(
        self, settings: StackSettings, paths: StackPaths, *, data_dir: Path | None = None
    ) -> None:
        """``data_dir`` puts a second instance's database elsewhere (the stack's by default)."""
        super().__init__(settings, paths)
        version = settings.apicurio_version
        self.dist = paths.home / f"apicurio-{version}"
        self.runner = self.dist / f"apicurio-registry-app-{version}-runner.jar"
        self._data_dir = data_dir
        self.secure = False  # `sentio stack up --secure`: OIDC through Keycloak (set by Stack)
        self.secure_files = SecureRegistryFiles(paths)

    @property
    def data_dir(self) -> Path:
        return self._data_dir if self._data_dir is not None else super().data_dir

    @property
    def database_file(self) -> Path:
        """The one file that holds every schema and id: back it up while the registry is down."""
        return self.data_dir / f"{DATABASE}.mv.db"

    @property
    def jdbc_url(self) -> str:
        return f"jdbc:h2:file:{self.data_dir / DATABASE};WRITE_DELAY=0"

    @property
    def address(self) -> str:
        return f"http://{HOST}:{self.settings.registry_port}"

    def ports(self) -> list[tuple[int, str]]:
        return [(self.settings.registry_port, "stack.registry_port")]

    def problems(self) -> list[str]:
        found = [problem for problem in [java_problem()] if problem]
        if not (self.dist / ".complete").is_file() and find_program("mvn") is None:
            found.append(missing("mvn", "to download Apicurio Registry"))
        return found

    def install(self, progress: Progress) -> None:
        mvn = find_program("mvn")
        assert mvn is not None  # problems() said so
        coordinates = f"io.apicurio:apicurio-registry-app:{self.settings.apicurio_version}:zip:all"

        def download(dist: Path) -> None:
            progress(f"registry: downloading {coordinates} with mvn")
            started = time.monotonic()
            maven_unzip(mvn, coordinates, dist)
            progress(f"registry: unpacked in {time.monotonic() - started:.1f} s")

        fill_once(self.dist, download)

    def prepare(self, progress: Progress) -> None:
        """Every setting goes on the command line; with --secure, the credentials exist and
        Keycloak is starting."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if not self.secure:
            self.secure_files.marker.unlink(missing_ok=True)
            return
        self.secure_files.ensure()
        self.secure_files.marker.parent.mkdir(parents=True, exist_ok=True)
        self.secure_files.marker.touch()
        self._wait_for_keycloak(progress)

    def _wait_for_keycloak(self, progress: Progress) -> None:
        """Wait while Keycloak installs (a download and a build, the first time), so that
        both JVMs start together: Apicurio asks Keycloak only at the first call, and the
        health check (with credentials) waits for both."""
        pid_file = self.paths.pid("keycloak")
        path = f"/realms/{REALM}/.well-known/openid-configuration"
        if pid_file.is_file() or http_ok(self.settings.keycloak_port, path).healthy:
            return
        progress(f"registry: waiting for keycloak at {realm_url(self.settings)} to start")
        deadline = time.monotonic() + 3 * self.settings.start_timeout_s
        while not pid_file.is_file() and not http_ok(self.settings.keycloak_port, path).healthy:
            if time.monotonic() >= deadline:
                return  # started anyway: check() says what is missing
            time.sleep(KEYCLOAK_WAIT_POLL_S)

    def command(self) -> list[str]:
        java = find_java()
        assert java is not None  # problems() said so
        return [
            str(java),
            "-Xmx512m",
            f"-Dquarkus.http.host={HOST}",
            f"-Dquarkus.http.port={self.settings.registry_port}",
            f"-Dapicurio.datasource.url={self.jdbc_url}",
            f"-Dapicurio.app.name={APP_NAME}",
            *(self._secure_flags() if self.secure else []),
            "-jar",
            str(self.runner),
        ]

    def _secure_flags(self) -> list[str]:
        """OIDC through the stack's Keycloak (registry_secure.oidc_properties)."""
        properties = oidc_properties(realm_url(self.settings))
        return [f"-D{name}={value}" for name, value in properties.items()]

    def check(self) -> Health:
        if not self._running_secure():
            return http_all_ok(self.settings.registry_port, ["/health/ready", SUBJECTS])
        ready = http_ok(self.settings.registry_port, "/health/ready")
        if not ready.healthy:
            return ready
        headers = {"Authorization": self.secure_files.authorization("admin")}
        health = http_ok(self.settings.registry_port, SUBJECTS, headers=headers)
        return Health(health.healthy, f"OIDC via keycloak, anonymous refused; {health.detail}")

    def after_start(self, progress: Progress) -> None:
        if self.secure and not self._running_secure():
            raise StackError(
                "registry is running without --secure",
                fix="stop it with `sentio stack down`, then run `sentio stack up --secure`",
            )
        if self.secure:
            progress(
                "registry: OIDC via keycloak, basic auth with a client id and secret per role; "
                f"settings in {self.secure_files.clients}/registry-<role>.env (mode 0600)"
            )

    def _running_secure(self) -> bool:
        """The marker exists only while the last start was a secure one."""
        return self.secure_files.marker.is_file()
