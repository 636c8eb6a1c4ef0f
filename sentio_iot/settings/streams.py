"""Settings: the stream workers (`sentio stream worker`): Faust app, windows, device state."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, field_validator

from sentio_iot.settings import Section
from sentio_iot.settings.alerts import AlertSettings
from sentio_iot.settings.anomaly import AnomalySettings
from sentio_iot.settings.rul import RulSettings

AGENT_NAMES = ("rollups", "device_state", "anomaly", "rul", "alerts")


class RollupSettings(Section):
    """Tumbling-window rollups per device and metric on event time."""

    windows_s: list[int] = Field(
        default_factory=lambda: [60, 3600],
        min_length=1,
        description="Window sizes in seconds; each gets its own tumbling windows, e.g. [60, 3600].",
    )
    grace_s: int = Field(
        10,
        ge=0,
        le=86400,
        description="How long (event time) a window stays open after its end for late readings.",
    )


class DeviceStateSettings(Section):
    """Last value, last-seen time and online/offline per device."""

    offline_after_s: float | None = Field(
        None,
        gt=0,
        description="Fixed silence (s) after which a device is OFFLINE; null: learned from the device's own cadence (offline_factor x its typical interval, at least offline_floor_s).",
    )
    offline_factor: float = Field(
        3.0, ge=1, description="Learned timeout = this factor x the device's typical interval."
    )
    offline_floor_s: float = Field(
        30.0, gt=0, description="Smallest learned timeout (s), so a fast device does not flap."
    )
    check_interval_s: float = Field(
        5.0, gt=0, le=3600, description="How often (wall clock, s) silent devices are looked for."
    )


class StreamSettings(Section):
    """The stream workers (`sentio stream worker`): Faust app, windows, device state."""

    app_id: str = Field(
        "sentio-streams",
        pattern=r"^[A-Za-z0-9._-]+$",
        description="Faust application id: the consumer group and the prefix of its changelog topics; workers with the same id share the partitions.",
    )
    agents: list[str] = Field(
        default_factory=lambda: list(AGENT_NAMES),
        description=f"Agents this worker runs, any of: {', '.join(AGENT_NAMES)}.",
    )

    @field_validator("agents")
    @classmethod
    def _known_agents(cls, names: list[str]) -> list[str]:
        unknown = [n for n in names if n not in AGENT_NAMES]
        if unknown:
            raise ValueError(
                f"unknown agent(s) {', '.join(unknown)}; use any of: {', '.join(AGENT_NAMES)}"
            )
        if not names:
            raise ValueError(f"name at least one of: {', '.join(AGENT_NAMES)}")
        return names

    state_dir: Path = Field(
        Path(os.environ.get("XDG_STATE_HOME", str(Path.home() / ".local" / "state")))
        / "sentio-iot"
        / "streams",
        description="Folder of the worker's local data (one sub-folder per app id and web port); its tables live in memory and are rebuilt from their changelogs at start.",
    )
    web_host: str = Field("127.0.0.1", description="Address of the /health and /metrics server.")
    web_port: int = Field(
        6066, ge=1, le=65535, description="Port of /health and /metrics (the next worker: +1)."
    )
    batch_max: int = Field(
        1000, ge=1, le=100000, description="Most readings an agent processes as one batch."
    )
    batch_within_s: float = Field(
        1.0, gt=0, le=60, description="Longest wait (s) to fill a batch before processing it."
    )
    commit_interval_s: float = Field(
        2.0,
        gt=0,
        le=60,
        description="How often (s) a transaction commits offsets, table changes and output together.",
    )
    fetch_max_wait_s: float = Field(
        0.1,
        gt=0,
        le=10,
        description="Longest time (s) the broker holds a fetch that finds too little new data (fetch_min_bytes). The consumer has one fetch in flight, so readings that arrive meanwhile wait for it: this bounds that wait (Faust's own value is 1.5 s).",
    )
    fetch_min_bytes: int = Field(
        65536,
        ge=1,
        le=16 * 1024 * 1024,
        description="Bytes of new data the broker waits for (at most fetch_max_wait_s) before answering a fetch: fewer, larger fetches and less CPU per reading, for at most fetch_max_wait_s more latency at low rates.",
    )
    snapshot_every_commits: int = Field(
        10,
        ge=1,
        le=1000,
        description="Write the rollup, anomaly and RUL states every this many commits per partition (and at every revoke and stop); higher: fewer state bytes per commit, but more readings replayed after a restart (up to this many commit intervals).",
    )
    snapshot_readings_per_state: float = Field(
        4.0,
        ge=0,
        le=10000,
        description="A partition's due snapshot waits while the readings since its last one are fewer than this many per state it would write, for at most 6 times snapshot_every_commits commits: with many devices and few readings each, a snapshot rewrites every device's state (about 20 KB) to spare a restart the replay of only a few readings per device. 0: every snapshot_every_commits commits, whatever the sizes.",
    )
    session_timeout_s: float = Field(
        10.0,
        ge=6,
        le=300,
        description="Kafka group session timeout: how soon a killed worker's partitions move.",
    )
    heartbeat_interval_s: float = Field(
        3.0, gt=0, le=100, description="Kafka group heartbeat interval."
    )
    rollups: RollupSettings = Field(default_factory=lambda: RollupSettings.model_validate({}))
    device_state: DeviceStateSettings = Field(
        default_factory=lambda: DeviceStateSettings.model_validate({})
    )
    anomaly: AnomalySettings = Field(default_factory=lambda: AnomalySettings.model_validate({}))
    alerts: AlertSettings = Field(default_factory=lambda: AlertSettings.model_validate({}))
    rul: RulSettings = Field(default_factory=lambda: RulSettings.model_validate({}))
