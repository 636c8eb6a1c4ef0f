"""The processes under test (stream workers, sinks) and one step of load through them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import yaml

from benchmarks.e2e.probes import percentile
from benchmarks.stream_stage import peak_rss_mb
from sentio_iot.config import SentioConfig, load_config
from sentio_iot.pipeline.lag import ConsumerLag
from sentio_iot.topic_admin import apply_topics

if TYPE_CHECKING:
    from benchmarks.e2e.load import PacedProducer
    from benchmarks.e2e.probes import CommitLatency, VmProbe

SENTIO = str(Path(sys.executable).with_name("sentio"))
CLOCK = os.sysconf("SC_CLK_TCK")
KEPT_UP_S = 3.0  # a stage keeps up when its lag at the end is below this much input


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def config_for(name: str, work: Path) -> tuple[SentioConfig, Path]:
    base = load_config(os.environ.get("SENTIO_CONFIG"))
    data = {
        "kafka": {"bootstrap_servers": base.kafka.bootstrap_servers},
        "schema_registry": {"url": base.schema_registry.url},
        "topics": {"prefix": f"{name}.", "partitions": 6},
        "streams": {"app_id": name, "state_dir": str(work / "state")},
        "sinks": {
            "victoriametrics": {"health_port": free_port()},
            "loki": {"health_port": free_port()},
        },
    }
    path = work / "e2e.yaml"
    path.write_text(yaml.safe_dump(data))
    config = load_config(path)
    apply_topics(config)
    return config, path


@dataclass
class Proc:
    label: str
    process: subprocess.Popen[bytes]

    def cpu_s(self) -> float:
        try:
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / CLOCK
        except (OSError, IndexError, ValueError):
            return 0.0

    def peak_rss_mb(self) -> float:
        return peak_rss_mb(self.process.pid)


@dataclass
class Step:
    offered: float
    taken: dict[str, float]
    lag_end: dict[str, int]
    p50: dict[str, float | None]
    p99: dict[str, float | None]
    cpu_s: dict[str, float]
    rss_mb: dict[str, float]
    seconds: float
    phases: dict[str, float] = field(default_factory=dict)  # stream workers' seconds, summed
    labels: list[str] = field(default_factory=list)

    def kept_up(self) -> bool:
        return all(lag <= KEPT_UP_S * self.offered for lag in self.lag_end.values())

    @staticmethod
    def header() -> str:
        return (
            f"{'offered/s':>10} {'stage':<22}{'taken/s':>10}{'lag end':>10}{'p50 s':>8}"
            f"{'p99 s':>8}{'CPU s':>8}{'RSS MB':>8}  kept up"
        )

    def row(self) -> str:
        lines = []
        for label in self.labels:
            p50, p99 = self.p50.get(label), self.p99.get(label)
            taken, lag = self.taken.get(label), self.lag_end.get(label)
            cpu, rss = self.cpu_s.get(label), self.rss_mb.get(label)
            kept = "-" if lag is None else "yes" if lag <= KEPT_UP_S * self.offered else "no"
            lines.append(
                f"{self.offered:>10,.0f} {label:<22}{_n(taken):>10}{_n(lag):>10}{_s(p50):>8}"
                f"{_s(p99):>8}{_s(cpu, 1):>8}{_n(rss):>8}  {kept}"
            )
        return "\n".join(lines)

    def line(self) -> str:
        taken = ", ".join(f"{k} {v:,.0f}/s" for k, v in self.taken.items())
        p99 = ", ".join(f"{k} {_s(v)}" for k, v in self.p99.items())
        phases = ", ".join(f"{k} {v:.1f} s" for k, v in self.phases.items())
        return (
            f"  taken: {taken}; p99 latency: {p99}; kept up: {self.kept_up()}\n"
            f"  stream workers' time: {phases}"
        )


def _s(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _n(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


class Pipeline:
    """The stream workers and sinks as ``sentio`` processes on the benchmark's configuration."""

    def __init__(self, config: SentioConfig, path: Path, work: Path, workers: int) -> None:
        self.config, self.path, self.work, self.workers = config, path, work, workers
        self.procs: list[Proc] = []
        self.lag = ConsumerLag(config)
        self.worker_ports: list[int] = []

    def groups(self) -> dict[str, str]:
        name = self.config.streams.app_id
        return {"streams": name, "sink-victoriametrics": f"{name}-vm", "sink-loki": f"{name}-loki"}

    def start(self) -> None:
        groups = self.groups()
        self.worker_ports = [free_port() for _ in range(self.workers)]
        for n, port in enumerate(self.worker_ports):
            self._spawn(f"streams-{n + 1}", ["stream", "worker", "--web-port", str(port)])
        self._spawn(
            "sink-victoriametrics",
            ["sink", "victoriametrics", "--group-id", groups["sink-victoriametrics"]],
        )
        self._spawn("sink-loki", ["sink", "loki", "--group-id", groups["sink-loki"]])
        sinks = self.config.sinks
        ports = [*self.worker_ports, sinks.victoriametrics.health_port, sinks.loki.health_port]
        deadline = time.monotonic() + 120  # TensorFlow, group joins, table recovery
        while not all(healthy(port) for port in ports):
            if time.monotonic() > deadline:
                raise SystemExit(f"the pipeline was not healthy in 120 s: see {self.work}")
            time.sleep(0.5)

    def _spawn(self, label: str, args: list[str]) -> None:
        command = [SENTIO, *args[:2], "-c", str(self.path), *args[2:]]
        log = (self.work / f"{label}.log").open("wb")
        self.procs.append(
            Proc(label, subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT))
        )

    def step(
        self,
        rate: float,
        seconds: float,
        producer: PacedProducer,
        latency: CommitLatency,
        probe: VmProbe,
    ) -> Step:
        for proc in self.procs:
            if proc.process.poll() is not None:
                raise SystemExit(
                    f"{proc.label} exited ({proc.process.returncode}): see {self.work}"
                )
        groups = self.groups()
        cpu_before = {p.label: p.cpu_s() for p in self.procs}
        phases_before = self.phases()
        lag_before = self._lags(groups)
        began, t0 = time.time(), time.monotonic()
        sent = producer.run(rate, seconds)
        elapsed = time.monotonic() - t0
        time.sleep(1.0)  # the last commits and probes of this step
        lag_after = self._lags(groups)
        phases = {k: v - phases_before.get(k, 0.0) for k, v in self.phases().items()}
        offered = sent / elapsed
        taken = {  # the Loki sink reads derived topics only: no readings/s of its own
            k: offered - (lag_after.get(k, 0) - lag_before.get(k, 0)) / elapsed
            for k in groups
            if k != "sink-loki"
        }
        half = began + seconds / 2
        p50: dict[str, float | None] = {}
        p99: dict[str, float | None] = {}
        for label in groups:
            values = latency.between(label, half, began + seconds)
            p50[label], p99[label] = percentile(values, 0.5), percentile(values, 0.99)
        vm = probe.between(half, began + seconds)
        p50["queryable in VM"], p99["queryable in VM"] = percentile(vm, 0.5), percentile(vm, 0.99)
        return Step(
            offered=offered,
            taken=taken,
            lag_end=lag_after,
            p50=p50,
            p99=p99,
            cpu_s={p.label: p.cpu_s() - cpu_before[p.label] for p in self.procs},
            rss_mb={p.label: p.peak_rss_mb() for p in self.procs},
            seconds=elapsed,
            phases=phases,
            labels=[
                *groups,
                "queryable in VM",
                *(p.label for p in self.procs if p.label.startswith("streams-")),
            ],
        )

    def phases(self) -> dict[str, float]:
        """Where the stream workers' time went (``sentio_stream_seconds_total``), summed."""
        found: dict[str, float] = {}
        for port in self.worker_ports:
            try:
                text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
            except httpx.HTTPError:
                continue
            for line in text.splitlines():
                if line.startswith("sentio_stream_seconds_total{"):
                    phase = line.split('phase="', 1)[1].split('"', 1)[0]
                    found[phase] = found.get(phase, 0.0) + float(line.rsplit(" ", 1)[1])
        return found

    def _lags(self, groups: dict[str, str]) -> dict[str, int]:
        measured = self.lag.measure(idle=True)
        return {label: measured.get(group, 0) for label, group in groups.items()}

    def stop(self) -> str:
        said = []
        for proc in self.procs:
            proc.process.send_signal(signal.SIGTERM)
        for proc in self.procs:
            t = time.monotonic()
            try:
                code = proc.process.wait(30)
                said.append(f"{proc.label} exit {code} in {time.monotonic() - t:.1f} s")
            except subprocess.TimeoutExpired:
                proc.process.kill()
                said.append(f"{proc.label} did not stop in 30 s: killed")
        return "; ".join(said)
