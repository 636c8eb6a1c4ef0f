"""Streams: Faust agents that aggregate, detect anomalies, predict RUL and raise alerts."""
