"""The stream worker's counters, rendered in the Prometheus text format for ``/metrics``.

Dimensions are labels, not parts of names (``sentio_stream_events_total{agent="rollups"}``).
Counters are bumped from the event loop only, so there is no lock. Gauges (lag, table sizes)
are read when ``/metrics`` is asked, through callables the app registers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from sentio_iot.prometheus import Family, MetricType, render_families

PREFIX = "sentio_stream_"

# A gauge source yields (label values, value) pairs when /metrics is asked.
GaugeSource = Callable[[], Iterable[tuple[tuple[str, ...], float]]]


class StreamMetrics:
    """Counters of the contract (brief: worker ports and Prometheus metrics) and gauges."""

    def __init__(self) -> None:
        self._families: dict[str, Family] = {}
        self._gauges: dict[str, GaugeSource] = {}
        self.events = self._family(
            "events_total", "Messages an agent took from its topics.", "counter", ("agent",)
        )
        self.emitted = self._family(
            "emitted_total", "Records an agent sent, per topic.", "counter", ("agent", "topic")
        )
        self.deadletter = self._family(
            "deadletter_total",
            "Messages an agent sent to the dead-letter topic.",
            "counter",
            ("agent",),
        )
        self.anomalies = self._family(
            "anomalies_total", "Anomalies emitted, per detector.", "counter", ("detector",)
        )
        self.alerts = self._family(
            "alerts_total", "Alert state changes emitted.", "counter", ("severity", "status")
        )
        self.rul_predictions = self._family(
            "rul_predictions_total", "RUL predictions emitted, per model.", "counter", ("model",)
        )
        self.seconds = self._family(
            "seconds_total",
            "Where the worker's time goes: process_batch (agents), wait_for_commit (a batch "
            "held while a transaction commits), flush_table_changes, commit (all of a commit, "
            "made of: flush_live_states, serialising and sending the changed live states; "
            "wait_state_acks, until the broker has them; commit_transactions, Faust's commit).",
            "counter",
            ("phase",),
        )
        self.state_writes = self._family(
            "state_writes_total",
            "Live states written to their tables (changelog) at commits: one per changed key.",
            "counter",
            (),
        )
        self.lag = self._family(
            "lag", "Messages not yet read, per source partition.", "gauge", ("topic", "partition")
        )
        self.table_keys = self._family(
            "table_keys", "Keys held in each table on this worker.", "gauge", ("table",)
        )

    def _family(
        self, name: str, help_text: str, kind: MetricType, labels: tuple[str, ...]
    ) -> Family:
        family = Family(PREFIX + name, help_text, kind, labels)
        self._families[family.name] = family
        return family

    def gauge_source(self, family: Family, source: GaugeSource) -> None:
        """Read ``family``'s values from ``source`` on every scrape (replacing what it had)."""
        self._gauges[family.name] = source

    def render(self) -> str:
        """All families in the Prometheus text exposition format."""
        for family in self._families.values():
            source = self._gauges.get(family.name)
            if source is not None:
                family.values = {labels: value for labels, value in source()}
        return render_families(self._families.values())
