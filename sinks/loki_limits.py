"""What Loki and VictoriaLogs store of a log line, checked before the push.

Loki refuses a push holding a line it cannot store (400; the writer halves the batch to find
it), but VictoriaLogs answers 204 and drops or changes such lines: one more than
``-futureRetention`` ahead or older than ``-retentionPeriod`` is skipped (counted only in its
``vl_rows_dropped_total``), one at time 0 is stored at the time it arrived. So every line is
checked here first, against Loki's default limits and, for VictoriaLogs, its retention
(read from its ``/flags`` at start), and a line either would refuse or lose goes to the
dead-letter topic with the reason instead.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from sentio_iot.sinks.loki_push import Entry as Entry
from sentio_iot.sinks.loki_streams import Logged

# Loki's defaults (limits_config); VictoriaLogs takes more, but a pipeline may switch backends.
MAX_LINE_BYTES = 256 * 1024  # max_line_size
MAX_LABELS = 15  # max_label_names_per_series
MAX_LABEL_NAME_BYTES = 1024  # max_label_name_length
MAX_LABEL_VALUE_BYTES = 2048  # max_label_value_length
MAX_METADATA_BYTES = 64 * 1024  # max_structured_metadata_size
DAY_NS = 86_400 * 1_000_000_000
MARGIN_NS = 3600 * 1_000_000_000
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_PERIOD = re.compile(r"^(\d+(?:\.\d+)?)([hdwy]?)$")
_UNIT_DAYS = {"h": 1 / 24, "d": 1.0, "w": 7.0, "y": 365.0}


@dataclass(frozen=True)
class TimeBounds:
    """How old and how far ahead a line may be (ns); None: not checked."""

    max_age_ns: int | None = None
    max_ahead_ns: int = DAY_NS  # VictoriaLogs' default -futureRetention=2d, less its day rounding


def period_ns(text: str) -> int | None:
    """A VictoriaLogs duration flag (``7d``, ``100y``, ``2w``; a bare number is months)."""
    found = _PERIOD.match(text.strip().strip('"'))
    if found is None:
        return None
    number, unit = float(found.group(1)), found.group(2)
    days = number * (_UNIT_DAYS[unit] if unit else 31)
    return int(days * DAY_NS)


def victorialogs_bounds(flags_text: str) -> TimeBounds:
    """The bounds a VictoriaLogs with these ``/flags`` keeps (its defaults where unlisted)."""
    flags = dict(re.findall(r'^-(retentionPeriod|futureRetention)="?([^"\s]*)"?', flags_text, re.M))
    retention = period_ns(flags.get("retentionPeriod", "7d"))
    future = period_ns(flags.get("futureRetention", "2d")) or 2 * DAY_NS
    # It keeps lines up to the start of the day futureRetention ahead: at least this far.
    return TimeBounds(max_age_ns=retention, max_ahead_ns=max(future - DAY_NS, 0))


def problem(logged: Logged, bounds: TimeBounds, now_ns: int | None = None) -> str | None:
    """Why Loki or VictoriaLogs would refuse or lose this line; None when it stores it."""
    labels, entry = logged
    now_ns = time.time_ns() if now_ns is None else now_ns
    if entry.ts_ns <= 0:
        return (
            f"log line time {entry.ts_ns} ns is at or before 1970-01-01: the device clock was "
            "never set (VictoriaLogs would store it at the time it arrived, Loki refuses it)"
        )
    if entry.ts_ns > now_ns + bounds.max_ahead_ns:
        ahead = (entry.ts_ns - now_ns) / DAY_NS
        return (
            f"log line time is {ahead:.2f} days ahead of this clock: VictoriaLogs drops lines "
            "past its -futureRetention and Loki refuses them (check the device clock)"
        )
    if bounds.max_age_ns is not None and entry.ts_ns < now_ns - bounds.max_age_ns + MARGIN_NS:
        age = (now_ns - entry.ts_ns) / DAY_NS
        return (
            f"log line is {age:.1f} days old: older than the backend keeps "
            f"({bounds.max_age_ns / DAY_NS:g} days, -retentionPeriod), it would be dropped"
        )
    size = len(entry.line.encode())
    if size > MAX_LINE_BYTES:
        return f"log line of {size:,} bytes is over Loki's max_line_size ({MAX_LINE_BYTES:,})"
    if len(labels) > MAX_LABELS:
        return f"{len(labels)} labels: Loki takes at most {MAX_LABELS} (max_label_names_per_series)"
    for name, value in labels:
        if not LABEL_NAME.match(name) or len(name.encode()) > MAX_LABEL_NAME_BYTES:
            return (
                f"label name {name[:40]!r} is not a valid Loki label name ([a-zA-Z_][a-zA-Z0-9_]*)"
            )
        if len(value.encode()) > MAX_LABEL_VALUE_BYTES:
            return (
                f"label {name} is {len(value.encode()):,} bytes: Loki takes at most "
                f"{MAX_LABEL_VALUE_BYTES:,} (max_label_value_length)"
            )
    metadata = sum(len(k.encode()) + len(v.encode()) for k, v in entry.metadata)
    if metadata > MAX_METADATA_BYTES:
        return (
            f"structured metadata of {metadata:,} bytes: Loki takes at most "
            f"{MAX_METADATA_BYTES:,} (max_structured_metadata_size)"
        )
    for name, _value in entry.metadata:
        if not LABEL_NAME.match(name):
            return f"structured metadata name {name[:40]!r} is not a valid Loki label name"
    return None
