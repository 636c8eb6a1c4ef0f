"""Settings: OpenTelemetry tracing of every worker: sampling and where spans go."""

from __future__ import annotations

from sentio_iot.settings import Section


class TracingSettings(Section):
    """OpenTelemetry tracing of every worker: sampling and where spans go."""
