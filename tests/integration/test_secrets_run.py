"""Secrets stay secret in a run: every kind of secret configured (the values of
tests/unit/test_secrets_config.py), a short `sentio run`, then its output and every log file
searched for each. Only the workers' own configuration file (mode 0600) holds them."""

from __future__ import annotations

import shutil
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner
from secret_settings import configuration, leaks, write
from test_main_job import free_ports

from sentio_iot.cli.main import cli
from sentio_iot.config import load_config
from sentio_iot.pipeline.main_job import run_dir


@pytest.mark.timeout(240)
def test_a_short_run_logs_no_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, unique_name: str
) -> None:
    data = configuration(tmp_path)
    del data["producers"]  # `sentio run` runs the simulated plant; they were checked above
    path = write(tmp_path / "sentio.yaml", data)
    monkeypatch.setenv("SENTIO_TOPICS__PREFIX", f"{unique_name}.")
    monkeypatch.setenv("SENTIO_TENANT", unique_name)
    monkeypatch.setenv("SENTIO_PRODUCER__BUFFER_DIR", str(tmp_path / "buffer"))
    monkeypatch.setenv("SENTIO_STREAMS__APP_ID", unique_name)
    monkeypatch.setenv("SENTIO_STREAMS__STATE_DIR", str(tmp_path / "streams"))
    names = (
        "SENTIO_PRODUCER__HEALTH_PORT",
        "SENTIO_STREAMS__WEB_PORT",
        "SENTIO_SINKS__VICTORIAMETRICS__HEALTH_PORT",
        "SENTIO_SINKS__LOKI__HEALTH_PORT",
        "SENTIO_SINKS__TEMPO__HEALTH_PORT",
    )
    for name, port in zip(names, free_ports(len(names)), strict=True):
        monkeypatch.setenv(name, str(port))
    folder = run_dir(load_config(path))
    try:
        args = ["run", "-c", str(path), "--headless", "--devices", "4", "--duration", "15"]
        result = CliRunner().invoke(cli, [*args, "--count", "10"])
        assert "== summary after " in result.output, (result.output, result.exception)
        assert "sink-victoriametrics, sink-loki, sink-tempo" in result.output  # used them
        assert leaks(result.output) == []
        logs = [p for p in folder.rglob("*") if p.is_file() and p.name != "config.yaml"]
        assert any(p.suffix == ".log" for p in logs), logs
        for log in logs:
            assert leaks(log.read_text(encoding="utf-8", errors="replace")) == [], log
        workers_config = folder / "config.yaml"  # the workers need the real values
        assert stat.S_IMODE(workers_config.stat().st_mode) == 0o600
        assert len(leaks(workers_config.read_text())) == 8
    finally:
        shutil.rmtree(folder, ignore_errors=True)
