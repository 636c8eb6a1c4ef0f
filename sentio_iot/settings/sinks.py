"""Settings: The sinks (`sentio sink <backend>`): batching, retries and each backend's endpoint."""

from __future__ import annotations

from sentio_iot.settings import Section


class SinkSettings(Section):
    """The sinks (`sentio sink <backend>`): batching, retries and each backend's endpoint."""
