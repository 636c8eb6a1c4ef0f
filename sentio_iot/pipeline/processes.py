"""The pipeline's child processes: start them, restart one that dies, stop them all.

Each child leads its own process group (so a Ctrl-C in the terminal reaches only the
orchestrator, which then stops the children in order) and writes stdout and stderr to its
own log file. A child that exits is started again after a backoff (1 s doubling to 30 s,
back to 1 s after a minute of running), except one that exits with status 2, a
configuration error, or 3, Kafka refused its credentials or its ACLs refuse a topic or group
(``sentio_iot.errors.exit_status``), which no restart can fix: it is marked failed with its
last log line (for a refusal, the child's whole error line: it names the role, the topic or
group and the fix).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import time
from collections.abc import Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from sentio_iot.errors import EXIT_ACCESS_REFUSED, EXIT_CONFIG
from sentio_iot.stack.process import (
    ProcessRecord,
    log_tail,
    process_start_time,
    read_record,
    remove_record,
    rotate_log,
    write_record,
)
from sentio_iot.stack.process import stop as stop_recorded

log = logging.getLogger(__name__)

BACKOFF_FIRST_S = 1.0
BACKOFF_MAX_S = 30.0
HEALTHY_RUN_S = 60.0
STOP_GRACE_S = 15.0


@dataclass(frozen=True)
class ChildSpec:
    """One worker of the pipeline: its command line and where it answers."""

    name: str
    argv: tuple[str, ...]
    port: int | None = None  # of /health and /metrics
    unavailable: str | None = None  # why it cannot run here (e.g. its command is missing)
    env: tuple[tuple[str, str], ...] = ()  # on top of the orchestrator's environment
    tls_cert: str | None = None  # it serves HTTPS with this certificate (probed pinned to it)

    @property
    def metrics_url(self) -> str | None:
        return f"{self._base}/metrics" if self.port else None

    @property
    def health_url(self) -> str | None:
        return f"{self._base}/health" if self.port else None

    @property
    def _base(self) -> str:
        return f"{'https' if self.tls_cert else 'http'}://127.0.0.1:{self.port}"


@dataclass
class Child:
    """A running (or waiting, or failed) child and its history."""

    spec: ChildSpec
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    state: str = "waiting"  # waiting, running, restarting, failed, unavailable, stopped
    restarts: int = 0
    last_error: str | None = None
    started_at: float = 0.0
    restart_at: float = 0.0
    delay_s: float = BACKOFF_FIRST_S
    env: Mapping[str, str] = field(default_factory=dict)
    pid_file: Path | None = None  # lets the next run stop it if this orchestrator was killed

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def start(self, now: float) -> None:
        rotate_log(self.log_path)
        with self.log_path.open("ab") as out:
            self.process = subprocess.Popen(
                self.spec.argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env, **dict(self.spec.env)},
            )
        self.state, self.started_at = "running", now
        start_time = process_start_time(self.process.pid)
        if self.pid_file is not None and start_time is not None:
            record = ProcessRecord(self.process.pid, start_time, self.spec.argv)
            write_record(self.pid_file, record)
        log.debug("started %s pid=%s", self.spec.name, self.process.pid)

    def check(self, now: float) -> str | None:
        """Notice an exit and plan the restart; a line saying what happened, or None."""
        if self.state == "restarting" and now >= self.restart_at:
            self.restarts += 1
            self.start(now)
            return f"{self.spec.name}: restarted (pid {self.pid}, restart {self.restarts})"
        if self.state != "running" or self.process is None:
            return None
        code = self.process.poll()
        if code is None:
            return None
        refused = code == EXIT_ACCESS_REFUSED  # its credentials: no restart mends them
        tail = log_tail(self.log_path, lines=1, max_chars=4000 if refused else 200)
        self.last_error = f"exited with status {code}: {tail}"
        if refused:
            self.state = "failed"
            return (
                f"{self.spec.name}: Kafka refused its access (exit status {code}): {tail} "
                "(not restarted: fix its credentials)"
            )
        if code == EXIT_CONFIG:
            self.state = "failed"
            return f"{self.spec.name}: {self.last_error} (not restarted: fix the configuration)"
        if now - self.started_at >= HEALTHY_RUN_S:
            self.delay_s = BACKOFF_FIRST_S
        self.state, self.restart_at = "restarting", now + self.delay_s
        line = f"{self.spec.name}: {self.last_error}; restarting in {self.delay_s:.0f} s (log: {self.log_path})"
        self.delay_s = min(self.delay_s * 2, BACKOFF_MAX_S)
        return line

    def stop(self, grace_s: float = STOP_GRACE_S) -> bool:
        """SIGTERM its process group, SIGKILL after ``grace_s``; True if it was running."""
        was = self.state
        self.state = "stopped" if was not in ("unavailable", "failed") else was
        if self.pid_file is not None:
            remove_record(self.pid_file)
        if self.process is None or self.process.poll() is not None:
            return False
        _signal_group(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(grace_s)
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop within %.0f s: SIGKILL", self.spec.name, grace_s)
            _signal_group(self.process.pid, signal.SIGKILL)
            self.process.wait(5.0)
        return True


def _signal_group(pid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signum)  # start_new_session made it the leader of its own group


class Supervisor:
    """Every child of one run; call ``check()`` periodically, ``stop()`` once at the end."""

    def __init__(
        self, specs: Sequence[ChildSpec], log_dir: Path, env: Mapping[str, str] | None = None
    ) -> None:
        log_dir.mkdir(parents=True, exist_ok=True)
        self.children = [
            Child(
                spec,
                log_dir / f"{spec.name}.log",
                env=dict(env or {}),
                pid_file=log_dir / f"{spec.name}.pid",
            )
            for spec in specs
        ]

    def stop_leftovers(self) -> list[str]:
        """Stop children a killed earlier run left behind (recorded pid and start time match)."""
        lines = []
        for child in self.children:
            assert child.pid_file is not None
            record = read_record(child.pid_file)
            if record is not None and stop_recorded(record, grace_s=STOP_GRACE_S):
                lines.append(f"{child.spec.name}: stopped pid {record.pid} left by an earlier run")
            remove_record(child.pid_file)
        return lines

    def start(self, now: float | None = None) -> list[str]:
        """Start every child that can run; a line for each that cannot."""
        now = time.monotonic() if now is None else now
        lines = []
        for child in self.children:
            if child.spec.unavailable:
                child.state, child.last_error = "unavailable", child.spec.unavailable
                lines.append(f"{child.spec.name}: not started: {child.spec.unavailable}")
            else:
                child.start(now)
        return lines

    def check(self, now: float | None = None) -> list[str]:
        now = time.monotonic() if now is None else now
        return [line for child in self.children if (line := child.check(now))]

    def stop(self, grace_s: float = STOP_GRACE_S) -> list[str]:
        """Stop the first child (the producer: no new input), then the rest together.

        Returns a line per child that was running, with how long it took to stop.
        """
        first = [c.spec.name for c in self.children[:1]]
        rest = [c.spec.name for c in self.children[1:]]
        return self.stop_some(first, grace_s) + self.stop_some(rest, grace_s)

    def stop_some(self, names: Collection[str], grace_s: float = STOP_GRACE_S) -> list[str]:
        """Stop the children called ``names`` together; a line per child that was running."""
        group = [c for c in self.children if c.spec.name in names]
        if not group:
            return []
        with ThreadPoolExecutor(len(group), thread_name_prefix="stop") as pool:
            results = list(pool.map(lambda c: _timed_stop(c, grace_s), group))
        return [
            f"{child.spec.name} (pid {child.pid}) stopped in {took:.1f} s"
            for child, (stopped, took) in zip(group, results, strict=True)
            if stopped
        ]


def _timed_stop(child: Child, grace_s: float) -> tuple[bool, float]:
    began = time.monotonic()
    stopped = child.stop(grace_s)
    return stopped, time.monotonic() - began
