"""VictoriaMetrics: the metrics store (Prometheus remote write, import and query APIs)."""

from __future__ import annotations

import time
from pathlib import Path

from sentio_iot.stack.install import go_install
from sentio_iot.stack.prerequisites import find_program, missing
from sentio_iot.stack.probes import HOST, Health, http_ok
from sentio_iot.stack.service import Progress, Service

PACKAGE = "github.com/VictoriaMetrics/VictoriaMetrics/app/victoria-metrics"
BINARY = "victoria-metrics"
# Replayed data sets (NAB, C-MAPSS) carry timestamps years old; the default month drops them.
RETENTION = "100y"


class VictoriaMetricsService(Service):
    name = "victoriametrics"

    @property
    def address(self) -> str:
        return f"http://{HOST}:{self.settings.victoriametrics_port}"

    def ports(self) -> list[tuple[int, str]]:
        return [(self.settings.victoriametrics_port, "stack.victoriametrics_port")]

    def problems(self) -> list[str]:
        if self._binary() is None and find_program("go") is None:
            return [missing(BINARY)]
        return []

    def install(self, progress: Progress) -> None:
        if self._binary() is not None:
            return
        go = find_program("go")
        assert go is not None  # problems() said so
        version = self.settings.victoriametrics_version
        progress(f"victoriametrics: building {BINARY} {version} with go install")
        started = time.monotonic()
        go_install(go, PACKAGE, version, self.paths.bin, BINARY)
        progress(f"victoriametrics: built in {time.monotonic() - started:.1f} s")

    def prepare(self, progress: Progress) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)

    def command(self) -> list[str]:
        binary = self._binary()
        assert binary is not None  # install() made it
        return [
            str(binary),
            f"-httpListenAddr={HOST}:{self.settings.victoriametrics_port}",
            f"-storageDataPath={self.data_dir}",
            f"-retentionPeriod={RETENTION}",
        ]

    def check(self) -> Health:
        return http_ok(self.settings.victoriametrics_port, "/health")

    def _binary(self) -> Path | None:
        """A binary built into <home>/bin wins over the one on PATH (Debian's is 1.79.5)."""
        built = self.paths.bin / BINARY
        return built if built.is_file() else find_program(BINARY)
