"""The sink's counters for ``/metrics``: records written, batches, retries, dead letters, lag.

Every family carries the label ``sink`` (the backend), so one Prometheus job can scrape all
sinks and dashboards compare them. Thread-safe: counted on the event loop, read by the
health server's thread, lag filled in from the consumer thread.
"""

from __future__ import annotations

import threading

from sentio_iot.prometheus import sample_line

PREFIX = "sentio_sink_"


class SinkMetrics:
    """Counters of one sink process (one backend)."""

    def __init__(self, sink: str) -> None:
        self.sink = sink
        self._lock = threading.Lock()
        self.records_written = 0
        self.batches = 0
        self.retries = 0
        self.deadletter = 0
        self.write_seconds_sum = 0.0
        self.write_seconds_count = 0
        self.lag: dict[tuple[str, int], int] = {}

    def batch_written(self, records: int, seconds: float) -> None:
        with self._lock:
            self.records_written += records
            self.batches += 1
            self.write_seconds_sum += seconds
            self.write_seconds_count += 1

    def retried(self) -> None:
        with self._lock:
            self.retries += 1

    def dead_lettered(self, count: int = 1) -> None:
        with self._lock:
            self.deadletter += count

    def set_lag(self, lag: dict[tuple[str, int], int]) -> None:
        with self._lock:
            self.lag = dict(lag)

    def render(self) -> str:
        sink = (("sink", self.sink),)
        with self._lock:
            counters = [
                (
                    "records_written_total",
                    "Records the backend acknowledged.",
                    self.records_written,
                ),
                ("batches_total", "Batches written.", self.batches),
                ("retries_total", "Write attempts that failed and were retried.", self.retries),
                ("deadletter_total", "Records sent to the dead-letter topic.", self.deadletter),
            ]
            lines: list[str] = []
            for name, help_text, value in counters:
                lines += [f"# HELP {PREFIX}{name} {help_text}", f"# TYPE {PREFIX}{name} counter"]
                lines.append(sample_line(PREFIX + name, sink, value))
            lines += [
                f"# HELP {PREFIX}lag Records on Kafka not yet consumed, per partition.",
                f"# TYPE {PREFIX}lag gauge",
            ]
            for (topic, partition), lag in sorted(self.lag.items()):
                labels = (*sink, ("topic", topic), ("partition", str(partition)))
                lines.append(sample_line(f"{PREFIX}lag", labels, lag))
            name = f"{PREFIX}write_seconds"
            lines += [f"# HELP {name} Time to write one batch.", f"# TYPE {name} summary"]
            lines.append(sample_line(f"{name}_sum", sink, self.write_seconds_sum))
            lines.append(sample_line(f"{name}_count", sink, self.write_seconds_count))
        return "\n".join(lines) + "\n"
