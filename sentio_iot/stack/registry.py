"""Apicurio Registry: the Confluent-compatible schema registry, stored in an H2 file.

Apicurio keeps schemas in memory by default, so a restart would hand out schema ids 1, 2, ...
again while Kafka still holds messages carrying the old ids: those would decode with the wrong
schema. Its SQL storage on an H2 file (``<data>/registry/registry.mv.db``) keeps every id
across ``down`` and ``up``; ``WRITE_DELAY=0`` writes each commit to the file at once, so a
registry killed right after handing out an id still knows it when it comes back (with H2's
default delay it did not). Apicurio's default ``apicurio.app.name``, shown in its system
info, says "In Memory" whatever the storage; ours says "H2 file".
tests/integration/test_registry_durability.py restarts, kills and backs it up.
"""

from __future__ import annotations

import time
from pathlib import Path

from sentio_iot.config import StackSettings
from sentio_iot.stack.install import fill_once, maven_copy_artifact, unzip
from sentio_iot.stack.paths import StackPaths
from sentio_iot.stack.prerequisites import find_java, find_program, java_problem, missing
from sentio_iot.stack.probes import HOST, Health, http_all_ok
from sentio_iot.stack.service import Progress, Service

APP_NAME = "Apicurio Registry (H2 file)"
DATABASE = "registry"  # H2 adds .mv.db


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
            download_dir = dist / "download"
            download_dir.mkdir()
            maven_copy_artifact(mvn, coordinates, download_dir)
            for archive in download_dir.glob("*.zip"):
                unzip(archive, dist)
                archive.unlink()
            download_dir.rmdir()
            progress(f"registry: unpacked in {time.monotonic() - started:.1f} s")

        fill_once(self.dist, download)

    def prepare(self, progress: Progress) -> None:
        """Nothing to write: every setting goes on the command line."""
        self.data_dir.mkdir(parents=True, exist_ok=True)

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
            "-jar",
            str(self.runner),
        ]

    def check(self) -> Health:
        return http_all_ok(
            self.settings.registry_port, ["/health/ready", "/apis/ccompat/v7/subjects"]
        )
