"""VictoriaLogs: the log store (Loki push API in, LogsQL out), built from source with go."""

from __future__ import annotations

import time

from sentio_iot.config import StackSettings
from sentio_iot.stack.install import go_binary, go_install
from sentio_iot.stack.paths import StackPaths
from sentio_iot.stack.prerequisites import find_program, missing
from sentio_iot.stack.probes import HOST
from sentio_iot.stack.service import Progress, Service
from sentio_iot.stack.victoria_secure import BasicAuthSecured, SecureVictoriaFiles

PACKAGE = "github.com/VictoriaMetrics/VictoriaLogs/app/victoria-logs"
BINARY = "victoria-logs"
# Replayed logs may be years old; the default 7 days would drop them at ingestion.
RETENTION = "100y"
# What the secure probe reads (a page that needs the password): /health answers without the password.
AUTH_PROBE_PATH = "/flags"


class VictoriaLogsService(BasicAuthSecured, Service):
    auth_probe_path = AUTH_PROBE_PATH
    name = "victorialogs"

    def __init__(self, settings: StackSettings, paths: StackPaths) -> None:
        super().__init__(settings, paths)
        self.secure = False  # `sentio stack up --secure`: basic auth (set by Stack)
        self.secure_files = SecureVictoriaFiles(paths, self.name)

    @property
    def address(self) -> str:
        return f"http://{HOST}:{self.settings.victorialogs_port}"

    def ports(self) -> list[tuple[int, str]]:
        return [(self.settings.victorialogs_port, "stack.victorialogs_port")]

    def problems(self) -> list[str]:
        if self._built() or find_program("go") is not None:
            return []
        return [missing("go", "to build victoria-logs")]

    def install(self, progress: Progress) -> None:
        if self._built():
            return
        go = find_program("go")
        assert go is not None  # problems() said so
        version = self.settings.victorialogs_version
        progress(f"victorialogs: building {BINARY} {version} with go install")
        started = time.monotonic()
        go_install(go, PACKAGE, version, self.paths.bin, BINARY)
        progress(f"victorialogs: built in {time.monotonic() - started:.1f} s")

    def prepare(self, progress: Progress) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.secure:
            self.secure_files.ensure()
        else:
            self.secure_files.marker.unlink(missing_ok=True)

    def command(self) -> list[str]:
        return [
            str(self.paths.bin / BINARY),
            f"-httpListenAddr={HOST}:{self.settings.victorialogs_port}",
            f"-storageDataPath={self.data_dir}",
            f"-retentionPeriod={RETENTION}",
            *(self.secure_files.flags() if self.secure else []),
        ]

    def http_port(self) -> int:
        return self.settings.victorialogs_port

    def _built(self) -> bool:
        return go_binary(self.paths.bin, BINARY, self.settings.victorialogs_version) is not None
