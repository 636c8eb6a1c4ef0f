"""Settings: Online anomaly detection in the stream: which detector, its parameters and threshold."""

from __future__ import annotations

from sentio_iot.settings import Section


class AnomalySettings(Section):
    """Online anomaly detection in the stream: which detector, its parameters and threshold."""
