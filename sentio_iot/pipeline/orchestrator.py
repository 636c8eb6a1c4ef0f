"""Run the pipeline's children until the duration is over or a signal arrives, watching and
showing them all the while, then stop them and say what was stopped.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TextIO
from urllib.parse import quote

import httpx

from sentio_iot.config import SentioConfig
from sentio_iot.pipeline.lag import ConsumerLag, LagTrend
from sentio_iot.pipeline.liveview import (
    LiveScreen,
    View,
    WorkerRow,
    progress_line,
    render,
    summary_lines,
)
from sentio_iot.pipeline.metrics_text import Sample, total
from sentio_iot.pipeline.probes import Poller, WorkerProbe, probe_workers
from sentio_iot.pipeline.processes import Child, ChildSpec, Supervisor
from sentio_iot.pipeline.rates import RateMeter
from sentio_iot.pipeline.results import ResultTail
from sentio_iot.schemas.catalog import CATALOG

TICK_S = 1.0
DRAIN_S = 30.0
LAG_EVERY_S = 3.0
NOTICES = 4
# The counter that says how much each kind of worker has done.
COUNTERS = {
    "producer": "sentio_producer_readings_published_total",
    "streams": "sentio_stream_events_total",
    "sink": "sentio_sink_records_written_total",
    "api": "sentio_api_view_records_total",
}
NOTIFIED = "sentio_sink_alertmanager_notifications"  # what Alertmanager sent, by outcome
PRODUCER_TOTALS = re.compile(r"stopped: \d+ reading\(s\) polled, (\d+) published")


def work_done(worker: str, samples: Sequence[Sample]) -> float | None:
    """How much a worker has done: readings published, readings through the stream (every
    reading passes the rollups agent; other agents see other topics), records written."""
    name = COUNTERS[worker.split("-")[0]]
    if worker.startswith("streams-"):
        readings = total(samples, name, agent="rollups")
        if readings is not None:
            return readings
    return total(samples, name)


class SinceFirst:
    """Counters as they grew since first seen: Alertmanager's cover its whole life (earlier
    runs, other pipelines), a run shows what they grew by since its sink first reported them."""

    def __init__(self) -> None:
        self._first: tuple[float, ...] | None = None

    def since_first(self, values: tuple[float, ...]) -> tuple[float, ...]:
        if self._first is None or any(v < f for v, f in zip(values, self._first, strict=True)):
            self._first = values  # first seen, or the counters restarted with Alertmanager
        return tuple(v - f for v, f in zip(values, self._first, strict=True))


@dataclass(frozen=True)
class RunOptions:
    duration_s: float | None
    headless: bool
    plant: str  # one line describing the plant, for the view
    progress_every_s: float = 10.0


@dataclass(frozen=True)
class RunOutcome:
    published: int | None
    counts: dict[str, int]
    first_s: dict[str, float]
    stopped: list[str]
    failed: list[str]  # children that failed (exited with a configuration error), with why
    unavailable: list[str]  # children that could not run here, with why
    interrupted_by: str | None


def where_to_look(config: SentioConfig, log_dir: Path, *, vmui: bool = True) -> list[str]:
    """URLs and commands for looking at what the pipeline wrote. ``vmui``: whether this
    VictoriaMetrics serves its UI (Debian's build leaves it out; then the query API)."""
    vm = f"http://127.0.0.1:{config.stack.victoriametrics_port}"
    vl = f"http://127.0.0.1:{config.stack.victorialogs_port}"
    logs_query = quote('{service_name="sentio"}', safe="")
    topic = {spec.name: spec.topic(config.topics) for spec in CATALOG}
    metrics = (
        f"VictoriaMetrics UI: {vm}/vmui  (try sentio_rul, sentio_anomaly_score, sentio_vibration_mean)"
        if vmui
        else f"VictoriaMetrics query: {vm}/api/v1/query?query=sentio_rul  (this build has no /vmui)"
    )
    return [
        metrics,
        f"VictoriaLogs query: {vl}/select/logsql/query?query={logs_query}&limit=20",
        f"Kafka topics: {topic['readings']} -> {topic['rollups']}, {topic['anomalies']}, "
        f"{topic['rul']}, {topic['alerts']}  (`sentio topics list`)",
        f"worker logs: {log_dir}",
        dashboard_line(config),
    ]


def dashboard_line(config: SentioConfig) -> str:
    """The dashboard's URL and how to sign in, read again at every redraw: a password changed
    during the run (`sentio users passwd admin`) is not shown any longer."""
    from sentio_iot.api.first_admin import sign_in_hint

    return f"dashboard: {dashboard_url(config)}  {sign_in_hint(config.api.resolved_state_dir())}"


def dashboard_url(config: SentioConfig) -> str:
    """The web dashboard that `sentio api` serves (a wildcard host is reached on 127.0.0.1)."""
    return f"{config.api.base_url()}/"


def serves_vmui(config: SentioConfig) -> bool:
    url = f"http://127.0.0.1:{config.stack.victoriametrics_port}/vmui/"
    try:
        return httpx.get(url, timeout=2.0, follow_redirects=True).status_code == 200
    except httpx.HTTPError:
        return False


@contextmanager
def logs_into(path: Path | None) -> Iterator[None]:
    """While the live view owns the terminal, log lines go to ``path`` instead of stderr
    (a line written between two frames would be drawn over)."""
    if path is None:
        yield
        return
    root = logging.getLogger()
    previous = root.handlers[:]
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root.handlers = [handler]
    try:
        yield
    finally:
        root.handlers = previous
        handler.close()


@contextmanager
def stop_on_signals(stop: threading.Event, caught: list[str]) -> Iterator[None]:
    """SIGINT and SIGTERM set ``stop`` (and name themselves in ``caught``) while inside."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(signum: int, _frame: FrameType | None) -> None:
        caught.append(signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class Orchestrator:
    """One run of the pipeline: children, probes, view."""

    def __init__(
        self,
        config: SentioConfig,
        specs: list[ChildSpec],
        log_dir: Path,
        options: RunOptions,
        out: TextIO,
        began: float,
    ) -> None:
        self.config = config
        self.options = options
        self.out = out
        self.began = began
        self.log_dir = log_dir
        self.supervisor = Supervisor(specs, log_dir)
        self.specs = specs
        self.where = where_to_look(config, log_dir, vmui=serves_vmui(config))
        self.rates = RateMeter()
        self.notices: deque[str] = deque(maxlen=NOTICES)
        self.stop = threading.Event()
        self._totals: dict[str, float] = {}
        self._notified = SinceFirst()  # Alertmanager's counters, this run's part
        self._taken: dict[str, WorkerProbe] | None = None
        self.tail = ResultTail(config, began, f"sentio-run-view-{os.getpid()}")
        lag = ConsumerLag(config)
        self.workers = Poller("workers", lambda: probe_workers(specs), TICK_S)
        self.lags = Poller("lag", lag.measure, LAG_EVERY_S)
        self.lag_trend = LagTrend()

    def run(self) -> RunOutcome:
        for line in self.supervisor.stop_leftovers():
            self._say(line)
        caught: list[str] = []
        screen = None if self.options.headless else LiveScreen(self.out)
        own_log = None if screen is None else self.log_dir / "sentio-run.log"
        try:
            self.tail.start()  # before the children: nothing they write is missed
            with stop_on_signals(self.stop, caught), logs_into(own_log):
                view = self._watch(screen)
                if screen is not None:
                    screen.close()
                    screen = None
                why = f" ({caught[0]})" if caught else ""
                self._print(f"== stopping the pipeline{why}")
                stopped = self._stop_in_stages()
        finally:
            if screen is not None:
                screen.close()
            self.workers.stop()
            self.lags.stop()
            self.tail.close()
            if not stopped_all(self.supervisor.children):
                self.supervisor.stop(grace_s=5.0)  # an error above: never leave children behind
        return self._sum_up(view, stopped, caught)

    def _watch(self, screen: LiveScreen | None) -> View:
        """Start the children and show them until the duration is over or a signal came."""
        for line in self.supervisor.start():
            self._say(line)
        plant_began = last_progress = time.monotonic()
        self.workers.start()
        self.lags.start()
        duration = self.options.duration_s
        while not self.stop.wait(TICK_S):
            now = time.monotonic()
            for line in self.supervisor.check(now):
                self._say(line)
            view = self._view()
            if screen is not None:
                screen.draw(render(view))
            elif now - last_progress >= self.options.progress_every_s:
                self._print(progress_line(view))
                last_progress = now
            if duration is not None and now - plant_began >= duration:
                break
        # One last look before the children go, so the summary has their totals.
        self.workers.stop()
        self.workers.latest = probe_workers(self.specs)
        view = self._view()
        if screen is not None:
            screen.draw(render(view))
        return view

    def _stop_in_stages(self) -> list[str]:
        """The producer first; then, unless a signal asked for a quick stop, each stage gets
        a moment to catch up with its input before it stops, so the summary and the
        backends hold everything the plant sent."""
        names = [c.spec.name for c in self.supervisor.children]
        app_id = str(getattr(self.config.streams, "app_id", ""))
        stopped = self.supervisor.stop_some(names[:1])
        self._drain("streams", lambda group: group == app_id)
        self._last_look()
        stopped += self.supervisor.stop_some([n for n in names if n.startswith("streams-")])
        self._drain("sinks", lambda group: group != app_id)
        self._last_look()
        stopped += self.supervisor.stop_some([n for n in names if n.startswith("sink-")])
        return stopped

    def _last_look(self) -> None:
        """Read the totals of the workers still running, so the summary counts what a stage
        did while it caught up (the alerts that close the run reach their sink only then)."""
        self._take_probes(probe_workers(self.specs), time.monotonic())

    def _drain(self, stage: str, wanted: Callable[[str], bool]) -> None:
        """Wait until the stage's consumer lag is 0 or stops moving, at most DRAIN_S. The
        stream workers' group keeps one message of lag per partition of an input written in
        transactions (Faust commits the last record's offset, not the marker after it); the
        sinks commit past the markers once idle."""
        began = time.monotonic()
        seen: list[int] = []
        while not self.stop.is_set() and time.monotonic() - began < DRAIN_S:
            try:
                lags = self.lags.measure()
            except Exception:  # no lag to read: nothing to wait for
                return
            seen.append(sum(lag for group, lag in lags.items() if wanted(group)))
            if seen[-1] == 0 or seen[-3:] == [seen[-1]] * 3:
                break
            self.stop.wait(1.0)
        if seen and seen[0]:
            self._print(
                f"== {stage} caught up: lag {seen[0]:,} -> {seen[-1]:,} "
                f"in {time.monotonic() - began:.1f} s"
            )

    def _sum_up(self, view: View, stopped: list[str], caught: list[str]) -> RunOutcome:
        view.results = self.tail.results()
        view.workers = [self._row(child, None) for child in self.supervisor.children]
        view.elapsed_s = time.monotonic() - self.began
        published = self._published()
        for line in summary_lines(view, published, stopped):
            self._print(line)
        return RunOutcome(
            published=published,
            counts=view.results.counts,
            first_s=view.results.first_s,
            stopped=stopped,
            failed=self._children_in("failed"),
            unavailable=self._children_in("unavailable"),
            interrupted_by=caught[0] if caught else None,
        )

    # -- pieces ------------------------------------------------------------------------------

    def _children_in(self, state: str) -> list[str]:
        return [
            f"{c.spec.name}: {c.last_error}" for c in self.supervisor.children if c.state == state
        ]

    def _say(self, line: str) -> None:
        self.notices.append(line)
        if self.options.headless:
            self._print(f"  {line}")

    def _print(self, line: str) -> None:
        self.out.write(line + "\n")
        self.out.flush()

    def _take_probes(self, probes: dict[str, WorkerProbe] | None, now: float) -> None:
        if probes is None or probes is self._taken:
            return  # the same look as last time: taking it again would skew the rates
        self._taken = probes
        for name, probe in probes.items():
            value = work_done(name, probe.samples)
            if value is not None:
                self.rates.add(name, value, now)
                self._totals[name] = value

    def _view(self) -> View:
        probes = self.workers.latest or {}
        self._take_probes(probes, time.monotonic())
        rows = [self._row(child, probes.get(child.spec.name)) for child in self.supervisor.children]
        lags = self.lags.latest
        trends: dict[str, str] = {}
        if lags:
            self.lag_trend.observe(lags, self.lags.measured_at)
            for group in lags:
                trend = self.lag_trend.trend(group)
                if trend is not None:
                    trends[group] = trend.describe()
        results = self.tail.results()
        alertmanager = probes.get("sink-alertmanager")
        sent = total(alertmanager.samples, NOTIFIED, outcome="sent") if alertmanager else None
        if alertmanager is not None and sent is not None:
            failed = total(alertmanager.samples, NOTIFIED, outcome="failed") or 0.0
            this_run = self._notified.since_first((sent, failed))
            results.counts["notifications"] = int(this_run[0])
            results.counts["notifications_failed"] = int(this_run[1])
        return View(
            elapsed_s=time.monotonic() - self.began,
            duration_s=self.options.duration_s,
            plant=self.options.plant,
            workers=rows,
            lag=self.lags.latest,
            lag_error=self.lags.error,
            lag_trends=trends,
            results=results,
            where=[*self.where[:-1], dashboard_line(self.config)],
            notices=list(self.notices),
        )

    def _row(self, child: Child, probe: WorkerProbe | None) -> WorkerRow:
        name = child.spec.name
        return WorkerRow(
            name=name,
            state=child.state,
            healthy=probe is not None and probe.healthy,
            pid=child.pid if child.state == "running" else None,
            per_s=self.rates.rate(name),
            total=self._totals.get(name),
            restarts=child.restarts,
            note=child.last_error,
        )

    def _published(self) -> int | None:
        """Readings Kafka confirmed: the producer's own closing line, else its last /metrics."""
        producer = self.supervisor.children[0]
        try:
            text = producer.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            text = ""
        found = PRODUCER_TOTALS.findall(text)
        if found:
            return int(found[-1])
        last = self._totals.get(producer.spec.name)
        return None if last is None else int(last)


def stopped_all(children: list[Child]) -> bool:
    return all(c.process is None or c.process.poll() is not None for c in children)
