"""Replay: NAB and C-MAPSS parsing, timing at N-times speed, timestamps, dead letters."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from sentio_iot.errors import ConfigError
from sentio_iot.producers.connector import ConnectorContext
from sentio_iot.producers.recording import RecordingEmitter
from sentio_iot.producers.replay.config import ReplayConfig, ReplayFormat
from sentio_iot.producers.replay.connector import ReplayConnector, replay_offset_s, replay_ts_us
from sentio_iot.producers.replay.formats import (
    CMAPSS_METRICS,
    detect_format,
    parse_cmapss,
    parse_nab,
)
from sentio_iot.records import DeviceEvent, EventKind, Quality, Reading, now_us

T0 = 1_396_310_400_000_000  # 2014-04-01 00:00:00 UTC
NAB = b"""timestamp,value
2014-04-01 00:00:00,10.5
2014-04-01 00:05:00,11
2014-04-01 00:10:00,-3.25
"""
ORIGIN = 1_199_145_600_000_000  # 2008-01-01 00:00:00 UTC


def cmapss_line(unit: int, cycle: int, first: float = 0.5) -> str:
    settings = [first, -0.0004, 100.0]
    sensors = [500.0 + s for s in range(1, 22)]
    return " ".join([str(unit), str(cycle), *map(str, settings + sensors)]) + "  "


@dataclass
class Recorder(RecordingEmitter):
    """What the connector emitted, and when each reading came (for pacing)."""

    times: list[float] = field(default_factory=list)

    def reading(self, reading: Reading) -> None:
        super().reading(reading)
        self.times.append(time.monotonic())


async def replay(path: Path, **settings: Any) -> Recorder:
    emitted = Recorder()
    cfg = ReplayConfig.model_validate({"path": path, "speed": 0, **settings})
    connector = ReplayConnector(cfg, emitted, ConnectorContext(site="lab"))
    await connector.connect()
    await connector.run()
    await connector.close()
    return emitted


# -- NAB --------------------------------------------------------------------------------------


def test_nab_rows_become_one_metric_readings() -> None:
    series = parse_nab(NAB, "machine_temp", "value", "degC")
    assert series.metrics == ("value",) and series.units == ("degC",)
    assert [(r.line, r.device_id, r.ts_us, r.seq, r.values) for r in series.rows] == [
        (2, "machine_temp", T0, 1, (10.5,)),
        (3, "machine_temp", T0 + 300_000_000, 2, (11.0,)),
        (4, "machine_temp", T0 + 600_000_000, 3, (-3.25,)),
    ]
    assert series.bad == []


def test_nab_malformed_lines_are_kept_with_their_line_numbers() -> None:
    data = NAB + b"2014-04-01 00:15:00\n\n2014-13-01 00:20:00,1\n2014-04-01 00:25:00,abc\n\xff,1\n"
    series = parse_nab(data, "d", "value")
    assert [(b.line, b.raw) for b in series.bad] == [
        (5, b"2014-04-01 00:15:00"),
        (7, b"2014-13-01 00:20:00,1"),
        (8, b"2014-04-01 00:25:00,abc"),
        (9, b"\xff,1"),
    ]
    assert series.bad[0].reason == "line 5: expected 2 fields: timestamp,value"
    assert series.bad[3].reason == "line 9: not UTF-8 text"
    assert all(b.reason.startswith(f"line {b.line}: ") for b in series.bad)
    assert len(series.rows) == 3


def test_nab_without_its_header_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="not a NAB file"):
        parse_nab(b"2014-04-01 00:00:00,1\n", "d", "value")


def test_nab_rows_come_out_in_time_order_and_nan_is_missing() -> None:
    data = b"timestamp,value\n2014-04-01 00:10:00,nan\n2014-04-01 00:00:00,1\n"
    series = parse_nab(data, "d", "value")
    assert [(r.ts_us, r.values) for r in series.rows] == [(T0, (1.0,)), (T0 + 600_000_000, (None,))]


# -- C-MAPSS ----------------------------------------------------------------------------------


def test_cmapss_units_become_devices_and_cycles_timestamps() -> None:
    lines = [cmapss_line(1, 1), cmapss_line(1, 2, 0.25), cmapss_line(2, 1, -1.0)]
    series = parse_cmapss("\n".join(lines).encode(), "fd001", ORIGIN, 600.0)
    assert series.metrics == CMAPSS_METRICS
    assert series.metrics[:4] == ("setting_1", "setting_2", "setting_3", "s_1")
    assert series.metrics[-1] == "s_21" and len(series.metrics) == 24
    assert [(r.line, r.device_id, r.ts_us, r.seq) for r in series.rows] == [
        (1, "fd001-1", ORIGIN + 600_000_000, 1),
        (3, "fd001-2", ORIGIN + 600_000_000, 1),
        (2, "fd001-1", ORIGIN + 1_200_000_000, 2),
    ]
    assert series.rows[0].values == (0.5, -0.0004, 100.0, *[500.0 + s for s in range(1, 22)])
    assert series.rows[1].values[0] == -1.0


def test_cmapss_malformed_lines_are_kept_with_their_line_numbers() -> None:
    lines = [
        cmapss_line(1, 1),
        "1 2 0.1 0.2",
        cmapss_line(1, 3).replace("0.5", "x"),
        "a" + cmapss_line(1, 4),
    ]
    series = parse_cmapss("\n".join(lines).encode(), "u", ORIGIN, 1.0)
    assert [(b.line, b.reason) for b in series.bad] == [
        (2, "line 2: 4 columns, expected 26"),
        (3, "line 3: could not convert string to float: 'x'"),
        (4, "line 4: invalid literal for int() with base 10: 'a1'"),
    ]
    assert [r.line for r in series.rows] == [1]


def test_format_is_told_by_the_first_line() -> None:
    assert detect_format(NAB) is ReplayFormat.NAB
    assert detect_format(f"\n{cmapss_line(1, 1)}\n".encode()) is ReplayFormat.CMAPSS
    with pytest.raises(ConfigError, match="cannot tell the format"):
        detect_format(b"a;b;c\n")


# -- timing -----------------------------------------------------------------------------------


def test_speed_factor_sets_when_each_reading_is_due() -> None:
    assert replay_offset_s(T0 + 300_000_000, T0, 1.0) == 300.0
    assert replay_offset_s(T0 + 300_000_000, T0, 10.0) == 30.0
    assert replay_offset_s(T0 + 300_000_000, T0, 0.5) == 600.0
    assert replay_offset_s(T0 + 300_000_000, T0, 0) == 0.0


def test_timestamps_are_kept_or_shifted_keeping_the_spacing() -> None:
    assert replay_ts_us(T0 + 300_000_000, T0, None) == T0 + 300_000_000
    assert replay_ts_us(T0 + 300_000_000, T0, 5_000_000) == 305_000_000


# -- the connector ----------------------------------------------------------------------------


async def test_replay_emits_readings_with_original_timestamps(tmp_path: Path) -> None:
    path = tmp_path / "ec2_cpu.csv"
    path.write_bytes(NAB)
    emitted = await replay(path, timestamps="original", unit="%", labels={"set": "nab"})
    assert [(r.device_id, r.ts_us, r.seq) for r in emitted.readings] == [
        ("ec2_cpu", T0, 1),
        ("ec2_cpu", T0 + 300_000_000, 2),
        ("ec2_cpu", T0 + 600_000_000, 3),
    ]
    first = emitted.readings[0]
    assert [(m.name, m.value, m.unit, m.quality) for m in first.metrics] == [
        ("value", 10.5, "%", Quality.GOOD)
    ]
    assert first.source == "replay"
    assert first.labels == {"tenant": "default", "site": "lab", "set": "nab"}


async def test_replay_shifts_timestamps_to_now(tmp_path: Path) -> None:
    path = tmp_path / "series.csv"
    path.write_bytes(NAB)
    before = now_us()
    emitted = await replay(path, device_id="press-7")
    stamps = [r.ts_us for r in emitted.readings]
    assert before <= stamps[0] <= now_us()
    assert [s - stamps[0] for s in stamps] == [0, 300_000_000, 600_000_000]
    assert {r.device_id for r in emitted.readings} == {"press-7"}


async def test_replay_paces_readings_by_the_speed_factor(tmp_path: Path) -> None:
    path = tmp_path / "fast.csv"  # one second apart, at 1000x: one millisecond apart
    path.write_text(
        "timestamp,value\n2014-04-01 00:00:00,1\n2014-04-01 00:00:01,2\n2014-04-01 00:00:03,3\n"
    )
    emitted = await replay(path, speed=1000)
    gaps = [b - a for a, b in zip(emitted.times, emitted.times[1:], strict=False)]
    assert gaps[0] >= 0.001 - 1e-4 and gaps[1] >= 0.002 - 1e-4
    assert emitted.times[-1] - emitted.times[0] < 0.5


async def test_replay_cmapss_file(tmp_path: Path) -> None:
    path = tmp_path / "train_FD001.txt"
    path.write_text("\n".join([cmapss_line(1, 1), cmapss_line(1, 2), cmapss_line(2, 1)]) + "\n")
    emitted = await replay(path, timestamps="original", cycle_s=3600)
    assert [(r.device_id, r.seq, r.ts_us) for r in emitted.readings] == [
        ("train_FD001-1", 1, ORIGIN + 3_600_000_000),
        ("train_FD001-2", 1, ORIGIN + 3_600_000_000),
        ("train_FD001-1", 2, ORIGIN + 7_200_000_000),
    ]
    assert [m.name for m in emitted.readings[0].metrics] == list(CMAPSS_METRICS)
    assert all(m.unit is None for m in emitted.readings[0].metrics)


async def test_malformed_lines_go_to_the_dead_letter_topic_with_their_line_number(
    tmp_path: Path,
) -> None:
    path = tmp_path / "broken.csv"
    path.write_bytes(NAB + b"2014-04-01 00:15:00;12\n2014-04-01 00:20:00,13\n")
    emitted = await replay(path)
    assert emitted.dead_letters == [
        (b"2014-04-01 00:15:00;12", "line 5: expected 2 fields: timestamp,value", str(path))
    ]
    assert [r.metrics[0].value for r in emitted.readings] == [10.5, 11.0, -3.25, 13.0]


async def test_a_missing_file_is_a_config_error_at_start_up(tmp_path: Path) -> None:
    cfg = ReplayConfig(path=tmp_path / "nope.csv")
    connector = ReplayConnector(cfg, Recorder(), ConnectorContext())
    with pytest.raises(ConfigError, match=r"nope.csv cannot be read: No such file"):
        await connector.connect()
    await connector.close()


async def test_a_file_of_another_format_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "other.csv"
    path.write_text("time;value\n1;2\n")
    with pytest.raises(ConfigError, match="cannot tell the format"):
        await replay(path)
    with pytest.raises(ConfigError, match="not a NAB file"):
        await replay(path, format="nab")


class FailingOnce(Recorder):
    """Fails on the third reading once, like a connector run that dies mid-file."""

    def reading(self, reading: Reading) -> None:
        if len(self.readings) == 2 and not self.events:
            self.events.append(DeviceEvent("x", 0, EventKind.ERROR, "failed", "test"))
            raise RuntimeError("publisher hiccup")
        super().reading(reading)


async def test_a_restarted_replay_goes_on_where_it_stopped(tmp_path: Path) -> None:
    path = tmp_path / "series.csv"
    path.write_bytes(NAB + b"bad line\n2014-04-01 00:20:00,13\n")
    emitted = FailingOnce()
    cfg = ReplayConfig(path=path, speed=0, timestamps="original")
    connector = ReplayConnector(cfg, emitted, ConnectorContext())
    await connector.connect()
    with pytest.raises(RuntimeError, match="hiccup"):
        await connector.run()
    await connector.close()
    await connector.connect()
    await connector.run()
    assert [r.metrics[0].value for r in emitted.readings] == [10.5, 11.0, -3.25, 13.0]
    assert [d[1] for d in emitted.dead_letters] == ["line 5: expected 2 fields: timestamp,value"]
