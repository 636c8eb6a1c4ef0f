"""VictoriaMetrics: the metrics store (Prometheus remote write, import and query APIs)."""

from __future__ import annotations

import time
from pathlib import Path

from sentio_iot.config import StackSettings
from sentio_iot.stack.install import go_install
from sentio_iot.stack.paths import StackPaths
from sentio_iot.stack.prerequisites import find_program, missing
from sentio_iot.stack.probes import HOST
from sentio_iot.stack.service import Progress, Service
from sentio_iot.stack.victoria_secure import BasicAuthSecured, SecureVictoriaFiles

PACKAGE = "github.com/VictoriaMetrics/VictoriaMetrics/app/victoria-metrics"
BINARY = "victoria-metrics"
# Replayed data sets (NAB, C-MAPSS) carry timestamps years old; the default month drops them.
RETENTION = "100y"
# What the secure probe reads (a cheap query): /health answers without the password.
AUTH_PROBE_PATH = "/api/v1/labels"
SCRAPE_INTERVAL_S = 10
# The workers' /metrics (ports fixed by the worker contract): the pipeline-health dashboard
# reads their counters from VictoriaMetrics, so the stack scrapes them while they run.
SCRAPE_TARGETS: dict[str, tuple[int, ...]] = {
    "sentio-producer": (9464,),
    "sentio-streams": (6066, 6067, 6068, 6069),
    "sentio-sinks": (9471, 9472, 9473, 9474),
}


def render_scrape_config(
    targets: dict[str, tuple[int, ...]] = SCRAPE_TARGETS, interval_s: int = SCRAPE_INTERVAL_S
) -> str:
    """The ``-promscrape.config`` file: one job per kind of worker, static loopback targets."""
    lines = ["global:", f"  scrape_interval: {interval_s}s", "scrape_configs:"]
    for job, ports in targets.items():
        listed = ", ".join(f'"{HOST}:{port}"' for port in ports)
        lines += [f"  - job_name: {job}", "    static_configs:", f"      - targets: [{listed}]"]
    return "\n".join(lines) + "\n"


class VictoriaMetricsService(BasicAuthSecured, Service):
    auth_probe_path = AUTH_PROBE_PATH
    name = "victoriametrics"

    def __init__(self, settings: StackSettings, paths: StackPaths) -> None:
        super().__init__(settings, paths)
        self.secure = False  # `sentio stack up --secure`: basic auth (set by Stack)
        self.secure_files = SecureVictoriaFiles(paths, self.name)

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

    @property
    def scrape_config_path(self) -> Path:
        return self.paths.conf / "victoriametrics-scrape.yml"

    def prepare(self, progress: Progress) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.secure:
            self.secure_files.ensure()
        else:
            self.secure_files.marker.unlink(missing_ok=True)
        self.scrape_config_path.parent.mkdir(parents=True, exist_ok=True)
        self.scrape_config_path.write_text(render_scrape_config(), encoding="utf-8")

    def command(self) -> list[str]:
        binary = self._binary()
        assert binary is not None  # install() made it
        return [
            str(binary),
            f"-httpListenAddr={HOST}:{self.settings.victoriametrics_port}",
            f"-storageDataPath={self.data_dir}",
            f"-retentionPeriod={RETENTION}",
            *(self.secure_files.flags() if self.secure else []),
            # Sinks write at least once: a replayed sample (same series, same millisecond)
            # must not count twice. 1ms keeps exactly one sample per millisecond.
            "-dedup.minScrapeInterval=1ms",
            f"-promscrape.config={self.scrape_config_path}",
            # Workers come and go; a stopped one is no error worth a log line every 10 s.
            "-promscrape.suppressScrapeErrors",
            # Instant queries (dashboards' "now") hid the newest 30 s by default; one sink
            # writes here and its samples are queryable ~1.5 s after they were sent.
            "-search.latencyOffset=5s",
        ]

    def http_port(self) -> int:
        return self.settings.victoriametrics_port

    def _binary(self) -> Path | None:
        """A binary built into <home>/bin wins over the one on PATH (Debian's is 1.79.5)."""
        built = self.paths.bin / BINARY
        return built if built.is_file() else find_program(BINARY)
