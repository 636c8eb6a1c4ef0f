"""Sinks: write metrics to VictoriaMetrics, events to Loki and traces to Tempo."""
