"""The processes under test (stream workers, sinks) and one step of load through them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
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
STREAM_PROCS = ("streams-", "streams@", "quix-")  # processes whose CPU and RSS are rows


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def config_for(
    name: str, work: Path, commit_interval_s: float | None = None
) -> tuple[SentioConfig, Path]:
    base = load_config(os.environ.get("SENTIO_CONFIG"))
    streams: dict[str, object] = {"app_id": name, "state_dir": str(work / "state")}
    if commit_interval_s is not None:
        streams["commit_interval_s"] = commit_interval_s
    data = {
        "kafka": {"bootstrap_servers": base.kafka.bootstrap_servers},
        "schema_registry": {"url": base.schema_registry.url},
        "topics": {"prefix": f"{name}.", "partitions": 6},
        "streams": streams,
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


def beside_config(
    path: Path, commit_interval_s: float, batch_within_s: float | None = None
) -> Path:
    """The benchmark's configuration for a second stream worker group on the same readings:
    its own app id (consumer group, changelogs, output topics stay shared), commit interval
    and, given ``batch_within_s``, longest wait to fill a batch (``streams.batch_within_s``
    and ``streams.rul.max_wait_s``)."""
    data = yaml.safe_load(path.read_text())
    streams = data["streams"]
    streams["app_id"] = f"{streams['app_id']}-ci"
    streams["state_dir"] = f"{streams['state_dir']}-ci"
    streams["commit_interval_s"] = commit_interval_s
    if batch_within_s is not None:
        streams["batch_within_s"] = batch_within_s
        streams.setdefault("rul", {})["max_wait_s"] = batch_within_s
    beside = path.with_name("e2e-beside.yaml")
    beside.write_text(yaml.safe_dump(data))
    return beside


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
    restart: Restart | None = None

    def kept_up(self, label: str | None = None) -> bool:
        """Every stage of the pipeline (not the Quix stage beside it), or ``label`` alone."""
        if label is not None:
            return label in self.lag_end and self.lag_end[label] <= KEPT_UP_S * self.offered
        ours = [lag for k, lag in self.lag_end.items() if k != "quix"]
        return all(lag <= KEPT_UP_S * self.offered for lag in ours)

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
            f"  stream workers' time: {phases}\n"
            f"  stream workers' CPU per reading taken: {self.cpu_per_reading()}"
        )

    def cpu_per_reading(self) -> str:
        """Each stream worker group's CPU time per reading it took in the step, in µs."""
        out = []
        for group, taken in self.taken.items():
            if not group.startswith("streams") or taken <= 0:
                continue
            procs = [p for p in self.cpu_s if p == group or p.startswith(f"{group}-")]
            cpu = sum(self.cpu_s[p] for p in procs)
            out.append(f"{group} {cpu / (taken * self.seconds) * 1e6:,.0f} µs")
        return ", ".join(out)


def _s(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _n(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


RESTART_POLL_S = 0.5


def worker_events(port: int) -> float:
    """Messages the readings agent of the worker on ``port`` took (0 when it cannot say)."""
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=1).text
    except httpx.HTTPError:
        return 0.0
    for line in text.splitlines():
        if line.startswith('sentio_stream_events_total{agent="readings"}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


class Restart(threading.Thread):
    """SIGKILL the first stream worker mid-step, start it again after a pause, and follow its
    group's lag (``ConsumerLag``, every 0.5 s) until it is back to the level before the kill.

    steady: the highest lag seen between the step's start and the kill (the lag a worker that
    keeps up shows between commits). Caught up: the first sample after the restart at or below
    it. Catch-up rate: readings/s the worker took from the peak of the lag to that sample
    (offered + the lag it worked off per second).
    """

    SIGNAL = signal.SIGKILL

    def __init__(
        self,
        pipeline: Pipeline,
        rate: float,
        after: float,
        down: float,
        *,
        cpu_before: dict[str, float],
    ) -> None:
        super().__init__(daemon=True)
        self.pipeline, self.rate, self.after, self.down = pipeline, rate, after, down
        self.cpu_before = cpu_before
        self.label = "streams-1"
        self.steady = 0
        self.peak, self.peak_at = 0, 0.0
        self.killed_at = self.restarted_at = self.caught_at = 0.0
        self.caught_lag = 0
        self.samples: list[tuple[float, int]] = []  # (seconds since the step began, lag)
        self.ready_at = self.first_batch_at = 0.0  # the restarted worker's /health, 1st batch
        self._done = threading.Event()

    def lag(self) -> int | None:
        group = self.pipeline.groups()["streams"]
        try:
            return self.pipeline.lag.measure(idle=True).get(group)
        except Exception:  # the group is rebalancing or gone for the moment
            return None

    def run(self) -> None:
        t0 = time.monotonic()
        self.steady = int(self.rate)  # at least one second of input
        while time.monotonic() - t0 < self.after:
            lag = self.lag()
            if lag is not None:
                self.samples.append((time.monotonic() - t0, lag))
                self.steady = max(self.steady, lag)
            time.sleep(RESTART_POLL_S)
        proc = next(p for p in self.pipeline.procs if p.label == self.label)
        cpu = proc.cpu_s()
        proc.process.send_signal(self.SIGNAL)
        proc.process.wait(10)
        self.killed_at = time.monotonic() - t0
        self.cpu_before[self.label] -= cpu  # the restarted process counts from zero
        time.sleep(self.down)
        self.pipeline._start(self.label, self.pipeline.commands[self.label])
        self.restarted_at = time.monotonic() - t0
        port = self.pipeline.worker_ports[0]
        while not self._done.is_set():
            self._milestones(port, t0)
            lag = self.lag()
            now = time.monotonic() - t0
            if lag is not None:
                self.samples.append((now, lag))
                if lag > self.peak:
                    self.peak, self.peak_at = lag, now
                elif lag <= self.steady and now > self.restarted_at:
                    self.caught_at, self.caught_lag = now, lag
                    return
            self._done.wait(RESTART_POLL_S)

    def _milestones(self, port: int, t0: float) -> None:
        """When the restarted worker was healthy and when it had processed its first batch."""
        if self.first_batch_at:
            return
        if not self.ready_at and healthy(port):
            self.ready_at = time.monotonic() - t0
        if self.ready_at and worker_events(port) > 0:
            self.first_batch_at = time.monotonic() - t0

    def finish(self) -> None:
        self._done.set()
        self.join(15)

    def caught_up(self) -> bool:
        return self.caught_at > 0

    def catch_up_rate(self) -> float | None:
        if not self.caught_up() or self.caught_at <= self.peak_at:
            return None
        return self.rate + (self.peak - self.caught_lag) / (self.caught_at - self.peak_at)

    def line(self) -> str:
        head = (
            f"restart: {self.label} {self.SIGNAL.name} {self.killed_at:.0f} s into the "
            f"{self.rate:,.0f}/s step, started again {self.down:.0f} s later; lag before the "
            f"kill at most {self.steady:,}, peak {self.peak:,}"
        )
        if self.first_batch_at:
            head += (
                f"; after the restart: healthy {self.ready_at - self.restarted_at:.1f} s, "
                f"first batch done {self.first_batch_at - self.restarted_at:.1f} s"
            )
        rate = self.catch_up_rate()
        if rate is None:
            last_at, last = self.samples[-1] if self.samples else (0.0, 0)
            if last_at <= self.peak_at or last >= self.peak:
                return f"{head}; NOT back to that level within the step"
            taken = self.rate + (self.peak - last) / (last_at - self.peak_at)
            return (
                f"{head}; NOT back to that level within the step: lag {last:,} "
                f"{last_at - self.restarted_at:.1f} s after the restart, taken from the peak at "
                f"{taken:,.0f} readings/s ({taken / self.rate:.1f}x offered)"
            )
        return (
            f"{head}; back to <= {self.steady:,} {self.caught_at - self.restarted_at:.1f} s "
            f"after the restart ({self.caught_at - self.killed_at:.1f} s after the kill); "
            f"catch-up rate {rate:,.0f} readings/s ({rate / self.rate:.1f}x offered)"
        )


class Pipeline:
    """The stream workers and sinks as ``sentio`` processes on the benchmark's configuration."""

    def __init__(
        self,
        config: SentioConfig,
        path: Path,
        work: Path,
        workers: int,
        *,
        quix: bool = False,
        beside_interval_s: float | None = None,
        beside_within_s: float | None = None,
    ) -> None:
        self.config, self.path, self.work, self.workers = config, path, work, workers
        self.quix = quix
        self.beside_interval_s = beside_interval_s  # a 2nd worker group, this commit interval
        self.beside_within_s = beside_within_s  # and this longest wait to fill a batch
        self.worker_command = [SENTIO]  # what starts a stream worker (--worker-command)
        self.procs: list[Proc] = []
        self.commands: dict[str, list[str]] = {}
        self.lag = ConsumerLag(config)
        self.worker_ports: list[int] = []

    def groups(self) -> dict[str, str]:
        name = self.config.streams.app_id
        groups = {
            "streams": name,
            "sink-victoriametrics": f"{name}-vm",
            "sink-loki": f"{name}-loki",
        }
        if self.quix:  # benchmarks.e2e.quix_stage: rollups + z-score in Quix Streams
            groups["quix"] = f"{name}-quix"
        if self.beside_interval_s is not None:
            groups[self.beside_label()] = f"{name}-ci"
        return groups

    def beside_label(self) -> str:
        """The second stream worker group's label: its group row and its process row."""
        within = "" if self.beside_within_s is None else f",within{self.beside_within_s:g}s"
        return f"streams@{self.beside_interval_s:g}s{within}"

    def start(self) -> None:
        groups = self.groups()
        self.worker_ports = [free_port() for _ in range(self.workers)]
        for n, port in enumerate(self.worker_ports):
            command = [*self.worker_command, "stream", "worker", "-c", str(self.path)]
            self._start(f"streams-{n + 1}", [*command, "--web-port", str(port)])
        self._spawn(
            "sink-victoriametrics",
            ["sink", "victoriametrics", "--group-id", groups["sink-victoriametrics"]],
        )
        self._spawn("sink-loki", ["sink", "loki", "--group-id", groups["sink-loki"]])
        if self.quix:
            quix = [sys.executable, "-m", "benchmarks.e2e.quix_stage", str(self.path)]
            self._start("quix-stage", quix)
        ports = [*self.worker_ports]
        if self.beside_interval_s is not None:
            beside = beside_config(self.path, self.beside_interval_s, self.beside_within_s)
            ports.append(free_port())
            command = [*self.worker_command, "stream", "worker", "-c", str(beside)]
            command += ["--web-port", str(ports[-1])]
            self._start(self.beside_label(), command)
        sinks = self.config.sinks
        ports += [sinks.victoriametrics.health_port, sinks.loki.health_port]
        deadline = time.monotonic() + 120  # TensorFlow, group joins, table recovery
        while not all(healthy(port) for port in ports):
            if time.monotonic() > deadline:
                raise SystemExit(f"the pipeline was not healthy in 120 s: see {self.work}")
            time.sleep(0.5)

    def _spawn(self, label: str, args: list[str]) -> None:
        self._start(label, [SENTIO, *args[:2], "-c", str(self.path), *args[2:]])

    def _start(self, label: str, command: list[str]) -> Proc:
        self.commands[label] = command
        log = (self.work / f"{label}.log").open("ab")
        proc = Proc(label, subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT))
        self.procs = [p for p in self.procs if p.label != label] + [proc]
        return proc

    def step(
        self,
        rate: float,
        seconds: float,
        producer: PacedProducer,
        latency: CommitLatency,
        probe: VmProbe,
        restart: tuple[float, float] | None = None,
    ) -> Step:
        """One step of ``rate`` for ``seconds``; ``restart`` (after, down): SIGKILL the first
        stream worker ``after`` seconds in and start it again ``down`` seconds later."""
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
        killer = None
        if restart is not None:
            killer = Restart(self, rate, *restart, cpu_before=cpu_before)
            killer.start()
        sent = producer.run(rate, seconds)
        elapsed = time.monotonic() - t0
        time.sleep(1.0)  # the last commits and probes of this step
        if killer is not None:
            killer.finish()
        lag_after = self._lags(groups)
        phases = {k: v - phases_before.get(k, 0.0) for k, v in self.phases().items()}
        if killer is not None:  # the restarted worker's counters began at zero
            phases = {}
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
        acked = producer.sent.acked_between(half, began + seconds)
        p50["produce (acked)"], p99["produce (acked)"] = (
            percentile(acked, 0.5),
            percentile(acked, 0.99),
        )
        return Step(
            offered=offered,
            restart=killer,
            taken=taken,
            lag_end=lag_after,
            p50=p50,
            p99=p99,
            cpu_s={p.label: p.cpu_s() - cpu_before[p.label] for p in self.procs},
            rss_mb={p.label: p.peak_rss_mb() for p in self.procs},
            seconds=elapsed,
            phases=phases,
            labels=list(
                dict.fromkeys(
                    [
                        "produce (acked)",
                        *groups,
                        "queryable in VM",
                        *(p.label for p in self.procs if p.label.startswith(STREAM_PROCS)),
                    ]
                )
            ),
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
