"""Parsing the series a replay reads: NAB CSV files and C-MAPSS engine files.

NAB (Numenta Anomaly Benchmark): a ``timestamp,value`` header, then rows like
``2014-04-01 00:00:00,42.5`` (UTC). One device, one metric.

C-MAPSS (NASA turbofan degradation): no header; whitespace-separated rows of unit number,
cycle, three operational settings and 21 sensors. Each unit is a device ``<prefix>-<unit>``,
cycle ``c`` is at ``origin + c * cycle_s``, and the metrics are ``setting_1..3, s_1..s_21``.

A line that cannot be parsed becomes a :class:`BadLine` (its number, bytes and why) for the
dead-letter topic; the rest of the file is still replayed. Rows come out in time order (stable:
C-MAPSS units run side by side). ``nan`` values become missing values of quality BAD.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sentio_iot.errors import ConfigError
from sentio_iot.producers.replay.config import ReplayFormat

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
NAB_HEADER = ("timestamp", "value")
CMAPSS_METRICS = (
    *(f"setting_{i}" for i in range(1, 4)),
    *(f"s_{i}" for i in range(1, 22)),
)
CMAPSS_COLUMNS = 2 + len(CMAPSS_METRICS)


@dataclass(frozen=True, slots=True)
class Row:
    """One reading to replay: ``values`` line up with the series' metric names."""

    line: int
    device_id: str
    ts_us: int
    seq: int
    values: tuple[float | None, ...]


@dataclass(frozen=True, slots=True)
class BadLine:
    line: int
    raw: bytes
    reason: str


@dataclass
class Series:
    """A parsed file: metric names, rows in time order, and the lines that could not be read."""

    metrics: tuple[str, ...]
    units: tuple[str | None, ...]
    rows: list[Row] = field(default_factory=list)
    bad: list[BadLine] = field(default_factory=list)


def to_us(moment: datetime) -> int:
    """Microseconds since the epoch; a naive datetime is UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - EPOCH) // timedelta(microseconds=1)


def _number(text: str) -> float | None:
    """A float, None for 'nan'; ValueError for anything else (inf included)."""
    value = float(text)
    if math.isnan(value):
        return None
    if math.isinf(value):
        raise ValueError(f"{text!r} is not a finite number")
    return value


def detect_format(data: bytes) -> ReplayFormat:
    """NAB or C-MAPSS, told by the first non-empty line; ConfigError when it is neither."""
    first = next((line for line in data.splitlines() if line.strip()), b"")
    text = first.decode("utf-8", errors="replace").strip().lower()
    if tuple(part.strip() for part in text.split(",")) == NAB_HEADER:
        return ReplayFormat.NAB
    if len(text.split()) == CMAPSS_COLUMNS:
        return ReplayFormat.CMAPSS
    raise ConfigError(
        f"cannot tell the format from the first line {text[:80]!r}: expected the NAB header "
        f"'timestamp,value' or {CMAPSS_COLUMNS} C-MAPSS columns; set format: nab or cmapss"
    )


def parse_nab(data: bytes, device_id: str, metric: str, unit: str | None = None) -> Series:
    """A NAB file; ConfigError when its first line is not the ``timestamp,value`` header."""
    series = Series((metric,), (unit,))
    lines = data.splitlines()
    header = lines[0].decode("utf-8", errors="replace").strip().lower() if lines else ""
    if tuple(part.strip() for part in header.split(",")) != NAB_HEADER:
        raise ConfigError(
            f"not a NAB file: the first line is {header[:80]!r}, not 'timestamp,value'"
        )
    for number, raw in enumerate(lines[1:], start=2):
        if not raw.strip():
            continue
        try:
            stamp, value = raw.decode("utf-8").strip().split(",")
            ts_us = to_us(datetime.fromisoformat(stamp.strip()))
            series.rows.append(Row(number, device_id, ts_us, number - 1, (_number(value),)))
        except ValueError as exc:  # UnicodeDecodeError is one too
            series.bad.append(BadLine(number, raw, f"line {number}: {_why(exc)}"))
    series.rows.sort(key=lambda row: row.ts_us)
    return series


def parse_cmapss(data: bytes, prefix: str, origin_us: int, cycle_s: float) -> Series:
    """A C-MAPSS file: every unit a device, every cycle a reading at ``origin + cycle * cycle_s``."""
    series = Series(CMAPSS_METRICS, (None,) * len(CMAPSS_METRICS))
    cycle_us = round(cycle_s * 1_000_000)
    for number, raw in enumerate(data.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            fields = raw.decode("utf-8").split()
            if len(fields) != CMAPSS_COLUMNS:
                raise ValueError(f"{len(fields)} columns, expected {CMAPSS_COLUMNS}")
            unit, cycle = int(fields[0]), int(fields[1])
            if unit < 0 or cycle < 0:
                raise ValueError("unit and cycle must not be negative")
            values = tuple(_number(text) for text in fields[2:])
        except ValueError as exc:
            series.bad.append(BadLine(number, raw, f"line {number}: {_why(exc)}"))
            continue
        ts_us = origin_us + cycle * cycle_us
        series.rows.append(Row(number, f"{prefix}-{unit}", ts_us, cycle, values))
    series.rows.sort(key=lambda row: row.ts_us)
    return series


def _why(exc: ValueError) -> str:
    if isinstance(exc, UnicodeDecodeError):
        return "not UTF-8 text"
    message = str(exc)
    if message.startswith(("not enough values", "too many values")):
        return "expected 2 fields: timestamp,value"
    return message
