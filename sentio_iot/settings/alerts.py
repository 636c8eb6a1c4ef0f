"""Settings: Alert rules and the alarm life cycle."""

from __future__ import annotations

from sentio_iot.settings import Section


class AlertSettings(Section):
    """Alert rules and the alarm life cycle."""
