"""Keycloak: the OIDC server the schema registry asks, present only with ``stack up --secure``.

Apicurio Registry authenticates only through OpenID Connect (registry_secure.py). Keycloak
(``org.keycloak:keycloak-quarkus-dist`` from Maven Central) runs in production mode, built
once at install (``build --db=dev-file``, cached with the download) and started
``--optimized`` on 127.0.0.1 over plain HTTP, with a local cache (no cluster discovery) and its
data in an H2 file under ``<state>/data/keycloak`` (no H2 network listener). Its home there
links the cached distribution's ``lib`` and holds ``data/import/sentio-realm.json`` (0600),
imported at the first start; when the realm changes (new secrets), its database is started
anew so the import applies. The admin user of the master realm gets a generated password
through the environment (``KC_BOOTSTRAP_ADMIN_PASSWORD``), never on a command line.

Keycloak 26 needs Java 21 or newer: ``$JAVA_HOME``, ``java`` on PATH or a JDK under
/usr/lib/jvm, whichever is 21+ (Kafka and Apicurio keep running on Java 17).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from sentio_iot.config import StackSettings
from sentio_iot.stack.install import fill_once, maven_unzip, run_tool
from sentio_iot.stack.kafka_secure import write_private
from sentio_iot.stack.paths import StackPaths
from sentio_iot.stack.prerequisites import find_java, find_program, java_major_version, missing
from sentio_iot.stack.probes import HOST, Health, http_ok
from sentio_iot.stack.registry_secure import ADMIN_USER, REALM, SecureRegistryFiles, realm_digest
from sentio_iot.stack.service import Progress, Service

MIN_JAVA = 21
JVM_FOLDERS = Path("/usr/lib/jvm")
JAVA_HINT = (
    "install a JDK 21 or newer (Debian 13: apt-get install openjdk-21-jre-headless; or a "
    "Temurin JDK under /usr/lib/jvm) or set SENTIO_KEYCLOAK_JAVA_HOME"
)
MAIN_CLASS = "io.quarkus.bootstrap.runner.QuarkusEntryPoint"
# What kc.sh passes to the JVM; C1 only (TieredStopAtLevel=1) starts it faster on two cores.
JVM_OPTIONS = (
    "-Xms64m",
    "-Xmx512m",
    "-XX:MetaspaceSize=96M",
    "-XX:MaxMetaspaceSize=256m",
    "-XX:+ExitOnOutOfMemoryError",
    "-XX:TieredStopAtLevel=1",
    "-Djava.security.egd=file:/dev/urandom",
    "-Dfile.encoding=UTF-8",
    "-Duser.language=en",
    "-Duser.country=US",
    "--add-opens=java.base/java.util=ALL-UNNAMED",
    "--add-opens=java.base/java.util.concurrent=ALL-UNNAMED",
    "--add-opens=java.base/java.security=ALL-UNNAMED",
    "-Djava.util.concurrent.ForkJoinPool.common.threadFactory="
    "io.quarkus.bootstrap.forkjoin.QuarkusForkJoinWorkerThreadFactory",
    "-Djava.util.logging.manager=org.jboss.logmanager.LogManager",
    "-Dpicocli.disable.closures=true",
)
# Built into the cached distribution once (build-time options of Keycloak 26).
BUILD_OPTIONS = ("--db=dev-file", "--health-enabled=false", "--metrics-enabled=false")
REALM_FILE = "sentio-realm.json"


def find_java21() -> Path | None:
    """A java of version 21 or newer: SENTIO_KEYCLOAK_JAVA_HOME, JAVA_HOME, PATH, then the
    JDKs under /usr/lib/jvm (newest first)."""
    candidates: list[Path] = []
    for variable in ("SENTIO_KEYCLOAK_JAVA_HOME", "JAVA_HOME"):
        home = os.environ.get(variable)
        if home:
            candidates.append(Path(home) / "bin" / "java")
    on_path = find_java()
    if on_path is not None:
        candidates.append(on_path)
    if JVM_FOLDERS.is_dir():
        candidates += sorted(JVM_FOLDERS.glob("*/bin/java"), reverse=True)
    best: tuple[int, Path] | None = None
    for java in candidates:
        if not (java.is_file() and os.access(java, os.X_OK)):
            continue
        major = java_major_version(java)
        if major is not None and major >= MIN_JAVA and (best is None or major > best[0]):
            best = (major, java)
    return best[1] if best else None


class KeycloakService(Service):
    name = "keycloak"

    def __init__(self, settings: StackSettings, paths: StackPaths) -> None:
        super().__init__(settings, paths)
        version = settings.keycloak_version
        self.dist = paths.home / f"keycloak-{version}"
        self.root = self.dist / f"keycloak-{version}"  # the zip's own top folder
        self.files = SecureRegistryFiles(paths)
        self._java: Path | None = None

    @property
    def address(self) -> str:
        return realm_url(self.settings)

    def ports(self) -> list[tuple[int, str]]:
        return [(self.settings.keycloak_port, "stack.keycloak_port")]

    def java(self) -> Path | None:
        if self._java is None:
            self._java = find_java21()
        return self._java

    def problems(self) -> list[str]:
        found = []
        if self.java() is None:
            found.append(f"java {MIN_JAVA} or newer not found (needed by Keycloak); {JAVA_HINT}")
        if not (self.dist / ".complete").is_file() and find_program("mvn") is None:
            found.append(missing("mvn", "to download Keycloak"))
        return found

    def install(self, progress: Progress) -> None:
        mvn = find_program("mvn")
        java = self.java()
        version = self.settings.keycloak_version
        coordinates = f"org.keycloak:keycloak-quarkus-dist:{version}:zip"

        def download(dist: Path) -> None:
            assert mvn is not None and java is not None  # problems() said so
            progress(f"keycloak: downloading {coordinates} with mvn")
            started = time.monotonic()
            maven_unzip(mvn, coordinates, dist)
            progress(f"keycloak: unpacked in {time.monotonic() - started:.1f} s; building it")
            started = time.monotonic()
            run_tool(
                [*self._jvm(java, self.root), "build", *BUILD_OPTIONS],
                what=f"keycloak {version} build",
                cwd=self.root,
            )
            progress(f"keycloak: built in {time.monotonic() - started:.1f} s")

        fill_once(self.dist, download)

    @property
    def kc_home(self) -> Path:
        """Keycloak's home for this stack: ``lib`` linked to the cached build, data here."""
        return self.data_dir

    def prepare(self, progress: Progress) -> None:
        self.files.ensure()
        home = self.kc_home
        home.mkdir(parents=True, exist_ok=True)
        home.chmod(0o700)
        for folder in ("providers", "conf", "data/import"):
            (home / folder).mkdir(parents=True, exist_ok=True)
        lib, target = home / "lib", self.root / "lib"
        if lib.is_symlink() and Path(os.readlink(lib)) != target:
            lib.unlink()  # a build of another version
        if not lib.is_symlink():
            lib.symlink_to(target, target_is_directory=True)
        text = self.files.realm_json()
        digest_file = home / "data" / "realm.sha256"
        imported = digest_file.read_text(encoding="utf-8").strip() if digest_file.is_file() else ""
        if imported != realm_digest(text):
            # New secrets: a realm already imported is never imported again, so start anew.
            shutil.rmtree(home / "data" / "h2", ignore_errors=True)
            digest_file.write_text(realm_digest(text) + "\n", encoding="utf-8")
            if imported:
                progress("keycloak: the realm changed; its database starts anew")
        write_private(home / "data" / "import" / REALM_FILE, text)

    def command(self) -> list[str]:
        java = self.java()
        assert java is not None  # problems() said so
        database = self.kc_home / "data" / "h2" / "keycloakdb"
        return [
            *self._jvm(java, self.kc_home),
            "start",
            "--optimized",
            "--cache=local",
            "--http-enabled=true",
            f"--http-host={HOST}",
            f"--http-port={self.settings.keycloak_port}",
            "--hostname-strict=false",
            # dev-file's default URL adds AUTO_SERVER=TRUE: an H2 TCP listener. Not here.
            f"--db-url=jdbc:h2:file:{database};NON_KEYWORDS=VALUE",
            "--import-realm",
        ]

    def environment(self) -> dict[str, str]:
        return {
            "KC_BOOTSTRAP_ADMIN_USERNAME": ADMIN_USER,
            "KC_BOOTSTRAP_ADMIN_PASSWORD": self.files.admin_password(),
        }

    def check(self) -> Health:
        health = http_ok(
            self.settings.keycloak_port, f"/realms/{REALM}/.well-known/openid-configuration"
        )
        return Health(health.healthy, f"realm {REALM}; {health.detail}")

    def after_start(self, progress: Progress) -> None:
        progress(
            f"keycloak: realm {REALM}, one client per role; secrets in {self.files.credentials} "
            "(mode 0600)"
        )

    def _jvm(self, java: Path, home: Path) -> list[str]:
        return [
            str(java),
            *JVM_OPTIONS,
            f"-Dkc.home.dir={home}",
            f"-Djboss.server.config.dir={home / 'conf'}",
            "-cp",
            str(self.root / "lib" / "quarkus-run.jar"),
            MAIN_CLASS,
        ]


def realm_url(settings: StackSettings) -> str:
    return f"http://{HOST}:{settings.keycloak_port}/realms/{REALM}"
