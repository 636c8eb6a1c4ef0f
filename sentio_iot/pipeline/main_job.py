"""The pipeline part of ``sentio run``: where the run keeps its files, the plant's clock, the
children's configuration, and the orchestrator, one run at a time per topic prefix.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from sentio_iot.config import SentioConfig
from sentio_iot.errors import StackError
from sentio_iot.pipeline.orchestrator import Orchestrator, RunOptions, RunOutcome
from sentio_iot.pipeline.plant import (
    TIME_ACCELERATION,
    plant_end,
    plant_entry,
    plant_start,
    read_clock,
    write_clock,
)
from sentio_iot.pipeline.run_config import write_run_config
from sentio_iot.pipeline.secure_roles import SecureRoles, as_admin
from sentio_iot.pipeline.workers import pipeline_children
from sentio_iot.stack.paths import StackPaths


@dataclass(frozen=True)
class PlantSize:
    devices: int
    rate: float
    duration_s: float | None


def run_dir(config: SentioConfig) -> Path:
    """``<state>/run/<topic prefix>``: runs on different topics keep apart (tests do that)."""
    prefix = config.topics.prefix.strip(".") or "default"
    return StackPaths(config.stack.home).state / "run" / prefix


@contextmanager
def one_run_at_a_time(folder: Path) -> Iterator[None]:
    """Fail at once, in one line, when another ``sentio run`` uses the same folder."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "run.lock"
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = path.read_text(encoding="utf-8").strip() or "?"
            raise StackError(
                f"another `sentio run` (pid {holder}) is running on these topics; stop it "
                "first, or give this one other topics (topics.prefix) and ports"
            ) from None
        os.ftruncate(descriptor, 0)
        os.write(descriptor, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.close(descriptor)


def api_notice(config: SentioConfig) -> list[str]:
    """The API's URL and, on the first start, its first admin's password (shown once)."""
    from sentio_iot.api.first_admin import ensure_first_admin, notice

    admin = ensure_first_admin(config.api.resolved_state_dir())
    return notice(config.api.base_url(), admin)


def run_pipeline(
    config: SentioConfig,
    size: PlantSize,
    *,
    headless: bool,
    stream_workers: int,
    out: TextIO,
    began: float,
    roles: SecureRoles | None = None,
) -> RunOutcome:
    """Start the children, show them until the end, stop them; what happened. ``roles``: on
    the secure stack, each child runs with its role's Kafka settings and the run with admin's
    (secure_roles.py); ``config`` and the children's file keep the configuration's own."""
    folder = run_dir(config)
    with one_run_at_a_time(folder):
        clock = folder / "plant-clock.txt"
        ours = not config.producers.get("simulate")
        start = plant_start(datetime.now(UTC), size.duration_s, resume=read_clock(clock))
        plant = plant_entry(size.devices, size.rate, folder / "simulate-ground-truth.csv", start)
        config_file = folder / "config.yaml"
        run_config = write_run_config(config, config_file, plant)
        specs = pipeline_children(
            run_config, config_file, stream_workers=stream_workers, roles=roles
        )
        described = (
            f"{size.devices} devices x {size.rate:g}/s, plant clock x{TIME_ACCELERATION:g} "
            f"from {start:%Y-%m-%d %H:%M} UTC"
            if ours
            else "as configured under producers.simulate"
        )
        out.write(f"== pipeline: {', '.join(s.name for s in specs)} (logs in {folder})\n")
        for line in api_notice(run_config):
            out.write(f"== {line}\n")
        options = RunOptions(duration_s=size.duration_s, headless=headless, plant=described)
        running_since = time.monotonic()
        try:
            ours_config = as_admin(run_config, roles)
            return Orchestrator(ours_config, specs, folder, options, out, began).run()
        finally:
            if ours:
                write_clock(clock, plant_end(start, time.monotonic() - running_since))
