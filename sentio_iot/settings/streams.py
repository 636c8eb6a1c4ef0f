"""Settings: the stream workers (`sentio stream worker`): Faust app, windows, device state."""

from __future__ import annotations

from pydantic import Field

from sentio_iot.settings import Section
from sentio_iot.settings.alerts import AlertSettings
from sentio_iot.settings.anomaly import AnomalySettings
from sentio_iot.settings.rul import RulSettings


class StreamSettings(Section):
    """The stream workers (`sentio stream worker`): Faust app, windows, device state."""

    anomaly: AnomalySettings = Field(default_factory=AnomalySettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    rul: RulSettings = Field(default_factory=RulSettings)
