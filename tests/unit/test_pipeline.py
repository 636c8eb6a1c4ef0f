"""The main job's orchestrator without Kafka: metrics text, rates, plant sizing, the view,
the children's configuration, child supervision with real processes, the scrape config."""

from __future__ import annotations

import stat
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
import pytest
import yaml

from sentio_iot.config import SentioConfig, StackSettings
from sentio_iot.errors import StackError
from sentio_iot.pipeline.liveview import (
    View,
    WorkerRow,
    _clip,
    progress_line,
    render,
    summary_lines,
)
from sentio_iot.pipeline.main_job import one_run_at_a_time, run_dir
from sentio_iot.pipeline.metrics_text import by_label, parse_metrics, total
from sentio_iot.pipeline.orchestrator import where_to_look, work_done
from sentio_iot.pipeline.plant import (
    ANOMALY_RATE,
    DEGRADING_FRACTION,
    SIZES,
    TIME_ACCELERATION,
    DeviceCount,
    plant_end,
    plant_entry,
    plant_start,
    read_clock,
    write_clock,
)
from sentio_iot.pipeline.processes import ChildSpec, Supervisor
from sentio_iot.pipeline.rates import RateMeter
from sentio_iot.pipeline.results import Results, describe_alert, describe_anomaly
from sentio_iot.pipeline.run_config import write_run_config
from sentio_iot.pipeline.workers import missing_command, pipeline_children, unreachable_backend
from sentio_iot.producers.simulate.config import SimulateConfig
from sentio_iot.stack.paths import StackPaths
from sentio_iot.stack.victoriametrics import VictoriaMetricsService, render_scrape_config

METRICS = """\
# HELP sentio_sink_records_written_total Records written.
# TYPE sentio_sink_records_written_total counter
sentio_sink_records_written_total{sink="victoriametrics",topic="a"} 1200
sentio_sink_records_written_total{sink="victoriametrics",topic="b"} 34.5
sentio_sink_write_seconds_sum{sink="victoriametrics"} 1.25 1700000000000
sentio_stream_lag{topic="x \\"quoted\\"",partition="0"} 7
up 1
not a metric line
"""


def test_metrics_text_is_parsed_with_labels_and_summed() -> None:
    samples = parse_metrics(METRICS)
    assert [s.name for s in samples] == [
        "sentio_sink_records_written_total",
        "sentio_sink_records_written_total",
        "sentio_sink_write_seconds_sum",
        "sentio_stream_lag",
        "up",
    ]
    assert samples[3].labels == {"topic": 'x "quoted"', "partition": "0"}
    assert samples[2].value == 1.25  # the timestamp after the value is not the value
    assert total(samples, "sentio_sink_records_written_total") == 1234.5
    assert total(samples, "sentio_sink_records_written_total", topic="b") == 34.5
    assert total(samples, "sentio_stream_events_total") is None
    assert by_label(samples, "sentio_sink_records_written_total", "topic") == {
        "a": 1200.0,
        "b": 34.5,
    }


def test_rate_is_the_increase_per_second_and_a_restart_starts_over() -> None:
    meter = RateMeter(window_s=5.0)
    assert meter.rate("p") is None
    meter.add("p", 100, now=10.0)
    assert meter.rate("p") is None
    meter.add("p", 300, now=12.0)
    assert meter.rate("p") == 100.0
    for second in range(13, 21):
        meter.add("p", 300 + 50 * (second - 12), now=float(second))
    assert meter.rate("p") == 50.0  # only the last few seconds count
    meter.add("p", 10, now=21.0)  # the worker restarted: its counter began again
    assert meter.rate("p") is None
    meter.add("p", 40, now=22.0)
    assert meter.rate("p") == 30.0


def test_devices_take_a_number_or_a_size_name() -> None:
    count = DeviceCount()
    assert count.convert("small", None, None) == SIZES["small"] == 24
    assert count.convert("Medium", None, None) == 200
    assert count.convert("37", None, None) == 37
    with pytest.raises(click.BadParameter, match="neither a number nor one of small"):
        count.convert("huge", None, None)
    with pytest.raises(click.BadParameter, match="at least 1"):
        count.convert("0", None, None)


def test_plant_clock_starts_behind_and_catches_up_with_the_wall_clock() -> None:
    now = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    start = plant_start(now, 120.0)
    assert start == now - timedelta(seconds=120 * (TIME_ACCELERATION - 1))
    assert plant_end(start, 120.0) == now + timedelta(seconds=120)
    # Without a duration it aims at ten minutes of running.
    assert plant_start(now, None) == now - timedelta(seconds=600 * (TIME_ACCELERATION - 1))
    # Never before where the last run stopped: the stream's windows are past that.
    later = now + timedelta(hours=1)
    assert plant_start(now, 120.0, resume=later) == later
    assert plant_start(now, 120.0, resume=now - timedelta(days=1)) == start


def test_plant_clock_file_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "run" / "plant-clock.txt"
    assert read_clock(path) is None
    reached = datetime(2026, 11, 28, 12, 34, 56, tzinfo=UTC)
    write_clock(path, reached)
    assert read_clock(path) == reached
    path.write_text("garbage", encoding="utf-8")
    assert read_clock(path) is None


def test_plant_entry_is_a_valid_simulate_config(tmp_path: Path) -> None:
    start = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
    entry = plant_entry(200, 1.0, tmp_path / "truth.csv", start)
    plant = SimulateConfig.model_validate(entry)
    assert plant.devices == 200
    assert plant.time_acceleration == TIME_ACCELERATION == 12.0
    assert plant.step_us == 12_000_000  # a reading every 12 plant seconds per device
    assert plant.anomaly_rate == ANOMALY_RATE == 1.0
    assert plant.degrading_fraction == DEGRADING_FRACTION == 0.3
    assert (plant.failure_min_h, plant.failure_max_h) == (6.0, 48.0)  # simulate's defaults
    assert plant.start_time == start


def test_run_config_adds_the_plant_and_is_private(tmp_path: Path) -> None:
    config = SentioConfig(tenant="acme", topics={"prefix": "t1."})  # type: ignore[arg-type]
    path = tmp_path / "run" / "config.yaml"
    plant = plant_entry(5, 2.0, tmp_path / "truth.csv", datetime(2026, 1, 1, tzinfo=UTC))
    loaded = write_run_config(config, path, plant)
    assert loaded.tenant == "acme"
    assert loaded.topics.prefix == "t1."
    assert loaded.producers["simulate"][0]["devices"] == 5
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert yaml.safe_load(path.read_text(encoding="utf-8"))["producers"]["simulate"] == [plant]
    # A configuration that describes its own plant keeps it.
    own = SentioConfig(producers={"simulate": [{"devices": 3}]})
    assert write_run_config(own, path, plant).producers["simulate"] == [{"devices": 3}]


def test_run_dir_is_per_topic_prefix(tmp_path: Path) -> None:
    stack = StackSettings(home=tmp_path)  # type: ignore[call-arg]
    default = SentioConfig(stack=stack)
    other = SentioConfig(stack=stack, topics={"prefix": "t-42."})  # type: ignore[arg-type]
    assert run_dir(default) == tmp_path / "state" / "run" / "sentio"
    assert run_dir(other) == tmp_path / "state" / "run" / "t-42"


def test_a_second_run_on_the_same_topics_is_refused(tmp_path: Path) -> None:
    with (
        one_run_at_a_time(tmp_path),
        pytest.raises(StackError, match="another `sentio run`"),
        one_run_at_a_time(tmp_path),
    ):
        pass
    with one_run_at_a_time(tmp_path):  # released when the first run ended
        pass


def test_missing_commands_are_named() -> None:
    assert missing_command(("stack", "up")) is None
    assert missing_command(("nosuch", "thing")) == "`sentio nosuch` not available in this install"
    assert missing_command(("stack", "nosuch")) == (
        "`sentio stack nosuch` not available in this install"
    )


def test_children_are_the_producer_streams_and_three_sinks(tmp_path: Path) -> None:
    config = SentioConfig()
    specs = pipeline_children(config, tmp_path / "c.yaml", stream_workers=2)
    assert [s.name for s in specs] == [
        "producer",
        "streams-1",
        "streams-2",
        "sink-victoriametrics",
        "sink-loki",
        "sink-tempo",
        "sink-alertmanager",
        "api",
    ]
    assert [s.port for s in specs] == [9464, 6066, 6067, 9471, 9472, 9473, 9475, 8000]
    assert specs[-1].argv[-3:] == ("api", "-c", str(tmp_path / "c.yaml"))
    assert specs[0].argv[-5:] == (
        "simulate",
        "-c",
        str(tmp_path / "c.yaml"),
        "--progress-every",
        "10",
    )
    assert specs[0].metrics_url == "http://127.0.0.1:9464/metrics"
    assert specs[3].argv[-4:] == ("sink", "victoriametrics", "-c", str(tmp_path / "c.yaml"))
    assert specs[1].argv[-4:] == ("stream", "worker", "-c", str(tmp_path / "c.yaml"))
    assert dict(specs[2].env) == {"SENTIO_STREAMS__WEB_PORT": "6067"}


def python_child(name: str, code: str) -> ChildSpec:
    return ChildSpec(name, (sys.executable, "-c", code))


def test_a_child_that_dies_is_restarted_with_backoff(tmp_path: Path) -> None:
    supervisor = Supervisor(
        [python_child("crashy", "print('boom'); raise SystemExit(3)")], tmp_path
    )
    assert supervisor.start(now=0.0) == []
    child = supervisor.children[0]
    assert child.process is not None
    child.process.wait(10)
    assert supervisor.check(now=1.0) == [
        f"crashy: exited with status 3: boom; restarting in 1 s (log: {tmp_path / 'crashy.log'})"
    ]
    assert child.state == "restarting"
    assert supervisor.check(now=1.5) == []  # not yet
    assert supervisor.check(now=2.0)[0].startswith("crashy: restarted (pid ")
    assert child.restarts == 1
    child.process.wait(10)
    assert "restarting in 2 s" in supervisor.check(now=3.0)[0]  # the backoff doubled
    assert supervisor.stop() == []  # nothing was running any more


def test_a_configuration_error_is_not_restarted(tmp_path: Path) -> None:
    code = "import sys; print('error: streams.x: bad'); sys.exit(2)"
    supervisor = Supervisor([python_child("streams-1", code)], tmp_path)
    supervisor.start(now=0.0)
    child = supervisor.children[0]
    assert child.process is not None
    child.process.wait(10)
    line = supervisor.check(now=1.0)[0]
    assert line == (
        "streams-1: exited with status 2: error: streams.x: bad "
        "(not restarted: fix the configuration)"
    )
    assert child.state == "failed"
    assert supervisor.check(now=100.0) == []


def test_unavailable_children_are_reported_not_started(tmp_path: Path) -> None:
    spec = ChildSpec("sink-tempo", ("false",), unavailable="`sentio sink tempo` not available")
    supervisor = Supervisor([spec], tmp_path)
    assert supervisor.start() == ["sink-tempo: not started: `sentio sink tempo` not available"]
    assert supervisor.children[0].state == "unavailable"
    assert supervisor.stop() == []


def test_stop_terminates_every_running_child_and_says_so(tmp_path: Path) -> None:
    sleeper = "import time; time.sleep(60)"
    supervisor = Supervisor(
        [python_child("producer", sleeper), python_child("sink", sleeper)], tmp_path
    )
    supervisor.start()
    pids = [c.pid for c in supervisor.children]
    lines = supervisor.stop(grace_s=10.0)
    assert [line.split(" stopped in ")[0] for line in lines] == [
        f"producer (pid {pids[0]})",
        f"sink (pid {pids[1]})",
    ]
    assert all(c.process is not None and c.process.returncode == -15 for c in supervisor.children)
    assert [c.state for c in supervisor.children] == ["stopped", "stopped"]


def test_children_left_by_a_killed_run_are_stopped_at_the_next_start(tmp_path: Path) -> None:
    spec = python_child("producer", "import time; time.sleep(60)")
    first = Supervisor([spec], tmp_path)
    first.start()
    orphan = first.children[0].process
    assert orphan is not None
    second = Supervisor([spec], tmp_path)  # as if the first orchestrator had been SIGKILLed
    assert second.stop_leftovers() == [f"producer: stopped pid {orphan.pid} left by an earlier run"]
    assert orphan.wait(10) == -15
    assert second.stop_leftovers() == []


def view(**changes: object) -> View:
    results = Results(
        counts={"rollups": 1200, "anomalies": 3, "alerts": 1, "rul": 40},
        first_s={"rollups": 21.5, "anomalies": 48.25},
        anomalies=["sim-pump-003 vibration=9.1 score 0.97 [robust_zscore]"],
        alerts=["MAJOR FIRING sim-pump-003 anomaly: vibration high"],
        closest=[("sim-motor-007", 3.25, "hours")],
    )
    fields: dict[str, object] = {
        "elapsed_s": 61.2,
        "duration_s": 120.0,
        "plant": "24 devices x 1/s",
        "workers": [
            WorkerRow("producer", "running", True, 101, 24.0, 1464.0),
            WorkerRow("streams-1", "running", False, 102, None, None),
            WorkerRow("sink-tempo", "unavailable", False, None, None, None, note="not here"),
        ],
        "lag": {"sentio-streams": 12, "sentio-sink-loki": 0},
        "results": results,
        "where": ["VictoriaMetrics UI: http://127.0.0.1:8428/vmui"],
    }
    fields.update(changes)
    return View(**fields)  # type: ignore[arg-type]


def test_the_live_view_shows_every_part() -> None:
    lines = render(view(), color=False)
    assert lines[0] == "sentio run  61 s of 120 s  |  plant: 24 devices x 1/s"
    assert "producer              healthy          101        24/s         1,464  0" in lines
    assert "streams-1             starting         102           -             -  0" in lines
    assert "sink-tempo            unavailable        -           -             -  0" in lines
    assert "  not here" in lines
    assert "  sentio-sink-loki                               0" in lines
    assert "  sentio-streams                                12" in lines
    assert "results  rollups 1,200  anomalies 3  alerts 1  RUL predictions 40" in lines
    assert "  first rollup 21.5 s, first anomaly 48.2 s, first RUL prediction -" in lines
    assert "  sim-motor-007                  3.2 hours" in lines
    assert "  MAJOR FIRING sim-pump-003 anomaly: vibration high" in lines
    assert lines[-1] == "  VictoriaMetrics UI: http://127.0.0.1:8428/vmui"
    coloured = render(view())
    assert len(coloured) == len(lines)


def test_headless_progress_and_summary_lines() -> None:
    assert progress_line(view()) == (
        "[   61 s] producer 24/s; streams-1 -; sink-tempo unavailable | lag sentio-sink-loki 0, "
        "sentio-streams 12 | rollups 1,200, anomalies 3, alerts 1, RUL 40"
    )
    assert summary_lines(view(), 1464, ["producer (pid 101) stopped in 0.4 s"]) == [
        "== summary after 61.2 s",
        "  readings published: 1,464",
        "  rollups: 1200, anomalies: 3, alerts: 1, RUL predictions: 40",
        "  time to first rollup 21.5 s, first anomaly 48.2 s, first RUL prediction - (seconds after the start)",
        "  streams-1: no metrics from it (it never got ready)",
        "  sink-tempo: unavailable: not here",
        "  stopped: producer (pid 101) stopped in 0.4 s",
    ]


def test_lines_are_clipped_to_the_terminal_without_counting_escapes() -> None:
    assert _clip("abcdef", 4) == "abc"
    assert _clip("\x1b[1mabcdef\x1b[0m", 4) == "\x1b[1mabc\x1b[0m"
    assert _clip("ab", 10) == "ab"


def test_anomalies_and_alerts_are_one_line_each() -> None:
    anomaly = {
        "device_id": "sim-pump-003",
        "metric": "vibration",
        "value": 9.123,
        "expected": 2.5,
        "score": 0.974,
        "detector": "robust_zscore",
    }
    assert describe_anomaly(anomaly) == (
        "sim-pump-003 vibration=9.123 (expected 2.5) score 0.97 [robust_zscore]"
    )
    alert = {
        "severity": "MAJOR",
        "status": "FIRING",
        "device_id": "sim-pump-003",
        "type": "anomaly",
        "message": "vibration high",
    }
    assert describe_alert(alert) == "MAJOR FIRING sim-pump-003 anomaly: vibration high"


def test_where_to_look_names_the_uis_and_topics(tmp_path: Path) -> None:
    lines = where_to_look(SentioConfig(), tmp_path)
    assert lines[0].startswith("VictoriaMetrics UI: http://127.0.0.1:8428/vmui")
    assert lines[1] == (
        "VictoriaLogs query: http://127.0.0.1:9428/select/logsql/query"
        "?query=%7Bservice_name%3D%22sentio%22%7D&limit=20"
    )
    assert lines[2].startswith("Kafka topics: sentio.readings -> sentio.rollups, sentio.anomalies")
    assert lines[3] == f"worker logs: {tmp_path}"
    without_ui = where_to_look(SentioConfig(), tmp_path, vmui=False)
    assert without_ui[0] == (
        "VictoriaMetrics query: http://127.0.0.1:8428/api/v1/query?query=sentio_rul  "
        "(this build has no /vmui)"
    )


def test_victoriametrics_scrapes_every_worker_port(tmp_path: Path) -> None:
    settings = StackSettings(home=tmp_path)  # type: ignore[call-arg]
    service = VictoriaMetricsService(settings, StackPaths(tmp_path))
    service.prepare(progress=lambda line: None)
    path = tmp_path / "state" / "conf" / "victoriametrics-scrape.yml"
    scrape = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert scrape["global"] == {"scrape_interval": "10s"}
    targets = {
        job["job_name"]: job["static_configs"][0]["targets"] for job in scrape["scrape_configs"]
    }
    assert targets == {
        "sentio-producer": ["127.0.0.1:9464"],
        "sentio-streams": [f"127.0.0.1:{port}" for port in range(6066, 6070)],
        "sentio-sinks": [f"127.0.0.1:{port}" for port in range(9471, 9475)],
    }
    binary = service._binary()
    if binary is None:
        pytest.skip("no victoria-metrics binary to check the flags with")
    command = service.command()
    assert f"-promscrape.config={path}" in command
    assert "-promscrape.suppressScrapeErrors" in command
    # The binary itself accepts every flag and the file (and exits after checking them).
    checked = subprocess.run(
        [*command, "-promscrape.config.dryRun", "-loggerLevel=ERROR"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr
    assert render_scrape_config({"x": (1,)}, 5) == (
        "global:\n  scrape_interval: 5s\nscrape_configs:\n  - job_name: x\n"
        '    static_configs:\n      - targets: ["127.0.0.1:1"]\n'
    )


def test_a_tempo_that_does_not_answer_leaves_its_sink_out() -> None:
    import socket

    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    listening.listen()
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    try:
        up, down = listening.getsockname()[1], closed.getsockname()[1]
        answering = SentioConfig(sinks={"tempo": {"url": f"http://127.0.0.1:{up}/v1/traces"}})  # type: ignore[arg-type]
        silent = SentioConfig(sinks={"tempo": {"url": f"http://127.0.0.1:{down}/v1/traces"}})  # type: ignore[arg-type]
        assert unreachable_backend(answering, "tempo") is None
        assert unreachable_backend(silent, "tempo") == (
            f"no Tempo answers at http://127.0.0.1:{down}/v1/traces (the local stack has none; "
            "spans stay in the otlp-spans topic; set sinks.tempo.url to a Tempo or Collector)"
        )
        assert unreachable_backend(silent, "victoriametrics") is None  # always in the stack
        am_silent = SentioConfig(sinks={"alertmanager": {"url": f"http://127.0.0.1:{down}"}})  # type: ignore[arg-type]
        am_answering = SentioConfig(sinks={"alertmanager": {"url": f"http://127.0.0.1:{up}"}})  # type: ignore[arg-type]
        assert unreachable_backend(am_answering, "alertmanager") is None
        assert unreachable_backend(am_silent, "alertmanager") == (
            f"no Alertmanager answers at http://127.0.0.1:{down} (alerts stay in the alerts "
            "topic; start it with `sentio stack up` or set sinks.alertmanager.url)"
        )
    finally:
        listening.close()
        closed.close()


def test_work_done_counts_readings_through_the_stream_not_every_agent_event() -> None:
    samples = parse_metrics(
        'sentio_stream_events_total{agent="rollups"} 100\n'
        'sentio_stream_events_total{agent="anomaly"} 100\n'
        'sentio_stream_events_total{agent="alerts"} 7\n'
        'sentio_sink_records_written_total{sink="loki"} 5\n'
    )
    assert work_done("streams-1", samples) == 100
    assert work_done("streams-2", parse_metrics('sentio_stream_events_total{agent="x"} 3\n')) == 3
    assert work_done("sink-loki", samples) == 5
    assert work_done("producer", samples) is None


def test_sigterm_and_sigint_ask_the_run_to_stop_and_the_old_handlers_come_back() -> None:
    import os
    import signal
    import threading

    from sentio_iot.pipeline.orchestrator import stop_on_signals

    before = signal.getsignal(signal.SIGTERM)
    stop, caught = threading.Event(), []
    with stop_on_signals(stop, caught):
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGINT)
    assert stop.is_set()
    assert caught == ["SIGTERM", "SIGINT"]
    assert signal.getsignal(signal.SIGTERM) is before


def test_log_lines_go_to_a_file_while_the_live_view_draws(tmp_path: Path) -> None:
    import logging

    from sentio_iot.pipeline.orchestrator import logs_into

    root = logging.getLogger()
    before = root.handlers[:]
    with logs_into(tmp_path / "run.log"):
        logging.getLogger("sentio_iot.test").warning("kafka is slow today")
    assert root.handlers == before
    assert "WARNING sentio_iot.test: kafka is slow today" in (tmp_path / "run.log").read_text()


def test_lag_trend_gives_the_catch_up_rate_and_eta() -> None:
    from sentio_iot.pipeline.lag import LagTrend

    trend = LagTrend(window_s=30)
    for second, lag in enumerate([10_000, 9_000, 8_000, 7_000]):
        trend.observe({"sentio-streams": lag, "sentio-vm": 50 + 10 * second}, at=100.0 + second)
    falling = trend.trend("sentio-streams")
    assert falling is not None and falling.per_s == -1000.0 and falling.eta_s == 7.0
    assert falling.describe() == "falling 1,000/s, caught up in ~7 s"
    growing = trend.trend("sentio-vm")
    assert growing is not None and growing.describe() == "growing 10/s"
    trend.observe({"sentio-streams": 7_000}, at=200.0)  # the old points leave the window
    assert trend.trend("sentio-streams") is None


def test_the_api_is_left_out_with_a_reason_when_its_port_is_taken(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = SentioConfig(api={"port": port})  # type: ignore[arg-type]
        api = pipeline_children(config, tmp_path / "c.yaml")[-1]
        assert (api.name, api.unavailable) == (
            "api",
            f"port {port} is in use (another `sentio api`?); set api.port",
        )
