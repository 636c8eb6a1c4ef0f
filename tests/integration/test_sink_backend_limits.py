"""Nothing the backend would drop or change while answering 204 counts as written: against the
real VictoriaMetrics and VictoriaLogs, records past their limits go to the dead-letter topic
with the reason before the write, the rest is stored exactly, and ``records_written`` counts
only what the backend keeps. The retention of each backend is read from its /flags at start
(the local stack keeps 100 years, so old records are written there)."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from test_sink_loki import VL, logsql
from test_sink_loki import sink_config as loki_config
from test_sink_victoriametrics import (
    create_topics,
    dead_letters,
    export,
    publish,
    run_until,
    sink_config,
)

from sentio_iot.sinks import loki_limits
from sentio_iot.sinks.loki_streams import Logged
from sentio_iot.sinks.runtime import SinkRuntime
from sentio_iot.sinks.victoriametrics import MONTH_MS, retention_ms

NOW_US = int(time.time() * 1e6) // 1_000_000 * 1_000_000
DAY_US = 86_400_000_000


def reading(device: str, ts: int, labels: dict[str, str], value: float = 1.5) -> dict[str, Any]:
    return {
        "device_id": device,
        "ts": ts,
        "metrics": [{"name": "flow", "value": value, "unit": "m3/h", "quality": "GOOD"}],
        "labels": labels,
        "source": "modbus",
        "seq": 1,
    }


async def test_victoriametrics_never_gets_what_it_would_drop_or_cut(unique_name: str) -> None:
    config = sink_config(f"{unique_name}.")
    create_topics(config)
    device = f"{unique_name}-pump"
    many = {f"l{i:02d}": "v" for i in range(26)}  # + name, device, tenant, site, source, unit
    publish(
        config,
        [
            ("readings", reading(device, NOW_US, {"line": "a"})),
            ("readings", reading(device, NOW_US - 60 * DAY_US, {"line": "old"})),  # kept 100 y
            ("readings", reading(device, NOW_US, {"line": "b", **many})),
            ("readings", reading(device, NOW_US, {"line": "c", "note": "x" * 5000})),
            ("readings", reading(device, NOW_US, {"line": "d", "n" * 300: "v"})),
        ],
    )
    runtime = SinkRuntime(config, "victoriametrics", group_id=unique_name, health_port=0)
    await run_until(runtime, done=5)

    assert (runtime.metrics.records_written, runtime.metrics.deadletter) == (2, 3)
    series = export(f'sentio_flow{{device="{device}"}}', 2)
    assert sorted((dict(labels)["line"], samples) for labels, samples in series.items()) == [
        ("a", [(NOW_US // 1000, 1.5)]),
        ("old", [((NOW_US - 60 * DAY_US) // 1000, 1.5)]),
    ]
    reasons = sorted(d["error"] for d in dead_letters(config, unique_name, 3))
    assert reasons == [
        "33 labels (the name included): VictoriaMetrics keeps 30 (-maxLabelsPerTimeseries) and silently drops the rest",
        "label name 'nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn'... is 300 bytes: VictoriaMetrics cuts names over 256 (-maxLabelNameLen)",
        "label note is 5000 bytes: VictoriaMetrics cuts values over 4096 (-maxLabelValueLen)",
    ]


def test_victoriametrics_retention_comes_from_its_flags() -> None:
    assert retention_ms('-httpListenAddr="127.0.0.1:8428"\n-retentionPeriod="100y"\n') == (
        100 * 365 * 86_400_000
    )
    assert retention_ms("") == MONTH_MS  # its default: one month
    assert retention_ms('-retentionPeriod="3"') == 3 * MONTH_MS
    assert retention_ms('-retentionPeriod="2w"') == 14 * 86_400_000


def event(device: str, ts: int, message: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "device_id": device,
        "ts": ts,
        "kind": "INFO",
        "message": message,
        "source": "modbus",
        "labels": labels,
    }


async def test_victorialogs_never_gets_what_it_would_drop_or_misdate(unique_name: str) -> None:
    from test_sink_loki import create_topics as loki_topics
    from test_sink_loki import publish as loki_publish
    from test_sink_loki import read_dead_letters

    config = loki_config(f"{unique_name}.", f"{VL}/insert/loki/api/v1/push", "protobuf")
    loki_topics(config)
    device = f"{unique_name}-press"
    loki_publish(
        config,
        [
            ("device-events", event(device, NOW_US, "kept now", {})),
            ("device-events", event(device, NOW_US - 30 * DAY_US, "kept old", {})),  # 100 y
            ("device-events", event(device, 0, "never set clock", {})),
            ("device-events", event(device, NOW_US + 10 * DAY_US, "far ahead", {})),
            ("device-events", event(device, NOW_US, "x" * 300_000, {})),
            ("device-events", event(device, NOW_US, "huge tenant", {"tenant": "t" * 3000})),
        ],
    )
    runtime = SinkRuntime(config, "loki", group_id=unique_name, health_port=0)
    await run_until(runtime, done=6)

    assert (runtime.metrics.records_written, runtime.metrics.deadletter) == (2, 4)
    rows = logsql(f'device_id:"{device}" | fields _msg, _time', 2)
    assert sorted(row["_msg"] for row in rows) == [
        f"{device} INFO: kept now",
        f"{device} INFO: kept old",
    ]
    reasons = sorted(d["error"] for d in read_dead_letters(config, unique_name, 4))
    assert reasons[0].startswith("label tenant is 3,000 bytes: Loki takes at most 2,048")
    assert reasons[1].startswith("log line of 300,") and "max_line_size (262,144)" in reasons[1]
    assert reasons[2].startswith("log line time 0 ns is at or before 1970-01-01")
    # NOW_US is taken at import: minutes later in a long run the line is a little less ahead
    assert re.match(r"log line time is (9\.9\d|10\.00) days ahead of this clock", reasons[3])


def logged(ts_ns: int) -> Logged:
    return ((("service_name", "sentio"),), loki_limits.Entry(ts_ns, "line"))


@pytest.mark.parametrize(
    ("flags", "age_days", "refused"),
    [
        ("", 6.9, False),  # VictoriaLogs' default retention: 7 days
        ("", 7.1, True),
        ('-retentionPeriod="100y"\n', 3650, False),
        ('-retentionPeriod="2w"\n', 13, False),
        ('-retentionPeriod="2w"\n', 15, True),
    ],
)
def test_victorialogs_retention_from_its_flags(flags: str, age_days: float, refused: bool) -> None:
    bounds = loki_limits.victorialogs_bounds(flags)
    now = time.time_ns()
    reason = loki_limits.problem(logged(now - int(age_days * loki_limits.DAY_NS)), bounds, now)
    assert (reason is not None) == refused, reason
    if refused:
        assert "older than the backend keeps" in str(reason)
